//! The HTTPS listener's certificate: chosen at every handshake from the live
//! [`Runtime`](crate::runtime::Runtime), so a reload (SIGHUP or `POST /admin/reload`) that
//! loaded a new certificate serves it to the next connection, and a reload that could not
//! load one left the old one in place (it never got past the config check).

use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{TlsAccept, ALPN};
use pingora::protocols::tls::TlsRef;
use pingora::tls::ext;
use std::sync::Arc;

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

/// TLS 1.2 and later (Mozilla's intermediate profile), ALPN h2 then http/1.1, and the current
/// certificate at every handshake.
pub fn settings(runtime: Arc<ArcSwap<Runtime>>) -> pingora::Result<TlsSettings> {
    let mut settings = TlsSettings::with_callbacks(Box::new(CurrentCert { runtime }))?;
    settings.set_alpn(ALPN::H2H1);
    Ok(settings)
}
