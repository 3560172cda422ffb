//! The roll-ups in memory: three tiers of buckets (minutes, hours, days), each bucket capped in
//! rows, and their mirror in Redis (one hash per bucket).

use super::{Counts, Key, Row, SEP};
use crate::config::usage::UsageSettings;
use crate::metrics::METRICS;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// One tier: buckets `width` minutes wide, the last `keep` of them kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Minute,
    Hour,
    Day,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Minute, Tier::Hour, Tier::Day];

    /// Minutes per bucket.
    pub fn width(self) -> i64 {
        match self {
            Tier::Minute => 1,
            Tier::Hour => 60,
            Tier::Day => 1440,
        }
    }

    /// Buckets kept: a day of minutes, 31 days of hours, 366 days.
    pub fn keep(self) -> i64 {
        match self {
            Tier::Minute => 1440,
            Tier::Hour => 31 * 24,
            Tier::Day => 366,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Minute => "minute",
            Tier::Hour => "hour",
            Tier::Day => "day",
        }
    }

    fn index(self) -> usize {
        match self {
            Tier::Minute => 0,
            Tier::Hour => 1,
            Tier::Day => 2,
        }
    }

    /// The bucket holding `minute`.
    pub fn bucket(self, minute: i64) -> i64 {
        minute.div_euclid(self.width()) * self.width()
    }

    /// The Redis hash of one bucket.
    fn hash(self, prefix: &str, bucket: i64) -> String {
        format!(
            "{}:{}:{bucket}",
            crate::store::tag(prefix, "usage"),
            self.name()
        )
    }
}

#[derive(Default)]
struct Buckets {
    rows: BTreeMap<i64, HashMap<Key, Counts>>,
    /// Rows in all buckets (kept beside them: a record must not walk every bucket).
    held: usize,
    /// Buckets changed since the last write to Redis, with a change counter: a flush clears a
    /// bucket only if it did not change while the flush was in flight.
    dirty: BTreeMap<i64, u64>,
}

struct Inner {
    tiers: [Buckets; 3],
    caps: [usize; 3],
}

/// The process's usage roll-ups; outlive config reloads (the caps are the start's).
pub struct Rollups {
    inner: Mutex<Inner>,
}

impl Default for Rollups {
    fn default() -> Self {
        let u = crate::config::usage::build(&Default::default(), &mut Vec::new());
        Rollups::new(u)
    }
}

