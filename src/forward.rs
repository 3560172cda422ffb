//! The forwarder: requests whose body exceeds Pingora's 64 KiB replay buffer, and streams that
//! can still fail over.
//!
//! Pingora 0.9.1 cannot replay a pre-read body over 64 KiB (PINGORA-NOTES §3), and its phases
//! send the response header before the first body byte is seen, so a 200 stream whose first
//! event is an error could not fail over. For those requests `request_filter` carries the
//! exchange itself over Pingora's pooled [`Connector`], holding the response until the first
//! event has been read.
//! Only the I/O differs from the proxy phases: the attempt, the upstream request, failover,
//! commit, metering and the client's errors are the same [`RequestCtx`] and
//! [`crate::upstream`] functions the phases call.

use crate::config::Provider;
use crate::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::proxy::{end_stream_with_error, respond_error};
use crate::server::Runtime;
use crate::upstream::{client_error_for, failure_reason};
use pingora::connectors::http::Connector;
use pingora::http::ResponseHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};
use std::time::{Duration, Instant};

/// Run the whole plan for this request, answering the client on every path.
pub async fn run(
    session: &mut Session,
    ctx: &mut RequestCtx,
    runtime: &Runtime,
    connector: &Connector,
) {
    let mut stale_retry_used = false;
    let started = Instant::now();
    loop {
        let target = match ctx.begin_attempt() {
            Ok(t) => t,
            Err(e) => return respond_error(session, ctx, e).await,
        };
        let clocks = Clocks::of(&target.provider, started);
        let peer = match runtime.upstreams.peer(&target) {
            Ok(p) => p,
            Err(e) => {
                if ctx.fail_over("unresolved", None) {
                    continue;
                }
                return respond_error(session, ctx, e).await;
            }
        };
        let Some(operation) = ctx.request.as_ref().map(|r| r.operation) else {
            return respond_error(session, ctx, GatewayError::Internal).await;
        };
        let mut req = session.req_header().clone();
        if runtime
            .upstreams
            .prepare_request(
                &mut req,
                &target,
                operation,
                ctx.attempt_body.len(),
                &ctx.request_id,
            )
            .is_err()
        {
            return respond_error(session, ctx, GatewayError::Internal).await;
        }

        let (mut upstream, reused) = match connector.get_http_session(&*peer).await {
            Ok(s) => s,
            Err(e) => {
                if ctx.fail_over(failure_reason(&e), None) {
                    continue;
                }
                return respond_error(session, ctx, client_error_for(&e)).await;
            }
        };
        if let Err(e) = send_request(&mut upstream, req, ctx, &clocks).await {
            if reused && !stale_retry_used {
                stale_retry_used = true;
                ctx.end_attempt("stale_connection", None);
                continue;
            }
            if ctx.fail_over(failure_reason(&e), None) {
                continue;
            }
            return respond_error(session, ctx, client_error_for(&e)).await;
        }
        let Some(mut header) = upstream.response_header().cloned() else {
            return respond_error(session, ctx, GatewayError::Internal).await;
        };
        let status = header.status.as_u16();
        if ctx.fail_over_on_status(status) {
            continue;
        }
        // A 200 stream whose first event is an error is a failure before content: fail over.
        let mut held = Vec::new();
        if status == 200 && is_event_stream(&header) && ctx.has_next_candidate() {
            match first_event(&mut upstream, &clocks).await {
                Ok((chunks, true)) => {
                    if ctx.move_on("first_frame_error", Some(status)) {
                        continue;
                    }
                    held = chunks; // no failover left: the client gets the error event
                }
                Ok((chunks, false)) => held = chunks,
                Err(e) => {
                    if ctx.fail_over(failure_reason(&e), None) {
                        continue;
                    }
                    return respond_error(session, ctx, client_error_for(&e)).await;
                }
            }
        }
        ctx.commit(&header);
        if ctx.shape_response_header(&mut header).is_err()
            || frame_for_http1(&mut header).is_err()
            || session
                .write_response_header(Box::new(header), false)
                .await
                .is_err()
        {
            ctx.client_gone = true;
            return;
        }
        relay_body(session, ctx, &mut upstream, held, &clocks).await;
        if !ctx.client_gone && ctx.upstream_cut.is_none() {
            connector
                .release_http_session(upstream, &*peer, Some(std::time::Duration::from_secs(60)))
                .await;
        }
        return;
    }
}

