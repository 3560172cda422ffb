//! The last stage: settle the request's usage (and its limit reservation), then record
//! metrics and its access-log line.
//!
//! Called from Pingora's `logging` phase, which runs once for every request on every path
//! (success, gateway error, upstream failure, client disconnect), so each request is counted
//! exactly once.

use crate::access_log::{now_rfc3339, AccessLog, AccessRecord};
use crate::attempt::{Attempts, ExchangeOutcome};
use crate::ctx::RequestCtx;
use crate::meter::Usage;
use crate::meter::UsageSource;
use crate::metrics::METRICS;
use crate::usage::{Counts, Key, UsageStore};
use std::time::Duration;

/// How a finished request ended.
fn outcome(ctx: &RequestCtx, status: u16) -> ExchangeOutcome {
    if let Some(e) = &ctx.end.error {
        return ExchangeOutcome::Refused(e.outcome());
    }
    if let Some(cut) = ctx.end.upstream_cut {
        return ExchangeOutcome::UpstreamCut(cut);
    }
    if ctx.end.client_gone {
        return ExchangeOutcome::ClientDisconnect;
    }
    match status {
        0 => ExchangeOutcome::ClientDisconnect,
        s if s >= 400 => ExchangeOutcome::UpstreamStatus,
        _ => ExchangeOutcome::Success,
    }
}

pub fn record(
    ctx: &mut RequestCtx,
    log: &AccessLog,
    usage_store: &UsageStore,
    method: &str,
    path: &str,
    status: u16,
) {
    ctx.upstream.stop_wait();
    let plan = ctx.attempts.as_ref().map(Attempts::plan);
    if let (Some(plan), Some(t), Some(c)) = (plan, ctx.target(), ctx.response.as_ref()) {
        // least_latency learns from answered requests: TTFT, or the whole answer.
        let learns = plan.model.strategy == crate::config::Strategy::LeastLatency;
        if learns && c.status < 400 && ctx.end.upstream_cut.is_none() {
            let seconds = c
                .first_token_at
                .unwrap_or(ctx.started.elapsed())
                .as_secs_f64();
            crate::feedback::latency::LATENCY.record(&t.provider.name, &t.model, seconds);
        }
    }
    let usage = ctx.final_usage();
    let plan = ctx.attempts.as_ref().map(Attempts::plan);
    let price = plan.and_then(|p| p.model.price);
    let cost_micros = match (usage, price) {
        (Some((u, _)), Some(p)) => Some(p.micros(u.input, u.output)),
        _ => None,
    };
    if let Some(reservation) = ctx.admission.reservation.take() {
        let tokens = usage.map_or(0, |(u, _)| u.input + u.output);
        reservation.settle(tokens, cost_micros.unwrap_or(0));
    }
    let elapsed = ctx.started.elapsed();
    let outcome = outcome(ctx, status);
    let consumer = ctx.admission.consumer.as_ref().map(|c| c.name.as_str());
    let plan = ctx.attempts.as_ref().map(Attempts::plan);
    let model = plan.map(|p| p.model.name.as_str());
    let attempt_log = ctx.attempts.as_ref().map_or(&[][..], Attempts::log);
    let final_attempt = attempt_log.last();
    let provider = final_attempt.map(|a| a.provider.as_str());
    let ttft = ctx.response.as_ref().and_then(|c| c.first_token_at);

    let model_label = model.unwrap_or("unknown");
    let output_tokens = usage.map_or(0, |(u, _)| u.output);
    // TPOT = (duration − TTFT) / (output tokens − 1), for streams.
    let tpot = ttft
        .filter(|_| output_tokens > 1)
        .map(|t| elapsed.saturating_sub(t).as_secs_f64() / (output_tokens - 1) as f64);
    let overhead = elapsed.saturating_sub(ctx.upstream.waited);
    METRICS
        .requests
        .with_label_values(&[
            model_label,
            provider.unwrap_or("none"),
            &status.to_string(),
            outcome.label(),
        ])
        .inc();
    METRICS
        .request_duration
        .with_label_values(&[model_label])
        .observe(elapsed.as_secs_f64());
    METRICS
        .overhead
        .with_label_values(&[model_label])
        .observe(overhead.as_secs_f64());
    record_genai(ctx, model_label, elapsed, ttft, tpot, usage.map(|(u, _)| u));
    if let Some(t) = ttft {
        METRICS
            .ttft
            .with_label_values(&[model_label])
            .observe(t.as_secs_f64());
    }
    if let Some((u, _)) = usage {
        let consumer_label = consumer.unwrap_or("anonymous");
        METRICS
            .tokens
            .with_label_values(&[consumer_label, model_label, "input"])
            .inc_by(u.input);
        METRICS
            .tokens
            .with_label_values(&[consumer_label, model_label, "output"])
            .inc_by(u.output);
        if let Some(micros) = cost_micros {
            METRICS
                .cost_usd
                .with_label_values(&[consumer_label, model_label])
                .inc_by(micros as f64 / 1e6);
        }
    }

    if let Some(c) = &ctx.admission.consumer {
        usage_store.record(
            jiff::Timestamp::now().as_millisecond(),
            Key {
                consumer: c.name.clone(),
                project: c.project.clone().unwrap_or_default(),
                model: model_label.to_string(),
            },
            Counts {
                requests: 1,
                input_tokens: usage.map_or(0, |(u, _)| u.input),
                output_tokens,
                cost_micros: cost_micros.unwrap_or(0),
                errors: u64::from(!outcome.is_success()),
            },
        );
    }

    log.emit(&AccessRecord {
        ts: now_rfc3339(),
        request_id: &ctx.request_id,
        method,
        path,
        consumer,
        model,
        provider,
        upstream_model: final_attempt.map(|a| a.upstream_model.as_str()),
        client_dialect: ctx.dialect.label(),
        upstream_dialect: final_attempt
            .and_then(|_| ctx.target())
            .map(|t| t.provider.kind.dialect().label()),
        rule: plan.and_then(|p| p.rule.as_deref()),
        skipped_targets: plan.map_or(&[], |p| &p.skipped),
        status,
        stream: ctx.admission.request.as_ref().is_some_and(|r| r.stream),
        attempts: attempt_log.len(),
        attempt_log,
        input_tokens: usage.map_or(0, |(u, _)| u.input),
        output_tokens: usage.map_or(0, |(u, _)| u.output),
        usage_source: usage.map(|(_, s)| UsageSource::label(s)),
        cost_usd: cost_micros.map(|m| m as f64 / 1e6),
        ttft_ms: ttft.map(|t| t.as_secs_f64() * 1000.0),
        tpot_ms: tpot.map(|t| t * 1000.0),
        overhead_ms: overhead.as_secs_f64() * 1000.0,
        payload: ctx.admission.capture.as_ref().map(|c| {
            let max = ctx
                .runtime
                .as_ref()
                .map_or(16 * 1024, |r| r.config.log.payload_max_bytes);
            c.render(ctx.is_sse(), max)
        }),
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        outcome: outcome.label(),
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
