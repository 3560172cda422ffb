//! The limit, budget, price and Redis parts of the config: file shapes and their checks.
//!
//! A consumer's `limits` table (or `[limits.default]` when it has none) becomes a
//! [`ConsumerLimits`]: base rates, budgets, hour-of-day overrides and per-model limits.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[limits]`: process-wide limiter settings and the defaults for consumers that set none.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Time zone of daily/monthly budgets and of `schedule` hours: an IANA name or `UTC`.
    pub timezone: String,
    /// Tokens reserved for the completion when a request sets no `max_tokens`.
    pub default_max_tokens: u64,
    /// Limits of consumers without a `limits` table of their own.
    pub default: Option<LimitTable>,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            timezone: "UTC".into(),
            default_max_tokens: 1024,
            default: None,
        }
    }
}

/// A consumer's `limits`: rates, budgets, overrides by hour and per model.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct LimitTable {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub concurrency: Option<i64>,
    pub tokens_per_day: Option<i64>,
    pub tokens_per_month: Option<i64>,
    pub usd_per_day: Option<f64>,
    pub usd_per_month: Option<f64>,
    #[serde(default)]
    pub schedule: Vec<ScheduleTable>,
    #[serde(default)]
    pub models: Vec<ModelLimitTable>,
}

/// The limits of one flat scope, as written: a tenant (`[[tenants]] limits`) or an API key
/// (`POST /admin/keys` `limits`, kept in its record).
#[derive(Debug, Deserialize, Serialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScopeLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_month: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usd_per_day: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usd_per_month: Option<f64>,
}

/// Other rates during given hours of the day, e.g. `{ hours = "09:00-18:00", rpm = 30 }`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ScheduleTable {
    pub hours: String,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub concurrency: Option<i64>,
}

/// Limits of one consumer on one virtual model, on top of the consumer's own.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ModelLimitTable {
    pub model: String,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub concurrency: Option<i64>,
    pub tokens_per_day: Option<i64>,
    pub tokens_per_month: Option<i64>,
    pub usd_per_day: Option<f64>,
    pub usd_per_month: Option<f64>,
}

/// The limit fields every scope has, as written, out of any table that has them (a
/// consumer's, a tenant's, a model's), for [`build_set`] to check. The tables keep their own
/// copies of the fields: serde's `flatten` cannot be combined with `deny_unknown_fields`,
/// which catches a misspelt limit.
macro_rules! limit_fields {
    ($t:expr) => {
        ScopeLimits {
            rpm: $t.rpm,
            tpm: $t.tpm,
            concurrency: $t.concurrency,
            tokens_per_day: $t.tokens_per_day,
            tokens_per_month: $t.tokens_per_month,
            usd_per_day: $t.usd_per_day,
            usd_per_month: $t.usd_per_month,
        }
    };
}

/// `[redis]`: the optional shared store the limiter syncs with: one `url`, or a Sentinel group
/// (`sentinels` and `master_name`) that names the current primary.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    #[serde(default)]
    pub url: Option<String>,
    /// Sentinels' `host:port`s; with `master_name`, instead of `url`.
    #[serde(default)]
    pub sentinels: Vec<String>,
    #[serde(default)]
    pub master_name: Option<String>,
    /// Some nodes' `host:port`s of a Redis Cluster, instead of `url` or `sentinels`.
    #[serde(default)]
    pub cluster: Vec<String>,
    /// Environment variables holding the ACL user and password for Redis (the primary).
    #[serde(default)]
    pub username_env: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// Environment variable holding the sentinels' password, when they require one.
    #[serde(default)]
    pub sentinel_password_env: Option<String>,
    #[serde(default = "default_sync_interval_ms")]
    pub sync_interval_ms: u64,
    /// `"local"`, `"open"` or `"closed"`: how to decide while Redis is unreachable.
    #[serde(default = "default_on_failure")]
    pub on_failure: String,
    /// Timeout of one sync round trip (connect included). Default: the sync interval.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

fn default_sync_interval_ms() -> u64 {
    200
}
fn default_on_failure() -> String {
    "local".into()
}
fn default_key_prefix() -> String {
    "tollgate".into()
}

/// `price = { input_per_mtok, output_per_mtok }` on a model, in USD per million tokens.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

// ---- runtime types ----

/// Rates and budgets of one scope; `None` is unlimited. USD amounts are in micro-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitSet {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub concurrency: Option<u64>,
    pub tokens_per_day: Option<u64>,
    pub tokens_per_month: Option<u64>,
    pub usd_micros_per_day: Option<u64>,
    pub usd_micros_per_month: Option<u64>,
}

impl LimitSet {
    pub fn is_empty(&self) -> bool {
        *self == LimitSet::default()
    }

