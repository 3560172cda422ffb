//! The upstream exchange, as both I/O paths share it: which path carries a request
//! ([`Carrier`]), starting an attempt (its body in the backend's dialect), committing an
//! answer (meter, translator, client headers), and metering every body chunk.
//!
//! The failover policy itself is the engine's ([`crate::attempt`]); this module only turns
//! its decisions into request state.

use crate::attempt::{Attempts, Clocks};
use crate::config::{StreamRecovery, Target};
use crate::error::GatewayError;
use crate::guard::answer::ResponseGuard;
use crate::metrics::{GaugeGuard, METRICS};
use crate::request::ctx::{BodyMeter, Committed, RequestCtx};
use crate::wire::meter::{JsonMeter, SseMeter, Usage, UsageSource};
use crate::wire::protocol::ParsedRequest;
use crate::wire::tokens;
use crate::wire::translate::{self, ResponseTranslator};
use bytes::Bytes;
use pingora::http::ResponseHeader;

/// Which I/O path carries a request's upstream exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// Pingora's proxy phases.
    Phases,
    /// The forwarder ([`crate::request::forward`]).
    Forwarder,
}

/// The forwarder carries what the phases cannot: bodies Pingora cannot replay, streams (the
/// first event must be seen before committing), translated requests (their bodies are
/// rewritten whole), plans that may fail over on a context overflow (the 400's body must be
/// read), and providers whose clocks one per-read timeout cannot express.
pub fn carrier(request: &ParsedRequest, attempts: &Attempts, body_replayable: bool) -> Carrier {
    let client = request.operation.wire();
    let plan = attempts.plan();
    let candidates = || (0..plan.len()).filter_map(|i| plan.candidate(i));
    // A 400 that may be a context overflow is read before committing when a candidate could
    // take the prompt instead.
    let may_overflow = plan.len() > 1
        && (!plan.model.fallbacks.is_empty() || candidates().any(|t| t.context_window.is_some()));
    let needs_forwarder = !body_replayable
        || request.stream
        || may_overflow
        || candidates().any(|t| {
            t.provider.wire_for(request.operation) != client
                || Clocks::single_read_timeout(&t.provider).is_none()
        });
    if needs_forwarder {
        Carrier::Forwarder
    } else {
        Carrier::Phases
    }
}

impl RequestCtx {
    /// Start the next attempt of the plan: the engine's candidate, and its body.
    pub fn begin_attempt(&mut self) -> Result<Target, GatewayError> {
        let attempts = self.attempts.as_mut().ok_or(GatewayError::Internal)?;
        let target = attempts.begin()?;
        let request = self
            .admission
            .request
            .as_ref()
            .ok_or(GatewayError::Internal)?;
        let wire = target.provider.wire_for(request.operation);
        let (mut body, shape) = translate::attempt_body(request, wire, &target.model)?;
        self.upstream.shape = shape;
        // Translation joins parts (an assistant turn's text blocks): the request policies
        // screen what the backend will read, as they screened what the client sent.
        let request_guard = self.admission.guard.as_ref().map(|g| &g.request);
        if let Some(scanner) =
            request_guard.filter(|s| wire != request.operation.wire() && !s.is_empty())
        {
            let mut verdict = crate::guard::Verdict::default();
            let screened = crate::guard::text::screen_json(scanner, &body, &mut verdict);
            crate::guard::answer::note_fired(&mut self.end.guardrails, scanner, &verdict);
            if let Some(rule) = verdict.blocked.and_then(|r| scanner.rules.get(r)) {
                return Err(GatewayError::ContentBlocked(
                    crate::guard::Blocked::of_rule(rule),
                    crate::guard::Flow::Request,
                ));
            }
            if let Some(masked) = screened {
                body = Bytes::from(masked);
            }
        }
        self.upstream.body = body;
        self.upstream.body_sent = false;
        self.upstream.start_wait();
        Ok(target)
    }

    /// The engine committed the attempt's answer: set up its meter and translator. Returns
    /// whether the body is rewritten (then its length changes and `Content-Length` must go).
    pub fn commit(&mut self, header: &ResponseHeader) -> bool {
        self.upstream.stop_wait();
        let status = header.status.as_u16();
        let sse = header
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let operation = self.admission.request.as_ref().map(|r| r.operation);
        let estimate = self
            .admission
            .request
            .as_ref()
            .map_or(0, |r| r.prompt_tokens_estimate);
        let translator = match (self.target(), operation) {
            (Some(t), Some(op)) => {
                let upstream = t.provider.wire_for(op);
                ResponseTranslator::new(op.wire(), self.dialect, upstream, status, sse).map(|t| {
                    t.with_prompt_estimate(estimate)
                        .with_shape(self.upstream.shape)
                })
            }
            _ => None,
        };
        let strip = sse
            && self
                .admission
                .request
                .as_ref()
                .is_some_and(ParsedRequest::injects_usage);
        let recovers = self
            .attempts
            .as_ref()
            .is_some_and(|a| a.plan().model.stream_recovery != StreamRecovery::Off);
        let meter = if sse && status < 400 {
            let m = SseMeter::new(strip);
            BodyMeter::Sse(if recovers { m.with_transcript() } else { m })
        } else {
            BodyMeter::Json(JsonMeter::default())
        };
        let json_content = self
            .admission
            .request
            .as_ref()
            .is_some_and(|r| r.json_content);
        let guard = (status < 400)
            .then_some(self.admission.guard.as_ref())
            .flatten()
            .and_then(|g| {
                let moderated = !g.response_moderation.is_empty();
                ResponseGuard::new(g, self.dialect, sse, moderated, json_content)
            });
        let redactor = (status >= 400)
            .then(|| {
                self.runtime
                    .as_ref()?
                    .secrets
                    .as_ref()
                    .map(|s| s.redactor())
            })
            .flatten();
        let rewrites = strip || translator.is_some() || guard.is_some() || redactor.is_some();
        self.response = Some(Committed {
            status,
            meter,
            translator,
            rewrites,
            splice: None,
            guard,
            redactor,
            first_token_at: None,
            _stream: sse.then(|| GaugeGuard::acquire(&METRICS.inflight_streams)),
        });
        // The body is upstream time too.
        self.upstream.start_wait();
        rewrites
    }

