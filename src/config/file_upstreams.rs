//! The file's `[[providers]]` and `[[models]]` tables (with their targets, retries and
//! health settings), exactly as an operator writes them; the rest of the file's shapes are in
//! [`super::file`]. Validation happens in `providers.rs` and `models.rs`.

use super::limits::PriceTable;
use super::rules::RuleSection;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[[providers]]`: one backend service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    pub name: String,
    /// `"openai"` (any OpenAI-compatible API), `"anthropic"`, `"azure"` or `"mock"`.
    pub kind: String,
    /// Base URL including the API version prefix, e.g. `https://api.openai.com/v1`.
    /// Optional for `kind = "mock"`: without it the built-in mock serves the provider.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the backend credential, injected as `Authorization: Bearer`.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Longest wait for any single read from the upstream: the first byte and every stream
    /// chunk. The default of the two below.
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// Longest wait for the response header after the request is sent (per attempt; a
    /// timeout fails over).
    #[serde(default)]
    pub first_byte_timeout_ms: Option<u64>,
    /// Longest silence between two chunks of a streamed response (then the stream ends with
    /// an error event and is charged what was used).
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// Longest whole exchange with the upstream, streams included.
    #[serde(default)]
    pub total_timeout_ms: Option<u64>,
    /// Streams: longest wait from the request sent to the first content event (then the
    /// request fails over before anything reached the client).
    #[serde(default)]
    pub first_token_timeout_ms: Option<u64>,
    /// Extra headers sent to this provider on every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Client headers passed on to this provider beyond the ones every backend needs
    /// (a client header not named here is dropped); never a credential or hop-by-hop header.
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// Passive health: consecutive failures eject the provider for a back-off.
    #[serde(default)]
    pub outlier: OutlierSection,
    /// Active health check: a GET below `base_url` on an interval.
    #[serde(default)]
    pub health_check: Option<HealthCheckSection>,
    /// PEM file of the CA(s) that sign this provider's certificate (instead of the system's).
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// Server name sent and verified instead of the `base_url` host.
    #[serde(default)]
    pub tls_sni: Option<String>,
    /// Offer HTTP/2 (ALPN h2 over TLS; prior-knowledge h2c over plain HTTP).
    #[serde(default)]
    pub http2: bool,
    /// A pool of replicas behind the base URL's name (every address it resolves to): how one
    /// is picked per request, `"round_robin"`, `"least_request"` or `"prefix_affinity"` (the
    /// default of a pool). Without it or `replicas` the addresses take turns.
    #[serde(default)]
    pub strategy: Option<String>,
    /// More replicas of the pool beside the base URL's name: `host:port` or `http(s)://host:port`.
    #[serde(default)]
    pub replicas: Vec<String>,
    /// A pool: a client header naming the conversation, kept on one replica.
    #[serde(default)]
    pub session_header: Option<String>,
    /// A pool: prompt tokens each replica's KV cache holds (sizes the prefix index).
    #[serde(default)]
    pub kv_cache_tokens: Option<u64>,
    /// A pool: how long a replica that joined ramps up to its full share.
    #[serde(default)]
    pub slow_start_ms: Option<u64>,
    /// `kind = "anthropic"`: the `anthropic-version` header sent when the client sent none.
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// `kind = "azure"`: the `api-version` query parameter (required there).
    #[serde(default)]
    pub api_version: Option<String>,
    /// An OpenAI-compatible backend that continues a partial last assistant message when
    /// asked (vLLM's `continue_final_message`): stream recovery can `continue` on it.
    /// Anthropic backends always can.
    #[serde(default)]
    pub prefill: bool,
    /// `kind = "openai"` or `"mock"`: the backend serves OpenAI's Responses API itself, so
    /// `/v1/responses` is passed through instead of translated to Chat Completions.
    #[serde(default)]
    pub responses: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSection {
    /// Below the base URL's path, e.g. "/models" for `.../v1/models`.
    #[serde(default = "default_health_path")]
    pub path: String,
    #[serde(default = "default_health_interval_ms")]
    pub interval_ms: u64,
    #[serde(default = "default_health_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_health_status")]
    pub expected_status: u16,
}

