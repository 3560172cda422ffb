//! Usage analytics: per-minute roll-ups of requests, tokens, cost and errors per
//! (consumer, project, tenant, model, key), and the top-N / timeline queries of `GET /admin/usage`.
//! (Token counts of one response are [`crate::wire::meter::Usage`]; this module adds them up.)
//!
//! Every instance counts in memory (kept [`RETENTION_MINUTES`]). With `[redis]`, the limit-store
//! sync also writes this instance's minutes to Redis, one hash per minute with a field per
//! (instance, consumer, project, model, tenant, key) holding absolute counts, so a repeated write never
//! double counts; a query then sums every instance's fields, using this instance's live
//! counts for its own. Without Redis the figures are this instance's.

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// A week of minutes.
pub const RETENTION_MINUTES: i64 = 7 * 24 * 60;
const SEP: char = '\u{1f}';

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub consumer: String,
    pub project: String,
    pub model: String,
    pub tenant: String,
    /// The key: an API key's id, or `config:<consumer>:<index>`.
    pub key: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micros: u64,
    pub errors: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        // Saturating: a backend's reported usage is not bounded by the gateway.
        self.requests = self.requests.saturating_add(o.requests);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cost_micros = self.cost_micros.saturating_add(o.cost_micros);
        self.errors = self.errors.saturating_add(o.errors);
    }

    fn encode(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.requests, self.input_tokens, self.output_tokens, self.cost_micros, self.errors
        )
    }

    fn decode(v: &str) -> Option<Counts> {
        let mut it = v.split(',').map(|x| x.parse::<u64>().ok());
        Some(Counts {
            requests: it.next()??,
            input_tokens: it.next()??,
            output_tokens: it.next()??,
            cost_micros: it.next()??,
            errors: it.next()??,
        })
    }

    fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.input_tokens + self.output_tokens,
            "cost_usd": self.cost_micros as f64 / 1e6,
            "errors": self.errors,
        })
    }
}

/// One minute of one key.
pub type Row = (i64, Key, Counts);
/// One minute's keys.
type MinuteRows = (i64, Vec<(Key, Counts)>);

#[derive(Default)]
struct Inner {
    minutes: BTreeMap<i64, HashMap<Key, Counts>>,
    /// Minutes changed since the last write to Redis, with a change counter: a flush clears a
    /// minute only if it did not change while the flush was in flight.
    dirty: BTreeMap<i64, u64>,
}

/// The process's usage roll-ups; outlives config reloads.
#[derive(Default)]
pub struct Rollups {
    inner: Mutex<Inner>,
}

impl Rollups {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count one finished request in its minute.
    pub fn record(&self, now_ms: i64, key: Key, c: Counts) {
        let minute = now_ms.div_euclid(60_000);
        let mut inner = self.lock();
        inner
            .minutes
            .entry(minute)
            .or_default()
            .entry(key)
            .or_default()
            .add(&c);
        *inner.dirty.entry(minute).or_default() += 1;
        while inner
            .minutes
            .first_key_value()
            .is_some_and(|(m, _)| *m < minute - RETENTION_MINUTES)
        {
            inner.minutes.pop_first();
        }
    }

    /// This instance's rows in `[from, to)` (minutes).
    pub fn local_rows(&self, from: i64, to: i64) -> Vec<Row> {
        let inner = self.lock();
        inner
            .minutes
            .range(from..to)
            .flat_map(|(m, keys)| keys.iter().map(move |(k, c)| (*m, k.clone(), *c)))
            .collect()
    }

    /// Write this instance's changed minutes to Redis (absolute counts, idempotent).
    pub async fn flush(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        prefix: &str,
        instance: &str,
    ) -> redis::RedisResult<()> {
        let (minutes, rows): (Vec<(i64, u64)>, Vec<MinuteRows>) = {
            let inner = self.lock();
            let minutes: Vec<(i64, u64)> = inner.dirty.iter().map(|(m, g)| (*m, *g)).collect();
            let rows = minutes
                .iter()
                .filter_map(|(m, _)| {
                    let keys = inner.minutes.get(m)?;
                    Some((*m, keys.iter().map(|(k, c)| (k.clone(), *c)).collect()))
                })
                .collect();
            (minutes, rows)
        };
        if minutes.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (minute, keys) in &rows {
            let hash = format!("{prefix}:usage:{minute}");
            for (k, c) in keys {
                let field = format!(
                    "{instance}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}",
                    k.consumer, k.project, k.model, k.tenant, k.key
                );
                pipe.hset(&hash, field, c.encode()).ignore();
            }
            pipe.expire(&hash, RETENTION_MINUTES * 60 + 3600).ignore();
        }
        pipe.query_async::<()>(conn).await?;
        let mut inner = self.lock();
        for (m, generation) in minutes {
            if inner.dirty.get(&m) == Some(&generation) {
                inner.dirty.remove(&m);
            }
        }
        Ok(())
    }

