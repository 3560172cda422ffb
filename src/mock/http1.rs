//! Just enough HTTP/1.1 for the mock: read a request (Content-Length or chunked body), write a
//! JSON response, or stream SSE events as chunks.

use bytes::Bytes;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;

pub struct RawRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub keep_alive: bool,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A header's value by case-insensitive name.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Read one request. `Ok(None)` is a clean close between requests. `buf` carries bytes
/// already read past the previous request on this connection.
pub async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<RawRequest>, String> {
    let head_end = loop {
        if let Some(i) = memchr::memmem::find(buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err("request head too large".into());
        }
        if fill(stream, buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err("truncated head".into())
            };
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("/").to_string();
    let version = first.next().unwrap_or("HTTP/1.1");
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':').ok_or("malformed header line")?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let get = |n: &str| find_header(&headers, n).map(str::to_ascii_lowercase);
    let keep_alive = match get("connection").as_deref() {
        Some("close") => false,
        Some("keep-alive") => true,
        _ => version == "HTTP/1.1",
    };
    let chunked = get("transfer-encoding").is_some_and(|t| t.contains("chunked"));
    let length: usize = get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    buf.drain(..head_end + 4);
    let body = if chunked {
        read_chunked(stream, buf).await?
    } else {
        if length > MAX_BODY {
            return Err("body too large".into());
        }
        while buf.len() < length {
            if fill(stream, buf).await? == 0 {
                return Err("truncated body".into());
            }
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        body
    };
    Ok(Some(RawRequest {
        method,
        path,
        headers,
        body: Bytes::from(body),
        keep_alive,
    }))
}

async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = memchr::memmem::find(buf, b"\r\n") {
                break i;
            }
            if fill(stream, buf).await? == 0 {
                return Err("truncated chunk".into());
            }
        };
        let size_text = std::str::from_utf8(&buf[..line_end]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        buf.drain(..line_end + 2);
        if body.len() + size > MAX_BODY {
            return Err("body too large".into());
        }
        while buf.len() < size + 2 {
            if fill(stream, buf).await? == 0 {
                return Err("truncated chunk".into());
            }
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
        if size == 0 {
            return Ok(body);
        }
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, String> {
    let mut tmp = [0u8; 16 * 1024];
    let n = stream.read(&mut tmp).await.map_err(|e| e.to_string())?;
    buf.extend_from_slice(&tmp[..n]);
    Ok(n)
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// What a real provider adds to every answer, so tests see the gateway keep it from clients:
/// a cookie, the organisation billed, its own rate-limit state and request id.
const PROVIDER_HEADERS: &str = "x-request-id: mock\r\nopenai-organization: org-mock\r\n\
    x-ratelimit-remaining-requests: 9999\r\nset-cookie: __cf_bm=mock; path=/; HttpOnly\r\n";

pub async fn write_json(
    stream: &mut TcpStream,
    status: u16,
    extra: &[(&str, &str)],
    body: &serde_json::Value,
    keep_alive: bool,
) -> std::io::Result<()> {
    let body = body.to_string();
    write_body(stream, status, "application/json", extra, &body, keep_alive).await
}

/// A Prometheus text answer (a replica's `/metrics`).
pub async fn write_text(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    keep_alive: bool,
) -> std::io::Result<()> {
    let kind = "text/plain; version=0.0.4";
    write_body(stream, status, kind, &[], body, keep_alive).await
}

async fn write_body(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &str,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{PROVIDER_HEADERS}",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !keep_alive {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    stream.write_all(out.as_bytes()).await
}

/// An SSE response written as HTTP/1.1 chunks.
pub struct ChunkedWriter<'a> {
    stream: &'a mut TcpStream,
    split: bool,
}

impl<'a> ChunkedWriter<'a> {
    pub async fn start(
        stream: &'a mut TcpStream,
        split: bool,
    ) -> std::io::Result<ChunkedWriter<'a>> {
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
             transfer-encoding: chunked\r\n{PROVIDER_HEADERS}\r\n"
        );
        stream.write_all(head.as_bytes()).await?;
        Ok(ChunkedWriter { stream, split })
    }

    async fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        self.stream.write_all(&out).await
    }

    /// One event, `event: <name>` (when named) and `data: <json>` (in two writes when
    /// splitting).
    pub async fn event(
        &mut self,
        name: Option<&str>,
        v: &serde_json::Value,
    ) -> std::io::Result<()> {
        let text = match name {
            Some(n) => format!("event: {n}\ndata: {v}\n\n"),
            None => format!("data: {v}\n\n"),
        };
        if self.split {
            let mid = text.len() / 2;
            self.chunk(&text.as_bytes()[..mid]).await?;
            self.stream.flush().await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.chunk(&text.as_bytes()[mid..]).await
        } else {
            self.chunk(text.as_bytes()).await
        }
    }

    /// `data: [DONE]` and the end of the body.
    pub async fn done(&mut self) -> std::io::Result<()> {
        self.chunk(b"data: [DONE]\n\n").await?;
        self.stream.write_all(b"0\r\n\r\n").await
    }

    /// The end of the body, without `[DONE]` (Anthropic streams end with `message_stop`).
    pub async fn end(&mut self) -> std::io::Result<()> {
        self.stream.write_all(b"0\r\n\r\n").await
    }

    /// Abort with a TCP reset.
    #[expect(
        deprecated,
        reason = "a zero linger never blocks: it is exactly how to send RST"
    )]
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.stream.set_linger(Some(Duration::ZERO))
    }

    /// Raw bytes as one more chunk of the body (for garbage faults).
    pub async fn raw(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.chunk(data).await
    }

    /// Say nothing more; return when the peer closes the connection.
    pub async fn stall(&mut self) {
        use tokio::io::AsyncReadExt;
        let mut sink = [0u8; 1024];
        while matches!(self.stream.read(&mut sink).await, Ok(n) if n > 0) {}
    }
}
