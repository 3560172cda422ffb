//! The last stage: settle the request's usage (and its limit reservation), then record
//! metrics, its access-log line and its trace spans ([`spans`]).
//!
//! Called from Pingora's `logging` phase, which runs once for every request on every path
//! (success, gateway error, upstream failure, client disconnect), so each request is counted
//! exactly once.

use crate::attempt::{Attempts, ClientLeft, ExchangeOutcome};
use crate::metrics::METRICS;
use crate::request::ctx::RequestCtx;
use crate::telemetry::access_log::{now_rfc3339, AccessLog, AccessRecord};
use crate::telemetry::analytics::{Counts, Key, Rollups};
use crate::wire::meter::Usage;
use crate::wire::meter::UsageSource;
use std::time::Duration;

mod spans;

/// How a finished request ended.
fn outcome(ctx: &RequestCtx, status: u16) -> ExchangeOutcome {
    if let Some(e) = &ctx.end.error {
        return ExchangeOutcome::Refused(e.outcome());
    }
    if let Some(cut) = ctx.end.upstream_cut {
        return ExchangeOutcome::UpstreamCut(cut);
    }
    if let Some(left) = ctx.end.client_left {
        return ExchangeOutcome::ClientLeft(left);
    }
    match status {
        0 => ExchangeOutcome::ClientLeft(ClientLeft::Disconnected),
        s if s >= 400 => ExchangeOutcome::UpstreamStatus,
        _ => ExchangeOutcome::Success,
    }
}

/// What the request came to, computed once for metrics, analytics and the access log.
struct Settled {
    usage: Option<(Usage, UsageSource)>,
    cost_micros: Option<u64>,
    outcome: ExchangeOutcome,
    elapsed: Duration,
    ttft: Option<Duration>,
    /// Time per output token after the first, for streams.
    tpot: Option<f64>,
    /// Time spent in the gateway itself (duration minus upstream waits).
    overhead: Duration,
}

impl Settled {
    fn output_tokens(&self) -> u64 {
        self.usage.map_or(0, |(u, _)| u.output)
    }

    fn input_tokens(&self) -> u64 {
        self.usage.map_or(0, |(u, _)| u.input)
    }
}

pub fn record(
    ctx: &mut RequestCtx,
    log: &AccessLog,
    rollups: &Rollups,
    method: &str,
    path: &str,
    status: u16,
) {
    ctx.upstream.stop_wait();
    learn_latency(ctx);
    let settled = settle(ctx, status);
    let model = ctx
        .attempts
        .as_ref()
        .map_or("unknown", |a| a.plan().model.name.as_str());
    record_metrics(ctx, &settled, model, status);
    if let Some(c) = &ctx.admission.consumer {
        rollups.record(
            jiff::Timestamp::now().as_millisecond(),
            Key {
                consumer: c.name.clone(),
                // An API key's own project, else its consumer's.
                project: ctx
                    .admission
                    .key
                    .as_ref()
                    .and_then(|k| k.record.project.clone())
                    .or_else(|| c.project.clone())
                    .unwrap_or_default(),
                model: model.to_string(),
                tenant: c.tenant.clone().unwrap_or_default(),
                key: ctx.admission.key_label.as_deref().unwrap_or("").to_string(),
            },
            Counts {
                requests: 1,
                input_tokens: settled.input_tokens(),
                output_tokens: settled.output_tokens(),
                cost_micros: settled.cost_micros.unwrap_or(0),
                errors: u64::from(!settled.outcome.is_success()),
            },
        );
    }
    emit(ctx, log, &settled, method, path, status);
    if let Some(t) = ctx.trace.as_ref().filter(|t| t.context.sampled) {
        let finished = spans::Finished {
            method,
            path,
            status,
        };
        crate::telemetry::trace::submit(spans::build(ctx, t, &settled, &finished));
    }
}

/// least_latency learns from answered requests: TTFT, or the whole answer.
fn learn_latency(ctx: &RequestCtx) {
    let plan = ctx.attempts.as_ref().map(Attempts::plan);
    let (Some(plan), Some(t), Some(c)) = (plan, ctx.target(), ctx.response.as_ref()) else {
        return;
    };
    let learns = plan.model.strategy == crate::config::Strategy::LeastLatency;
    if learns && c.status < 400 && ctx.end.upstream_cut.is_none() {
        let seconds = c
            .first_token_at
            .unwrap_or(ctx.started.elapsed())
            .as_secs_f64();
        t.health.latency.record(seconds);
    }
}

/// The final usage and cost, charged to the reservation (which frees its slot).
fn settle(ctx: &mut RequestCtx, status: u16) -> Settled {
    let usage = ctx.final_usage();
    let price = ctx.attempts.as_ref().and_then(|a| {
        let model = &a.plan().model;
        a.target().map_or(model.price, |t| model.price_of(t))
    });
    let cost_micros = match (usage, price) {
        (Some((u, _)), Some(p)) => Some(p.micros(u.input, u.output)),
        _ => None,
    };
    if let Some(reservation) = ctx.admission.reservation.take() {
        let tokens = usage.map_or(0, |(u, _)| u.input.saturating_add(u.output));
        reservation.settle(tokens, cost_micros.unwrap_or(0));
    }
    let elapsed = ctx.started.elapsed();
    let ttft = ctx.response.as_ref().and_then(|c| c.first_token_at);
    let output_tokens = usage.map_or(0, |(u, _)| u.output);
    // TPOT = (duration − TTFT) / (output tokens − 1), for streams.
    let tpot = ttft
        .filter(|_| output_tokens > 1)
        .map(|t| elapsed.saturating_sub(t).as_secs_f64() / (output_tokens - 1) as f64);
    Settled {
        usage,
        cost_micros,
        outcome: outcome(ctx, status),
        elapsed,
        ttft,
        tpot,
        overhead: elapsed.saturating_sub(ctx.upstream.waited),
    }
}

