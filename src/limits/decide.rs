//! The decisions: reserve at admission (every scope checked, then every scope charged, under
//! all their locks), settle at the end.

use super::clock::Calendar;
use super::headers::{duration, Quota, RateHeaders};
use super::plan::{KeyScope, LimitPlan, ScopeList};
use super::{Counter, Counters, Mode, Scope};
use crate::config::{Consumer, LimitSet, Model, OnStoreFailure};
use crate::error::GatewayError;
use crate::metrics::METRICS;
use std::sync::Arc;

/// What one request may cost, as the client's body bounds it.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// The prompt's estimated tokens (messages, system text, tools and schemas).
    pub prompt_tokens: u64,
    /// The output cap the backend honours (`None`: `limits.default_max_tokens`).
    pub max_tokens: Option<u64>,
    /// Completions generated (`n`): each may run to the output cap.
    pub choices: u64,
}

/// The largest count any one demand or settlement moves a counter by. Client numbers are
/// bounded at parse far below it; this bounds what a backend reports too, so counters
/// (`i64`) never wrap however many requests add up.
pub const MAX_DEMAND: u64 = 1 << 48;

/// A count as a counter delta: never negative, never past [`MAX_DEMAND`].
pub(super) fn as_delta(n: u64) -> i64 {
    // MAX_DEMAND < i64::MAX, so the conversion cannot fail once bounded.
    i64::try_from(n.min(MAX_DEMAND)).unwrap_or(i64::MAX)
}

/// What one request asks of the limits (each at most [`MAX_DEMAND`]).
#[derive(Debug, Clone, Copy)]
struct Demand {
    tokens: u64,
    usd_micros: u64,
}

/// What admission charged, to settle at the end. Dropping it releases the concurrency slots.
#[derive(Debug, Default)]
pub struct Reservation {
    charges: Vec<Charge>,
    tokens: u64,
    usd_micros: u64,
}

#[derive(Debug)]
struct Charge {
    scope: Arc<Scope>,
    minute: i64,
    day: i64,
    month: i64,
    holds_slot: bool,
}

impl LimitPlan {
    /// Admit or refuse a request. The headers describe the quotas either way.
    pub fn reserve(
        &self,
        consumer: &Consumer,
        model: &Model,
        key: Option<KeyScope<'_>>,
        ask: Ask,
    ) -> (RateHeaders, Result<Reservation, GatewayError>) {
        let now = self.limiter.clock.now_ms();
        let cal = self.calendar.at(now);
        let scopes = self.scopes_of(consumer, &model.name, key, &cal);
        let prompt = ask.prompt_tokens.min(MAX_DEMAND);
        let completion = ask
            .max_tokens
            .unwrap_or(self.default_max_tokens)
            .saturating_mul(ask.choices.max(1))
            .min(MAX_DEMAND);
        let demand = Demand {
            tokens: prompt.saturating_add(completion).min(MAX_DEMAND),
            usd_micros: model
                .reserve_price()
                .map_or(0, |p| p.micros(prompt, completion).min(MAX_DEMAND)),
        };
        self.charge(&scopes, demand, now, &cal)
    }

    /// Admit or refuse one MCP tool call: a request (no tokens) in the consumer's scopes, and
    /// in the consumer's scope for `tool` when the server limits calls per tool.
    pub fn reserve_tool_call(
        &self,
        consumer: &Consumer,
        key: Option<KeyScope<'_>>,
        tool: &str,
        calls_per_minute: Option<u64>,
    ) -> (RateHeaders, Result<Reservation, GatewayError>) {
        let now = self.limiter.clock.now_ms();
        let cal = self.calendar.at(now);
        let mut scopes = self.scopes_of(consumer, "", key, &cal);
        scopes[2] = calls_per_minute.map(|rpm| self.tool_scope(consumer, tool, rpm));
        let demand = Demand {
            tokens: 0,
            usd_micros: 0,
        };
        self.charge(&scopes, demand, now, &cal)
    }

