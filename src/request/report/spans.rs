//! A finished request as trace spans: the server span (GenAI semantic-convention attributes,
//! the limiter's decision and each failover as events) and a client span per upstream
//! attempt, whose ids match the `traceparent` each attempt sent upstream.
//!
//! Prompts and answers never go into spans, except the redacted, capped payload capture of a
//! consumer or model with `log_payloads`.

use super::Settled;
use crate::attempt::{AttemptEntry, AttemptOutcome, Attempts};
use crate::request::ctx::RequestCtx;
use crate::telemetry::trace::context::attempt_span_id;
use crate::telemetry::trace::otlp::{self, KeyValue};
use crate::telemetry::trace::RequestTrace;
use std::time::Instant;

pub(super) struct Finished<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
}

pub(super) fn build(
    ctx: &RequestCtx,
    t: &RequestTrace,
    s: &Settled,
    f: &Finished<'_>,
) -> Vec<otlp::Span> {
    let nanos_at = |at: Instant| {
        let since = at.saturating_duration_since(ctx.started);
        t.start_unix_nanos + u64::try_from(since.as_nanos()).unwrap_or(u64::MAX / 2)
    };
    let end = nanos_at(ctx.started + s.elapsed).max(t.start_unix_nanos);
    let request = ctx.admission.request.as_ref();
    let operation = request.map_or("unknown", |r| r.operation.label());
    let log = ctx.attempts.as_ref().map_or(&[][..], Attempts::log);
    let runtime = ctx.runtime.as_ref();
    let provider_kind = |name: &str| {
        runtime
            .and_then(|r| r.config.providers.iter().find(|p| p.name == name))
            .map_or("unknown", |p| p.kind.label())
    };

    let attributes = attributes(ctx, s, f, operation, log, &provider_kind);
    let mut events = t.events.clone();
    events.extend(failover_events(log, &nanos_at));
    let failed = f.status >= 500 || f.status == 0;
    let mut spans = vec![span(
        t,
        t.context.span_id,
        t.parent,
        format!("{operation} {}", request.map_or("", |r| r.model.as_str())),
        otlp::SPAN_KIND_SERVER,
        (t.start_unix_nanos, end),
        attributes,
        events,
        failed.then(|| s.outcome.label()),
    )];
    for (k, a) in log.iter().enumerate() {
        let last = k + 1 == log.len();
        let ended = match (last, a.outcome) {
            // The answer's span lasts until its body is through.
            (true, AttemptOutcome::Ok | AttemptOutcome::Status | AttemptOutcome::Pending) => end,
            _ => a.ended.map_or(end, nanos_at),
        };
        spans.push(attempt_span(
            t,
            k,
            a,
            operation,
            provider_kind(&a.provider),
            (nanos_at(a.began), ended),
        ));
    }
    spans
}

/// The request span's attributes: the GenAI semantic conventions and Tollgate's own.
fn attributes(
    ctx: &RequestCtx,
    s: &Settled,
    f: &Finished<'_>,
    operation: &'static str,
    log: &[AttemptEntry],
    provider_kind: &impl Fn(&str) -> &'static str,
) -> Vec<KeyValue> {
    let request = ctx.admission.request.as_ref();
    let runtime = ctx.runtime.as_ref();
    let mut attributes = vec![
        KeyValue::str("gen_ai.operation.name", operation),
        KeyValue::str("http.request.method", f.method),
        KeyValue::str("url.path", f.path),
        KeyValue::int("http.response.status_code", u64::from(f.status)),
        KeyValue::str("tollgate.request_id", ctx.request_id.as_str()),
        KeyValue::str("tollgate.outcome", s.outcome.label()),
        KeyValue::int("tollgate.attempts", log.len() as u64),
    ];
    if let Some(r) = request {
        attributes.push(KeyValue::str("gen_ai.request.model", r.model.as_str()));
        if let Some(m) = r.max_tokens {
            attributes.push(KeyValue::int("gen_ai.request.max_tokens", m));
        }
    }
    if let Some(plan) = ctx.attempts.as_ref().map(Attempts::plan) {
        attributes.push(KeyValue::str("tollgate.model", plan.model.name.as_str()));
    }
    if let Some(c) = &ctx.admission.consumer {
        attributes.push(KeyValue::str("tollgate.consumer", c.name.as_str()));
    }
    if let Some(last) = log.last() {
        attributes.push(KeyValue::str(
            "gen_ai.provider.name",
            provider_kind(&last.provider),
        ));
        attributes.push(KeyValue::str(
            "gen_ai.response.model",
            last.upstream_model.as_str(),
        ));
    }
    if let Some((u, _)) = s.usage {
        attributes.push(KeyValue::int("gen_ai.usage.input_tokens", u.input));
        attributes.push(KeyValue::int("gen_ai.usage.output_tokens", u.output));
    }
    if let Some(c) = &ctx.admission.capture {
        let max = runtime.map_or(16 * 1024, |r| r.config.log.payload_max_bytes);
        attributes.push(KeyValue::str(
            "tollgate.payload",
            c.render(ctx.is_sse(), max).to_string(),
        ));
    }
    if f.status >= 400 || f.status == 0 {
        attributes.push(KeyValue::str("error.type", s.outcome.label()));
    }

    attributes
}