    /// This set with a schedule entry's rates in place.
    pub fn with(&self, o: &RateOverride) -> LimitSet {
        LimitSet {
            rpm: o.rpm.or(self.rpm),
            tpm: o.tpm.or(self.tpm),
            concurrency: o.concurrency.or(self.concurrency),
            ..*self
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateOverride {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub concurrency: Option<u64>,
}

/// Rates that apply from `from` (inclusive) to `to` (exclusive), in minutes after local midnight.
/// `from > to` wraps past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    pub from: u16,
    pub to: u16,
    pub rates: RateOverride,
}

impl Scheduled {
    pub fn covers(&self, minute_of_day: u16) -> bool {
        if self.from <= self.to {
            (self.from..self.to).contains(&minute_of_day)
        } else {
            minute_of_day >= self.from || minute_of_day < self.to
        }
    }
}

/// Everything that limits one consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerLimits {
    pub base: LimitSet,
    pub schedule: Vec<Scheduled>,
    /// (virtual model, its limits for this consumer).
    pub models: Vec<(String, LimitSet)>,
}

impl ConsumerLimits {
    /// The consumer's own limits at this minute of the (local) day: the first schedule entry
    /// covering it wins.
    pub fn at(&self, minute_of_day: u16) -> LimitSet {
        match self.schedule.iter().find(|s| s.covers(minute_of_day)) {
            Some(s) => self.base.with(&s.rates),
            None => self.base,
        }
    }

    pub fn for_model(&self, model: &str) -> Option<&LimitSet> {
        self.models.iter().find(|(m, _)| m == model).map(|(_, s)| s)
    }
}

#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub timezone: jiff::tz::TimeZone,
    pub default_max_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreFailure {
    /// Decide from this instance's counts plus the last known counts of the others.
    Local,
    /// Admit without checking rates (counting continues).
    Open,
    /// Refuse requests of limited consumers with 503.
    Closed,
}

/// Where the shared Redis is.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisTopology {
    /// One server (`redis://host:port/db`).
    Url(String),
    /// A Sentinel group: the sentinels' addresses and the primary's name.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master_name: String,
    },
    /// A Cluster: some of its nodes (the rest is discovered).
    Cluster { seeds: Vec<(String, u16)> },
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub topology: RedisTopology,
    /// ACL user and password for Redis itself.
    pub username: Option<super::Secret>,
    pub password: Option<super::Secret>,
    pub sentinel_password: Option<super::Secret>,
    pub sync_interval: Duration,
    pub timeout: Duration,
    pub on_failure: OnStoreFailure,
    pub key_prefix: String,
}

/// Per-million-token prices of a model, in USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    /// Cost in micro-dollars: tokens × USD per million tokens is exactly that.
    pub fn micros(&self, input: u64, output: u64) -> u64 {
        let v = input as f64 * self.input_per_mtok + output as f64 * self.output_per_mtok;
        v.ceil().max(0.0) as u64
    }
}

// ---- checks ----

pub fn build_settings(s: &LimitsSection, errs: &mut Vec<String>) -> LimitSettings {
    let timezone = match jiff::tz::TimeZone::get(&s.timezone) {
        Ok(tz) => tz,
        Err(_) => {
            errs.push(format!(
                "limits.timezone `{}` is not a known time zone (use an IANA name such as \"Europe/Berlin\", or \"UTC\")",
                s.timezone
            ));
            jiff::tz::TimeZone::UTC
        }
    };
    if s.default_max_tokens == 0 {
        errs.push("limits.default_max_tokens must be > 0".into());
    }
    LimitSettings {
        timezone,
        default_max_tokens: s.default_max_tokens.max(1),
    }
}

pub fn build_redis(
    r: &RedisSection,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Vec<String>,
) -> RedisSettings {
    let topology = redis_topology(r, errs);
    let secret = |field: &str, var: &Option<String>, errs: &mut Vec<String>| {
        let var = var.as_ref()?;
        match env(var) {
            Some(v) if !v.is_empty() => Some(super::Secret(v)),
            _ => {
                errs.push(format!(
                    "redis.{field}: environment variable {var} is not set"
                ));
                None
            }
        }
    };
    let username = secret("username_env", &r.username_env, errs);
    let password = secret("password_env", &r.password_env, errs);
    let sentinel_password = secret("sentinel_password_env", &r.sentinel_password_env, errs);
    if r.sync_interval_ms == 0 {
        errs.push("redis.sync_interval_ms must be > 0".into());
    }
    if r.timeout_ms == Some(0) {
        errs.push("redis.timeout_ms must be > 0".into());
    }
    let on_failure = match r.on_failure.as_str() {
        "local" => OnStoreFailure::Local,
        "open" => OnStoreFailure::Open,
        "closed" => OnStoreFailure::Closed,
        other => {
            errs.push(format!(
                "redis.on_failure must be \"local\", \"open\" or \"closed\", not \"{other}\""
            ));
            OnStoreFailure::Local
        }
    };
    if r.key_prefix.is_empty() {
        errs.push("redis.key_prefix must not be empty".into());
    }
    if r.key_prefix.contains(['{', '}']) {
        errs.push(
            "redis.key_prefix must not contain { or }: the gateway puts its keys' hash tags there"
                .into(),
        );
    }
    let interval = Duration::from_millis(r.sync_interval_ms.max(1));
    RedisSettings {
        topology,
        username,
        password,
        sentinel_password,
        sync_interval: interval,
        timeout: r.timeout_ms.map_or(interval, Duration::from_millis),
        on_failure,
        key_prefix: r.key_prefix.clone(),
    }
}