    /// Every instance's rows in `[from, to)` from Redis, with this instance's own live counts.
    pub async fn shared_rows(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        prefix: &str,
        instance: &str,
        from: i64,
        to: i64,
    ) -> redis::RedisResult<Vec<Row>> {
        let mut pipe = redis::pipe();
        for m in from..to {
            pipe.hgetall(format!("{prefix}:usage:{m}"));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
        let mut rows = self.local_rows(from, to);
        for (m, fields) in (from..to).zip(hashes) {
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
                // Fields written before tenants were counted have four parts.
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
                    rows.push((m, key, c));
                }
            }
        }
        Ok(rows)
    }
}

/// How a usage query groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Consumer,
    Model,
    Project,
    Tenant,
    Key,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "consumer" => Some(GroupBy::Consumer),
            "model" => Some(GroupBy::Model),
            "project" => Some(GroupBy::Project),
            "tenant" => Some(GroupBy::Tenant),
            "key" => Some(GroupBy::Key),
            _ => None,
        }
    }

    fn of<'a>(&self, k: &'a Key) -> &'a str {
        match self {
            GroupBy::Consumer => &k.consumer,
            GroupBy::Model => &k.model,
            GroupBy::Project => &k.project,
            GroupBy::Tenant => &k.tenant,
            GroupBy::Key => &k.key,
        }
    }
}