/// One event per failover: from which provider to which, and why.
fn failover_events(log: &[AttemptEntry], nanos_at: &impl Fn(Instant) -> u64) -> Vec<otlp::Event> {
    let mut events = Vec::new();
    for (k, a) in log.iter().enumerate() {
        if k + 1 < log.len() {
            let mut attrs = vec![
                KeyValue::str("tollgate.failover.reason", a.outcome.label()),
                KeyValue::str("tollgate.failover.from", a.provider.as_str()),
                KeyValue::str("tollgate.failover.to", log[k + 1].provider.as_str()),
            ];
            if let Some(st) = a.status {
                attrs.push(KeyValue::int("http.response.status_code", u64::from(st)));
            }
            events.push(otlp::Event {
                time_unix_nano: nanos_at(a.ended.unwrap_or(log[k + 1].began)),
                name: "tollgate.failover".into(),
                attributes: attrs,
            });
        }
    }
    events
}

fn attempt_span(
    t: &RequestTrace,
    k: usize,
    a: &AttemptEntry,
    operation: &str,
    kind: &str,
    times: (u64, u64),
) -> otlp::Span {
    let mut attributes = vec![
        KeyValue::str("gen_ai.operation.name", operation),
        KeyValue::str("gen_ai.provider.name", kind),
        KeyValue::str("gen_ai.request.model", a.upstream_model.as_str()),
        KeyValue::str("tollgate.provider", a.provider.as_str()),
        KeyValue::str("tollgate.attempt.outcome", a.outcome.label()),
    ];
    if let Some(st) = a.status {
        attributes.push(KeyValue::int("http.response.status_code", u64::from(st)));
    }
    if let Some(w) = a.waited_ms {
        attributes.push(KeyValue::int("tollgate.attempt.waited_ms", w));
    }
    let failed = matches!(a.outcome, AttemptOutcome::Failed(_));
    span(
        t,
        attempt_span_id(t.context.span_id, k),
        Some(t.context.span_id),
        format!("{operation} {}", a.upstream_model),
        otlp::SPAN_KIND_CLIENT,
        (times.0, times.1.max(times.0)),
        attributes,
        Vec::new(),
        failed.then(|| a.outcome.label()),
    )
}

#[allow(
    clippy::too_many_arguments,
    reason = "a span's fields, named at each call"
)]
fn span(
    t: &RequestTrace,
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    kind: i32,
    (start, end): (u64, u64),
    attributes: Vec<KeyValue>,
    events: Vec<otlp::Event>,
    error: Option<&str>,
) -> otlp::Span {
    otlp::Span {
        trace_id: t.context.trace_id.to_vec(),
        span_id: id.to_vec(),
        trace_state: t.trace_state.clone(),
        parent_span_id: parent.map_or_else(Vec::new, |p| p.to_vec()),
        name,
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        events,
        status: error.map(|message| otlp::Status {
            message: message.to_string(),
            code: otlp::STATUS_ERROR,
        }),
        flags: 1,
    }
}
