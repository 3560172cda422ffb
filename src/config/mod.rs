//! Configuration: read the TOML file, check all of it, and build the runtime [`Config`].
//!
//! [`load`] and [`parse`] report **every** problem, each with its dotted path
//! (`models[1].targets[0].weight must be > 0`), and never panic. The runtime types here are
//! what the rest of the gateway reads; the file shapes stay in [`file`].

mod access;
pub mod edge;
mod file;
mod file_upstreams;
mod guardrails;
pub mod limits;
pub mod mcp;
mod mcp_runtime;
mod models;
pub mod openapi;
pub use models::{Retries, StreamRecovery};
pub mod pools;
mod providers;
pub mod routes;
mod rules;
mod server;
pub mod tracing;
pub mod usage;

use crate::types::key_digest::KeyDigest;
pub use access::{build_nets, canonical_ip, AccessSettings, IpRules};
use file::FileConfig;
use http::{HeaderName, HeaderValue};
pub use limits::{
    ConsumerLimits, LimitSet, LimitSettings, OnStoreFailure, Price, RedisSettings, RedisTopology,
    ScopeLimits,
};
pub use providers::never_forwarded;
use providers::{build_provider, forward_headers, parse_base_url};
pub use rules::{Condition, Rule};
use server::{build_admin, build_log, build_server};
pub use server::{
    AccessLogTarget, AdminSettings, LogSettings, ServerCert, ServerSettings, TlsListener,
};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Every problem found in a config file, one per line.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub errors: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.errors.join("\n"))
    }
}

/// A credential that must never be printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The validated, runtime form of the file.
#[derive(Debug)]
pub struct Config {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub providers: Vec<Arc<Provider>>,
    /// Virtual models in file order (the order `/v1/models` lists them).
    pub models: Vec<Arc<Model>>,
    pub consumers: Vec<Arc<Consumer>>,
    /// Tenants with limits their consumers share.
    pub tenants: Vec<Tenant>,
    pub limits: LimitSettings,
    pub redis: Option<RedisSettings>,
    pub admin: AdminSettings,
    pub access: AccessSettings,
    pub edge: edge::EdgeSettings,
    /// The HTTPS listener's certificate (with `server.tls_listen`).
    pub server_cert: Option<Arc<ServerCert>>,
    /// Where API-created keys are kept (`[keys] state_file`).
    pub keys_state_file: Option<std::path::PathBuf>,
    /// `[[guardrails]]` policies.
    pub guardrails: crate::guard::Guardrails,
    /// The MCP bridge (`[mcp]`).
    pub mcp: mcp::McpSettings,
    /// `[[routes]]`: the API under path prefixes.
    pub routes: routes::Routes,
    /// `[tracing]`: OpenTelemetry traces, when configured.
    pub tracing: Option<tracing::TracingSettings>,
    /// `[usage]`: the usage history's bounds.
    pub usage: usage::UsageSettings,
}

impl Config {
    pub fn model(&self, name: &str) -> Option<&Arc<Model>> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Bind every provider's and deployment's health to the process's table.
    pub fn bind_health(&self, table: &crate::feedback::health::HealthTable) {
        for p in &self.providers {
            let first_verdict = p.health_check.as_ref().map(|hc| hc.interval + hc.timeout);
            p.health
                .bind(table.provider_checked(&p.name, first_verdict));
        }
        for m in &self.models {
            let targets = m
                .targets
                .iter()
                .chain(&m.fallbacks)
                .chain(m.rules.iter().flat_map(|r| &r.targets));
            for t in targets {
                t.health.bind(table.deployment(&t.provider.name, &t.model));
            }
        }
    }

    /// Every secret the config holds in the clear (provider keys, MCP servers' stored
    /// credentials): what is redacted from captured payloads and upstream error bodies.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        let providers = self
            .providers
            .iter()
            .filter_map(|p| p.api_key.as_ref().map(Secret::expose));
        let mcp = self.mcp.servers.iter().filter_map(|s| {
            s.credential.as_ref().map(|c| match c {
                mcp::Credential::Bearer(v)
                | mcp::Credential::Header(_, v)
                | mcp::Credential::Query(_, v) => v.expose(),
            })
        });
        providers.chain(mcp)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenAI-compatible API (OpenAI, vLLM, SGLang, MindIE, TGI...).
    OpenAi,
    /// The built-in simulator (or a `tollgate-mock` at `base_url`), speaking OpenAI's wire format.
    Mock,
    /// Anthropic's Messages API (`x-api-key`, `anthropic-version`).
    Anthropic,
    /// Azure OpenAI: deployment paths, `api-version`, `api-key`.
    Azure,
    /// Google's Gemini API: `models/{model}:generateContent`, `x-goog-api-key`.
    Gemini,
}