    /// Check every scope, then charge every scope, under all their locks.
    fn charge(
        &self,
        scopes: &ScopeList<'_>,
        demand: Demand,
        now: i64,
        cal: &Calendar,
    ) -> (RateHeaders, Result<Reservation, GatewayError>) {
        if scopes.iter().all(Option::is_none) {
            return (RateHeaders::default(), Ok(Reservation::default()));
        }
        let scopes = scopes.iter().flatten();
        let mode = self.limiter.mode();
        if mode != Mode::Normal {
            METRICS.ratelimit_degraded_decisions.inc();
        }
        // Lock every scope (always in the same order: tenant, consumer, model, key) so the
        // check and the charge are one step.
        let mut guards: [_; 4] = std::array::from_fn(|_| None);
        for (slot, counted) in guards.iter_mut().zip(scopes.clone()) {
            *slot = Some(counted.scope.lock());
        }
        let mut headers = RateHeaders::default();
        let checked = match mode {
            Mode::Degraded(OnStoreFailure::Closed) => Err(GatewayError::LimiterUnavailable),
            Mode::Degraded(OnStoreFailure::Open) => Ok(()),
            Mode::Normal | Mode::Degraded(OnStoreFailure::Local) => scopes
                .clone()
                .zip(guards.iter().flatten())
                .try_for_each(|(s, c)| check(&s.set, c, now, cal, demand, &s.who)),
        };
        if let Err(e) = checked {
            for (s, c) in scopes.zip(guards.iter().flatten()) {
                quotas(&mut headers, &s.set, c, now);
            }
            METRICS
                .ratelimit_rejections
                .with_label_values(&[e.limit_label().unwrap_or("other")])
                .inc();
            return (headers, Err(e));
        }
        let mut reservation = Reservation {
            charges: Vec::with_capacity(4),
            tokens: demand.tokens,
            usd_micros: demand.usd_micros,
        };
        for (s, c) in scopes.zip(guards.iter_mut().flatten()) {
            let (tokens, usd) = (as_delta(demand.tokens), as_delta(demand.usd_micros));
            let minute = c.requests.add(now, 1);
            c.tokens.add(now, tokens);
            c.tokens_day.add(cal.day, tokens);
            c.tokens_month.add(cal.month, tokens);
            c.usd_day.add(cal.day, usd);
            c.usd_month.add(cal.month, usd);
            c.inflight.mine += 1;
            quotas(&mut headers, &s.set, c, now);
            reservation.charges.push(Charge {
                scope: Arc::clone(&s.scope),
                minute,
                day: cal.day,
                month: cal.month,
                holds_slot: true,
            });
        }
        (headers, Ok(reservation))
    }
}

/// Add this scope's request and token quotas to the headers.
fn quotas(headers: &mut RateHeaders, set: &LimitSet, c: &Counters, now: i64) {
    let quota = |limit: u64, w: &super::window::Sliding| Quota {
        limit,
        remaining: (limit as f64 - w.count(now)).floor().max(0.0) as u64,
        reset_ms: w.reset_ms(now),
    };
    if let Some(l) = set.rpm {
        RateHeaders::tighten(&mut headers.requests, quota(l, &c.requests));
    }
    if let Some(l) = set.tpm {
        RateHeaders::tighten(&mut headers.tokens, quota(l, &c.tokens));
    }
}

/// Does the demand fit every limit of this scope?
fn check(
    set: &LimitSet,
    c: &Counters,
    now: i64,
    cal: &Calendar,
    d: Demand,
    who: &str,
) -> Result<(), GatewayError> {
    if let Some(limit) = set.concurrency {
        if c.inflight.total() as u64 + 1 > limit {
            return Err(GatewayError::RateLimited {
                limit: Counter::Inflight,
                message: format!(
                    "Too many concurrent requests for {who}: Limit {limit}. Please try again in 1s."
                ),
                retry_after_ms: 1_000,
            });
        }
    }
    if let Some(limit) = set.rpm {
        if !c.requests.fits(now, limit, 1) {
            let wait = c.requests.wait_ms(now, limit, 1).unwrap_or(60_000);
            return Err(rate_limited(
                Counter::Requests,
                "requests per min (RPM)",
                who,
                limit,
                1,
                wait,
            ));
        }
    }
    if let Some(limit) = set.tpm {
        match c.tokens.wait_ms(now, limit, d.tokens) {
            None => {
                return Err(GatewayError::RequestTooLarge {
                    message: format!(
                        "Request too large for {who} on tokens per min (TPM): Limit {limit}, Requested {}. \
                         The input or output tokens must be reduced in order to run successfully.",
                        d.tokens
                    ),
                })
            }
            Some(wait) if !c.tokens.fits(now, limit, d.tokens) => {
                return Err(rate_limited(
                    Counter::Tokens,
                    "tokens per min (TPM)",
                    who,
                    limit,
                    d.tokens,
                    wait,
                ))
            }
            Some(_) => {}
        }
    }
    check_budgets(set, c, cal, d, who)
}

