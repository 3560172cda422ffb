//! Every Prometheus metric, in one registry, with bounded labels only.
//!
//! Labels carry config names (virtual model, provider, consumer) or fixed vocabularies
//! (status, outcome, token type); a client-supplied model name that is not configured is
//! recorded as `unknown`, and no key, user or prompt ever becomes a label.

use once_cell::sync::Lazy;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub tokens: IntCounterVec,
    pub upstream_attempts: IntCounterVec,
    pub request_duration: HistogramVec,
    pub ttft: HistogramVec,
    pub inflight: IntGauge,
    pub cost_usd: prometheus::CounterVec,
    pub ratelimit_rejections: IntCounterVec,
    pub ratelimit_degraded_decisions: IntCounter,
    pub ratelimit_store_up: IntGaugeVec,
    pub ratelimit_store_errors: IntCounter,
    pub ratelimit_syncs: IntCounter,
    pub config_reloads: IntCounterVec,
}

const LATENCY_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0,
];
const TTFT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "tollgate_requests_total",
            "Requests answered, by virtual model, provider and status.",
        ),
        &["model", "provider", "status"],
    )?;
    let tokens = IntCounterVec::new(
        Opts::new(
            "tollgate_tokens_total",
            "Tokens used, by consumer, virtual model and type (input|output).",
        ),
        &["consumer", "model", "type"],
    )?;
    let upstream_attempts = IntCounterVec::new(
        Opts::new(
            "tollgate_upstream_attempts_total",
            "Upstream attempts by provider and outcome.",
        ),
        &["provider", "outcome"],
    )?;
    let request_duration = HistogramVec::new(
        HistogramOpts::new(
            "tollgate_request_duration_seconds",
            "Time from request start to the last byte sent.",
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
        &["model"],
    )?;
    let ttft = HistogramVec::new(
        HistogramOpts::new(
            "tollgate_time_to_first_token_seconds",
            "Time from request start to the first streamed token.",
        )
        .buckets(TTFT_BUCKETS.to_vec()),
        &["model"],
    )?;
    let inflight = IntGauge::new("tollgate_inflight_requests", "Requests being served now.")?;
    let cost_usd = prometheus::CounterVec::new(
        Opts::new(
            "tollgate_cost_usd_total",
            "Spend in USD from the models' price tables, by consumer and virtual model.",
        ),
        &["consumer", "model"],
    )?;
    let ratelimit_rejections = IntCounterVec::new(
        Opts::new(
            "tollgate_ratelimit_rejections_total",
            "Requests refused by a limit (requests, tokens, concurrency, a budget, store_unavailable).",
        ),
        &["limit"],
    )?;
    let ratelimit_degraded_decisions = IntCounter::new(
        "tollgate_ratelimit_store_degraded_decisions_total",
        "Limit decisions made while the shared store was unreachable.",
    )?;
    let ratelimit_store_up = IntGaugeVec::new(
        Opts::new(
            "tollgate_ratelimit_store_up",
            "1 while the last sync with the shared limit store succeeded.",
        ),
        &["store"],
    )?;
    let ratelimit_store_errors = IntCounter::new(
        "tollgate_ratelimit_store_errors_total",
        "Failed syncs with the shared limit store.",
    )?;
    let ratelimit_syncs = IntCounter::new(
        "tollgate_ratelimit_syncs_total",
        "Successful syncs with the shared limit store.",
    )?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(tokens.clone()))?;
    registry.register(Box::new(upstream_attempts.clone()))?;
    registry.register(Box::new(request_duration.clone()))?;
    registry.register(Box::new(ttft.clone()))?;
    let config_reloads = IntCounterVec::new(
        Opts::new(
            "tollgate_config_reloads_total",
            "Config reloads (SIGHUP or POST /admin/reload) by result (ok, error).",
        ),
        &["result"],
    )?;
    registry.register(Box::new(config_reloads.clone()))?;
    registry.register(Box::new(inflight.clone()))?;
    registry.register(Box::new(cost_usd.clone()))?;
    registry.register(Box::new(ratelimit_rejections.clone()))?;
    registry.register(Box::new(ratelimit_degraded_decisions.clone()))?;
    registry.register(Box::new(ratelimit_store_up.clone()))?;
    registry.register(Box::new(ratelimit_store_errors.clone()))?;
    registry.register(Box::new(ratelimit_syncs.clone()))?;
    Ok(Metrics {
        registry,
        requests,
        tokens,
        upstream_attempts,
        request_duration,
        ttft,
        inflight,
        cost_usd,
        ratelimit_rejections,
        ratelimit_degraded_decisions,
        ratelimit_store_up,
        ratelimit_store_errors,
        ratelimit_syncs,
        config_reloads,
    })
}

/// The process's metrics. Global so that they survive config reloads.
pub static METRICS: Lazy<Metrics> = Lazy::new(|| {
    build().unwrap_or_else(|e| panic!("metric definitions are static and valid: {e}"))
});

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("metrics encoding failed: {e}");
        }
        out
    }
}

/// Counts a request as in flight for as long as it lives; released on every exit path.
pub struct InflightGuard(());

impl InflightGuard {
    pub fn acquire() -> InflightGuard {
        METRICS.inflight.inc();
        InflightGuard(())
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        METRICS.inflight.dec();
    }
}
