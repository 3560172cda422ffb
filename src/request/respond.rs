//! The one place where the gateway answers the client itself: an error in the client's
//! dialect before the response started, an error event after it started, a locally made
//! JSON answer, and the lingering close after a refused body. Both I/O paths use it.

use crate::attempt::{ClientLeft, Failure, Now};
use crate::error::GatewayError;
use crate::request::ctx::{BodyMeter, RequestCtx};
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::time::Duration;

/// Send a gateway-made error in the client's dialect.
pub async fn respond_error(session: &mut Session, ctx: &mut RequestCtx, err: GatewayError) {
    let body = err.body(ctx.dialect);
    let header = err.response_header(body.len()).and_then(|mut h| {
        h.insert_header("x-request-id", &ctx.request_id)?;
        ctx.admission.rate_headers.apply(&mut h, ctx.dialect)?;
        Ok(h)
    });
    ctx.end.error = Some(err);
    match header {
        Ok(header) => write_whole(session, ctx, header, body).await,
        // Only gateway-made values go in; if one were refused, close rather than lie.
        Err(e) => {
            log::error!("cannot build an error response: {e}");
            ctx.end.client_left = Some(ClientLeft::Disconnected);
        }
    }
}

/// The upstream failed after the response started: the engine records the cut, and an event
/// stream ends with an error event the SDKs raise on. A JSON body cannot be repaired; it is
/// just cut.
pub async fn end_stream_with_error(session: &mut Session, ctx: &mut RequestCtx, cut: Failure) {
    ctx.end.upstream_cut = Some(cut);
    let events = match ctx.response.as_ref().map(|c| &c.meter) {
        Some(BodyMeter::Sse(m)) => m.events,
        Some(BodyMeter::Json(_)) | None => 0,
    };
    let err = match ctx.attempts.as_mut() {
        Some(a) => a.cut(cut, events, Now::real()),
        None => cut.cut_error(events, None),
    };
    if ctx.is_sse() {
        // A blank line first ends whatever event the upstream left unfinished, so the error
        // arrives as an event of its own (an extra blank line is ignored by SSE parsers).
        let mut event = BytesMut::from(&b"\n\n"[..]);
        event.extend_from_slice(&err.sse_event(ctx.dialect));
        if let Err(e) = session
            .write_response_body(Some(event.freeze()), true)
            .await
        {
            ctx.end.client_left = Some(ClientLeft::of(&e));
        }
    }
}

/// A guardrail refused the answer after its stream started: what was already sent stays,
/// and the stream ends with an error event in the client's dialect.
pub async fn end_stream_blocked(session: &mut Session, ctx: &mut RequestCtx, err: GatewayError) {
    let mut event = BytesMut::from(&b"\n\n"[..]);
    event.extend_from_slice(&err.sse_event(ctx.dialect));
    ctx.end.error = Some(err);
    if let Err(e) = session
        .write_response_body(Some(event.freeze()), true)
        .await
    {
        ctx.end.client_left = Some(ClientLeft::of(&e));
    }
}

/// Send a locally made JSON answer.
pub async fn send_json(session: &mut Session, ctx: &mut RequestCtx, status: u16, body: Bytes) {
    let Ok(mut header) = ResponseHeader::build(status, Some(4)) else {
        return;
    };
    let built = header
        .insert_header("content-type", "application/json")
        .and_then(|_| header.insert_header("content-length", body.len().to_string()))
        .and_then(|_| header.insert_header("x-request-id", &ctx.request_id));
    if built.is_err() {
        return respond_error(session, ctx, GatewayError::Internal).await;
    }
    write_whole(session, ctx, header, body).await;
}

async fn write_whole(
    session: &mut Session,
    ctx: &mut RequestCtx,
    header: ResponseHeader,
    body: Bytes,
) {
    let sent = async {
        session
            .write_response_header(Box::new(header), false)
            .await?;
        session.write_response_body(Some(body), true).await
    };
    if let Err(e) = sent.await {
        ctx.end.client_left = Some(ClientLeft::of(&e));
    }
}

/// After refusing an oversized body, read and discard what the client is still sending for a
/// moment (a lingering close, as nginx does): closing at once can reset the connection before
/// the client has read the 413.
pub async fn linger(session: &mut Session) {
    const LINGER: Duration = Duration::from_secs(2);
    const MAX_DISCARD: usize = 64 * 1024 * 1024;
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut discarded = 0;
    while discarded < MAX_DISCARD {
        match tokio::time::timeout_at(deadline, session.read_request_body()).await {
            Ok(Ok(Some(chunk))) => discarded += chunk.len(),
            _ => return,
        }
    }
}