/// An upstream header (perhaps HTTP/2, perhaps stripped of its length) made ready for an
/// HTTP/1.1 client: version, and chunked framing when no length is known.
fn frame_for_http1(header: &mut ResponseHeader) -> pingora::Result<()> {
    header.set_version(http::Version::HTTP_11);
    let headers = &header.headers;
    if !headers.contains_key(http::header::CONTENT_LENGTH)
        && !headers.contains_key(http::header::TRANSFER_ENCODING)
    {
        header.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(())
}

async fn send_request(
    upstream: &mut HttpSession,
    req: pingora::http::RequestHeader,
    ctx: &RequestCtx,
    clocks: &Clocks,
) -> pingora::Result<()> {
    upstream.write_request_header(Box::new(req)).await?;
    upstream
        .write_request_body(ctx.attempt_body.clone(), true)
        .await?;
    upstream.finish_request_body().await?;
    clocks
        .within(clocks.first_byte, upstream.read_response_header())
        .await
}

/// The provider's timeouts for one attempt: first byte, idle between chunks, and the total
/// (counted from the start of the request's first attempt).
struct Clocks {
    first_byte: Duration,
    idle: Duration,
    deadline: Option<Instant>,
}

impl Clocks {
    fn of(p: &Provider, started: Instant) -> Clocks {
        Clocks {
            first_byte: p.first_byte_timeout,
            idle: p.idle_timeout,
            deadline: p.total_timeout.map(|t| started + t),
        }
    }

    /// Run `read`, failing with a timeout after `limit` or at the total deadline.
    async fn within<T>(
        &self,
        limit: Duration,
        read: impl std::future::Future<Output = pingora::Result<T>>,
    ) -> pingora::Result<T> {
        let left = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let (wait, total) = match left {
            Some(l) if l <= limit => (l, true),
            _ => (limit, false),
        };
        match tokio::time::timeout(wait, read).await {
            Ok(r) => r,
            Err(_) if total => Error::e_explain(
                ErrorType::Custom("total_timeout"),
                "the upstream exchange exceeded total_timeout_ms",
            ),
            Err(_) => Error::e_explain(ErrorType::ReadTimedout, format!("no data within {wait:?}")),
        }
    }
}

fn is_event_stream(h: &pingora::http::ResponseHeader) -> bool {
    h.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"))
}

/// Most bytes read while looking for the first event.
const FIRST_EVENT_LIMIT: usize = 64 * 1024;

/// Read until the first event that is not a comment is complete. Returns the chunks read and
/// whether that event is an error (`event: error`, or a `data:` object with an `error` key).
async fn first_event(
    upstream: &mut HttpSession,
    clocks: &Clocks,
) -> pingora::Result<(Vec<bytes::Bytes>, bool)> {
    let mut chunks = Vec::new();
    let mut seen = Vec::new();
    let mut scanned = 0;
    loop {
        let Some(chunk) = clocks
            .within(clocks.idle, upstream.read_response_body())
            .await?
        else {
            return Ok((chunks, false));
        };
        seen.extend_from_slice(&chunk);
        chunks.push(chunk);
        while let Some(end) = event_end(&seen[scanned..]) {
            let event = &seen[scanned..scanned + end];
            scanned += end;
            match classify(event) {
                Some(is_error) => return Ok((chunks, is_error)),
                None => continue, // a comment or keep-alive: look at the next one
            }
        }
        if seen.len() >= FIRST_EVENT_LIMIT {
            return Ok((chunks, false));
        }
    }
}

/// The length of the first complete event (its blank line included), if there is one.
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = memchr::memmem::find(buf, b"\n\n").map(|i| i + 2);
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `Some(true)` for an error event, `Some(false)` for content, `None` for comments only.
fn classify(event: &[u8]) -> Option<bool> {
    let text = String::from_utf8_lossy(event);
    let mut data = String::new();
    let mut any = false;
    for line in text.lines() {
        if line.trim() == "event: error" || line.trim() == "event:error" {
            return Some(true);
        }
        if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.trim());
            any = true;
        } else if !line.starts_with(':') && !line.trim().is_empty() {
            any = true;
        }
    }
    if !any {
        return None;
    }
    let is_error = serde_json::from_str::<serde_json::Value>(&data)
        .ok()
        .is_some_and(|v| v.get("error").is_some_and(|e| !e.is_null()));
    Some(is_error)
}

/// Copy the upstream body to the client, metering every chunk as the proxy phases do.
/// `held` is what was already read while checking the first event.
async fn relay_body(
    session: &mut Session,
    ctx: &mut RequestCtx,
    upstream: &mut HttpSession,
    held: Vec<bytes::Bytes>,
    clocks: &Clocks,
) {
    for chunk in held {
        let out = ctx.meter_chunk(&chunk).unwrap_or(chunk);
        if !out.is_empty() && session.write_response_body(Some(out), false).await.is_err() {
            ctx.client_gone = true;
            return;
        }
    }
    loop {
        match clocks
            .within(clocks.idle, upstream.read_response_body())
            .await
        {
            Ok(Some(chunk)) => {
                let out = ctx.meter_chunk(&chunk).unwrap_or(chunk);
                if !out.is_empty() && session.write_response_body(Some(out), false).await.is_err() {
                    ctx.client_gone = true;
                    return;
                }
            }
            Ok(None) => {
                let tail = ctx.meter_end();
                if session.write_response_body(tail, true).await.is_err() {
                    ctx.client_gone = true;
                }
                return;
            }
            Err(e) => {
                let e: Box<Error> = e;
                return end_stream_with_error(session, ctx, &e).await;
            }
        }
    }
}
