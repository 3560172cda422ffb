//! The admin view of a consumer's limits (`GET /admin/limits?consumer=NAME`): each scope's
//! limits, usage, remaining and reset (its tenant's too), and the shared store's state.

use super::headers::duration;
use super::plan::LimitPlan;
use super::Limiter;
use crate::config::{Consumer, OnStoreFailure};
use serde_json::{json, Value};

impl LimitPlan {
    /// The admin view of one consumer: each scope's limits, usage and remaining.
    pub fn describe(&self, consumer: &Consumer) -> Value {
        let now = self.limiter.clock.now_ms();
        let cal = self.calendar.at(now);
        let scopes = self.views_of(consumer, &cal);
        let views: Vec<Value> = scopes
            .iter()
            .map(|(name, scope, set)| {
                let c = scope.lock();
                let window = |limit: Option<u64>, used: f64, reset_ms: i64| {
                    json!({
                        "limit": limit,
                        "used": (used * 100.0).round() / 100.0,
                        "remaining": limit.map(|l| (l as f64 - used).floor().max(0.0) as u64),
                        "reset": duration(reset_ms),
                    })
                };
                json!({
                    "scope": name,
                    "rpm": window(set.rpm, c.requests.count(now), c.requests.reset_ms(now)),
                    "tpm": window(set.tpm, c.tokens.count(now), c.tokens.reset_ms(now)),
                    "concurrency": {"limit": set.concurrency, "in_use": c.inflight.total(),
                                    "in_use_here": c.inflight.mine},
                    "tokens_per_day": window(set.tokens_per_day, c.tokens_day.used(cal.day) as f64, cal.day_left_ms),
                    "tokens_per_month": window(set.tokens_per_month, c.tokens_month.used(cal.month) as f64, cal.month_left_ms),
                    "usd_per_day": usd_view(set.usd_micros_per_day, c.usd_day.used(cal.day), cal.day_left_ms),
                    "usd_per_month": usd_view(set.usd_micros_per_month, c.usd_month.used(cal.month), cal.month_left_ms),
                })
            })
            .collect();
        json!({
            "consumer": consumer.name,
            "limited": !views.is_empty(),
            "store": store_view(&self.limiter),
            "scopes": views,
        })
    }
}

fn usd_view(limit: Option<u64>, used: i64, reset_ms: i64) -> Value {
    let usd = |micros: f64| (micros / 1e4).round() / 100.0;
    json!({
        "limit": limit.map(|l| usd(l as f64)),
        "used": usd(used as f64),
        "remaining": limit.map(|l| usd((l as f64 - used as f64).max(0.0))),
        "reset": duration(reset_ms),
    })
}

pub fn store_view(limiter: &Limiter) -> Value {
    match limiter.store_policy() {
        None => json!({"configured": false}),
        Some(policy) => json!({
            "configured": true,
            "up": limiter.store_up(),
            "on_failure": match policy {
                OnStoreFailure::Local => "local",
                OnStoreFailure::Open => "open",
                OnStoreFailure::Closed => "closed",
            },
        }),
    }
}
