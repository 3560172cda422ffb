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

mod hold;
mod resume;
mod screened;

use crate::attempt::{
    retry, Answer, Attempts, ClientLeft, Clock, Clocks, Failure, Now, Retry, Verdict,
};
use crate::error::GatewayError;
use crate::request::ctx::RequestCtx;
use crate::request::respond::{end_stream_blocked, end_stream_with_error, respond_error};
use crate::runtime::Runtime;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use resume::Leg;
use std::time::{Duration, Instant};

/// Keep-alive time of a connection returned to the pool.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// How one attempt's I/O ended.
enum Tried {
    /// The engine wants another attempt.
    Again,
    /// The client has its answer (or is gone).
    Done,
}

/// Run the whole plan for this request, answering the client on every path.
pub async fn run(
    session: &mut Session,
    ctx: &mut RequestCtx,
    runtime: &Runtime,
    connector: &Connector,
) {
    let started = Instant::now();
    loop {
        if let Some(wait) = ctx.attempts.as_ref().and_then(|a| a.pending_wait()) {
            tokio::time::sleep(wait).await;
        }
        let target = match ctx.begin_attempt() {
            Ok(t) => t,
            Err(e) => return respond_error(session, ctx, e).await,
        };
        let stream = ctx.admission.request.as_ref().is_some_and(|r| r.stream);
        let clocks = Clocks::of(&target.provider, started, Instant::now(), stream);
        let Ok(peer) = runtime.upstreams.peer(&target) else {
            match failed(ctx, Failure::Unresolved, false) {
                Some(err) => return respond_error(session, ctx, err).await,
                None => continue,
            }
        };
        let Some(operation) = ctx.admission.request.as_ref().map(|r| r.operation) else {
            return respond_error(session, ctx, GatewayError::Internal).await;
        };
        let mut req = session.req_header().clone();
        let body_len = ctx.upstream.body.len();
        if runtime
            .upstreams
            .prepare_request(
                &mut req,
                &target,
                operation,
                stream,
                body_len,
                &ctx.request_id,
            )
            .and_then(|()| ctx.propagate_trace(&mut req))
            .is_err()
        {
            return respond_error(session, ctx, GatewayError::Internal).await;
        }
        let leg = (peer, clocks);
        match attempt(session, ctx, (runtime, connector), leg, req, started).await {
            Tried::Again => continue,
            Tried::Done => return,
        }
    }
}

/// Report a failure to the engine: `None` to try again, or the client's error.
fn failed(ctx: &mut RequestCtx, failure: Failure, reused: bool) -> Option<GatewayError> {
    let attempts = ctx.attempts.as_mut()?;
    match attempts.failed(failure, reused, Now::real()) {
        Retry::Same { .. } | Retry::Next => None,
        Retry::GiveUp(err) => Some(err),
    }
}

/// One attempt: connect, send, read the header (and a stream's first event when the engine
/// asks), then commit and relay.
async fn attempt(
    session: &mut Session,
    ctx: &mut RequestCtx,
    (runtime, connector): (&Runtime, &Connector),
    (peer, clocks): (Box<HttpPeer>, Clocks),
    req: RequestHeader,
    started: Instant,
) -> Tried {
    let clocks = &clocks;
    let (mut upstream, reused) = match connector.get_http_session(&*peer).await {
        Ok(s) => s,
        Err(e) => return give_up_or_again(session, ctx, Failure::of(&e, false), false).await,
    };
    if let Err(failure) = send_request(&mut upstream, req, ctx, clocks).await {
        return give_up_or_again(session, ctx, failure, reused).await;
    }
    let Some(mut header) = upstream.response_header().cloned() else {
        respond_error(session, ctx, GatewayError::Internal).await;
        return Tried::Done;
    };
    let held = match held_before_commit(session, ctx, &mut upstream, &header, clocks).await {
        Ok(held) => held,
        Err(tried) => return tried,
    };
    ctx.commit(&header);
    if ctx.screens_whole_body() {
        let io = (runtime, connector);
        if screened::whole_body(session, ctx, io, &mut upstream, header, held, clocks).await {
            connector
                .release_http_session(upstream, &*peer, Some(POOL_IDLE))
                .await;
        }
        return Tried::Done;
    }
    if ctx.shape_response_header(&mut header).is_err()
        || frame_for_client(&mut header, session.is_http2()).is_err()
    {
        ctx.end.client_left = Some(ClientLeft::Disconnected);
        return Tried::Done;
    }
    if let Err(e) = session.write_response_header(Box::new(header), false).await {
        ctx.end.client_left = Some(ClientLeft::of(&e));
        return Tried::Done;
    }
    let leg = Leg {
        upstream,
        peer,
        clocks: *clocks,
    };
    relay(session, ctx, (runtime, connector), leg, held, started).await
}

