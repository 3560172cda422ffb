//! The background sync with Redis: one pipelined round trip per tick, never on a request.
//!
//! Each instance writes its **own absolute count** of every live bucket into a hash field named
//! after the instance (`HSET <bucket> <instance> <count>`) and reads the whole hash back; the
//! others' count is the sum of the other fields. Writing absolute values (not increments) makes
//! a repeated or lost round trip harmless: after Redis comes back, the first good tick restores
//! exact totals, with nothing counted twice and no queue of unsynced deltas to replay.
//!
//! The tick itself (with the usage roll-ups and the key table beside it) is
//! [`crate::server::services::store_sync`].
//!
//! Concurrency fields carry a timestamp (`<count>:<unix ms>`); fields not refreshed within
//! [`stale_ms`] belong to a dead instance and are ignored, then deleted.

use super::clock::calendar;
use super::window::minute_of;
use super::{Counter, Limiter, Scope};
use crate::config::RedisSettings;
use crate::store::Conn;
use std::collections::HashMap;
use std::sync::Arc;

pub struct StoreSync {
    pub limiter: Arc<Limiter>,
    pub settings: RedisSettings,
    /// This process's field name in every hash.
    pub instance: String,
}

/// One bucket as this instance sees it.
struct Entry {
    scope: Arc<Scope>,
    counter: Counter,
    id: i64,
    key: String,
    value: String,
    ttl_ms: i64,
}

impl StoreSync {
    fn stale_ms(&self) -> i64 {
        let interval = self.settings.sync_interval.as_millis() as i64;
        let timeout = self.settings.timeout.as_millis() as i64;
        (3 * interval).max(2 * timeout).max(3_000)
    }

    /// The live buckets of every limited scope, with this instance's counts.
    fn entries(&self, now: i64) -> Vec<Entry> {
        // One hash tag for every counter: a tick's pipeline is one slot on a Cluster.
        let prefix = &crate::store::tag(&self.settings.key_prefix, "rl");
        let cal = calendar(&self.limiter.timezone(), now);
        let minute = minute_of(now);
        let mut out = Vec::new();
        for scope in self.limiter.active_scopes() {
            let counters: Vec<Counter> = scope.active().collect();
            let mut c = scope.lock();
            for counter in counters {
                let label = counter.label();
                let mut push = |id: i64, key: String, value: String, ttl_ms: i64| {
                    out.push(Entry {
                        scope: Arc::clone(&scope),
                        counter,
                        id,
                        key,
                        value,
                        ttl_ms,
                    })
                };
                if counter == Counter::Inflight {
                    let key = format!("{prefix}:{}:{label}", scope.key);
                    let ttl = 10 * self.stale_ms();
                    push(0, key, format!("{}:{now}", c.inflight.mine.max(0)), ttl);
                } else if let Some(w) = c.sliding_mut(counter) {
                    for id in [minute - 1, minute] {
                        let mine = w.cell(id).map_or(0, |cell| cell.mine);
                        let key = format!("{prefix}:{}:{label}:{id}", scope.key);
                        push(id, key, mine.to_string(), 3 * 60_000);
                    }
                } else if let Some(f) = c.fixed_mut(counter) {
                    let (id, ttl) = match counter {
                        Counter::TokensDay | Counter::UsdDay => (cal.day, 2 * 86_400_000),
                        _ => (cal.month, 35 * 86_400_000),
                    };
                    let mine = if f.cell.id == id { f.cell.mine } else { 0 };
                    let key = format!("{prefix}:{}:{label}:{id}", scope.key);
                    push(id, key, mine.to_string(), ttl);
                }
            }
        }
        out
    }

    /// Push this instance's counts and pull everyone else's, in one round trip.
    pub async fn sync_once(
        &self,
        conn: &mut Conn,
        stale_fields: &mut Vec<(String, String)>,
    ) -> redis::RedisResult<()> {
        let now = self.limiter.clock.now_ms();
        let entries = self.entries(now);
        if entries.is_empty() && stale_fields.is_empty() {
            // Nothing limited: still prove the store answers (an empty pipeline sends nothing).
            return redis::cmd("PING").query_async::<()>(conn).await;
        }
        let mut pipe = redis::pipe();
        for (key, field) in stale_fields.iter() {
            pipe.hdel(key, field).ignore();
        }
        for e in &entries {
            pipe.hset(&e.key, &self.instance, &e.value).ignore();
            pipe.pexpire(&e.key, e.ttl_ms).ignore();
            pipe.hgetall(&e.key);
        }
        let replies: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
        stale_fields.clear();
        let stale_ms = self.stale_ms();
        for (e, fields) in entries.iter().zip(replies) {
            let mut others = 0i64;
            for (field, value) in fields {
                if field == self.instance {
                    continue;
                }
                if e.counter == Counter::Inflight {
                    match parse_inflight(&value) {
                        Some((n, at)) if now.saturating_sub(at) <= stale_ms => {
                            others = others.saturating_add(n.max(0))
                        }
                        _ => stale_fields.push((e.key.clone(), field)),
                    }
                } else {
                    // Another instance's count: never negative, never wrapping the sum.
                    others = others.saturating_add(value.parse::<i64>().unwrap_or(0).max(0));
                }
            }
            let mut c = e.scope.lock();
            if e.counter == Counter::Inflight {
                c.inflight.others = others;
            } else if let Some(w) = c.sliding_mut(e.counter) {
                w.set_others(e.id, others);
            } else if let Some(f) = c.fixed_mut(e.counter) {
                f.set_others(e.id, others);
            }
        }
        Ok(())
    }
}

fn parse_inflight(v: &str) -> Option<(i64, i64)> {
    let (n, at) = v.split_once(':')?;
    Some((n.parse().ok()?, at.parse().ok()?))
}

/// `host-pid-random`: unique per process, readable in `redis-cli`.
pub fn instance_name() -> String {
    use rand::RngCore;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::rng().next_u32()
    )
}