/// The day and month token and USD budgets.
fn check_budgets(
    set: &LimitSet,
    c: &Counters,
    cal: &Calendar,
    d: Demand,
    who: &str,
) -> Result<(), GatewayError> {
    let budgets = [
        (
            set.tokens_per_day,
            Counter::TokensDay,
            c.tokens_day.used(cal.day),
            d.tokens,
            cal.day_left_ms,
            "daily token budget",
        ),
        (
            set.tokens_per_month,
            Counter::TokensMonth,
            c.tokens_month.used(cal.month),
            d.tokens,
            cal.month_left_ms,
            "monthly token budget",
        ),
        (
            set.usd_micros_per_day,
            Counter::UsdDay,
            c.usd_day.used(cal.day),
            d.usd_micros,
            cal.day_left_ms,
            "daily USD budget",
        ),
        (
            set.usd_micros_per_month,
            Counter::UsdMonth,
            c.usd_month.used(cal.month),
            d.usd_micros,
            cal.month_left_ms,
            "monthly USD budget",
        ),
    ];
    for (limit, counter, used, need, left_ms, what) in budgets {
        let Some(limit) = limit else { continue };
        // `used` is never negative (a cell's total is clamped at 0).
        let used = u64::try_from(used).unwrap_or(0);
        if need > limit.saturating_sub(used) {
            // Which limit and when it resets; never how much is used, which would let a
            // client size a request to the exact room left.
            let l = if matches!(counter, Counter::UsdDay | Counter::UsdMonth) {
                format!("${:.2}", limit as f64 / 1e6)
            } else {
                limit.to_string()
            };
            return Err(GatewayError::QuotaExceeded {
                limit: counter,
                message: format!(
                    "You exceeded the {what} of {who}: Limit {l}. It resets in {}.",
                    duration(left_ms)
                ),
                retry_after_ms: left_ms.max(0) as u64,
            });
        }
    }
    Ok(())
}

fn rate_limited(
    counter: Counter,
    what: &str,
    who: &str,
    limit: u64,
    requested: u64,
    wait_ms: i64,
) -> GatewayError {
    GatewayError::RateLimited {
        limit: counter,
        message: format!(
            "Rate limit reached for {who} on {what}: Limit {limit}, Requested {requested}. \
             Please try again in {}.",
            duration(wait_ms)
        ),
        retry_after_ms: wait_ms.max(1) as u64,
    }
}

impl Reservation {
    /// Correct the reserved tokens and cost to the real ones, and free the concurrency slots.
    pub fn settle(mut self, tokens: u64, usd_micros: u64) {
        // Both sides are at most MAX_DEMAND, so the differences cannot wrap.
        let dt = as_delta(tokens) - as_delta(self.tokens);
        let du = as_delta(usd_micros) - as_delta(self.usd_micros);
        for charge in &mut self.charges {
            let mut c = charge.scope.lock();
            c.tokens.adjust(charge.minute, dt);
            c.tokens_day.adjust(charge.day, dt);
            c.tokens_month.adjust(charge.month, dt);
            c.usd_day.adjust(charge.day, du);
            c.usd_month.adjust(charge.month, du);
            if std::mem::take(&mut charge.holds_slot) {
                c.inflight.mine -= 1;
            }
        }
    }

    /// The tokens this reservation holds.
    pub fn reserved_tokens(&self) -> u64 {
        self.tokens
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        for charge in &mut self.charges {
            if std::mem::take(&mut charge.holds_slot) {
                charge.scope.lock().inflight.mine -= 1;
            }
        }
    }
}