/// The engine's answer to the header: retry or fail over (`Err`), or commit with what was
/// read to decide (a stream's first event, a 400's body) to send first.
async fn held_before_commit(
    session: &mut Session,
    ctx: &mut RequestCtx,
    upstream: &mut HttpSession,
    header: &ResponseHeader,
    clocks: &Clocks,
) -> Result<Vec<Bytes>, Tried> {
    let status = header.status.as_u16();
    let Some(attempts) = ctx.attempts.as_mut() else {
        return Err(Tried::Done);
    };
    let holdable = status == 400 || (status == 200 && is_event_stream(header));
    let retry_after = retry::retry_after(&header.headers, crate::types::clock::now());
    match attempts.answered(status, holdable, retry_after, Now::real()) {
        Answer::RetrySame { .. } | Answer::FailOver => Err(Tried::Again),
        Answer::Commit => Ok(Vec::new()),
        Answer::ReadFirstEvent => match hold::first_content(upstream, clocks).await {
            Ok(first) => match verdict(ctx, |a, now| a.first_event(first.is_error, now)) {
                Verdict::FailOver => Err(Tried::Again),
                Verdict::Commit => Ok(first.chunks),
            },
            Err(failure) => Err(give_up_or_again(session, ctx, failure, false).await),
        },
        Answer::ReadErrorBody => match hold::error_body(upstream, clocks).await {
            Ok(body) => match verdict(ctx, |a, now| a.error_body(body.context_overflow, now)) {
                Verdict::FailOver => Err(Tried::Again),
                Verdict::Commit => Ok(body.chunks),
            },
            Err(failure) => Err(give_up_or_again(session, ctx, failure, false).await),
        },
    }
}

/// Relay the committed answer to the client, leg by leg: a stream that breaks resumes on the
/// next candidate when recovery allows.
async fn relay(
    session: &mut Session,
    ctx: &mut RequestCtx,
    (runtime, connector): (&Runtime, &Connector),
    mut leg: Leg,
    mut held: Vec<Bytes>,
    started: Instant,
) -> Tried {
    let mut windows = screened::Windows::new(ctx, runtime, connector);
    loop {
        match relay_body(
            session,
            ctx,
            &mut leg.upstream,
            held,
            &leg.clocks,
            &mut windows,
        )
        .await
        {
            Relayed::Done => {
                if ctx.end.client_left.is_none() {
                    connector
                        .release_http_session(leg.upstream, &*leg.peer, Some(POOL_IDLE))
                        .await;
                }
                return Tried::Done;
            }
            Relayed::ClientGone => return Tried::Done,
            Relayed::Blocked(err) => {
                end_stream_blocked(session, ctx, err).await;
                return Tried::Done;
            }
            Relayed::Broke(failure) => {
                match resume::resume(session, ctx, runtime, connector, failure, started).await {
                    Some(next) => {
                        leg = next;
                        held = Vec::new();
                    }
                    None => {
                        end_stream_with_error(session, ctx, failure).await;
                        return Tried::Done;
                    }
                }
            }
        }
    }
}

/// How relaying one leg of a response ended.
enum Relayed {
    /// The body ended and went out whole.
    Done,
    ClientGone,
    /// The upstream broke off (or a restarted continuation did not match what was sent).
    Broke(Failure),
    /// A guardrail refused the answer mid-stream.
    Blocked(GatewayError),
}

async fn give_up_or_again(
    session: &mut Session,
    ctx: &mut RequestCtx,
    failure: Failure,
    reused: bool,
) -> Tried {
    match failed(ctx, failure, reused) {
        None => Tried::Again,
        Some(err) => {
            respond_error(session, ctx, err).await;
            Tried::Done
        }
    }
}

/// Ask the engine about what was held (commit when there is no engine).
fn verdict(ctx: &mut RequestCtx, ask: impl FnOnce(&mut Attempts, Now) -> Verdict) -> Verdict {
    match ctx.attempts.as_mut() {
        Some(a) => ask(a, Now::real()),
        None => Verdict::Commit,
    }
}

