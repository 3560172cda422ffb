//! Every Prometheus metric, in one registry, with bounded labels only.
//!
//! Labels carry config names (virtual model, provider, consumer) or fixed vocabularies
//! (status, outcome, token type); a client-supplied model name that is not configured is
//! recorded as `unknown`, and no key, user or prompt ever becomes a label. The OpenTelemetry
//! GenAI semantic-convention histograms live in [`genai`].

mod genai;

use once_cell::sync::Lazy;
use prometheus::core::Collector;
use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub tokens: IntCounterVec,
    pub upstream_attempts: IntCounterVec,
    pub failovers: IntCounterVec,
    pub route_decisions: IntCounterVec,
    pub retry_budget_exhausted: IntCounterVec,
    pub stream_recoveries: IntCounterVec,
    pub request_duration: HistogramVec,
    pub overhead: HistogramVec,
    pub ttft: HistogramVec,
    pub inflight: IntGauge,
    pub inflight_streams: IntGauge,
    pub upstream_healthy: IntGaugeVec,
    pub upstream_addresses: IntGaugeVec,
    pub dns_resolutions: IntCounterVec,
    pub endpoint_picks: IntCounterVec,
    pub endpoint_in_flight: IntGaugeVec,
    pub endpoint_ejections: IntCounterVec,
    pub endpoint_prefix_tokens: IntCounterVec,
    pub cost_usd: CounterVec,
    pub ratelimit_rejections: IntCounterVec,
    pub ratelimit_degraded_decisions: IntCounter,
    pub ratelimit_store_up: IntGaugeVec,
    pub store_topology: IntGaugeVec,
    pub store_primary: IntGaugeVec,
    pub store_primary_switches: IntCounter,
    pub usage_overflow: IntCounterVec,
    pub usage_rows: IntGaugeVec,
    pub ratelimit_store_errors: IntCounter,
    pub proxy_protocol_errors: IntCounter,
    pub edge_rejections: IntCounterVec,
    pub shed: IntCounterVec,
    pub client_connections: IntGauge,
    pub ratelimit_syncs: IntCounter,
    pub key_table_refreshes: IntCounter,
    pub config_reloads: IntCounterVec,
    pub access_log_reopens: IntCounterVec,
    pub memory_trims: IntCounter,
    pub guardrail_actions: IntCounterVec,
    pub mcp_calls: IntCounterVec,
    pub mcp_call_duration: HistogramVec,
    pub trace_spans_exported: IntCounter,
    pub trace_spans_dropped: IntCounterVec,
    pub genai: genai::GenAi,
}

const LATENCY_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0,
];
const TTFT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// The gateway's own time: sub-millisecond to a few hundred milliseconds.
const OVERHEAD_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Register `metric` and hand it back.
pub(crate) fn reg<T: Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> Result<T, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    reg(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    reg(r, HistogramVec::new(opts, labels)?)
}