fn default_health_path() -> String {
    "/models".into()
}
fn default_health_interval_ms() -> u64 {
    10_000
}
fn default_health_timeout_ms() -> u64 {
    2_000
}
fn default_health_status() -> u16 {
    200
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierSection {
    pub consecutive_failures: u32,
    pub base_ejection_ms: u64,
    pub max_ejection_ms: u64,
}

impl Default for OutlierSection {
    fn default() -> Self {
        OutlierSection {
            consecutive_failures: 5,
            base_ejection_ms: 30_000,
            max_ejection_ms: 300_000,
        }
    }
}

fn default_connect_timeout_ms() -> u64 {
    2000
}
fn default_read_timeout_ms() -> u64 {
    60_000
}

/// `[[models]]`: one virtual model name and where it goes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub name: String,
    /// `"weighted"` (proportional) or `"priority"` (primary, then backups in order).
    #[serde(default = "default_strategy")]
    pub strategy: String,
    pub targets: Vec<TargetSection>,
    #[serde(default)]
    pub fallbacks: Vec<TargetSection>,
    /// Upper bound on upstream attempts for one request (first try included).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: usize,
    /// Upstream statuses that send the request to the next candidate (before any byte reached the client).
    #[serde(default = "default_retry_on_status")]
    pub retry_on_status: Vec<u16>,
    /// USD per million tokens; prices budgets and the cost metric.
    #[serde(default)]
    pub price: Option<PriceTable>,
    /// Put request and response bodies (redacted, capped) in the access log.
    #[serde(default)]
    pub log_payloads: bool,
    /// Evaluated in order; the first match chooses its own targets.
    #[serde(default)]
    pub rules: Vec<RuleSection>,
    /// Failovers allowed: `percent` of the last 10 s of requests plus `min_per_second`.
    #[serde(default)]
    pub retry_budget: RetryBudgetSection,
    /// At most this share of a plan's candidates is moved back for being ejected.
    #[serde(default = "default_max_ejection_percent")]
    pub max_ejection_percent: u32,
    /// Same-target retries before failing over (off unless `attempts` > 0).
    #[serde(default)]
    pub retries: RetriesSection,
    /// A committed stream that is cut or stalls: `"off"`, `"continue"` (the next candidate
    /// continues the text already sent, by prefill) or `"restart"` (it regenerates, and the
    /// already-sent prefix is skipped when it matches exactly).
    #[serde(default = "default_stream_recovery")]
    pub stream_recovery: String,
}

fn default_stream_recovery() -> String {
    "off".into()
}

/// `retries = { attempts = 2, backoff_ms = 250, max_backoff_ms = 2000, max_retry_after_ms = 10000,
/// on = [429, 500, 502, 503, 504, "connect", "reset"] }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetriesSection {
    /// Retries on the same target after the first try (0: none).
    pub attempts: u32,
    /// The first back-off; it doubles per retry, with jitter, up to `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// A `Retry-After` / `retry-after-ms` up to this is waited for; a longer one fails over.
    pub max_retry_after_ms: u64,
    /// Statuses, and `"connect"`, `"reset"`, `"timeout"` failures, that are retried.
    pub on: Vec<RetryOn>,
}

impl Default for RetriesSection {
    fn default() -> Self {
        RetriesSection {
            attempts: 0,
            backoff_ms: 250,
            max_backoff_ms: 2_000,
            max_retry_after_ms: 10_000,
            on: [429, 500, 502, 503, 504]
                .into_iter()
                .map(RetryOn::Status)
                .chain(["connect", "reset"].map(|k| RetryOn::Failure(k.to_string())))
                .collect(),
        }
    }
}

/// One entry of `retries.on`: a status or a failure kind.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RetryOn {
    Status(u16),
    Failure(String),
}

fn default_max_ejection_percent() -> u32 {
    50
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudgetSection {
    pub percent: f64,
    pub min_per_second: f64,
}

impl Default for RetryBudgetSection {
    fn default() -> Self {
        // Envoy's default budget_percent; a floor so quiet models can still fail over.
        RetryBudgetSection {
            percent: 20.0,
            min_per_second: 3.0,
        }
    }
}

fn default_strategy() -> String {
    "weighted".into()
}
fn default_max_attempts() -> usize {
    3
}
fn default_retry_on_status() -> Vec<u16> {
    vec![429, 500, 502, 503, 504]
}

/// One entry of `targets` or `fallbacks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    pub provider: String,
    /// The model name the provider knows; the request's `model` is rewritten to it.
    pub model: String,
    #[serde(default = "default_weight")]
    pub weight: i64,
    /// The model's context window: requests whose estimated prompt + `max_tokens` exceed it
    /// skip this target.
    #[serde(default)]
    pub context_window: Option<i64>,
    /// This target's own price (else the model's): cost accounting and `least_cost` use it.
    #[serde(default)]
    pub price: Option<PriceTable>,
}

fn default_weight() -> i64 {
    1
}