/// Top `top` groups by tokens over the rows, and their timeline in `step`-minute buckets
/// starting at `from`.
pub fn summarize(rows: &[Row], group_by: GroupBy, top: usize, from: i64, step: i64) -> Value {
    let mut totals: BTreeMap<&str, Counts> = BTreeMap::new();
    for (_, k, c) in rows {
        totals.entry(group_by.of(k)).or_default().add(c);
    }
    let mut ranked: Vec<(&str, Counts)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| {
        let t = |c: &Counts| c.input_tokens + c.output_tokens;
        t(&b.1).cmp(&t(&a.1)).then(a.0.cmp(b.0))
    });
    ranked.truncate(top);
    let keep: BTreeSet<&str> = ranked.iter().map(|(k, _)| *k).collect();
    let mut buckets: BTreeMap<i64, BTreeMap<&str, Counts>> = BTreeMap::new();
    for (m, k, c) in rows {
        let g = group_by.of(k);
        if keep.contains(g) {
            let b = from + (m - from).div_euclid(step) * step;
            buckets.entry(b).or_default().entry(g).or_default().add(c);
        }
    }
    json!({
        "top": ranked.iter().map(|(k, c)| {
            let mut v = c.json();
            v["key"] = json!(k);
            v
        }).collect::<Vec<_>>(),
        "timeline": buckets.iter().map(|(b, groups)| json!({
            "ts": minute_rfc3339(*b),
            "values": groups.iter().map(|(g, c)| (g.to_string(), c.json())).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
    })
}

/// `GET /admin/usage?group_by=consumer|model|project|tenant|key&top=N&from=..&to=..&step=1h`: `from` and
/// `to` are RFC 3339 or Unix seconds (default: the last 24 hours), `step` a duration (`5m`,
/// `1h`, `1d`; default 1h). Reads Redis when configured (all instances), else this instance.
pub async fn query_api(
    store: &Rollups,
    redis: Option<&crate::config::RedisSettings>,
    instance: &str,
    query: &str,
    now_ms: i64,
) -> Result<Value, String> {
    let params: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let group_by = match params.get("group_by") {
        None => GroupBy::Consumer,
        Some(g) => {
            GroupBy::parse(g).ok_or("group_by must be consumer, model, project, tenant or key")?
        }
    };
    let top: usize = match params.get("top") {
        None => 10,
        Some(t) => t
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or("top must be a positive number")?,
    };
    let now_min = now_ms.div_euclid(60_000);
    let to = params
        .get("to")
        .map(|t| parse_time(t))
        .transpose()?
        .unwrap_or(now_min + 1);
    let from = params
        .get("from")
        .map(|t| parse_time(t))
        .transpose()?
        .unwrap_or(to - 24 * 60);
    if from >= to {
        return Err("from must be before to".into());
    }
    if to - from > RETENTION_MINUTES {
        return Err(format!(
            "the range may span at most {} days",
            RETENTION_MINUTES / 1440
        ));
    }
    let step = match params.get("step") {
        None => 60,
        Some(s) => {
            let d = humantime::parse_duration(s)
                .map_err(|_| "step must be a duration like 5m, 1h or 1d")?;
            (d.as_secs() / 60) as i64
        }
    };
    if step < 1 {
        return Err("step must be at least 1m".into());
    }
    let (rows, source) = match redis {
        None => (store.local_rows(from, to), "local".to_string()),
        Some(r) => match shared(store, r, instance, from, to).await {
            Ok(rows) => (rows, "redis".to_string()),
            Err(e) => (
                store.local_rows(from, to),
                format!("local (redis unavailable: {e})"),
            ),
        },
    };
    let mut v = summarize(&rows, group_by, top, from, step);
    v["group_by"] = json!(params.get("group_by").copied().unwrap_or("consumer"));
    v["from"] = json!(minute_rfc3339(from));
    v["to"] = json!(minute_rfc3339(to));
    v["step_minutes"] = json!(step);
    v["source"] = json!(source);
    Ok(v)
}

async fn shared(
    store: &Rollups,
    r: &crate::config::RedisSettings,
    instance: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Row>, String> {
    let work = async {
        let client = crate::store::primary(r).await?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(r.timeout))
            .set_response_timeout(Some(r.timeout * 10));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        store
            .shared_rows(&mut conn, &r.key_prefix, instance, from, to)
            .await
    };
    match tokio::time::timeout(r.timeout * 20, work).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// RFC 3339 or Unix seconds → minute number.
fn parse_time(t: &str) -> Result<i64, String> {
    let decoded = t.replace("%3A", ":").replace("%2B", "+");
    if let Ok(secs) = decoded.parse::<i64>() {
        return Ok(secs.div_euclid(60));
    }
    decoded
        .parse::<jiff::Timestamp>()
        .map(|ts| ts.as_second().div_euclid(60))
        .map_err(|_| format!("`{t}` is not an RFC 3339 time or Unix seconds"))
}

pub fn minute_rfc3339(minute: i64) -> String {
    jiff::Timestamp::from_second(minute * 60)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str, p: &str, m: &str) -> Key {
        Key {
            consumer: c.into(),
            project: p.into(),
            model: m.into(),
            tenant: String::new(),
            key: String::new(),
        }
    }

    fn counts(input: u64, output: u64) -> Counts {
        Counts {
            requests: 1,
            input_tokens: input,
            output_tokens: output,
            cost_micros: input + 2 * output,
            errors: 0,
        }
    }

    #[test]
    fn rollups_rank_by_tokens_and_bucket_by_step() {
        let s = Rollups::default();
        let t0 = 1_795_327_200_000; // a whole hour
        s.record(t0, key("a", "search", "chat"), counts(10, 5));
        s.record(t0 + 61_000, key("a", "search", "embed"), counts(100, 0));
        s.record(t0 + 3_600_000, key("b", "ads", "chat"), counts(1, 1));
        let from = t0 / 60_000;
        let rows = s.local_rows(from, from + 120);
        let v = summarize(&rows, GroupBy::Consumer, 10, from, 60);
        assert_eq!(v["top"][0]["key"], "a");
        assert_eq!(v["top"][0]["tokens"], 115);
        assert_eq!(v["top"][0]["requests"], 2);
        assert_eq!(v["top"][1]["key"], "b");
        assert_eq!(v["timeline"].as_array().unwrap().len(), 2);
        assert_eq!(v["timeline"][0]["values"]["a"]["input_tokens"], 110);
        let v = summarize(&rows, GroupBy::Model, 1, from, 60);
        assert_eq!(v["top"].as_array().unwrap().len(), 1);
        assert_eq!(v["top"][0]["key"], "embed");
        let v = summarize(&rows, GroupBy::Project, 5, from, 60);
        assert_eq!(v["top"][0]["key"], "search");
    }

    #[test]
    fn counts_round_trip_through_their_redis_encoding() {
        let c = counts(7, 9);
        assert_eq!(Counts::decode(&c.encode()), Some(c));
        assert_eq!(Counts::decode("1,2"), None);
    }
}
