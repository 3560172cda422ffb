//! Finishing a broken stream on the next candidate (the model's `stream_recovery`): the engine
//! decides whether and how ([`crate::attempt::Attempts::resume`]); this sends the continuation
//! ([`crate::attempt::recovery::continuation`]), reads its header, and sets up the splice that keeps the
//! client's stream one answer.

use super::{is_event_stream, send_request, Forwarder};
use crate::attempt::recovery::splice::Splice;
use crate::attempt::recovery::{self, first_share};
use crate::attempt::{Answer, Clocks, Failure, Now};
use crate::config::StreamRecovery;
use crate::metrics::METRICS;
use crate::request::ctx::{BodyMeter, RequestCtx};
use crate::wire::translate::ResponseTranslator;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use std::time::Instant;

/// One upstream leg of a response: the connection, its peer and its clocks.
pub struct Leg {
    pub upstream: HttpSession,
    pub peer: Box<HttpPeer>,
    pub clocks: Clocks,
}

impl Forwarder<'_> {
    /// After the stream broke with `failure`: the next leg to relay, its header read and the
    /// splice in place, or `None` (the caller ends the stream with the honest error).
    pub(super) async fn resume(&mut self, failure: Failure) -> Option<Leg> {
        let configured = self.ctx.attempts.as_ref()?.plan().model.stream_recovery;
        if configured == StreamRecovery::Off {
            return None;
        }
        let request = self.ctx.admission.request.clone()?;
        let (transcript, base) = match self.ctx.response.as_ref().map(|c| &c.meter) {
            Some(BodyMeter::Sse(m)) => (
                m.transcript.clone()?,
                first_share(
                    m.usage,
                    request.prompt_tokens_estimate,
                    m.deltas,
                    m.text_bytes,
                ),
            ),
            Some(BodyMeter::Json(_)) | None => return None,
        };
        let choices = serde_json::from_slice::<serde_json::Value>(&request.body)
            .ok()
            .and_then(|v| v["n"].as_u64())
            .unwrap_or(1);
        // A Responses stream is not spliced (the splice speaks chat and Messages).
        let resumable = !transcript.unresumable
            && choices <= 1
            && request.operation != crate::wire::protocol::Operation::Responses;
        let mode = self
            .ctx
            .attempts
            .as_mut()?
            .resume(failure, resumable, Now::real());
        let Some(mode) = mode else {
            METRICS
                .stream_recoveries
                .with_label_values(&[configured.label(), "not_resumable"])
                .inc();
            return None;
        };
        let mut mode = mode;
        let leg = loop {
            let next = self
                .continue_on_next(&request, mode, &transcript.text)
                .await;
            match next {
                Next::Leg(leg, skip) => break Some((*leg, skip)),
                // A candidate that refuses the prefill regenerates instead.
                Next::PrefillRefused => mode = recovery::Resume::Restart,
                Next::Failed => break None,
            }
        };
        let Some((leg, skip)) = leg else {
            METRICS
                .stream_recoveries
                .with_label_values(&[mode.label(), "failed"])
                .inc();
            return None;
        };
        let upstream = self.ctx.target()?.provider.wire_for(request.operation);
        let dialect = self.ctx.dialect;
        let c = self.ctx.response.as_mut()?;
        c.translator =
            ResponseTranslator::new(request.operation.wire(), dialect, upstream, 200, true)
                .map(|t| t.with_prompt_estimate(request.prompt_tokens_estimate));
        c.splice = Some(Splice::new(dialect, transcript, base, skip));
        c.rewrites = true;
        self.ctx.end.resumed = Some(mode);
        METRICS
            .stream_recoveries
            .with_label_values(&[mode.label(), "resumed"])
            .inc();
        Some(leg)
    }
}

/// How beginning a continuation went.
enum Next {
    /// A 200 event stream: relay it, skipping what the client already has.
    Leg(Box<Leg>, String),
    /// The candidate answered 400 to the prefilled turn (`continue_final_message` or an
    /// assistant prefix it does not take): try it again as a restart.
    PrefillRefused,
    Failed,
}

impl Forwarder<'_> {
    /// Begin the continuation attempt and read its header.
    async fn continue_on_next(
        &mut self,
        request: &crate::wire::protocol::ParsedRequest,
        mode: recovery::Resume,
        sent: &str,
    ) -> Next {
        let Some(Ok(target)) = self.ctx.attempts.as_mut().map(|a| a.begin()) else {
            return Next::Failed;
        };
        let failed = |ctx: &mut RequestCtx, f: Failure| {
            if let Some(a) = ctx.attempts.as_mut() {
                // Logged; the client gets the honest error of the first break either way.
                let _decision = a.failed(f, false, Now::real());
            }
        };
        let dialect = target.provider.wire_for(request.operation);
        let Ok(cont) = recovery::continuation(request, mode, sent, dialect, &target.model) else {
            failed(self.ctx, Failure::Other);
            return Next::Failed;
        };
        self.ctx.upstream.body = cont.body;
        let picked = self.runtime.upstreams.peer_for(
            &target,
            &self.ctx.upstream.body,
            &self.session.req_header().headers,
        );
        let Ok((peer, picked)) = picked else {
            failed(self.ctx, Failure::Unresolved);
            return Next::Failed;
        };
        self.ctx.upstream.picked = picked;
        let mut req = self.session.req_header().clone();
        let len = self.ctx.upstream.body.len();
        if self
            .runtime
            .upstreams
            .prepare_request(
                &mut req,
                &target,
                request.operation,
                true,
                len,
                &self.ctx.request_id,
            )
            .and_then(|()| self.ctx.propagate_trace(&mut req))
            .is_err()
        {
            failed(self.ctx, Failure::Other);
            return Next::Failed;
        }
        let clocks = Clocks::of(&target.provider, self.started, Instant::now(), true);
        let mut upstream = match self.connector.get_http_session(&*peer).await {
            Ok((s, _)) => s,
            Err(e) => {
                failed(self.ctx, Failure::of(&e, false));
                return Next::Failed;
            }
        };
        if let Err(f) = send_request(&mut upstream, req, &self.ctx.upstream.body, &clocks).await {
            failed(self.ctx, f);
            return Next::Failed;
        }
        if let Some(p) = self.ctx.upstream.picked.as_mut() {
            p.first_byte();
        }
        let Some(header) = upstream.response_header() else {
            return Next::Failed;
        };
        let (status, sse) = (header.status.as_u16(), is_event_stream(header));
        let Some(attempts) = self.ctx.attempts.as_mut() else {
            return Next::Failed;
        };
        if status == 400
            && mode == recovery::Resume::Continue
            && attempts.prefill_refused(Now::real())
        {
            return Next::PrefillRefused;
        }
        let answer = attempts.answered(status, false, None, Now::real());
        if answer == Answer::Commit && status == 200 && sse {
            let leg = Leg {
                upstream,
                peer,
                clocks,
            };
            return Next::Leg(Box::new(leg), cont.skip);
        }
        Next::Failed
    }
}
