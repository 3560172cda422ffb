//! The gateway's one `ProxyHttp` implementation: Pingora's phases are its stages.
//!
//! | phase | stage |
//! |---|---|
//! | `request_filter` | [`intake::admit`]: route, authenticate, read and parse the body, plan, reserve limits. Bodies over Pingora's 64 KiB replay buffer, and streams (the first event must be seen before committing; idle and total timeouts), are carried by [`forward::run`] from here. |
//! | `upstream_peer` | start the next attempt of the plan ([`RequestCtx::begin_attempt`]), build its peer |
//! | `fail_to_connect` | record the failure, fail over to the next candidate |
//! | `upstream_request_filter` | [`Upstreams::prepare_request`]: path, host, backend key, no client credentials |
//! | `request_body_filter` | send the attempt's rewritten body (model alias, `include_usage`) |
//! | `upstream_response_filter` | retryable status with candidates left → fail over; else commit |
//! | `error_while_proxy` | failures before the response started → fail over |
//! | `response_filter` / `response_body_filter` | client headers; meter every chunk ([`RequestCtx::meter_chunk`]) |
//! | `fail_to_proxy` | the client's error: a dialect JSON error, or an SSE error event mid-stream |
//! | `logging` | [`report::record`]: usage, metrics, access log (every request, every path) |
//!
//! Requests below `/mcp` are the MCP bridge's ([`crate::mcp::serve`], from `request_filter`;
//! [`crate::mcp::report::record`] in `logging`).

use crate::attempt::{retry, Answer, ClientLeft, Failure, Now, Retry};
use crate::error::GatewayError;
use crate::request::ctx::RequestCtx;
use crate::request::exchange::{carrier, Carrier};
use crate::request::forward;
use crate::request::intake::{self, Admitted};
use crate::request::report;
use crate::request::respond::{end_stream_with_error, linger, respond_error, send_json};
use crate::runtime::Runtime;
use crate::telemetry::access_log::AccessLog;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::sync::Arc;
use std::time::Duration;

pub struct Gateway {
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub access_log: Arc<AccessLog>,
    /// Upstream connections for the large-body path.
    pub connector: Connector,
    /// Usage roll-ups for `/admin/usage`.
    pub usage: Arc<crate::telemetry::analytics::Rollups>,
    /// The MCP bridge's state on this instance.
    pub mcp: Arc<crate::mcp::Bridge>,
    /// The edge's counts, shared with the HTTP/1 edge: HTTP/2 requests take their slots here.
    pub slots: Arc<crate::edge::EdgeSlots>,
}

fn runtime_of(ctx: &RequestCtx) -> Result<Arc<Runtime>> {
    ctx.runtime
        .clone()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "no runtime snapshot"))
}

/// A Pingora error for a decision that ends the attempt: `retry` tells Pingora whether to call
/// `upstream_peer` again.
fn with_retry(mut e: Box<Error>, retry: bool) -> Box<Error> {
    e.set_retry(retry);
    e
}