fn build() -> Result<Metrics, prometheus::Error> {
    let r = Registry::new();
    Ok(Metrics {
        requests: counter_vec(&r, "tollgate_requests_total",
            "Requests answered, by virtual model, provider, status and outcome.",
            &["model", "provider", "status", "outcome"])?,
        tokens: counter_vec(&r, "tollgate_tokens_total",
            "Tokens used, by consumer, virtual model and type (input|output).",
            &["consumer", "model", "type"])?,
        upstream_attempts: counter_vec(&r, "tollgate_upstream_attempts_total",
            "Upstream attempts by provider and outcome.", &["provider", "outcome"])?,
        failovers: counter_vec(&r, "tollgate_upstream_failovers_total",
            "Moves to the next candidate, by the reason the attempt failed.", &["reason"])?,
        route_decisions: counter_vec(&r, "tollgate_route_decisions_total",
            "Routing decisions by virtual model and the rule that matched (`default`: none).",
            &["model", "rule"])?,
        retry_budget_exhausted: counter_vec(&r, "tollgate_retry_budget_exhausted_total",
            "Failovers refused because the model's retry budget was spent.", &["model"])?,
        stream_recoveries: counter_vec(&r, "tollgate_stream_recoveries_total",
            "Broken streams of models with stream_recovery, by mode and result (resumed, failed, not_resumable).",
            &["mode", "result"])?,
        request_duration: histogram_vec(&r, "tollgate_request_duration_seconds",
            "Time from request start to the last byte sent.", &LATENCY_BUCKETS, &["model"])?,
        overhead: histogram_vec(&r, "tollgate_overhead_seconds",
            "Time a request spent in the gateway itself: its duration minus the time waiting on \
             upstreams (connect, first byte, body).", &OVERHEAD_BUCKETS, &["model"])?,
        ttft: histogram_vec(&r, "tollgate_time_to_first_token_seconds",
            "Time from request start to the first streamed token.", &TTFT_BUCKETS, &["model"])?,
        inflight: reg(&r, IntGauge::new("tollgate_inflight_requests", "Requests being served now.")?)?,
        inflight_streams: reg(&r, IntGauge::new("tollgate_inflight_streams",
            "Event streams being relayed now.")?)?,
        upstream_healthy: reg(&r, IntGaugeVec::new(Opts::new("tollgate_upstream_healthy",
            "1 while a provider (model=\"\") or one of its configured deployments (model=<upstream model>) is in rotation, 0 while passive health has it ejected."),
            &["provider", "model"])?)?,
        upstream_addresses: reg(&r, IntGaugeVec::new(Opts::new("tollgate_upstream_addresses",
            "Addresses a provider's host resolved to last; they share its traffic."),
            &["provider"])?)?,
        dns_resolutions: counter_vec(&r, "tollgate_dns_resolutions_total",
            "Background resolutions of providers' hosts, by result (ok, error: the last \
             good addresses stay in use).", &["provider", "result"])?,
        endpoint_picks: counter_vec(&r, "tollgate_endpoint_picks_total",
            "Requests a pooled provider's replica (endpoint=address) was picked for.",
            &["provider", "endpoint"])?,
        endpoint_in_flight: reg(&r, IntGaugeVec::new(Opts::new("tollgate_endpoint_in_flight",
            "Attempts on a pooled provider's replica now."), &["provider", "endpoint"])?)?,
        endpoint_ejections: counter_vec(&r, "tollgate_endpoint_ejections_total",
            "Times a pooled provider's replica could not be reached and sat out picks.",
            &["provider", "endpoint"])?,
        endpoint_prefix_tokens: counter_vec(&r, "tollgate_endpoint_prefix_tokens_total",
            "Prompt tokens sent to pooled providers (kind=prompt) and the part the picked \
             replica was expected to hold already (kind=matched): their ratio is the \
             expected prefix-cache hit rate.", &["provider", "kind"])?,
        cost_usd: reg(&r, CounterVec::new(Opts::new("tollgate_cost_usd_total",
            "Spend in USD from the models' price tables, by consumer and virtual model."),
            &["consumer", "model"])?)?,
        ratelimit_rejections: counter_vec(&r, "tollgate_ratelimit_rejections_total",
            "Requests refused by a limit (requests, tokens, concurrency, a budget, store_unavailable).",
            &["limit"])?,
        ratelimit_degraded_decisions: reg(&r, IntCounter::new(
            "tollgate_ratelimit_store_degraded_decisions_total",
            "Limit decisions made while the shared store was unreachable.")?)?,
        ratelimit_store_up: reg(&r, IntGaugeVec::new(Opts::new("tollgate_ratelimit_store_up",
            "1 while the last sync with the shared limit store succeeded."), &["store"])?)?,
        store_topology: reg(&r, IntGaugeVec::new(Opts::new("tollgate_store_topology",
            "1 for how the shared Redis is reached: single or sentinel."), &["topology"])?)?,
        store_primary: reg(&r, IntGaugeVec::new(Opts::new("tollgate_store_primary",
            "1 for the Redis primary connections go to now (by address)."), &["address"])?)?,
        store_primary_switches: reg(&r, IntCounter::new("tollgate_store_primary_switches_total",
            "Times the Redis primary changed (a Sentinel failover followed).")?)?,
        usage_overflow: counter_vec(&r, "tollgate_usage_overflow_total",
            "Usage records added to a bucket's (other) row because the bucket was full, by tier.",
            &["tier"])?,
        usage_rows: reg(&r, IntGaugeVec::new(Opts::new("tollgate_usage_rows",
            "Usage rows held in memory, by tier (bounded by [usage] *_rows × buckets kept)."), &["tier"])?)?,
        edge_rejections: counter_vec(&r, "tollgate_edge_rejections_total",
            "Requests refused at the edge before any HTTP processing, by reason.", &["reason"])?,
        shed: counter_vec(&r, "tollgate_shed_total",
            "Requests shed with 503 overloaded, by the cap that was full.", &["reason"])?,
        client_connections: reg(&r, IntGauge::new("tollgate_client_connections",
            "Client connections open on the API listeners.")?)?,
        proxy_protocol_errors: reg(&r, IntCounter::new("tollgate_proxy_protocol_errors_total",
            "Connections from trusted proxies dropped for a missing or bad PROXY header.")?)?,
        ratelimit_store_errors: reg(&r, IntCounter::new("tollgate_ratelimit_store_errors_total",
            "Failed syncs with the shared limit store.")?)?,
        ratelimit_syncs: reg(&r, IntCounter::new("tollgate_ratelimit_syncs_total",
            "Successful syncs with the shared limit store.")?)?,
        key_table_refreshes: reg(&r, IntCounter::new("tollgate_key_table_refreshes_total",
            "Times the API key table took changes from Redis.")?)?,
        config_reloads: counter_vec(&r, "tollgate_config_reloads_total",
            "Config reloads (SIGHUP or POST /admin/reload) by result (ok, error).", &["result"])?,
        access_log_reopens: counter_vec(&r, "tollgate_access_log_reopens_total",
            "Access-log file reopens on SIGUSR1, by result (ok, error).", &["result"])?,
        memory_trims: reg(&r, IntCounter::new("tollgate_memory_trims_total",
            "Times free memory was returned to the system after a burst of requests ended.")?)?,
        guardrail_actions: counter_vec(&r, "tollgate_guardrail_actions_total",
            "Guardrail findings acted on, by policy, rule, action (block, mask, log) and direction.",
            &["policy", "rule", "action", "direction"])?,
        mcp_calls: counter_vec(&r, "tollgate_mcp_calls_total",
            "MCP tool calls by server, tool and outcome (ok, tool_error, unreachable, invalid_arguments, rate_limited).",
            &["server", "tool", "outcome"])?,
        mcp_call_duration: histogram_vec(&r, "tollgate_mcp_call_duration_seconds",
            "MCP tool calls' duration, gateway and API together, by server and tool.",
            &LATENCY_BUCKETS, &["server", "tool"])?,
        trace_spans_exported: reg(&r, IntCounter::new("tollgate_trace_spans_exported_total",
            "Spans the collector accepted.")?)?,
        trace_spans_dropped: counter_vec(&r, "tollgate_trace_spans_dropped_total",
            "Spans dropped, by reason: queue_full (the exporter fell behind) or export_failed (the collector did not take them).",
            &["reason"])?,
        genai: genai::GenAi::register(&r)?,
        registry: r,
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

/// Holds a gauge up by one for as long as it lives: released on every exit path.
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    pub fn acquire(gauge: &IntGauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl std::fmt::Debug for GaugeGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GaugeGuard")
    }
}