/// `host:port` entries (an IPv6 host in brackets), each error naming its index.
fn host_ports(field: &str, entries: &[String], errs: &mut Vec<String>) -> Vec<(String, u16)> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let parsed = s
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)))
                .filter(|(h, _)| !h.is_empty());
            if parsed.is_none() {
                errs.push(format!("{field}[{i}] \"{s}\" must be host:port"));
            }
            parsed
        })
        .collect()
}

/// `url`, `sentinels` with `master_name`, or `cluster`; exactly one.
fn redis_topology(r: &RedisSection, errs: &mut Vec<String>) -> RedisTopology {
    if !r.cluster.is_empty() {
        if r.url.is_some() || !r.sentinels.is_empty() || r.master_name.is_some() {
            errs.push(
                "redis.cluster excludes redis.url and redis.sentinels/master_name: one topology"
                    .into(),
            );
        }
        return RedisTopology::Cluster {
            seeds: host_ports("redis.cluster", &r.cluster, errs),
        };
    }
    match (&r.url, r.sentinels.is_empty(), &r.master_name) {
        (Some(url), true, None) => {
            if redis::Client::open(url.as_str()).is_err() {
                errs.push(format!(
                    "redis.url \"{url}\" must be a URL like redis://127.0.0.1:6379/0"
                ));
            }
            RedisTopology::Url(url.clone())
        }
        (None, false, Some(name)) => {
            let sentinels = host_ports("redis.sentinels", &r.sentinels, errs);
            if name.is_empty() {
                errs.push("redis.master_name must not be empty".into());
            }
            RedisTopology::Sentinel {
                sentinels,
                master_name: name.clone(),
            }
        }
        (None, false, None) => {
            errs.push(
                "redis.sentinels needs redis.master_name (the name the sentinels monitor)".into(),
            );
            RedisTopology::Url(String::new())
        }
        (None, true, Some(_)) => {
            errs.push("redis.master_name needs redis.sentinels".into());
            RedisTopology::Url(String::new())
        }
        (None, true, None) => {
            errs.push("redis needs url, sentinels and master_name, or cluster".into());
            RedisTopology::Url(String::new())
        }
        (Some(_), _, _) => {
            errs.push("redis.url and redis.sentinels/master_name exclude each other: one server, or a Sentinel group".into());
            RedisTopology::Url(String::new())
        }
    }
}

pub fn build_price(at: &str, p: &PriceTable, errs: &mut Vec<String>) -> Price {
    for (field, v) in [
        ("input_per_mtok", p.input_per_mtok),
        ("output_per_mtok", p.output_per_mtok),
    ] {
        if !v.is_finite() || v < 0.0 {
            errs.push(format!("{at}.price.{field} must be a number >= 0"));
        }
    }
    Price {
        input_per_mtok: p.input_per_mtok.max(0.0),
        output_per_mtok: p.output_per_mtok.max(0.0),
    }
}

/// Check a flat scope's limits (`at` names it in errors).
pub fn build_scope_limits(at: &str, t: &ScopeLimits, errs: &mut Vec<String>) -> LimitSet {
    let before = errs.len();
    let set = build_set(at, t, errs);
    if set.is_empty() && errs.len() == before {
        errs.push(format!(
            "{at} must set at least one of rpm, tpm, concurrency, tokens_per_day, tokens_per_month, usd_per_day, usd_per_month"
        ));
    }
    set
}

