//! The edge: every client connection passes here before Pingora's HTTP code sees a byte.
//!
//! For each connection, in order: the PROXY header (from trusted balancers,
//! [`crate::edge::proxy_protocol`]), the connection caps (all clients, one client address), the TLS
//! handshake within its deadline on the HTTPS listener ([`crate::edge::https`]), then for
//! each request on it the head read with a total deadline and checked strictly ([`head`]),
//! the in-flight cap, and only then Pingora's HTTP/1 session, fed the head again
//! ([`prefixed`]) with the body and write deadlines set. Refusals are answered here in the
//! client's dialect with `Connection: close`, and counted. HTTP/2 (ALPN `h2` over TLS) goes
//! to Pingora after the connection caps: the h2 crate frames it under [`h2::options`], and
//! each decoded request meets the same head caps and in-flight cap in `request_filter`
//! ([`h2::admit`]).
//!
//! Keep-alive is driven here (not by Pingora's service loop) so that every request on a
//! connection, not only the first, meets the same deadline and checks.

pub mod https;
mod proxy_protocol;

pub mod h2;
pub mod head;
mod memory;
mod prefixed;
mod reply;
mod slots;

use crate::config::edge::EdgeSettings;
use crate::error::{GatewayError, Shed};
use crate::metrics::METRICS;
use crate::runtime::Runtime;
use crate::types::dialect::Dialect;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use head::{HeadInfo, HeadLimits};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use prefixed::Prefixed;
pub use slots::{EdgeSlots, RequestSlot};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

/// How one request head read ended.
enum HeadRead {
    Complete {
        bytes: Bytes,
        info: HeadInfo,
    },
    Rejected(head::Rejection, Dialect),
    /// The head began but did not complete within the header deadline.
    TimedOut(Dialect),
    /// Closed, failed, or idle past the keep-alive timeout before a byte: end quietly.
    Gone,
}

fn limits(edge: &EdgeSettings) -> HeadLimits {
    HeadLimits {
        max_head_bytes: edge.max_header_bytes,
        max_headers: edge.max_headers,
        max_request_line: edge.max_request_line,
        allow_underscores: edge.allow_underscores,
    }
}

/// Read one request head. Until its first byte the connection may wait `idle`; from then on
/// (or from `started`, for a connection's first request) the whole head has `header_timeout`.
async fn read_head(
    stream: &mut Stream,
    mut buf: BytesMut,
    idle: Duration,
    started: Option<Instant>,
    edge: &EdgeSettings,
    shutdown: &ShutdownWatch,
) -> HeadRead {
    // An idle kept-alive connection ends when the server shuts down, so a drain finishes.
    let mut shutdown = shutdown.clone();
    let limits = limits(edge);
    let mut deadline = started.map(|s| s + edge.header_timeout);
    loop {
        if !buf.is_empty() {
            match head::check(&buf, &limits) {
                Ok(Some(info)) => {
                    return HeadRead::Complete {
                        bytes: buf.freeze(),
                        info,
                    }
                }
                Ok(None) => {}
                Err(r) => return HeadRead::Rejected(r, head::dialect_of(&buf)),
            }
            deadline.get_or_insert_with(|| Instant::now() + edge.header_timeout);
        }
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => idle,
        };
        buf.reserve(4096);
        let idle = deadline.is_none();
        if idle && *shutdown.borrow() {
            return HeadRead::Gone;
        }
        let read = tokio::select! {
            read = tokio::time::timeout(wait, stream.read_buf(&mut buf)) => read,
            _ = shutdown.changed(), if idle => return HeadRead::Gone,
        };
        match read {
            Ok(Ok(n)) if n > 0 => {}
            Err(_) if !buf.is_empty() => return HeadRead::TimedOut(head::dialect_of(&buf)),
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => return HeadRead::Gone,
        }
    }
}

/// The API listeners' application: the edge in front of Pingora's proxy.
pub struct EdgeApp<A> {
    pub inner: Arc<A>,
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub slots: Arc<EdgeSlots>,
    /// The HTTPS listener's TLS (`None`: plain HTTP).
    pub tls: Option<Arc<crate::edge::https::TlsEdge>>,
}

