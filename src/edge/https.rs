//! The HTTPS listener's TLS, accepted by the edge itself so the handshake meets the edge:
//! the connection counts against the connection caps from accept (before any handshake
//! work), and a handshake must finish within `edge.tls_handshake_timeout_ms` (Pingora's own
//! TLS listener allows a fixed 60 s, uncounted). The handshake is Pingora's
//! ([`handshake_with_callback`]) over an OpenSSL acceptor built here: TLS 1.2 and later
//! (Mozilla's intermediate profile), ALPN h2 then http/1.1.
//!
//! The certificate is chosen at every handshake from the live
//! [`Runtime`](crate::runtime::Runtime), so a reload (SIGHUP or `POST /admin/reload`) that
//! loaded a new certificate serves it to the next connection, and a reload that could not
//! load one left the old one in place (it never got past the config check).

use crate::metrics::METRICS;
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::tls::server::handshake_with_callback;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::Stream;
use pingora::tls::ext;
use pingora::tls::ssl::{select_next_proto, AlpnError, SslAcceptor, SslMethod};
use std::sync::Arc;
use std::time::Duration;

/// Hands the current certificate to each TLS handshake.
pub struct CurrentCert {
    pub runtime: Arc<ArcSwap<Runtime>>,
}

#[async_trait]
impl TlsAccept for CurrentCert {
    async fn certificate_callback(&self, ssl: &mut TlsRef) -> () {
        let runtime = self.runtime.load();
        let Some(cert) = runtime.config.server_cert.as_ref() else {
            return log::error!("TLS handshake without a configured certificate");
        };
        let Some((leaf, chain)) = cert.chain.split_first() else {
            return;
        };
        let used = ext::ssl_use_certificate(ssl, leaf)
            .and_then(|_| {
                chain
                    .iter()
                    .try_for_each(|c| ext::ssl_add_chain_cert(ssl, c))
            })
            .and_then(|_| ext::ssl_use_private_key(ssl, &cert.key));
        if let Err(e) = used {
            log::error!("TLS handshake: cannot use the configured certificate: {e}");
        }
    }
}

/// The protocols offered, in order (ALPN wire format).
const ALPN_H2_H1: &[u8] = b"\x02h2\x08http/1.1";

/// The HTTPS listener's acceptor.
pub struct TlsEdge {
    acceptor: SslAcceptor,
    cert: CurrentCert,
}

impl TlsEdge {
    pub fn new(runtime: Arc<ArcSwap<Runtime>>) -> Result<TlsEdge, pingora::tls::error::ErrorStack> {
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
        builder.set_alpn_select_callback(|_, offered| {
            select_next_proto(ALPN_H2_H1, offered).ok_or(AlpnError::NOACK)
        });
        Ok(TlsEdge {
            acceptor: builder.build(),
            cert: CurrentCert { runtime },
        })
    }

    /// The TLS session over `l4`, or `None` when the handshake failed or did not finish
    /// `within` (counted in `tollgate_edge_rejections_total`).
    pub async fn accept(&self, l4: L4Stream, within: Duration) -> Option<Stream> {
        let handshake = handshake_with_callback(&self.acceptor, l4, &self.cert);
        let reason = match tokio::time::timeout(within, handshake).await {
            Ok(Ok(tls)) => return Some(Box::new(tls)),
            Ok(Err(e)) => {
                log::debug!("TLS handshake failed: {e}");
                "tls_handshake_failed"
            }
            Err(_) => "tls_handshake_timeout",
        };
        METRICS.edge_rejections.with_label_values(&[reason]).inc();
        None
    }
}