impl ProviderKind {
    /// The `gen_ai.provider.name`-style label.
    pub fn label(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Mock => "mock",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Azure => "azure.ai.openai",
            ProviderKind::Gemini => "gcp.gemini",
        }
    }

    /// The wire format the provider speaks.
    pub fn wire(self) -> crate::types::dialect::Wire {
        use crate::types::dialect::Wire;
        match self {
            ProviderKind::Anthropic => Wire::Anthropic,
            ProviderKind::Gemini => Wire::Gemini,
            ProviderKind::OpenAi | ProviderKind::Azure | ProviderKind::Mock => Wire::OpenAi,
        }
    }

    /// The header that carries the provider's key, and its value: the one place every
    /// gateway-made upstream request (proxied, moderation, health probe) takes it from.
    pub fn key_header(self, key: &Secret) -> (&'static str, String) {
        let key = key.expose();
        match self {
            ProviderKind::Anthropic => ("x-api-key", key.to_string()),
            ProviderKind::Azure => ("api-key", key.to_string()),
            ProviderKind::Gemini => ("x-goog-api-key", key.to_string()),
            ProviderKind::OpenAi | ProviderKind::Mock => ("authorization", format!("Bearer {key}")),
        }
    }
}

impl Provider {
    /// The wire format this provider is spoken to in for `operation`: its kind's, except that
    /// a Responses request stays one where the backend serves Responses itself.
    pub fn wire_for(
        &self,
        operation: crate::wire::protocol::Operation,
    ) -> crate::types::dialect::Wire {
        match (self.kind.wire(), operation) {
            (crate::types::dialect::Wire::OpenAi, crate::wire::protocol::Operation::Responses)
                if self.responses =>
            {
                crate::types::dialect::Wire::Responses
            }
            (wire, _) => wire,
        }
    }
}

/// Where a provider lives.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// The in-process mock server, bound when the server is built.
    BuiltinMock,
    Url {
        tls: bool,
        host: String,
        port: u16,
        /// Path prefix without a trailing slash, e.g. `/v1`.
        base_path: String,
    },
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub upstream: Upstream,
    pub api_key: Option<Secret>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Response header wait, per attempt.
    pub first_byte_timeout: Duration,
    /// Silence between stream chunks.
    pub idle_timeout: Duration,
    /// The whole upstream exchange.
    pub total_timeout: Option<Duration>,
    /// Streams: from the request sent to the first content event.
    pub first_token_timeout: Option<Duration>,
    /// Continues a partial last assistant message (Anthropic always; OpenAI-compatible when
    /// declared).
    pub prefill: bool,
    /// Serves `/v1/responses` itself (pass-through rather than translation).
    pub responses: bool,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Client headers this provider receives beyond the ones every backend needs.
    pub forward_headers: Vec<HeaderName>,
    pub outlier: crate::feedback::health::OutlierSettings,
    pub health_check: Option<HealthCheck>,
    pub tls: TlsSettings,
    /// `anthropic-version` sent to Anthropic backends (unless the client sent its own).
    pub anthropic_version: String,
    /// Azure's `api-version` query parameter.
    pub api_version: Option<String>,
    /// This provider's passive/active health (shared with earlier configs of the same name).
    pub health: crate::feedback::health::HealthSlot,
    /// Its pool of replicas (`strategy`, `replicas`); `None`: its addresses take turns.
    pub pool: Option<pools::PoolSpec>,
}

#[cfg(test)]
impl Provider {
    /// A built-in-mock provider with one-second timeouts and its own health, for unit tests.
    pub fn for_tests(name: &str) -> Provider {
        Provider {
            name: name.into(),
            kind: ProviderKind::OpenAi,
            upstream: Upstream::BuiltinMock,
            api_key: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            total_timeout: None,
            first_token_timeout: None,
            prefill: false,
            responses: false,
            headers: vec![],
            forward_headers: vec![],
            outlier: Default::default(),
            health_check: None,
            tls: Default::default(),
            anthropic_version: String::new(),
            pool: None,
            api_version: None,
            health: crate::feedback::health::HealthSlot::provider(name),
        }
    }
}

