//! Limits: requests, tokens and concurrency per minute, token and USD budgets per day and
//! month, decided in memory on the request path and shared through Redis off it.
//!
//! Admission [`LimitPlan::reserve`]s one request, the estimated tokens (prompt estimate +
//! `max_tokens` or `limits.default_max_tokens`) and their price, in every scope the request
//! falls in ([`plan`]: its tenant, the consumer, the consumer on that model, its API key). The end of the
//! request [`Reservation::settle`]s the real usage against the same buckets; the concurrency
//! slot is released when the reservation is settled or dropped, so every exit path frees it.
//!
//! Each bucket keeps this instance's count apart from the others' (read by [`sync`] every
//! tick), so a decision is `others (last sync) + mine (now)`: no network on the request path.

pub mod clock;
mod decide;
pub mod describe;
mod headers;
mod plan;
pub mod sync;
mod window;

use crate::config::{Config, OnStoreFailure};
use clock::Clock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use window::{Cell, Fixed, Sliding};

pub use decide::{Ask, Reservation, MAX_DEMAND};
pub use headers::RateHeaders;
pub use plan::{KeyScope, LimitPlan};

pub use crate::types::counter::Counter;

/// Every counter of one scope.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: Sliding,
    pub tokens: Sliding,
    pub tokens_day: Fixed,
    pub tokens_month: Fixed,
    pub usd_day: Fixed,
    pub usd_month: Fixed,
    /// Requests in flight (the id is unused).
    pub inflight: Cell,
}

impl Counters {
    pub fn fixed_mut(&mut self, c: Counter) -> Option<&mut Fixed> {
        match c {
            Counter::TokensDay => Some(&mut self.tokens_day),
            Counter::TokensMonth => Some(&mut self.tokens_month),
            Counter::UsdDay => Some(&mut self.usd_day),
            Counter::UsdMonth => Some(&mut self.usd_month),
            Counter::Requests | Counter::Tokens | Counter::Inflight => None,
        }
    }

    pub fn sliding_mut(&mut self, c: Counter) -> Option<&mut Sliding> {
        match c {
            Counter::Requests => Some(&mut self.requests),
            Counter::Tokens => Some(&mut self.tokens),
            Counter::TokensDay
            | Counter::TokensMonth
            | Counter::UsdDay
            | Counter::UsdMonth
            | Counter::Inflight => None,
        }
    }
}

/// One counted scope: a consumer, or a consumer on one model. Lives as long as the process,
/// across config reloads, so counts survive them.
#[derive(Debug)]
pub struct Scope {
    /// `consumer:<name>` or `consumer:<name>:model:<model>`; also its Redis key stem.
    pub key: String,
    counters: Mutex<Counters>,
    /// Bits of the counters some limit reads: only those are synced.
    active: AtomicU8,
}

impl Scope {
    fn new(key: String) -> Scope {
        Scope {
            key,
            counters: Mutex::new(Counters::default()),
            active: AtomicU8::new(0),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Counters> {
        // A panic while holding the lock leaves plain integers behind: still usable.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters some limit of the current config reads.
    pub fn active(&self) -> impl Iterator<Item = Counter> + '_ {
        let bits = self.active.load(Ordering::Relaxed);
        Counter::ALL
            .into_iter()
            .filter(move |c| bits & c.bit() != 0)
    }

    fn set_active(&self, counters: &[Counter]) {
        let bits = counters.iter().fold(0, |b, c| b | c.bit());
        self.active.store(bits, Ordering::Relaxed);
    }
}

/// How decisions are made right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No store configured, or the store is in sync.
    Normal,
    /// The store is configured but unreachable: decide by this policy.
    Degraded(OnStoreFailure),
}

/// The process's limiter state: every scope's counters and the store's health. Built once,
/// kept across config reloads.
pub struct Limiter {
    pub clock: Arc<dyn Clock>,
    scopes: Mutex<HashMap<String, Arc<Scope>>>,
    /// The store's failure policy, when a store is configured.
    store_policy: Option<OnStoreFailure>,
    store_up: AtomicBool,
    /// The time zone of the current config's budgets (the sync names day/month buckets by it).
    timezone: Mutex<jiff::tz::TimeZone>,
}

impl Limiter {
    pub fn new(clock: Arc<dyn Clock>, store_policy: Option<OnStoreFailure>) -> Limiter {
        Limiter {
            clock,
            scopes: Mutex::new(HashMap::new()),
            store_policy,
            store_up: AtomicBool::new(false),
            timezone: Mutex::new(jiff::tz::TimeZone::UTC),
        }
    }

    pub fn timezone(&self) -> jiff::tz::TimeZone {
        self.timezone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_timezone(&self, tz: jiff::tz::TimeZone) {
        *self.timezone.lock().unwrap_or_else(|p| p.into_inner()) = tz;
    }

    /// A limiter on the system clock, syncing if the config has a `[redis]` section.
    pub fn for_config(config: &Config) -> Arc<Limiter> {
        Arc::new(Limiter::new(
            Arc::new(clock::SystemClock),
            config.redis.as_ref().map(|r| r.on_failure),
        ))
    }

    /// The scope named `key`, created on first use.
    pub fn scope(&self, key: &str) -> Arc<Scope> {
        let mut map = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            map.entry(key.to_string())
                .or_insert_with(|| Arc::new(Scope::new(key.to_string()))),
        )
    }

    /// Every scope with at least one limited counter.
    pub fn active_scopes(&self) -> Vec<Arc<Scope>> {
        let map = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter(|s| s.active().next().is_some())
            .cloned()
            .collect()
    }

    pub fn store_configured(&self) -> bool {
        self.store_policy.is_some()
    }

    pub fn store_up(&self) -> bool {
        self.store_up.load(Ordering::Relaxed)
    }

    /// Record the store's state; returns whether it changed.
    pub fn set_store_up(&self, up: bool) -> bool {
        self.store_up.swap(up, Ordering::Relaxed) != up
    }

    pub fn mode(&self) -> Mode {
        match self.store_policy {
            Some(policy) if !self.store_up() => Mode::Degraded(policy),
            _ => Mode::Normal,
        }
    }

    pub fn store_policy(&self) -> Option<OnStoreFailure> {
        self.store_policy
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