    /// With tracing on, the attempt's `traceparent` (this attempt's span under the
    /// request's); without, the client's own passes through untouched.
    pub fn propagate_trace(&self, req: &mut pingora::http::RequestHeader) -> pingora::Result<()> {
        let (Some(t), Some(a)) = (self.trace.as_ref(), self.attempts.as_ref()) else {
            return Ok(());
        };
        let k = a.log().len().saturating_sub(1);
        req.insert_header("traceparent", t.attempt_header(k))?;
        Ok(())
    }

    /// The client-facing edits to a committed upstream response header.
    pub fn shape_response_header(&self, header: &mut ResponseHeader) -> pingora::Result<()> {
        crate::upstream::headers::keep_upstream_headers(header);
        if self.response.as_ref().is_some_and(|c| c.rewrites) {
            header.remove_header(&http::header::CONTENT_LENGTH);
        }
        header.insert_header("x-request-id", &self.request_id)?;
        self.admission.rate_headers.apply(header, self.dialect)
    }

    /// Meter one body chunk (after translating it into the client's dialect). Returns
    /// replacement bytes when the body is rewritten.
    pub fn meter_chunk(&mut self, chunk: &[u8]) -> Option<Bytes> {
        let elapsed = self.started.elapsed();
        let Some(c) = self.response.as_mut() else {
            if let Some(cap) = self.admission.capture.as_mut() {
                cap.push_response(chunk);
            }
            return None;
        };
        // Translate, splice, meter, guard, redact: one chain (guardrails see what the client
        // would; capture keeps what the client gets).
        let mut out: Option<Bytes> = None;
        for stage in c.stages().into_iter().flatten() {
            if let Some(next) = stage.feed(out.as_deref().unwrap_or(chunk)) {
                out = Some(next);
            }
        }
        if let BodyMeter::Sse(m) = &c.meter {
            if c.first_token_at.is_none() && m.saw_content() {
                c.first_token_at = Some(elapsed);
            }
        }
        if let Some(cap) = self.admission.capture.as_mut() {
            cap.push_response(out.as_deref().unwrap_or(chunk));
        }
        out
    }

    /// The guardrail `block` that fired on the answer, as the client's error.
    pub fn answer_blocked(&self) -> Option<GatewayError> {
        let blocked = self.response.as_ref()?.guard.as_ref()?.blocked()?;
        Some(GatewayError::ContentBlocked(
            blocked,
            crate::guard::Flow::Response,
        ))
    }

    /// Whether the answer is screened whole before its header goes out (a guarded JSON body).
    pub fn screens_whole_body(&self) -> bool {
        matches!(
            self.response.as_ref().and_then(|c| c.guard.as_ref()),
            Some(ResponseGuard::Json { .. })
        )
    }

    /// The end of the upstream body. Returns what is still to be sent: the rest of a
    /// translation, and bytes held back by a rewriting meter.
    pub fn meter_end(&mut self) -> Option<Bytes> {
        self.upstream.stop_wait();
        let c = self.response.as_mut()?;
        let mut tail = Bytes::new();
        for stage in c.stages().into_iter().flatten() {
            tail = stage.finish(&tail);
        }
        // A blocked answer is refused whole: none of it is captured.
        let blocked = c.guard.as_ref().is_some_and(|g| g.blocked().is_some());
        if let Some(cap) = self.admission.capture.as_mut().filter(|_| !blocked) {
            cap.push_response(&tail);
        }
        (!tail.is_empty()).then_some(tail)
    }

    /// The request's token usage: the provider's figures, or an estimate when it gave none.
    pub fn final_usage(&mut self) -> Option<(Usage, UsageSource)> {
        let request = self.admission.request.as_ref()?;
        let committed = self.response.as_mut()?;
        let (reported, deltas, text_bytes) = match &mut committed.meter {
            BodyMeter::Sse(m) => (m.usage, m.deltas, m.text_bytes),
            BodyMeter::Json(m) => (m.finish(), 0, 0),
        };
        match reported {
            Some(u) => Some((u, UsageSource::Provider)),
            None if committed.status >= 400 => None,
            None => Some((
                Usage {
                    input: request.prompt_tokens_estimate,
                    output: tokens::estimate_output(deltas, text_bytes),
                },
                UsageSource::Estimated,
            )),
        }
    }
}