/// How a provider's connections are made beyond address and port.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// CA certificates that replace the system's for this provider.
    pub ca: Option<Arc<Box<[pingora::tls::x509::X509]>>>,
    /// Name sent as SNI and verified, instead of the URL's host.
    pub sni: Option<String>,
    pub http2: bool,
}

/// An active health check of a provider.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub expected_status: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Weighted,
    Priority,
    /// Lowest moving-average time to first token first, exploring by weight 10% of the time.
    LeastLatency,
    /// Lowest estimated cost of this request first (the target's price, else the model's;
    /// unpriced targets last), ties by weight.
    LeastCost,
}

/// A concrete (provider, upstream model) pair a virtual model can send to.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Arc<Provider>,
    pub model: String,
    /// This deployment's passive health (the provider's is `provider.health`).
    pub health: crate::feedback::health::HealthSlot,
    pub weight: u32,
    pub context_window: Option<u64>,
    /// Its own price, when it has one (else the model's applies).
    pub price: Option<Price>,
}

impl Target {
    /// A target for a gateway-made request to `provider` itself (a health check, a moderation
    /// call): no model, and a health of its own that nothing records.
    pub fn side(provider: &Arc<Provider>) -> Target {
        Target {
            provider: Arc::clone(provider),
            model: String::new(),
            health: crate::feedback::health::HealthSlot::deployment(&provider.name, ""),
            weight: 1,
            context_window: None,
            price: None,
        }
    }
}

#[derive(Debug)]
pub struct Model {
    pub name: String,
    pub strategy: Strategy,
    pub targets: Vec<Target>,
    pub fallbacks: Vec<Target>,
    pub max_attempts: usize,
    pub retry_on_status: Vec<u16>,
    pub price: Option<Price>,
    pub log_payloads: bool,
    pub rules: Vec<Rule>,
    /// Shared by every request of this model while this config is live.
    pub retry_budget: Arc<crate::feedback::budget::RetryBudget>,
    pub max_ejection_percent: u32,
    pub retries: Retries,
    pub stream_recovery: StreamRecovery,
}

/// A tenant's shared limits (`[[tenants]]`).
#[derive(Debug)]
pub struct Tenant {
    pub name: String,
    pub limits: LimitSet,
}

#[derive(Debug)]
pub struct Consumer {
    pub name: String,
    pub keys: Vec<KeyDigest>,
    /// `None` means every model.
    pub models: Option<HashSet<String>>,
    /// Its own limits, or the defaults; empty when unlimited.
    pub limits: ConsumerLimits,
    /// Usage-analytics tags.
    pub project: Option<String>,
    pub tenant: Option<String>,
    pub log_payloads: bool,
    /// Where its keys work from.
    pub ip_rules: IpRules,
    /// MCP tools it may see and call: `*`, `server/*`, `server/tool`.
    pub mcp_tools: Vec<String>,
    /// The routes it is limited to (`None`: the root API and every route admitting it).
    pub routes: Option<HashSet<String>>,
    /// Networks whose keyless requests are this consumer (`keyless_from`).
    pub keyless_from: Vec<ipnet::IpNet>,
}

impl Consumer {
    pub fn may_use(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.contains(model))
    }

    /// Whether it may see and call `tool` of MCP server `server`.
    pub fn may_use_tool(&self, server: &str, tool: &str) -> bool {
        tool_allowed(&self.mcp_tools, server, tool)
    }

    /// Whether `mcp_tools` grants all of MCP server `server` (`*` or `server/*`): then its
    /// prompts and resources are seen too.
    pub fn may_see_whole(&self, server: &str) -> bool {
        self.mcp_tools
            .iter()
            .any(|p| p == "*" || p.strip_suffix("/*") == Some(server))
    }
}

/// Whether `mcp_tools` patterns (`*`, `server/*`, `server/tool`) allow `server`'s `tool`.
pub fn tool_allowed(patterns: &[String], server: &str, tool: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p.split_once('/')
                .is_some_and(|(s, t)| s == server && (t == "*" || t == tool))
    })
}

/// Read and validate a config file.
pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        errors: vec![format!("cannot read {}: {e}", path.display())],
    })?;
    parse(&text)
}

/// Validate config text, reading provider keys from the process environment.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with_env(text, &|name| std::env::var(name).ok())
}

/// Validate config text with an explicit environment (tests use this).
pub fn parse_with_env(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let file = deserialize(text).map_err(|e| ConfigError { errors: vec![e] })?;
    let mut errs = Vec::new();
    let config = build(file, env, &mut errs);
    if errs.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { errors: errs })
    }
}