impl<A: HttpServerApp + ServerApp + Send + Sync + 'static> EdgeApp<A> {
    /// Serve the requests of one HTTP/1 connection.
    async fn serve_http1(
        &self,
        mut stream: Stream,
        connection: Result<slots::ConnectionSlot, Shed>,
        shutdown: &ShutdownWatch,
    ) {
        let mut prefix = BytesMut::new();
        let mut started = Some(Instant::now());
        let mut persistent: Option<HttpPersistentSettings> = None;
        loop {
            let runtime = self.runtime.load_full();
            let edge = &runtime.config.edge;
            let idle = edge.keepalive_timeout;
            let read = read_head(&mut stream, prefix, idle, started, edge, shutdown).await;
            let (bytes, info) = match read {
                HeadRead::Complete { bytes, info } => (bytes, info),
                HeadRead::Rejected(r, dialect) => {
                    METRICS
                        .edge_rejections
                        .with_label_values(&[r.label()])
                        .inc();
                    let e = GatewayError::MalformedHead(r);
                    return reply::send(&mut stream, &e, dialect, edge.write_timeout).await;
                }
                HeadRead::TimedOut(dialect) => {
                    METRICS
                        .edge_rejections
                        .with_label_values(&["header_timeout"])
                        .inc();
                    let e = GatewayError::HeaderTimeout;
                    return reply::send(&mut stream, &e, dialect, edge.write_timeout).await;
                }
                HeadRead::Gone => return,
            };
            if let Err(shed) = &connection {
                return shed_reply(&mut stream, *shed, info.dialect, edge).await;
            }
            let _in_flight = match self.slots.begin_request(edge) {
                Ok(slot) => slot,
                Err(shed) => return shed_reply(&mut stream, shed, info.dialect, edge).await,
            };
            let mut session = ServerSession::new_http1(Box::new(Prefixed::new(
                stream,
                bytes,
                info.request_end(),
                edge.write_timeout,
            )));
            if let Some(p) = persistent.take() {
                p.apply_to_session(&mut session);
            }
            let keepalive = (!*shutdown.borrow()).then(|| edge.keepalive_timeout.as_secs().max(1));
            session.set_keepalive(keepalive);
            session.set_read_timeout(Some(edge.body_timeout));
            session.set_write_timeout(Some(edge.write_timeout));
            let Some(reused) = self.inner.process_new_http(session, shutdown).await else {
                return;
            };
            let (s, settings) = reused.consume();
            let Ok(p) = s.into_any().downcast::<Prefixed>() else {
                return;
            };
            let (inner, rest) = p.into_parts();
            stream = inner;
            prefix = rest;
            persistent = settings;
            started = None;
        }
    }
}

async fn shed_reply(stream: &mut Stream, shed: Shed, dialect: Dialect, edge: &EdgeSettings) {
    METRICS.shed.with_label_values(&[shed.label()]).inc();
    reply::send(
        stream,
        &GatewayError::Overloaded(shed),
        dialect,
        edge.write_timeout,
    )
    .await
}

#[async_trait]
impl<A: HttpServerApp + ServerApp + Send + Sync + 'static> ServerApp for EdgeApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut l4 = stream.into_any().downcast::<L4Stream>().ok()?;
        if !crate::edge::proxy_protocol::accept(&self.runtime, &mut l4).await {
            return None;
        }
        let edge = self.runtime.load().config.edge;
        // Counted from accept: a connection still in its TLS handshake holds its slot.
        let connection = self.slots.open(l4.as_ref(), &edge);
        let stream: Stream = match &self.tls {
            Some(tls) => tls.accept(*l4, edge.tls_handshake_timeout).await?,
            None => l4,
        };
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            if connection.is_err() {
                return None;
            }
            return ServerApp::process_new(&self.inner, stream, shutdown).await;
        }
        self.serve_http1(stream, connection, shutdown).await;
        None
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(self.inner.as_ref()).await
    }
}
