//! The TOML file's shapes, exactly as an operator writes them.
//!
//! Every table denies unknown fields so a typo is an error, not a silently ignored setting.
//! Defaults live here, next to the field they belong to; `conf/tollgate.toml` documents each one.
//! The `[[providers]]` and `[[models]]` tables are in [`super::file_upstreams`]. Validation and
//! conversion into runtime types happen in [`super::load`].

pub use super::file_upstreams::{
    ModelSection, ProviderSection, RetriesSection, RetryOn, TargetSection,
};
pub use super::limits::{LimitTable, LimitsSection, RedisSection, ScopeLimits};
pub use super::rules::RuleSection;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub providers: Vec<ProviderSection>,
    #[serde(default)]
    pub models: Vec<ModelSection>,
    #[serde(default)]
    pub consumers: Vec<ConsumerSection>,
    /// Groups of consumers sharing limits and budgets (a consumer's `tenant`).
    #[serde(default)]
    pub tenants: Vec<TenantSection>,
    #[serde(default)]
    pub limits: LimitsSection,
    /// Optional: without it, limits are per instance.
    #[serde(default)]
    pub redis: Option<RedisSection>,
    #[serde(default)]
    pub admin: AdminSection,
    /// Usage history kept in memory.
    #[serde(default)]
    pub usage: super::usage::UsageSection,
    #[serde(default)]
    pub access: AccessSection,
    #[serde(default)]
    pub keys: KeysSection,
    #[serde(default)]
    pub edge: super::edge::EdgeSection,
    /// Content policies (`[[guardrails]]`).
    #[serde(default)]
    pub guardrails: Vec<super::guardrails::GuardrailSection>,
    /// The MCP bridge.
    #[serde(default)]
    pub mcp: super::mcp::McpSection,
    /// The API under path prefixes (`[[routes]]`).
    #[serde(default)]
    pub routes: Vec<super::routes::RouteSection>,
    /// OpenTelemetry traces (`[tracing]`).
    #[serde(default)]
    pub tracing: Option<super::tracing::TracingSection>,
}

/// `[[tenants]]`: limits and budgets every consumer with `tenant = <name>` shares.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    pub name: String,
    pub limits: ScopeLimits,
}

/// `[keys]`: where keys created through the admin API are kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSection {
    /// The key table, written atomically on every change and loaded at start.
    pub state_file: Option<String>,
}

/// `[access]`: client address rules for the API listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessSection {
    /// CIDRs that may call (empty: any).
    pub allow: Vec<String>,
    /// CIDRs that may not (checked first).
    pub deny: Vec<String>,
    /// Peers whose `X-Forwarded-For` names the client (the rightmost untrusted entry).
    pub trusted_proxies: Vec<String>,
    /// Connections from `trusted_proxies` start with a PROXY protocol v1/v2 header naming the
    /// client (HAProxy, AWS NLB, ...).
    pub proxy_protocol: bool,
}

/// `[admin]`: who may use the admin API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Environment variable holding the admin token(s), separated by commas or white space
    /// (several during a rotation). With it, `/admin/*` needs `Authorization: Bearer <token>`.
    pub token_env: Option<String>,
    /// `/metrics` needs the token too.
    pub metrics_require_token: bool,
}

/// `[server]`: listeners and process-wide settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// API listener (OpenAI/Anthropic-compatible endpoints) in plain HTTP; `"off"` with
    /// `tls_listen` serves HTTPS only.
    pub listen: String,
    /// HTTPS listener (TLS 1.2+, ALPN h2 and http/1.1), beside or instead of `listen`.
    pub tls_listen: Option<String>,
    /// PEM certificate chain (leaf first) and private key of `tls_listen`; re-read on reload.
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    /// Admin listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: String,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Largest request body accepted; larger ones get 413 before they are buffered.
    pub max_body_bytes: usize,
    /// Pingora's pid file (used by `-d` and graceful upgrade).
    pub pid_file: String,
    /// Pingora's upgrade socket (the listener hand-over during `-u`).
    pub upgrade_sock: String,
    /// Seconds a draining process keeps serving requests in flight.
    pub grace_period_seconds: u64,
    /// Seconds after which a draining process exits regardless.
    pub graceful_shutdown_timeout_seconds: u64,
    /// How often providers' host names are resolved again (in the background).
    pub resolve_interval_ms: u64,
    /// A hosts file (`/etc/hosts` format) consulted before the system resolver, re-read at
    /// every resolution: static inference endpoints without touching the system's files.
    pub hosts_file: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            threads: 2,
            max_body_bytes: 32 * 1024 * 1024,
            pid_file: "/tmp/tollgate.pid".into(),
            upgrade_sock: "/tmp/tollgate-upgrade.sock".into(),
            grace_period_seconds: 30,
            graceful_shutdown_timeout_seconds: 60,
            resolve_interval_ms: 30_000,
            hosts_file: None,
            tls_listen: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// `[log]`: the access log and the process log level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `"stdout"`, `"off"`, or a file path. One JSON line per request.
    pub access_log: String,
    /// Process log level when `RUST_LOG` is not set: error, warn, info, debug, trace.
    pub level: String,
    /// With `log_payloads` on a consumer or model: bytes kept of each request and response body.
    pub payload_max_bytes: usize,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            access_log: "stdout".into(),
            level: "info".into(),
            payload_max_bytes: 16 * 1024,
        }
    }
}

/// `[[consumers]]`: an application and its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSection {
    pub name: String,
    /// `sha256:<64 hex>` digests of the client keys (`tollgate --new-key` prints one).
    pub keys: Vec<String>,
    /// Virtual model names this consumer may use, or `["*"]`.
    #[serde(default = "default_models")]
    pub models: Vec<String>,
    /// Rates and budgets; without it, `[limits.default]` applies.
    #[serde(default)]
    pub limits: Option<LimitTable>,
    /// Tags for usage analytics (`GET /admin/usage?group_by=project`).
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    /// Put request and response bodies (redacted, capped) in the access log.
    #[serde(default)]
    pub log_payloads: bool,
    /// Client addresses this consumer's keys work from (empty: any), and never from.
    #[serde(default)]
    pub allow_ips: Vec<String>,
    #[serde(default)]
    pub deny_ips: Vec<String>,
    /// MCP tools it may see and call: `*`, `server/*`, `server/tool`.
    #[serde(default = "default_models")]
    pub mcp_tools: Vec<String>,
    /// `[[routes]]` names this consumer is limited to (empty: the root API and any route
    /// that admits it).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Client networks whose requests carrying no key are this consumer (clients that cannot
    /// send a header, on a network the operator trusts). Empty: a key is always needed.
    #[serde(default)]
    pub keyless_from: Vec<String>,
}

fn default_models() -> Vec<String> {
    vec!["*".into()]
}