impl Rollups {
    pub fn new(u: UsageSettings) -> Rollups {
        Rollups {
            inner: Mutex::new(Inner {
                tiers: Default::default(),
                caps: [u.minute_rows, u.hour_rows, u.day_rows],
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count one finished request in its minute, hour and day.
    pub fn record(&self, now_ms: i64, key: Key, c: Counts) {
        let minute = now_ms.div_euclid(60_000);
        let mut inner = self.lock();
        let Inner { tiers, caps } = &mut *inner;
        for tier in Tier::ALL {
            let t = &mut tiers[tier.index()];
            let bucket = tier.bucket(minute);
            let rows = t.rows.entry(bucket).or_default();
            // A full bucket adds new keys to its `(other)` row (one past the cap).
            let key = if rows.contains_key(&key) || rows.len() < caps[tier.index()] {
                key.clone()
            } else {
                METRICS
                    .usage_overflow
                    .with_label_values(&[tier.name()])
                    .inc();
                Key::other()
            };
            let before = rows.len();
            rows.entry(key).or_default().add(&c);
            t.held += rows.len() - before;
            *t.dirty.entry(bucket).or_default() += 1;
            let oldest = bucket - tier.keep() * tier.width();
            while t.rows.first_key_value().is_some_and(|(b, _)| *b <= oldest) {
                if let Some((_, gone)) = t.rows.pop_first() {
                    t.held -= gone.len();
                }
            }
            METRICS
                .usage_rows
                .with_label_values(&[tier.name()])
                .set(i64::try_from(t.held).unwrap_or(i64::MAX));
        }
    }

    /// This instance's rows of `tier` in `[from, to)` (minutes; whole buckets).
    pub fn local_rows(&self, tier: Tier, from: i64, to: i64) -> Vec<Row> {
        let inner = self.lock();
        inner.tiers[tier.index()]
            .rows
            .range(from..to)
            .flat_map(|(b, keys)| keys.iter().map(move |(k, c)| (*b, k.clone(), *c)))
            .collect()
    }

    /// Write this instance's changed buckets of every tier to Redis (absolute counts,
    /// idempotent).
    pub async fn flush(
        &self,
        conn: &mut crate::store::Conn,
        prefix: &str,
        instance: &str,
    ) -> redis::RedisResult<()> {
        type Changed = Vec<(Tier, i64, u64, Vec<(Key, Counts)>)>;
        let changed: Changed = {
            let inner = self.lock();
            Tier::ALL
                .iter()
                .flat_map(|tier| {
                    let t = &inner.tiers[tier.index()];
                    t.dirty.iter().filter_map(move |(b, generation)| {
                        let keys = t.rows.get(b)?;
                        let rows = keys.iter().map(|(k, c)| (k.clone(), *c)).collect();
                        Some((*tier, *b, *generation, rows))
                    })
                })
                .collect()
        };
        if changed.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (tier, bucket, _, keys) in &changed {
            let hash = tier.hash(prefix, *bucket);
            for (k, c) in keys {
                let field = format!(
                    "{instance}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}",
                    k.consumer, k.project, k.model, k.tenant, k.key
                );
                pipe.hset(&hash, field, c.encode()).ignore();
            }
            pipe.expire(&hash, tier.keep() * tier.width() * 60 + 3600)
                .ignore();
        }
        pipe.query_async::<()>(conn).await?;
        let mut inner = self.lock();
        for (tier, bucket, generation, _) in changed {
            let dirty = &mut inner.tiers[tier.index()].dirty;
            if dirty.get(&bucket) == Some(&generation) {
                dirty.remove(&bucket);
            }
        }
        Ok(())
    }

    /// Every instance's rows of `tier` in `[from, to)` from Redis, with this instance's own
    /// live counts.
    pub async fn shared_rows(
        &self,
        conn: &mut crate::store::Conn,
        prefix: &str,
        instance: &str,
        (tier, from, to): (Tier, i64, i64),
    ) -> redis::RedisResult<Vec<Row>> {
        let buckets: Vec<i64> = (from..to).step_by(tier.width() as usize).collect();
        let mut pipe = redis::pipe();
        for b in &buckets {
            pipe.hgetall(tier.hash(prefix, *b));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
        let mut rows = self.local_rows(tier, from, to);
        for (b, fields) in buckets.iter().zip(hashes) {
            for (field, value) in fields {
                let mut parts = field.split(SEP);
                let (Some(inst), Some(consumer), Some(project), Some(model)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                if inst == instance {
                    continue;
                }
                let tenant = parts.next().unwrap_or_default();
                let key = parts.next().unwrap_or_default();
                if let Some(c) = Counts::decode(&value) {
                    let key = Key {
                        consumer: consumer.into(),
                        project: project.into(),
                        model: model.into(),
                        tenant: tenant.into(),
                        key: key.into(),
                    };
                    rows.push((*b, key, c));
                }
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str) -> Key {
        Key {
            consumer: c.into(),
            project: String::new(),
            model: "chat".into(),
            tenant: String::new(),
            key: String::new(),
        }
    }

    fn one(tokens: u64) -> Counts {
        Counts {
            requests: 1,
            input_tokens: tokens,
            ..Counts::default()
        }
    }

    #[test]
    fn every_tier_counts_and_a_full_bucket_adds_the_rest_to_other() {
        let s = Rollups::new(UsageSettings {
            minute_rows: 2,
            hour_rows: 3,
            day_rows: 100,
        });
        let t0 = 1_795_327_200_000; // a whole hour
        for (i, c) in ["a", "b", "c", "d"].iter().enumerate() {
            s.record(t0 + i as i64 * 1000, key(c), one(10));
        }
        let minute = t0 / 60_000;
        let rows = s.local_rows(Tier::Minute, minute, minute + 1);
        assert_eq!(rows.len(), 3, "two keys and (other): {rows:?}");
        let other = rows.iter().find(|r| r.1 == Key::other()).unwrap();
        assert_eq!(other.2.requests, 2);
        assert_eq!(s.local_rows(Tier::Hour, minute, minute + 60).len(), 4);
        let day = Tier::Day.bucket(minute);
        let rows = s.local_rows(Tier::Day, day, day + 1440);
        assert_eq!(rows.len(), 4);
        let total: u64 = rows.iter().map(|r| r.2.input_tokens).sum();
        assert_eq!(total, 40, "nothing lost in any tier");
    }

    #[test]
    fn old_buckets_leave_each_tier_at_its_retention() {
        let s = Rollups::default();
        let t0: i64 = 1_795_327_200_000;
        s.record(t0, key("a"), one(1));
        // Two days later: the minute tier forgot it, the hour and day tiers did not.
        s.record(t0 + 2 * 86_400_000, key("a"), one(1));
        let m = t0 / 60_000;
        assert!(s.local_rows(Tier::Minute, m, m + 1).is_empty());
        assert_eq!(s.local_rows(Tier::Hour, m, m + 60).len(), 1);
        let d = Tier::Day.bucket(m);
        assert_eq!(s.local_rows(Tier::Day, d, d + 1440).len(), 1);
    }
}
