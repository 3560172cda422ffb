//! The large-body path: requests whose body exceeds Pingora's 64 KiB replay buffer.
//!
//! Pingora 0.9.1 cannot replay a pre-read body over 64 KiB (PINGORA-NOTES §3), so for those
//! requests `request_filter` carries the exchange itself over Pingora's pooled [`Connector`].
//! Only the I/O differs from the proxy phases: the attempt, the upstream request, failover,
//! commit, metering and the client's errors are the same [`RequestCtx`] and
//! [`crate::upstream`] functions the phases call.

use crate::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::proxy::{end_stream_with_error, respond_error};
use crate::server::Runtime;
use crate::upstream::{client_error_for, failure_reason};
use pingora::connectors::http::Connector;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::Error;

/// Run the whole plan for this request, answering the client on every path.
pub async fn run(
    session: &mut Session,
    ctx: &mut RequestCtx,
    runtime: &Runtime,
    connector: &Connector,
) {
    let mut stale_retry_used = false;
    loop {
        let target = match ctx.begin_attempt() {
            Ok(t) => t,
            Err(e) => return respond_error(session, ctx, e).await,
        };
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
        if let Err(e) = send_request(&mut upstream, req, ctx).await {
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
        if ctx.should_retry_status(status) {
            ctx.fail_over(&format!("status_{status}"), Some(status));
            continue;
        }
        ctx.commit(&header);
        if ctx.shape_response_header(&mut header).is_err()
            || session
                .write_response_header(Box::new(header), false)
                .await
                .is_err()
        {
            ctx.client_gone = true;
            return;
        }
        relay_body(session, ctx, &mut upstream).await;
        if !ctx.client_gone && ctx.upstream_cut.is_none() {
            connector
                .release_http_session(upstream, &*peer, Some(std::time::Duration::from_secs(60)))
                .await;
        }
        return;
    }
}

async fn send_request(
    upstream: &mut HttpSession,
    req: pingora::http::RequestHeader,
    ctx: &RequestCtx,
) -> pingora::Result<()> {
    upstream.write_request_header(Box::new(req)).await?;
    upstream
        .write_request_body(ctx.attempt_body.clone(), true)
        .await?;
    upstream.finish_request_body().await?;
    upstream.read_response_header().await
}

/// Copy the upstream body to the client, metering every chunk as the proxy phases do.
async fn relay_body(session: &mut Session, ctx: &mut RequestCtx, upstream: &mut HttpSession) {
    loop {
        match upstream.read_response_body().await {
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
