//! `RequestCtx`: everything one request carries through the stages, a section per stage.
//!
//! The methods here are the stage logic shared by both I/O paths (Pingora's phases and the
//! large-body forwarder): starting an attempt, recording how it ended, committing a response,
//! metering each body chunk, and settling the usage at the end.

use crate::access_log::AttemptEntry;
use crate::capture::Capture;
use crate::config::{Consumer, Target};
use crate::error::{Dialect, GatewayError};
use crate::limits::{RateHeaders, Reservation};
use crate::meter::{JsonMeter, SseMeter, Usage, UsageSource};
use crate::metrics::{GaugeGuard, METRICS};
use crate::protocol::ParsedRequest;
use crate::routing::Plan;
use crate::server::Runtime;
use crate::tokens;
use crate::translate::{self, ResponseTranslator};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the response body is metered.
#[derive(Debug)]
pub enum BodyMeter {
    Sse(SseMeter),
    Json(JsonMeter),
}

/// The response the client is receiving (set once an upstream answer is committed).
#[derive(Debug)]
pub struct Committed {
    pub status: u16,
    pub meter: BodyMeter,
    /// Rewrites the body into the client's dialect (the backend speaks the other one).
    pub translator: Option<ResponseTranslator>,
    /// The body is rewritten on its way to the client, so its length changes.
    pub rewrites: bool,
    pub first_token_at: Option<Duration>,
    /// Counts the stream in `tollgate_inflight_streams` while it is relayed.
    _stream: Option<GaugeGuard>,
}

pub struct RequestCtx {
    pub started: Instant,
    pub request_id: String,
    pub dialect: Dialect,
    /// The config snapshot this request runs on, start to finish.
    pub runtime: Option<Arc<Runtime>>,
    pub consumer: Option<Arc<Consumer>>,
    pub request: Option<ParsedRequest>,
    pub plan: Option<Plan>,
    /// What the limits charged at admission; settled in `logging`, and dropping it frees the
    /// concurrency slot on any other path.
    pub reservation: Option<Reservation>,
    /// The consumer's quotas, sent as `x-ratelimit-*` on the response.
    pub rate_headers: RateHeaders,
    /// Index into the plan of the current attempt.
    pub attempt: usize,
    pub attempts: Vec<AttemptEntry>,
    /// The body the current attempt sends, and whether it was handed to Pingora yet.
    pub attempt_body: Bytes,
    pub attempt_body_sent: bool,
    /// Set when a retryable status was turned into an error, so `error_while_proxy` retries.
    pub retry_status_pending: bool,
    pub response: Option<Committed>,
    /// The error response the gateway itself sent, if any.
    pub gateway_error: Option<GatewayError>,
    /// The upstream failed after the response started.
    pub upstream_cut: Option<&'static str>,
    /// The client went away before the response finished.
    pub client_gone: bool,
    /// Bodies kept for the access log (`log_payloads`).
    pub capture: Option<Capture>,
    /// A failover was refused by the model's retry budget.
    pub retry_budget_exhausted: bool,
    /// Time spent waiting on upstreams (connects, first bytes, bodies), for the overhead metric.
    pub upstream_wait: Duration,
    /// When the upstream exchange being timed began.
    upstream_since: Option<Instant>,
    _inflight: GaugeGuard,
}

impl RequestCtx {
    pub fn new() -> Self {
        RequestCtx {
            started: Instant::now(),
            request_id: new_request_id(),
            dialect: Dialect::OpenAi,
            runtime: None,
            consumer: None,
            request: None,
            plan: None,
            reservation: None,
            rate_headers: RateHeaders::default(),
            attempt: 0,
            attempts: Vec::new(),
            attempt_body: Bytes::new(),
            attempt_body_sent: false,
            retry_status_pending: false,
            response: None,
            gateway_error: None,
            upstream_cut: None,
            client_gone: false,
            capture: None,
            retry_budget_exhausted: false,
            upstream_wait: Duration::ZERO,
            upstream_since: None,
            _inflight: GaugeGuard::acquire(&METRICS.inflight),
        }
    }

    /// The target of the current attempt.
    pub fn target(&self) -> Option<&Target> {
        self.plan.as_ref()?.candidate(self.attempt)
    }