fn record_metrics(ctx: &RequestCtx, s: &Settled, model: &str, status: u16) {
    let provider = ctx
        .attempts
        .as_ref()
        .and_then(|a| a.log().last())
        .map_or("none", |a| a.provider.as_str());
    METRICS
        .requests
        .with_label_values(&[model, provider, &status.to_string(), s.outcome.label()])
        .inc();
    METRICS
        .request_duration
        .with_label_values(&[model])
        .observe(s.elapsed.as_secs_f64());
    METRICS
        .overhead
        .with_label_values(&[model])
        .observe(s.overhead.as_secs_f64());
    record_genai(
        ctx,
        model,
        s.elapsed,
        s.ttft,
        s.tpot,
        s.usage.map(|(u, _)| u),
    );
    if let Some(t) = s.ttft {
        METRICS
            .ttft
            .with_label_values(&[model])
            .observe(t.as_secs_f64());
    }
    if let Some((u, _)) = s.usage {
        let consumer = ctx
            .admission
            .consumer
            .as_ref()
            .map_or("anonymous", |c| c.name.as_str());
        METRICS
            .tokens
            .with_label_values(&[consumer, model, "input"])
            .inc_by(u.input);
        METRICS
            .tokens
            .with_label_values(&[consumer, model, "output"])
            .inc_by(u.output);
        if let Some(micros) = s.cost_micros {
            METRICS
                .cost_usd
                .with_label_values(&[consumer, model])
                .inc_by(micros as f64 / 1e6);
        }
    }
}

/// The request's access-log line.
fn emit(ctx: &RequestCtx, log: &AccessLog, s: &Settled, method: &str, path: &str, status: u16) {
    let plan = ctx.attempts.as_ref().map(Attempts::plan);
    let attempt_log = ctx.attempts.as_ref().map_or(&[][..], Attempts::log);
    let final_attempt = attempt_log.last();
    let mut guardrails = ctx.end.guardrails.clone();
    if let Some(g) = ctx.response.as_ref().and_then(|c| c.guard.as_ref()) {
        g.fired(&mut guardrails);
    }
    log.emit(&AccessRecord {
        ts: now_rfc3339(),
        request_id: &ctx.request_id,
        method,
        path,
        client_ip: ctx.admission.client_ip.map(|ip| ip.to_string()),
        consumer: ctx.admission.consumer.as_ref().map(|c| c.name.as_str()),
        route: ctx.admission.route.as_ref().map(|r| r.name.as_str()),
        model: plan.map(|p| p.model.name.as_str()),
        provider: final_attempt.map(|a| a.provider.as_str()),
        upstream_model: final_attempt.map(|a| a.upstream_model.as_str()),
        client_dialect: ctx.dialect.label(),
        upstream_dialect: final_attempt
            .and_then(|_| ctx.target().zip(ctx.admission.request.as_ref()))
            .map(|(t, r)| t.provider.wire_for(r.operation).label()),
        rule: plan.and_then(|p| p.rule.as_deref()),
        skipped_targets: plan.map_or(&[], |p| &p.skipped),
        status,
        stream: ctx.admission.request.as_ref().is_some_and(|r| r.stream),
        attempts: attempt_log.len(),
        attempt_log,
        input_tokens: s.input_tokens(),
        output_tokens: s.output_tokens(),
        usage_source: s.usage.map(|(_, src)| UsageSource::label(src)),
        cost_usd: s.cost_micros.map(|m| m as f64 / 1e6),
        ttft_ms: s.ttft.map(|t| t.as_secs_f64() * 1000.0),
        tpot_ms: s.tpot.map(|t| t * 1000.0),
        overhead_ms: s.overhead.as_secs_f64() * 1000.0,
        payload: ctx.admission.capture.as_ref().map(|c| {
            let max = ctx
                .runtime
                .as_ref()
                .map_or(16 * 1024, |r| r.config.log.payload_max_bytes);
            c.render(ctx.is_sse(), max)
        }),
        duration_ms: s.elapsed.as_secs_f64() * 1000.0,
        outcome: s.outcome.label(),
        guardrails: &guardrails,
        stream_recovery: ctx.end.resumed.map(|r| r.label()),
    });
}

/// The GenAI semantic-convention histograms, for requests that reached an upstream.
fn record_genai(
    ctx: &RequestCtx,
    model: &str,
    elapsed: Duration,
    ttft: Option<Duration>,
    tpot: Option<f64>,
    usage: Option<Usage>,
) {
    let (Some(request), Some(target)) = (ctx.admission.request.as_ref(), ctx.target()) else {
        return;
    };
    if ctx.attempts.as_ref().is_none_or(|a| a.log().is_empty()) {
        return;
    }
    let labels = [
        request.operation.label(),
        target.provider.kind.label(),
        model,
    ];
    let g = &METRICS.genai;
    g.operation_duration
        .with_label_values(&labels)
        .observe(elapsed.as_secs_f64());
    if let Some(t) = ttft {
        g.time_to_first_token
            .with_label_values(&labels)
            .observe(t.as_secs_f64());
    }
    if let Some(t) = tpot {
        g.time_per_output_token
            .with_label_values(&labels)
            .observe(t);
    }
    if let Some(u) = usage {
        for (kind, n) in [("input", u.input), ("output", u.output)] {
            g.token_usage
                .with_label_values(&[labels[0], labels[1], labels[2], kind])
                .observe(n as f64);
        }
    }
}
