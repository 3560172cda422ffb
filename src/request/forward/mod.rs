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

/// One request carried by the forwarder: the client's session, the request's state, and what
/// the I/O needs. The helpers below are its methods, so no step passes loose parts around.
pub(super) struct Forwarder<'s> {
    pub(super) session: &'s mut Session,
    pub(super) ctx: &'s mut RequestCtx,
    pub(super) runtime: &'s Runtime,
    pub(super) connector: &'s Connector,
    /// When the forwarder took the request over (the total clock of every attempt).
    pub(super) started: Instant,
}

/// Run the whole plan for this request, answering the client on every path.
pub async fn run(
    session: &mut Session,
    ctx: &mut RequestCtx,
    runtime: &Runtime,
    connector: &Connector,
) {
    let mut f = Forwarder {
        session,
        ctx,
        runtime,
        connector,
        started: Instant::now(),
    };
    f.run().await;
}

impl Forwarder<'_> {
    async fn run(&mut self) {
        loop {
            if let Some(wait) = self.ctx.attempts.as_ref().and_then(|a| a.pending_wait()) {
                tokio::time::sleep(wait).await;
            }
            let target = match self.ctx.begin_attempt() {
                Ok(t) => t,
                Err(e) => return self.respond_error(e).await,
            };
            let stream = self
                .ctx
                .admission
                .request
                .as_ref()
                .is_some_and(|r| r.stream);
            let clocks = Clocks::of(&target.provider, self.started, Instant::now(), stream);
            let picked = self.runtime.upstreams.peer_for(
                &target,
                &self.ctx.upstream.body,
                &self.session.req_header().headers,
            );
            let Ok((peer, picked)) = picked else {
                match failed(self.ctx, Failure::Unresolved, false) {
                    Some(err) => return self.respond_error(err).await,
                    None => continue,
                }
            };
            self.ctx.upstream.picked = picked;
            let Some(operation) = self.ctx.admission.request.as_ref().map(|r| r.operation) else {
                return self.respond_error(GatewayError::Internal).await;
            };
            let mut req = self.session.req_header().clone();
            let body_len = self.ctx.upstream.body.len();
            if self
                .runtime
                .upstreams
                .prepare_request(
                    &mut req,
                    &target,
                    operation,
                    stream,
                    body_len,
                    &self.ctx.request_id,
                )
                .and_then(|()| self.ctx.propagate_trace(&mut req))
                .is_err()
            {
                return self.respond_error(GatewayError::Internal).await;
            }
            match self.attempt((peer, clocks), req).await {
                Tried::Again => continue,
                Tried::Done => return,
            }
        }
    }

    async fn respond_error(&mut self, err: GatewayError) {
        respond_error(self.session, self.ctx, err).await;
    }

    /// The client went away (or its framing failed) while being answered.
    fn client_left(&mut self, left: ClientLeft) {
        self.ctx.end.client_left = Some(left);
    }

    /// One attempt: connect, send, read the header (and a stream's first event when the
    /// engine asks), then commit and relay.
    async fn attempt(
        &mut self,
        (peer, clocks): (Box<HttpPeer>, Clocks),
        req: RequestHeader,
    ) -> Tried {
        let clocks = &clocks;
        let (mut upstream, reused) = match self.connector.get_http_session(&*peer).await {
            Ok(s) => s,
            Err(e) => return self.give_up_or_again(Failure::of(&e, false), false).await,
        };
        if let Err(failure) =
            send_request(&mut upstream, req, &self.ctx.upstream.body, clocks).await
        {
            return self.give_up_or_again(failure, reused).await;
        }
        if let Some(p) = self.ctx.upstream.picked.as_mut() {
            p.first_byte();
        }
        let Some(mut header) = upstream.response_header().cloned() else {
            self.respond_error(GatewayError::Internal).await;
            return Tried::Done;
        };
        let held = match self
            .held_before_commit(&mut upstream, &header, clocks)
            .await
        {
            Ok(held) => held,
            Err(tried) => return tried,
        };
        self.ctx.commit(&header);
        if self.ctx.screens_whole_body() {
            if self.whole_body(&mut upstream, header, held, clocks).await {
                self.connector
                    .release_http_session(upstream, &*peer, Some(POOL_IDLE))
                    .await;
            }
            return Tried::Done;
        }
        if self.ctx.shape_response_header(&mut header).is_err()
            || frame_for_client(&mut header, self.session.is_http2()).is_err()
        {
            self.client_left(ClientLeft::Disconnected);
            return Tried::Done;
        }
        if let Err(e) = self
            .session
            .write_response_header(Box::new(header), false)
            .await
        {
            self.client_left(ClientLeft::of(&e));
            return Tried::Done;
        }
        let leg = Leg {
            upstream,
            peer,
            clocks: *clocks,
        };
        self.relay(leg, held).await
    }

    /// The engine's answer to the header: retry or fail over (`Err`), or commit with what was
    /// read to decide (a stream's first event, a 400's body) to send first.
    async fn held_before_commit(
        &mut self,
        upstream: &mut HttpSession,
        header: &ResponseHeader,
        clocks: &Clocks,
    ) -> Result<Vec<Bytes>, Tried> {
        let status = header.status.as_u16();
        let Some(attempts) = self.ctx.attempts.as_mut() else {
            return Err(Tried::Done);
        };
        let holdable = status == 400 || (status == 200 && is_event_stream(header));
        let retry_after = retry::retry_after(&header.headers, crate::types::clock::now());
        match attempts.answered(status, holdable, retry_after, Now::real()) {
            Answer::RetrySame { .. } | Answer::FailOver => Err(Tried::Again),
            Answer::Commit => Ok(Vec::new()),
            Answer::ReadFirstEvent => match hold::first_content(upstream, clocks).await {
                Ok(first) => match verdict(self.ctx, |a, now| a.first_event(first.is_error, now)) {
                    Verdict::FailOver => Err(Tried::Again),
                    Verdict::Commit => Ok(first.chunks),
                },
                Err(failure) => Err(self.give_up_or_again(failure, false).await),
            },
            Answer::ReadErrorBody => match hold::error_body(upstream, clocks).await {
                Ok(body) => {
                    match verdict(self.ctx, |a, now| a.error_body(body.context_overflow, now)) {
                        Verdict::FailOver => Err(Tried::Again),
                        Verdict::Commit => Ok(body.chunks),
                    }
                }
                Err(failure) => Err(self.give_up_or_again(failure, false).await),
            },
        }
    }

    /// Relay the committed answer to the client, leg by leg: a stream that breaks resumes on
    /// the next candidate when recovery allows.
    async fn relay(&mut self, mut leg: Leg, mut held: Vec<Bytes>) -> Tried {
        let mut windows = screened::Windows::new(self.ctx, self.runtime, self.connector);
        loop {
            match self
                .relay_body(&mut leg.upstream, held, &leg.clocks, &mut windows)
                .await
            {
                Relayed::Done => {
                    if self.ctx.end.client_left.is_none() {
                        self.connector
                            .release_http_session(leg.upstream, &*leg.peer, Some(POOL_IDLE))
                            .await;
                    }
                    return Tried::Done;
                }
                Relayed::ClientGone => return Tried::Done,
                Relayed::Blocked(err) => {
                    end_stream_blocked(self.session, self.ctx, err).await;
                    return Tried::Done;
                }
                Relayed::Broke(failure) => match self.resume(failure).await {
                    Some(next) => {
                        leg = next;
                        held = Vec::new();
                    }
                    None => {
                        end_stream_with_error(self.session, self.ctx, failure).await;
                        return Tried::Done;
                    }
                },
            }
        }
    }

    async fn give_up_or_again(&mut self, failure: Failure, reused: bool) -> Tried {
        match failed(self.ctx, failure, reused) {
            None => Tried::Again,
            Some(err) => {
                self.respond_error(err).await;
                Tried::Done
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

/// Report a failure to the engine: `None` to try again, or the client's error.
fn failed(ctx: &mut RequestCtx, failure: Failure, reused: bool) -> Option<GatewayError> {
    let repick = crate::request::ctx::release_pick(ctx, failure);
    let attempts = ctx.attempts.as_mut()?;
    if repick && attempts.unreachable_replica(failure, Now::real()).is_some() {
        return None;
    }
    match attempts.failed(failure, reused, Now::real()) {
        Retry::Same { .. } | Retry::Next => None,
        Retry::GiveUp(err) => Some(err),
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
    body: &Bytes,
    clocks: &Clocks,
) -> Result<(), Failure> {
    let sent = async {
        upstream.write_request_header(Box::new(req)).await?;
        upstream.write_request_body(body.clone(), true).await?;
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

impl Forwarder<'_> {
    /// Copy the upstream body to the client, metering (and screening) every chunk as the proxy
    /// phases do. `held` is what was already read while checking the first event.
    async fn relay_body(
        &mut self,
        upstream: &mut HttpSession,
        held: Vec<bytes::Bytes>,
        clocks: &Clocks,
        windows: &mut Option<screened::Windows<'_>>,
    ) -> Relayed {
        for chunk in held {
            if let Some(r) = self.relay_chunk(chunk, windows).await {
                return r;
            }
        }
        loop {
            match within(clocks, Clock::Idle, upstream.read_response_body()).await {
                Ok(Some(chunk)) => {
                    if let Some(r) = self.relay_chunk(chunk, windows).await {
                        return r;
                    }
                    if splice_mismatch(self.ctx) {
                        return Relayed::Broke(Failure::Other);
                    }
                }
                Ok(None) => {
                    let tail = self.ctx.meter_end();
                    if splice_mismatch(self.ctx) {
                        return Relayed::Broke(Failure::Other);
                    }
                    // Kept before the last bytes go out: the client's next turn finds it.
                    crate::request::stored_responses::keep_turn(self.ctx).await;
                    let blocked = self.ctx.answer_blocked();
                    let mut tail = tail;
                    if let Some(w) = windows.as_mut() {
                        let passed = tail.and_then(|t| w.pass(t));
                        match w.after_chunk(self.ctx, true).await {
                            Ok(released) => tail = released.or(passed),
                            Err(err) => return Relayed::Blocked(err),
                        }
                    }
                    let end = blocked.is_none();
                    if let Err(e) = self.session.write_response_body(tail, end).await {
                        self.ctx.end.client_left = Some(ClientLeft::of(&e));
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

    /// Meter one chunk and write it to the client: `None` to go on, or how the relay ends (the
    /// client is gone, or a guardrail refused the answer).
    async fn relay_chunk(
        &mut self,
        chunk: bytes::Bytes,
        windows: &mut Option<screened::Windows<'_>>,
    ) -> Option<Relayed> {
        let mut out = Some(self.ctx.meter_chunk(&chunk).unwrap_or(chunk));
        if let Some(w) = windows.as_mut() {
            let passed = out.and_then(|o| w.pass(o));
            match w.after_chunk(self.ctx, false).await {
                Ok(released) => out = released.or(passed),
                Err(err) => return Some(Relayed::Blocked(err)),
            }
        }
        let blocked = self.ctx.answer_blocked();
        if let Some(out) = out.filter(|o| !o.is_empty()) {
            if let Err(e) = self.session.write_response_body(Some(out), false).await {
                self.ctx.end.client_left = Some(ClientLeft::of(&e));
                return Some(Relayed::ClientGone);
            }
        }
        blocked.map(Relayed::Blocked)
    }
}

/// A restarted continuation did not begin with the text already sent.
fn splice_mismatch(ctx: &RequestCtx) -> bool {
    ctx.response
        .as_ref()
        .and_then(|c| c.splice.as_ref())
        .is_some_and(|s| s.mismatch)
}
