//! The forwarder's part in screening answers ([`crate::request::screen`]): a guarded JSON body is read
//! whole and screened before its header goes out, and a guarded stream's moderation windows
//! are checked as the text passes — in the background (`hold = false`: a flagged window ends
//! the stream at the next chunk) or before the window's bytes are sent (`hold = true`).

use super::{within, Forwarder};
use crate::attempt::{ClientLeft, Clock, Clocks};
use crate::error::GatewayError;
use crate::guard::answer::ResponseGuard;
use crate::guard::{Blocked, Flow, Moderation};
use crate::request::ctx::RequestCtx;
use crate::request::moderation;
use crate::runtime::Runtime;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use pingora::connectors::http::Connector;
use pingora::http::ResponseHeader;
use pingora::protocols::http::client::HttpSession;
use std::sync::Arc;

impl Forwarder<'_> {
    /// Read a guarded JSON answer whole, screen it, then send it (or the refusal). Returns
    /// whether the upstream connection may go back to the pool.
    pub(super) async fn whole_body(
        &mut self,
        upstream: &mut HttpSession,
        mut header: ResponseHeader,
        held: Vec<Bytes>,
        clocks: &Clocks,
    ) -> bool {
        for chunk in held {
            self.ctx.meter_chunk(&chunk);
        }
        loop {
            match within(clocks, Clock::Idle, upstream.read_response_body()).await {
                Ok(Some(chunk)) => {
                    self.ctx.meter_chunk(&chunk);
                }
                Ok(None) => break,
                Err(failure) => {
                    self.ctx.end.upstream_cut = Some(failure);
                    let err = GatewayError::UpstreamBroken(
                        "the answer broke off before it was complete".into(),
                    );
                    self.respond_error(err).await;
                    return false;
                }
            }
        }
        let body = self.ctx.meter_end().unwrap_or_default();
        if let Some(err) = self.ctx.answer_blocked() {
            self.respond_error(err).await;
            return true;
        }
        if let Err(err) =
            crate::request::screen::moderate_answer(self.ctx, self.runtime, self.connector, &body)
                .await
        {
            self.respond_error(err).await;
            return true;
        }
        let framed = self
            .ctx
            .shape_response_header(&mut header)
            .and_then(|_| {
                header.remove_header(&http::header::TRANSFER_ENCODING);
                header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
            })
            .and_then(|_| super::frame_for_client(&mut header, self.session.is_http2()));
        if framed.is_err() {
            self.ctx.end.client_left = Some(ClientLeft::Disconnected);
            return false;
        }
        if let Err(e) = self
            .session
            .write_response_header(Box::new(header), false)
            .await
        {
            self.ctx.end.client_left = Some(ClientLeft::of(&e));
            return false;
        }
        if let Err(e) = self.session.write_response_body(Some(body), true).await {
            self.ctx.end.client_left = Some(ClientLeft::of(&e));
            return false;
        }
        true
    }
}

type Check<'a> = BoxFuture<'a, Result<(), Blocked>>;

/// A guarded stream's moderation windows.
pub(super) struct Windows<'a> {
    runtime: &'a Runtime,
    connector: &'a Connector,
    hooks: Vec<Arc<Moderation>>,
    pending: FuturesUnordered<Check<'a>>,
    /// `hold = true`: bytes waiting for their window's verdict.
    held: Option<Vec<u8>>,
}

impl<'a> Windows<'a> {
    pub(super) fn new(
        ctx: &RequestCtx,
        runtime: &'a Runtime,
        connector: &'a Connector,
    ) -> Option<Windows<'a>> {
        let hooks = ctx.admission.guard.as_ref()?.response_moderation.clone();
        let streams = matches!(
            ctx.response.as_ref().and_then(|c| c.guard.as_ref()),
            Some(ResponseGuard::Stream(_))
        );
        if hooks.is_empty() || !streams {
            return None;
        }
        let hold = hooks.iter().any(|h| h.hold);
        Some(Windows {
            runtime,
            connector,
            hooks,
            pending: FuturesUnordered::new(),
            held: hold.then(Vec::new),
        })
    }

    /// Keep `out` back while its window is unjudged (`hold`), else hand it on.
    pub(super) fn pass(&mut self, out: Bytes) -> Option<Bytes> {
        match self.held.as_mut() {
            Some(h) => {
                h.extend_from_slice(&out);
                None
            }
            None => Some(out),
        }
    }

    /// Start a check of every window the stream completed (all of the rest at its end).
    /// With `hold`, waits for the verdicts and returns the bytes they release.
    pub(super) async fn after_chunk(
        &mut self,
        ctx: &mut RequestCtx,
        end: bool,
    ) -> Result<Option<Bytes>, GatewayError> {
        let Some(ResponseGuard::Stream(g)) = ctx.response.as_mut().and_then(|c| c.guard.as_mut())
        else {
            return Ok(None);
        };
        let (window, overlap) = self
            .hooks
            .first()
            .map_or((1000, 100), |h| (h.window_chars, h.overlap_chars));
        let windows = g.take_windows(window, overlap, end);
        for text in windows {
            for hook in &self.hooks {
                let hook = Arc::clone(hook);
                let (runtime, connector) = (self.runtime, self.connector);
                let text = text.clone();
                self.pending.push(
                    async move {
                        let answer = moderation::ask(runtime, connector, &hook, &text).await;
                        moderation::judge(&hook, answer, Flow::Response)
                    }
                    .boxed(),
                );
            }
        }
        let wait = end || (self.held.is_some() && !self.pending.is_empty());
        self.verdicts(ctx, wait).await?;
        if wait {
            if let Some(h) = self.held.as_mut() {
                let out = std::mem::take(h);
                return Ok((!out.is_empty()).then(|| Bytes::from(out)));
            }
        }
        Ok(None)
    }

    /// Collect verdicts: every pending one when `all`, else those already in.
    async fn verdicts(&mut self, ctx: &mut RequestCtx, all: bool) -> Result<(), GatewayError> {
        loop {
            let next = if all {
                self.pending.next().await
            } else {
                match self.pending.next().now_or_never() {
                    Some(v) => v,
                    None => return Ok(()),
                }
            };
            match next {
                None => return Ok(()),
                Some(Ok(())) => {}
                Some(Err(blocked)) => {
                    ctx.end
                        .guardrails
                        .push(format!("{}/{}", blocked.policy, blocked.rule));
                    return Err(GatewayError::ContentBlocked(blocked, Flow::Response));
                }
            }
        }
    }
}