/// An upstream header (perhaps HTTP/2, perhaps stripped of its length) made ready for the
/// client: an HTTP/2 client gets no connection-level headers; an HTTP/1.1 client gets its
/// version, and chunked framing when no length is known.
fn frame_for_client(header: &mut ResponseHeader, h2: bool) -> pingora::Result<()> {
    if h2 {
        for name in ["transfer-encoding", "connection", "keep-alive"] {
            header.remove_header(name);
        }
        header.set_version(http::Version::HTTP_2);
        return Ok(());
    }
    header.set_version(http::Version::HTTP_11);
    let headers = &header.headers;
    if !headers.contains_key(http::header::CONTENT_LENGTH)
        && !headers.contains_key(http::header::TRANSFER_ENCODING)
    {
        header.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(())
}

pub(super) async fn send_request(
    upstream: &mut HttpSession,
    req: RequestHeader,
    ctx: &RequestCtx,
    clocks: &Clocks,
) -> Result<(), Failure> {
    let sent = async {
        upstream.write_request_header(Box::new(req)).await?;
        upstream
            .write_request_body(ctx.upstream.body.clone(), true)
            .await?;
        upstream.finish_request_body().await
    };
    sent.await.map_err(|e| Failure::of(&e, false))?;
    within(clocks, Clock::FirstByte, upstream.read_response_header()).await
}

/// Run `read` on `clock`, failing with the clock that ran out (the total one when its
/// deadline comes first).
pub(crate) async fn within<T>(
    clocks: &Clocks,
    clock: Clock,
    read: impl std::future::Future<Output = pingora::Result<T>>,
) -> Result<T, Failure> {
    let (wait, runs_out) = clocks.wait(clock, Instant::now());
    match tokio::time::timeout(wait, read).await {
        Ok(r) => r.map_err(|e| Failure::of(&e, clock == Clock::Idle)),
        Err(_) => Err(Failure::TimedOut(runs_out)),
    }
}

pub(super) fn is_event_stream(h: &pingora::http::ResponseHeader) -> bool {
    h.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"))
}

/// Copy the upstream body to the client, metering (and screening) every chunk as the proxy
/// phases do. `held` is what was already read while checking the first event.
async fn relay_body(
    session: &mut Session,
    ctx: &mut RequestCtx,
    upstream: &mut HttpSession,
    held: Vec<bytes::Bytes>,
    clocks: &Clocks,
    windows: &mut Option<screened::Windows<'_>>,
) -> Relayed {
    for chunk in held {
        if let Some(r) = relay_chunk(session, ctx, chunk, windows).await {
            return r;
        }
    }
    loop {
        match within(clocks, Clock::Idle, upstream.read_response_body()).await {
            Ok(Some(chunk)) => {
                if let Some(r) = relay_chunk(session, ctx, chunk, windows).await {
                    return r;
                }
                if splice_mismatch(ctx) {
                    return Relayed::Broke(Failure::Other);
                }
            }
            Ok(None) => {
                let tail = ctx.meter_end();
                if splice_mismatch(ctx) {
                    return Relayed::Broke(Failure::Other);
                }
                // Kept before the last bytes go out: the client's next turn finds it.
                crate::request::stored_responses::keep_turn(ctx).await;
                let blocked = ctx.answer_blocked();
                let mut tail = tail;
                if let Some(w) = windows.as_mut() {
                    let passed = tail.and_then(|t| w.pass(t));
                    match w.after_chunk(ctx, true).await {
                        Ok(released) => tail = released.or(passed),
                        Err(err) => return Relayed::Blocked(err),
                    }
                }
                let end = blocked.is_none();
                if let Err(e) = session.write_response_body(tail, end).await {
                    ctx.end.client_left = Some(ClientLeft::of(&e));
                    return Relayed::ClientGone;
                }
                return match blocked {
                    Some(err) => Relayed::Blocked(err),
                    None => Relayed::Done,
                };
            }
            Err(failure) => return Relayed::Broke(failure),
        }
    }
}

/// A restarted continuation did not begin with the text already sent.
fn splice_mismatch(ctx: &RequestCtx) -> bool {
    ctx.response
        .as_ref()
        .and_then(|c| c.splice.as_ref())
        .is_some_and(|s| s.mismatch)
}

/// Meter one chunk and write it to the client: `None` to go on, or how the relay ends (the
/// client is gone, or a guardrail refused the answer).
async fn relay_chunk(
    session: &mut Session,
    ctx: &mut RequestCtx,
    chunk: bytes::Bytes,
    windows: &mut Option<screened::Windows<'_>>,
) -> Option<Relayed> {
    let mut out = Some(ctx.meter_chunk(&chunk).unwrap_or(chunk));
    if let Some(w) = windows.as_mut() {
        let passed = out.and_then(|o| w.pass(o));
        match w.after_chunk(ctx, false).await {
            Ok(released) => out = released.or(passed),
            Err(err) => return Some(Relayed::Blocked(err)),
        }
    }
    let blocked = ctx.answer_blocked();
    if let Some(out) = out.filter(|o| !o.is_empty()) {
        if let Err(e) = session.write_response_body(Some(out), false).await {
            ctx.end.client_left = Some(ClientLeft::of(&e));
            return Some(Relayed::ClientGone);
        }
    }
    blocked.map(Relayed::Blocked)
}
