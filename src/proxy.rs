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

use crate::access_log::AccessLog;
use crate::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::forward;
use crate::intake::{self, Admitted};
use crate::report;
use crate::server::Runtime;
use crate::upstream::{client_error_for, failure_reason, Upstreams};
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
    pub usage: Arc<crate::usage::UsageStore>,
}

fn runtime_of(ctx: &RequestCtx) -> Result<Arc<Runtime>> {
    ctx.runtime
        .clone()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "no runtime snapshot"))
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
        match intake::admit(session, ctx, &runtime).await {
            Ok(Admitted::Proxy) => {
                if session.as_ref().retry_buffer_truncated() || ctx.uses_forwarder() {
                    forward::run(session, ctx, &runtime, &self.connector).await;
                    return Ok(true);
                }
                Ok(false)
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

    async fn upstream_peer(&self, _s: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let runtime = runtime_of(ctx)?;
        let target = ctx.begin_attempt().map_err(|e| {
            let err = Error::explain(ErrorType::InternalError, "no candidate left");
            ctx.gateway_error = Some(e);
            err
        })?;
        match runtime.upstreams.peer(&target) {
            Ok(peer) => Ok(peer),
            Err(e) => {
                let retry = ctx.fail_over("unresolved", None);
                if !retry {
                    ctx.gateway_error = Some(e);
                }
                let mut err = Error::explain(ErrorType::ConnectError, "provider has no address");
                err.set_retry(retry);
                Err(err)
            }
        }
    }

    fn fail_to_connect(
        &self,
        _s: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let retry = ctx.fail_over(failure_reason(&e), None);
        e.set_retry(retry);
        e
    }

    async fn upstream_request_filter(
        &self,
        _s: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let runtime = runtime_of(ctx)?;
        let (Some(target), Some(request)) = (ctx.target(), ctx.request.as_ref()) else {
            return Error::e_explain(ErrorType::InternalError, "no attempt in progress");
        };
        let upstreams: &Upstreams = &runtime.upstreams;
        upstreams.prepare_request(
            upstream_request,
            target,
            request.operation,
            ctx.attempt_body.len(),
            &ctx.request_id,
        )
    }

    async fn request_body_filter(
        &self,
        _s: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Pingora replays the client's original body; each attempt sends its own rewrite.
        if ctx.attempt_body_sent {
            *body = None;
        } else {
            *body = Some(ctx.attempt_body.clone());
            ctx.attempt_body_sent = true;
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
        if ctx.fail_over_on_status(status) {
            ctx.retry_status_pending = true;
            let mut e = Error::explain(ErrorType::HTTPStatus(status), "retryable upstream status");
            e.set_retry(true);
            return Err(e);
        }
        ctx.commit(upstream_response);
        Ok(())
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        mut e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        if std::mem::take(&mut ctx.retry_status_pending) {
            e.set_retry(true);
            return e;
        }
        if e.esource() == &ErrorSource::Downstream {
            ctx.client_gone = true;
            e.set_retry(false);
            return e;
        }
        if ctx.response.is_some() || session.response_written().is_some() {
            e.set_retry(false);
            return e;
        }
        e.retry.decide_reuse(client_reused);
        if e.retry() {
            // A stale pooled connection: the same candidate again, on a fresh connection.
            ctx.end_attempt("stale_connection", None);
            return e;
        }
        let retry = ctx.fail_over(failure_reason(&e), None);
        e.set_retry(retry);
        e
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
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
            )
        {
            ctx.client_gone = true;
            return gone;
        }
        if session.response_written().is_none() {
            let err = ctx
                .gateway_error
                .take()
                .unwrap_or_else(|| client_error_for(e));
            let code = err.status();
            respond_error(session, ctx, err).await;
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        }
        end_stream_with_error(session, ctx, e).await;
        gone
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if e.is_some_and(|e| e.esource() == &ErrorSource::Downstream) {
            ctx.client_gone = true;
        }
        let status = session.response_written().map_or(0, |h| h.status.as_u16());
        let req = session.req_header();
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
        ctx.gateway_error.is_some() || ctx.client_gone || ctx.upstream_cut.is_some()
    }
}

/// The upstream failed after the response started: end an event stream with an error event
/// the SDKs raise on, then close. A JSON body cannot be repaired; it is just cut.
pub async fn end_stream_with_error(session: &mut Session, ctx: &mut RequestCtx, e: &Error) {
    ctx.upstream_cut = Some(failure_reason(e));
    if ctx.is_sse() {
        // A blank line first ends whatever event the upstream left unfinished, so the error
        // arrives as an event of its own (an extra blank line is ignored by SSE parsers).
        let mut event = bytes::BytesMut::from(&b"\n\n"[..]);
        event.extend_from_slice(&client_error_for(e).sse_event(ctx.dialect));
        if session
            .write_response_body(Some(event.freeze()), true)
            .await
            .is_err()
        {
            ctx.client_gone = true;
        }
    }
}

/// After refusing an oversized body, read and discard what the client is still sending for a
/// moment (a lingering close, as nginx does): closing at once can reset the connection before
/// the client has read the 413.
async fn linger(session: &mut Session) {
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

/// Send a gateway-made error in the client's dialect.
pub async fn respond_error(session: &mut Session, ctx: &mut RequestCtx, err: GatewayError) {
    let body = err.body(ctx.dialect);
    let mut header = err.response_header(body.len());
    let _ = header.insert_header("x-request-id", &ctx.request_id);
    ctx.rate_headers.apply(&mut header, ctx.dialect);
    ctx.gateway_error = Some(err);
    write_whole(session, ctx, header, body).await;
}

/// Send a locally made JSON answer.
pub async fn send_json(session: &mut Session, ctx: &mut RequestCtx, status: u16, body: Bytes) {
    let Ok(mut header) = ResponseHeader::build(status, Some(4)) else {
        return;
    };
    let _ = header.insert_header("content-type", "application/json");
    let _ = header.insert_header("content-length", body.len().to_string());
    let _ = header.insert_header("x-request-id", &ctx.request_id);
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
    if sent.await.is_err() {
        ctx.client_gone = true;
    }
}
