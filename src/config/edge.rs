//! `[edge]`: what a client connection may cost before it is cut — deadlines, head size caps,
//! connection and in-flight caps. Every field has a default fit for an internet-facing door.

use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeSection {
    /// A request head must be complete this long after its first byte (a new connection's
    /// first head: after the connection opens).
    pub client_header_timeout_ms: u64,
    /// A request body read makes no progress for this long: the request ends (408).
    pub client_body_timeout_ms: u64,
    /// A response write makes no progress for this long (a client that stopped reading).
    pub client_write_timeout_ms: u64,
    /// An idle kept-alive connection is closed after this long.
    pub keepalive_timeout_ms: u64,
    /// Request line plus headers, in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// Header fields per request (431 beyond).
    pub max_headers: usize,
    /// The request line alone (414 beyond).
    pub max_request_line_bytes: usize,
    /// Accept `_` in header names (Envoy and nginx refuse them by default: a smuggling aid).
    pub allow_underscores_in_headers: bool,
    /// Open client connections, all listeners together (0: no cap).
    pub max_connections: usize,
    /// Open client connections from one client address (0: no cap).
    pub max_connections_per_ip: usize,
    /// Requests being served at once (0: no cap); beyond it, 503 `overloaded` at once.
    pub max_requests_in_flight: usize,
    /// Resident memory above which new requests are shed with 503 (0: off); streams in
    /// flight go on.
    pub shed_above_memory_mb: u64,
    /// HTTP/2: streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2: streams a client may reset before the server accepted them, at once (the
    /// rapid-reset defence); past it the connection is closed with GOAWAY.
    pub h2_max_pending_resets: usize,
    /// A TLS handshake must complete this long after the connection opens.
    pub tls_handshake_timeout_ms: u64,
}

impl Default for EdgeSection {
    fn default() -> Self {
        EdgeSection {
            client_header_timeout_ms: 10_000,
            client_body_timeout_ms: 30_000,
            client_write_timeout_ms: 30_000,
            keepalive_timeout_ms: 60_000,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_request_line_bytes: 8 * 1024,
            allow_underscores_in_headers: false,
            max_connections: 10_000,
            max_connections_per_ip: 0,
            max_requests_in_flight: 4_096,
            shed_above_memory_mb: 0,
            h2_max_concurrent_streams: 100,
            h2_max_pending_resets: 20,
            tls_handshake_timeout_ms: 10_000,
        }
    }
}

/// `[edge]`, checked.
#[derive(Debug, Clone, Copy)]
pub struct EdgeSettings {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_request_line: usize,
    pub allow_underscores: bool,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_in_flight: usize,
    /// Bytes of resident memory (0: no watermark).
    pub shed_above_memory: u64,
    pub h2_max_concurrent_streams: u32,
    pub h2_max_pending_resets: usize,
    pub tls_handshake_timeout: Duration,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        build_edge(&EdgeSection::default(), &mut Vec::new())
    }
}

pub fn build_edge(e: &EdgeSection, errs: &mut Vec<String>) -> EdgeSettings {
    let ms = |field: &str, v: u64, errs: &mut Vec<String>| {
        if v == 0 {
            errs.push(format!("edge.{field} must be > 0"));
        }
        Duration::from_millis(v.max(1))
    };
    for (field, v, min) in [
        ("max_header_bytes", e.max_header_bytes, 1024),
        ("max_headers", e.max_headers, 8),
        ("max_request_line_bytes", e.max_request_line_bytes, 256),
    ] {
        if v < min {
            errs.push(format!("edge.{field} must be at least {min}"));
        }
    }
    if e.h2_max_concurrent_streams == 0 {
        errs.push("edge.h2_max_concurrent_streams must be > 0".into());
    }
    if e.h2_max_pending_resets == 0 {
        errs.push("edge.h2_max_pending_resets must be > 0".into());
    }
    if e.max_request_line_bytes > e.max_header_bytes {
        errs.push("edge.max_request_line_bytes must not exceed edge.max_header_bytes".into());
    }
    EdgeSettings {
        header_timeout: ms("client_header_timeout_ms", e.client_header_timeout_ms, errs),
        body_timeout: ms("client_body_timeout_ms", e.client_body_timeout_ms, errs),
        write_timeout: ms("client_write_timeout_ms", e.client_write_timeout_ms, errs),
        keepalive_timeout: ms("keepalive_timeout_ms", e.keepalive_timeout_ms, errs),
        max_header_bytes: e.max_header_bytes,
        max_headers: e.max_headers,
        max_request_line: e.max_request_line_bytes,
        allow_underscores: e.allow_underscores_in_headers,
        max_connections: e.max_connections,
        max_connections_per_ip: e.max_connections_per_ip,
        max_in_flight: e.max_requests_in_flight,
        shed_above_memory: e.shed_above_memory_mb.saturating_mul(1024 * 1024),
        h2_max_concurrent_streams: e.h2_max_concurrent_streams.max(1),
        h2_max_pending_resets: e.h2_max_pending_resets.max(1),
        tls_handshake_timeout: ms("tls_handshake_timeout_ms", e.tls_handshake_timeout_ms, errs),
    }
}