    /// Start the current attempt: log it and prepare its body.
    pub fn begin_attempt(&mut self) -> Result<Target, GatewayError> {
        let target = self.target().cloned().ok_or_else(|| {
            GatewayError::NoCandidate(
                self.request
                    .as_ref()
                    .map_or(String::new(), |r| r.model.clone()),
            )
        })?;
        let request = self.request.as_ref().ok_or(GatewayError::Internal)?;
        self.attempt_body =
            translate::attempt_body(request, target.provider.kind.dialect(), &target.model)?;
        self.attempt_body_sent = false;
        self.upstream_since = Some(Instant::now());
        self.attempts.push(AttemptEntry {
            provider: target.provider.name.clone(),
            upstream_model: target.model.clone(),
            outcome: "pending".into(),
            status: None,
        });
        Ok(target)
    }

    /// Stop the upstream clock (an attempt or a response body ended).
    pub fn upstream_done(&mut self) {
        if let Some(since) = self.upstream_since.take() {
            self.upstream_wait += since.elapsed();
        }
    }

    /// Record how the current attempt ended.
    pub fn end_attempt(&mut self, outcome: &str, status: Option<u16>) {
        self.upstream_done();
        // Passive health: 5xx, connect failures, timeouts and broken first frames count
        // against the provider; a stale pooled connection does not.
        if outcome != "stale_connection" {
            if let Some(t) = self.target() {
                let ok =
                    outcome == "ok" || (outcome == "status" && status.is_some_and(|s| s < 500));
                let p = &t.provider;
                p.health.record(ok, &p.outlier, Instant::now());
            }
        }
        if let Some(a) = self.attempts.last_mut() {
            METRICS
                .upstream_attempts
                .with_label_values(&[a.provider.as_str(), outcome])
                .inc();
            a.outcome = outcome.to_string();
            a.status = status;
        }
    }

    /// A failed attempt: move to the next candidate if there is one and the model's retry
    /// budget allows. Returns whether it did.
    pub fn fail_over(&mut self, outcome: &str, status: Option<u16>) -> bool {
        self.end_attempt(outcome, status);
        self.advance(outcome)
    }

    /// An upstream answered `status`: if it is retryable, a candidate is left and the budget
    /// allows, end this attempt and move on (returns true). Otherwise nothing changes and the
    /// answer is to be committed.
    pub fn fail_over_on_status(&mut self, status: u16) -> bool {
        let retryable = self
            .plan
            .as_ref()
            .is_some_and(|p| p.retries_status(status, self.attempt));
        retryable && self.move_on(&format!("status_{status}"), Some(status))
    }

    /// A response that is a failure in disguise (an error as the first stream event): move on
    /// if allowed, else leave the attempt open so the response is committed as it is.
    pub fn move_on(&mut self, outcome: &str, status: Option<u16>) -> bool {
        if !self.has_next_candidate() || !self.budget_allows() {
            return false;
        }
        self.end_attempt(outcome, status);
        self.attempt += 1;
        METRICS.failovers.with_label_values(&[outcome]).inc();
        true
    }

    /// Whether the current attempt has a candidate after it (and the budget was not spent).
    pub fn has_next_candidate(&self) -> bool {
        !self.retry_budget_exhausted && self.plan.as_ref().is_some_and(|p| p.has_next(self.attempt))
    }

    /// Streams go through the forwarder: it can check the first event before committing (to
    /// fail over) and applies the first-byte, idle and total timeouts exactly.
    /// So do translated requests: their bodies are rewritten whole.
    pub fn uses_forwarder(&self) -> bool {
        let Some(request) = self.request.as_ref() else {
            return false;
        };
        let client = request.operation.dialect();
        request.stream
            || self.plan.as_ref().is_some_and(|p| {
                (0..p.len()).any(|i| {
                    p.candidate(i)
                        .is_some_and(|t| t.provider.kind.dialect() != client)
                })
            })
    }

    fn advance(&mut self, reason: &str) -> bool {
        if !self.has_next_candidate() || !self.budget_allows() {
            return false;
        }
        self.attempt += 1;
        METRICS.failovers.with_label_values(&[reason]).inc();
        true
    }

    /// Spend one retry from the model's budget; remembers a refusal.
    fn budget_allows(&mut self) -> bool {
        if self.retry_budget_exhausted {
            return false;
        }
        let Some(plan) = self.plan.as_ref() else {
            return false;
        };
        if plan
            .model
            .retry_budget
            .try_withdraw(crate::routing::budget::now_s())
        {
            return true;
        }
        METRICS
            .retry_budget_exhausted
            .with_label_values(&[plan.model.name.as_str()])
            .inc();
        self.retry_budget_exhausted = true;
        false
    }

