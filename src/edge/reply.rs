//! The edge's own answers (a refused head, a shed request): the gateway's error in the
//! client's dialect, written straight to the connection with `Connection: close`, which is
//! then closed. Bounded by the write deadline, so a client that does not read cannot hold it.

use crate::error::GatewayError;
use crate::types::dialect::Dialect;
use pingora::protocols::Stream;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Write `e` as a complete response and close.
pub async fn send(stream: &mut Stream, e: &GatewayError, dialect: Dialect, within: Duration) {
    let body = e.body(dialect);
    let mut out = Vec::with_capacity(body.len() + 256);
    let status = http::StatusCode::from_u16(e.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    if let Ok(h) = e.response_header(body.len()) {
        for (name, value) in h.headers.iter() {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&body);
    let write = async {
        stream.write_all(&out).await?;
        stream.flush().await?;
        AsyncWriteExt::shutdown(stream).await
    };
    if let Err(e) = tokio::time::timeout(within, write).await.unwrap_or(Ok(())) {
        log::debug!("edge reply not delivered: {e}");
        return;
    }
    linger(stream).await;
}

/// Closing a socket with unread bytes in it sends a reset, which can destroy the answer
/// before the client reads it (a large or pipelined request is usually still arriving). So,
/// as nginx's lingering close, read and drop what comes for a short, bounded while first.
async fn linger(stream: &mut Stream) {
    const FOR: Duration = Duration::from_millis(1000);
    const AT_MOST: usize = 256 * 1024;
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    let until = tokio::time::Instant::now() + FOR;
    while drained < AT_MOST {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => return,
        }
    }
}