/// Check a `limits` table. `known_model` tells whether a virtual model exists.
pub fn build_consumer_limits(
    at: &str,
    t: &LimitTable,
    known_model: &dyn Fn(&str) -> bool,
    errs: &mut Vec<String>,
) -> ConsumerLimits {
    let base = build_set(at, &limit_fields!(t), errs);
    let mut schedule = Vec::new();
    for (i, s) in t.schedule.iter().enumerate() {
        let here = format!("{at}.schedule[{i}]");
        let rates = RateOverride {
            rpm: positive(&here, "rpm", s.rpm, errs),
            tpm: positive(&here, "tpm", s.tpm, errs),
            concurrency: positive(&here, "concurrency", s.concurrency, errs),
        };
        if rates == RateOverride::default() {
            errs.push(format!("{here} must set rpm, tpm or concurrency"));
        }
        match parse_hours(&s.hours) {
            Some((from, to)) => schedule.push(Scheduled { from, to, rates }),
            None => errs.push(format!(
                "{here}.hours must look like \"09:00-18:00\" (24-hour, from != to), not \"{}\"",
                s.hours
            )),
        }
    }
    let mut models: Vec<(String, LimitSet)> = Vec::new();
    for (i, m) in t.models.iter().enumerate() {
        let here = format!("{at}.models[{i}]");
        if !known_model(&m.model) {
            errs.push(format!("{here}.model names unknown model `{}`", m.model));
        }
        if models.iter().any(|(name, _)| name == &m.model) {
            errs.push(format!("{here}.model `{}` is limited twice", m.model));
        }
        let set = build_set(&here, &limit_fields!(m), errs);
        if set.is_empty() {
            errs.push(format!("{here} sets no limit"));
        }
        models.push((m.model.clone(), set));
    }
    ConsumerLimits {
        base,
        schedule,
        models,
    }
}

fn build_set(at: &str, f: &ScopeLimits, errs: &mut Vec<String>) -> LimitSet {
    LimitSet {
        rpm: positive(at, "rpm", f.rpm, errs),
        tpm: positive(at, "tpm", f.tpm, errs),
        concurrency: positive(at, "concurrency", f.concurrency, errs),
        tokens_per_day: positive(at, "tokens_per_day", f.tokens_per_day, errs),
        tokens_per_month: positive(at, "tokens_per_month", f.tokens_per_month, errs),
        usd_micros_per_day: usd(at, "usd_per_day", f.usd_per_day, errs),
        usd_micros_per_month: usd(at, "usd_per_month", f.usd_per_month, errs),
    }
}

fn positive(at: &str, field: &str, v: Option<i64>, errs: &mut Vec<String>) -> Option<u64> {
    match v {
        Some(n) if n <= 0 => {
            errs.push(format!(
                "{at}.{field} must be > 0 (leave it out for no limit)"
            ));
            None
        }
        Some(n) => Some(n as u64),
        None => None,
    }
}

fn usd(at: &str, field: &str, v: Option<f64>, errs: &mut Vec<String>) -> Option<u64> {
    match v {
        Some(x) if !x.is_finite() || x <= 0.0 => {
            errs.push(format!(
                "{at}.{field} must be a positive amount (leave it out for no budget)"
            ));
            None
        }
        Some(x) => Some((x * 1e6).round() as u64),
        None => None,
    }
}

/// `"HH:MM-HH:MM"` → minutes after midnight.
fn parse_hours(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once('-')?;
    let (from, to) = (minute_of_day(a.trim())?, minute_of_day(b.trim())?);
    (from != to).then_some((from, to))
}

fn minute_of_day(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_parse_and_wrap_past_midnight() {
        assert_eq!(parse_hours("09:00-18:30"), Some((540, 1110)));
        assert_eq!(parse_hours("22:00 - 06:00"), Some((1320, 360)));
        assert_eq!(parse_hours("00:00-24:00"), Some((0, 1440)));
        assert_eq!(parse_hours("9-18"), None);
        assert_eq!(parse_hours("10:00-10:00"), None);
        assert_eq!(parse_hours("25:00-01:00"), None);
        let night = Scheduled {
            from: 1320,
            to: 360,
            rates: RateOverride::default(),
        };
        assert!(night.covers(1400) && night.covers(0) && night.covers(359));
        assert!(!night.covers(360) && !night.covers(720));
    }

    #[test]
    fn schedule_overrides_only_the_rates_it_sets() {
        let limits = ConsumerLimits {
            base: LimitSet {
                rpm: Some(100),
                tpm: Some(1000),
                tokens_per_day: Some(5),
                ..LimitSet::default()
            },
            schedule: vec![Scheduled {
                from: 540,
                to: 1080,
                rates: RateOverride {
                    rpm: Some(10),
                    ..RateOverride::default()
                },
            }],
            models: vec![],
        };
        assert_eq!(limits.at(600).rpm, Some(10));
        assert_eq!(limits.at(600).tpm, Some(1000));
        assert_eq!(limits.at(600).tokens_per_day, Some(5));
        assert_eq!(limits.at(1080).rpm, Some(100));
    }

    #[test]
    fn prices_are_micro_dollars_per_token() {
        let p = Price {
            input_per_mtok: 0.15,
            output_per_mtok: 0.60,
        };
        assert_eq!(p.micros(1_000_000, 0), 150_000);
        assert_eq!(p.micros(100, 100), 75);
        assert_eq!(p.micros(1, 0), 1, "rounds up");
    }
}