    /// The upstream's answer is final: it goes to the client. Returns whether the body is
    /// rewritten (then its length changes and `Content-Length` must go).
    pub fn commit(&mut self, header: &ResponseHeader) -> bool {
        let status = header.status.as_u16();
        let content_type = header
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let upstream = self.target().map(|t| t.provider.kind.dialect());
        self.end_attempt(if status < 400 { "ok" } else { "status" }, Some(status));
        let sse = content_type.is_some_and(|c| c.starts_with("text/event-stream"));
        let translator =
            upstream.and_then(|u| ResponseTranslator::new(self.dialect, u, status, sse));
        let strip = sse
            && self
                .request
                .as_ref()
                .is_some_and(ParsedRequest::injects_usage);
        let meter = if sse && status < 400 {
            BodyMeter::Sse(SseMeter::new(strip))
        } else {
            BodyMeter::Json(JsonMeter::default())
        };
        let rewrites = strip || translator.is_some();
        self.response = Some(Committed {
            status,
            meter,
            translator,
            rewrites,
            first_token_at: None,
            _stream: sse.then(|| GaugeGuard::acquire(&METRICS.inflight_streams)),
        });
        // The body is upstream time too.
        self.upstream_since = Some(Instant::now());
        rewrites
    }

    /// The client-facing edits to a committed upstream response header.
    pub fn shape_response_header(&self, header: &mut ResponseHeader) -> pingora::Result<()> {
        if self.response.as_ref().is_some_and(|c| c.rewrites) {
            header.remove_header(&http::header::CONTENT_LENGTH);
        }
        header.insert_header("x-request-id", &self.request_id)?;
        self.rate_headers.apply(header, self.dialect);
        Ok(())
    }

    /// Meter one body chunk (after translating it into the client's dialect). Returns
    /// replacement bytes when the body is rewritten.
    pub fn meter_chunk(&mut self, chunk: &[u8]) -> Option<Bytes> {
        if let Some(c) = self.capture.as_mut() {
            c.push_response(chunk);
        }
        let elapsed = self.started.elapsed();
        let c = self.response.as_mut()?;
        let translated = c.translator.as_mut().map(|t| t.feed(chunk));
        let chunk = translated.as_deref().unwrap_or(chunk);
        let out = match &mut c.meter {
            BodyMeter::Sse(m) => {
                let out = m.feed(chunk);
                if c.first_token_at.is_none() && m.saw_content() {
                    c.first_token_at = Some(elapsed);
                }
                out
            }
            BodyMeter::Json(m) => {
                m.feed(chunk);
                None
            }
        };
        out.or(translated)
    }

    /// The end of the upstream body. Returns what is still to be sent: the rest of a
    /// translation, and bytes held back by a rewriting meter.
    pub fn meter_end(&mut self) -> Option<Bytes> {
        self.upstream_done();
        let c = self.response.as_mut()?;
        let mut tail = Vec::new();
        if let Some(t) = c.translator.as_mut() {
            let rest = t.finish();
            match &mut c.meter {
                BodyMeter::Sse(m) => match m.feed(&rest) {
                    Some(kept) => tail.extend_from_slice(&kept),
                    None => tail.extend_from_slice(&rest),
                },
                BodyMeter::Json(m) => {
                    m.feed(&rest);
                    tail.extend_from_slice(&rest);
                }
            }
        }
        if let BodyMeter::Sse(m) = &mut c.meter {
            if let Some(kept) = m.finish() {
                tail.extend_from_slice(&kept);
            }
        }
        (!tail.is_empty()).then(|| Bytes::from(tail))
    }

    /// Whether the committed response is an event stream.
    pub fn is_sse(&self) -> bool {
        matches!(
            self.response.as_ref().map(|c| &c.meter),
            Some(BodyMeter::Sse(_))
        )
    }

    /// The request's usage: the provider's figures, or an estimate when it gave none.
    pub fn settle_usage(&mut self) -> Option<(Usage, UsageSource)> {
        let request = self.request.as_ref()?;
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

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

fn new_request_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    format!("req_{}", hex::encode(b))
}