/// Apply the engine's verdict on a failure to Pingora's error.
fn after_failure(
    ctx: &mut RequestCtx,
    e: Box<Error>,
    failure: Failure,
    reused: bool,
) -> Box<Error> {
    let repick = crate::request::ctx::release_pick(ctx, failure);
    let Some(attempts) = ctx.attempts.as_mut() else {
        return with_retry(e, false);
    };
    if repick && attempts.unreachable_replica(failure, Now::real()).is_some() {
        return with_retry(e, true);
    }
    match attempts.failed(failure, reused, Now::real()) {
        Retry::Same { .. } | Retry::Next => with_retry(e, true),
        Retry::GiveUp(err) => {
            ctx.end.error = Some(err);
            with_retry(e, false)
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let runtime = self.runtime.load_full();
        ctx.runtime = Some(Arc::clone(&runtime));
        if session.as_downstream().is_http2() {
            let edge = &runtime.config.edge;
            match crate::edge::h2::admit(&self.slots, edge, session.req_header()) {
                Ok(slot) => ctx.edge_slot = Some(slot),
                Err(e) => {
                    respond_error(session, ctx, e).await;
                    return Ok(true);
                }
            }
        }
        if crate::mcp::owns(session.req_header().uri.path()) {
            crate::mcp::serve(session, ctx, &runtime, &self.connector, &self.mcp).await;
            return Ok(true);
        }
        if let Some(t) = &runtime.config.tracing {
            let h = &session.req_header().headers;
            let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
            ctx.trace = Some(crate::telemetry::trace::RequestTrace::start(
                header("traceparent"),
                header("tracestate"),
                t.sample_ratio,
            ));
        }
        match intake::admit(session, ctx, &runtime, &self.connector).await {
            Ok(Admitted::Proxy) => {
                let replayable = !session.as_ref().retry_buffer_truncated();
                // A screened answer is held or filtered by the forwarder.
                let screened = ctx
                    .admission
                    .guard
                    .as_ref()
                    .is_some_and(|g| g.guards_response());
                let path = match (ctx.admission.request.as_ref(), ctx.attempts.as_ref()) {
                    (Some(r), Some(a)) if !screened => carrier(r, a, replayable),
                    _ => Carrier::Forwarder,
                };
                match path {
                    Carrier::Phases => Ok(false),
                    Carrier::Forwarder => {
                        forward::run(session, ctx, &runtime, &self.connector).await;
                        Ok(true)
                    }
                }
            }
            Ok(Admitted::Local(body)) => {
                send_json(session, ctx, 200, body).await;
                Ok(true)
            }
            Err(e) => {
                let too_large = matches!(e, GatewayError::BodyTooLarge { .. });
                respond_error(session, ctx, e).await;
                if too_large {
                    linger(session).await;
                }
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let runtime = runtime_of(ctx)?;
        if let Some(wait) = ctx.attempts.as_ref().and_then(|a| a.pending_wait()) {
            tokio::time::sleep(wait).await;
        }
        let target = ctx.begin_attempt().map_err(|e| {
            ctx.end.error = Some(e);
            Error::explain(ErrorType::InternalError, "no candidate left")
        })?;
        match runtime
            .upstreams
            .peer_for(&target, &ctx.upstream.body, &session.req_header().headers)
        {
            Ok((peer, picked)) => {
                ctx.upstream.picked = picked;
                Ok(peer)
            }
            Err(_) => {
                let e = Error::explain(ErrorType::ConnectError, "provider has no address");
                Err(after_failure(ctx, e, Failure::Unresolved, false))
            }
        }
    }

    fn fail_to_connect(
        &self,
        _s: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        let failure = Failure::of(&e, false);
        after_failure(ctx, e, failure, false)
    }

    async fn upstream_request_filter(
        &self,
        _s: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let runtime = runtime_of(ctx)?;
        let (Some(target), Some(request)) = (ctx.target(), ctx.admission.request.as_ref()) else {
            return Error::e_explain(ErrorType::InternalError, "no attempt in progress");
        };
        runtime.upstreams.prepare_request(
            upstream_request,
            target,
            request.operation,
            request.stream,
            ctx.upstream.body.len(),
            &ctx.request_id,
        )?;
        ctx.propagate_trace(upstream_request)
    }

    async fn request_body_filter(
        &self,
        _s: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Pingora replays the client's original body; each attempt sends its own rewrite.
        if ctx.upstream.body_sent {
            *body = None;
        } else {
            *body = Some(ctx.upstream.body.clone());
            ctx.upstream.body_sent = true;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _s: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        if let Some(p) = ctx.upstream.picked.as_mut() {
            p.first_byte();
        }
        let Some(attempts) = ctx.attempts.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "no attempt in progress");
        };
        let retry_after =
            retry::retry_after(&upstream_response.headers, crate::types::clock::now());
        match attempts.answered(status, false, retry_after, Now::real()) {
            Answer::RetrySame { .. } | Answer::FailOver => {
                let e = Error::explain(ErrorType::HTTPStatus(status), "retryable upstream status");
                Err(with_retry(e, true))
            }
            // The phases cannot hold a body back, so the engine does not ask them to (the
            // forwarder carries streams and plans that may fail over on a 400).
            Answer::ReadFirstEvent | Answer::ReadErrorBody | Answer::Commit => {
                ctx.commit(upstream_response);
                Ok(())
            }
        }
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let Some(attempts) = ctx.attempts.as_ref() else {
            return with_retry(e, false);
        };
        if attempts.awaiting_next() {
            // The engine already failed this attempt over (a retryable status).
            return with_retry(e, true);
        }
        if e.esource() == &ErrorSource::Downstream {
            ctx.end.client_left = Some(ClientLeft::of(&e));
            return with_retry(e, false);
        }
        if attempts.committed() || session.response_written().is_some() {
            return with_retry(e, false);
        }
        // Pingora marks errors on a pooled connection as retryable only if it was reused.
        let mut stale = e.retry;
        stale.decide_reuse(client_reused);
        let failure = Failure::of(&e, false);
        after_failure(ctx, e, failure, stale.retry())
    }

    async fn response_filter(
        &self,
        _s: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.shape_response_header(upstream_response)
    }

    fn response_body_filter(
        &self,
        _s: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(chunk) = body.as_ref() {
            if let Some(replacement) = ctx.meter_chunk(chunk) {
                *body = Some(replacement);
            }
        }
        if end_of_stream {
            if let Some(tail) = ctx.meter_end() {
                let mut joined = BytesMut::from(body.take().unwrap_or_default().as_ref());
                joined.extend_from_slice(&tail);
                *body = Some(joined.freeze());
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let gone = FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        };
        if e.esource() == &ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::WriteError
                    | ErrorType::WriteTimedout
                    | ErrorType::ReadError
                    | ErrorType::ConnectionClosed
            )
        {
            ctx.end.client_left = Some(ClientLeft::of(e));
            return gone;
        }
        let committed = ctx.attempts.as_ref().is_some_and(|a| a.committed());
        if session.response_written().is_none() {
            let err = ctx
                .end
                .error
                .take()
                .unwrap_or_else(|| Failure::of(e, committed).client_error());
            let code = err.status();
            respond_error(session, ctx, err).await;
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        }
        end_stream_with_error(session, ctx, Failure::of(e, true)).await;
        gone
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if let Some(e) = e.filter(|e| e.esource() == &ErrorSource::Downstream) {
            ctx.end.client_left.get_or_insert(ClientLeft::of(e));
        }
        let status = session.response_written().map_or(0, |h| h.status.as_u16());
        let req = session.req_header();
        if let Some(ex) = &ctx.mcp {
            let (method, path) = (req.method.as_str(), req.uri.path());
            return crate::mcp::report::record(ctx, ex, &self.access_log, method, path, status);
        }
        report::record(
            ctx,
            &self.access_log,
            &self.usage,
            req.method.as_str(),
            req.uri.path(),
            status,
        );
    }

    fn suppress_error_log(&self, _s: &Session, ctx: &RequestCtx, _e: &Error) -> bool {
        // Every outcome is in the access log; keep the process log for the unexpected.
        ctx.end.error.is_some() || ctx.end.client_left.is_some() || ctx.end.upstream_cut.is_some()
    }
}
