//! The PROXY protocol (v1 text, v2 binary) on the API listeners, with `[access]
//! proxy_protocol = true`: a connection from one of `trusted_proxies` must begin with a PROXY
//! header, and the client address it names becomes the connection's peer, so IP rules, the
//! access log and `X-Forwarded-For` handling all see the real client. Connections from other
//! peers are served as they are (a PROXY header from them is not believed: it fails as HTTP).
//!
//! The edge ([`crate::edge`]) reads it with [`accept`] as a connection arrives, on plain and
//! TLS listeners alike (before the handshake, which the edge also runs). The header is
//! parsed by the `ppp` crate; only the framing (how many bytes to read) is ours.

use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use ppp::{HeaderResult, PartialResult};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::io::AsRawFd;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How long a trusted peer may take to send its header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest header read (v1 is at most 107 bytes; v2 carries TLVs).
const MAX_HEADER: usize = 4096;

/// Why a connection was dropped before any HTTP.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("no PROXY header within {0:?}")]
    Timeout(Duration),
    /// Closed before sending anything (a TCP health check): not an error worth counting.
    #[error("the connection closed before sending anything")]
    Closed,
    #[error("the connection closed before its PROXY header ended")]
    Truncated,
    #[error("not a PROXY protocol header")]
    Invalid,
    #[error("PROXY header over {MAX_HEADER} bytes")]
    TooLong,
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// Read one PROXY header off `l4` (bytes after it are put back for HTTP) and make the client
/// it names the connection's peer. `LOCAL`/`UNKNOWN` headers (a balancer's own health checks)
/// keep the socket's peer.
pub async fn read_header(l4: &mut L4Stream) -> Result<Option<SocketAddr>, HeaderError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    let (len, client) = loop {
        let n = tokio::time::timeout(HEADER_TIMEOUT, l4.read(&mut chunk))
            .await
            .map_err(|_| HeaderError::Timeout(HEADER_TIMEOUT))??;
        if n == 0 {
            return Err(if buf.is_empty() {
                HeaderError::Closed
            } else {
                HeaderError::Truncated
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        let parsed = HeaderResult::parse(&buf);
        if parsed.is_incomplete() {
            if buf.len() > MAX_HEADER {
                return Err(HeaderError::TooLong);
            }
            continue;
        }
        break match parsed {
            HeaderResult::V1(Ok(h)) => (h.header.len(), v1_source(&h.addresses)),
            HeaderResult::V2(Ok(h)) => (h.header.len(), v2_source(&h.addresses)),
            HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => {
                return Err(HeaderError::Invalid)
            }
        };
    };
    l4.rewind(&buf[len..]);
    if let Some(addr) = client {
        let digest = SocketDigest::from_raw_fd(l4.as_raw_fd());
        // A fresh digest's cell is empty, so this cannot fail.
        let _already = digest.peer_addr.set(Some(PeerAddr::Inet(addr)));
        l4.set_socket_digest(digest);
    }
    Ok(client)
}

fn v1_source(a: &ppp::v1::Addresses) -> Option<SocketAddr> {
    match a {
        ppp::v1::Addresses::Tcp4(t) => {
            Some(SocketAddr::new(IpAddr::V4(t.source_address), t.source_port))
        }
        ppp::v1::Addresses::Tcp6(t) => {
            Some(SocketAddr::new(IpAddr::V6(t.source_address), t.source_port))
        }
        ppp::v1::Addresses::Unknown => None,
    }
}

fn v2_source(a: &ppp::v2::Addresses) -> Option<SocketAddr> {
    match a {
        ppp::v2::Addresses::IPv4(t) => {
            Some(SocketAddr::new(IpAddr::V4(t.source_address), t.source_port))
        }
        ppp::v2::Addresses::IPv6(t) => {
            Some(SocketAddr::new(IpAddr::V6(t.source_address), t.source_port))
        }
        ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
    }
}

/// Whether this connection's peer must send a PROXY header (under the live config).
fn expected(runtime: &ArcSwap<Runtime>, l4: &L4Stream) -> bool {
    let runtime = runtime.load();
    let access = &runtime.config.access;
    access.proxy_protocol
        && l4
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
            .is_some_and(|ip| access.trusts(ip))
}

/// Read the header if this connection owes one; `false`: drop the connection.
pub async fn accept(runtime: &ArcSwap<Runtime>, l4: &mut L4Stream) -> bool {
    if !expected(runtime, l4) {
        return true;
    }
    match read_header(l4).await {
        Ok(_) => true,
        Err(HeaderError::Closed) => false,
        Err(e) => {
            log::info!("dropped a connection from a trusted proxy: {e}");
            crate::metrics::METRICS.proxy_protocol_errors.inc();
            false
        }
    }
}
