//! [`Runtime`]: everything derived from one config file, the snapshot a request runs on.
//!
//! Requests take a snapshot (`ArcSwap::load_full`) when they start and keep it to the end; a
//! reload builds a new one and swaps it in. It depends on config, authentication, limits and
//! upstream state only, so every stage and service can read it without a cycle.

pub mod conversations;
pub mod redis_link;
pub mod reload;

use crate::auth::keys::KeyStore;
use crate::auth::KeyTable;
use crate::config::Config;
use crate::feedback::health::HealthTable;
use crate::limits::{LimitPlan, Limiter};
use crate::upstream::redact::Secrets;
use crate::upstream::Upstreams;
use std::net::SocketAddr;
use std::sync::Arc;

/// Everything derived from one config file.
pub struct Runtime {
    pub config: Arc<Config>,
    pub keys: KeyTable,
    pub upstreams: Upstreams,
    pub limits: LimitPlan,
    /// Keys created through the admin API (the process's table, shared by every config).
    pub api_keys: Arc<KeyStore>,
    /// Providers' and deployments' health (the process's table, shared by every config).
    pub health: Arc<HealthTable>,
    /// Stored Responses answers of translated routes (the process's, shared by every config).
    pub conversations: Arc<conversations::Conversations>,
    /// Some consumer or model has `log_payloads`.
    pub captures_payloads: bool,
    /// The config's secrets, redacted from upstream error bodies.
    pub secrets: Option<Secrets>,
}

impl Runtime {
    /// `limiter`, `api_keys`, `health` and `conversations` are the process's, so counts, keys and health carry
    /// over from the previous config.
    pub fn new(
        config: Config,
        builtin_mock: Option<SocketAddr>,
        limiter: &Arc<Limiter>,
        api_keys: &Arc<KeyStore>,
        health: &Arc<HealthTable>,
        conversations: &Arc<conversations::Conversations>,
    ) -> Runtime {
        config.bind_health(health);
        if config.models.iter().any(|m| m.needs_prompt_tokens()) {
            // The tokenizer takes a moment to load: not on the first request.
            crate::wire::tokens::warm_up();
        }
        Runtime {
            keys: KeyTable::new(&config.consumers),
            upstreams: Upstreams::resolve(&config, builtin_mock),
            limits: LimitPlan::new(Arc::clone(limiter), &config),
            api_keys: Arc::clone(api_keys),
            health: Arc::clone(health),
            conversations: Arc::clone(conversations),
            captures_payloads: config.consumers.iter().any(|c| c.log_payloads)
                || config.models.iter().any(|m| m.log_payloads),
            secrets: Secrets::new(config.secrets()),
            config: Arc::new(config),
        }
    }
}