fn deserialize(text: &str) -> Result<FileConfig, String> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| describe_toml_error(text, &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.message().trim_end().to_string();
        let line = inner
            .span()
            .map(|s| format!(" (line {})", line_of(text, s.start)))
            .unwrap_or_default();
        if path == "." || path.is_empty() {
            format!("{msg}{line}")
        } else {
            format!("{path}: {msg}{line}")
        }
    })
}

fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let line = e
        .span()
        .map(|s| format!(" at line {}", line_of(text, s.start)))
        .unwrap_or_default();
    format!("TOML syntax error{line}: {}", e.message().trim_end())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn build(file: FileConfig, env: &dyn Fn(&str) -> Option<String>, errs: &mut Vec<String>) -> Config {
    let admin = build_admin(&file.admin, &file.server.admin_listen, env, errs);
    let access = access::build_access(&file.access, errs);
    let edge = edge::build_edge(&file.edge, errs);
    let server = build_server(file.server, errs);
    let server_cert = server
        .tls
        .as_ref()
        .and_then(|t| server::load_server_cert(t, errs))
        .map(Arc::new);
    let log = build_log(file.log, errs);
    let limit_settings = limits::build_settings(&file.limits, errs);
    let redis = file
        .redis
        .as_ref()
        .map(|r| limits::build_redis(r, env, errs));

    let mut providers: Vec<Arc<Provider>> = Vec::new();
    let mut seen = HashSet::new();
    for (i, p) in file.providers.into_iter().enumerate() {
        let at = format!("providers[{i}]");
        if !seen.insert(p.name.clone()) {
            errs.push(format!("{at}.name `{}` is defined twice", p.name));
        }
        providers.push(Arc::new(build_provider(&at, p, env, errs)));
    }
    let by_name: HashMap<&str, &Arc<Provider>> =
        providers.iter().map(|p| (p.name.as_str(), p)).collect();

    let (models, model_names) = models::build_models(file.models, &by_name, errs);
    let tenants = build_tenants(&file.tenants, errs);
    if !tenants.is_empty() {
        for (i, c) in file.consumers.iter().enumerate() {
            if let Some(t) = c
                .tenant
                .as_deref()
                .filter(|t| !tenants.iter().any(|x| x.name == *t))
            {
                errs.push(format!(
                    "consumers[{i}].tenant `{t}` is not one of [[tenants]] (a typo would leave it unlimited)"
                ));
            }
        }
    }
    let consumers = models::build_consumers(file.consumers, &file.limits, &model_names, errs);
    let provider_names: HashSet<&str> = by_name.keys().copied().collect();
    let guardrails = guardrails::build(&file.guardrails, &provider_names, errs);
    let mcp = mcp::build(&file.mcp, server.max_body_bytes, env, errs);
    for (i, c) in consumers.iter().enumerate() {
        mcp::check_tool_patterns(&format!("consumers[{i}]"), &c.mcp_tools, &mcp, errs);
    }
    let routes = routes::build_routes(file.routes, &model_names, &consumers, errs);
    let tracing = file.tracing.as_ref().and_then(|t| tracing::build(t, errs));
    let usage = usage::build(&file.usage, errs);

    Config {
        server,
        log,
        providers,
        models,
        consumers,
        tenants,
        limits: limit_settings,
        redis,
        admin,
        access,
        edge,
        server_cert,
        keys_state_file: file.keys.state_file.map(std::path::PathBuf::from),
        guardrails,
        mcp,
        routes,
        tracing,
        usage,
    }
}

fn build_tenants(sections: &[file::TenantSection], errs: &mut Vec<String>) -> Vec<Tenant> {
    let mut seen = HashSet::new();
    sections
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if !seen.insert(t.name.as_str()) {
                errs.push(format!("tenants[{i}].name `{}` is defined twice", t.name));
            }
            Tenant {
                name: t.name.clone(),
                limits: limits::build_scope_limits(
                    &format!("tenants[{i}].limits"),
                    &t.limits,
                    errs,
                ),
            }
        })
        .collect()
}

/// The tools of an OpenAPI document (for other modules' unit tests).
#[cfg(test)]
pub fn openapi_tools_for_tests(doc: &str) -> Vec<mcp::Tool> {
    openapi::tools(doc, &[], &[]).expect("a valid test document")
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_mcp;
