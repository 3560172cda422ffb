//! `GET /admin/usage`: which tier answers a range and step, the rows (this instance's, or every
//! instance's from Redis), and their top-N and timeline.

use super::rollups::{Rollups, Tier};
use super::{Counts, Key, Row};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    let tier = tier_for(now_min, from, step)?;
    let (from, to) = (tier.bucket(from), tier.bucket(to - 1) + tier.width());
    let (rows, source) = match redis {
        None => (store.local_rows(tier, from, to), "local".to_string()),
        Some(r) => match shared(store, r, instance, (tier, from, to)).await {
            Ok(rows) => (rows, "redis".to_string()),
            Err(e) => (
                store.local_rows(tier, from, to),
                format!("local (redis unavailable: {e})"),
            ),
        },
    };
    let mut v = summarize(&rows, group_by, top, from, step);
    v["group_by"] = json!(params.get("group_by").copied().unwrap_or("consumer"));
    v["from"] = json!(minute_rfc3339(from));
    v["to"] = json!(minute_rfc3339(to));
    v["step_minutes"] = json!(step);
    v["tier"] = json!(tier.name());
    v["source"] = json!(source);
    Ok(v)
}

async fn shared(
    store: &Rollups,
    r: &crate::config::RedisSettings,
    instance: &str,
    span: (Tier, i64, i64),
) -> Result<Vec<Row>, String> {
    let work = async {
        let mut conn = crate::store::connect(r, r.timeout * 10).await?;
        store
            .shared_rows(&mut conn, &r.key_prefix, instance, span)
            .await
    };
    match tokio::time::timeout(r.timeout * 20, work).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// The finest tier whose buckets divide `step` and that still holds `from`.
fn tier_for(now: i64, from: i64, step: i64) -> Result<Tier, String> {
    Tier::ALL
        .into_iter()
        .find(|t| step % t.width() == 0 && from > now - t.keep() * t.width())
        .ok_or_else(|| {
            "no usage kept at that step that far back: minutes for a day, hours for 31 days, days for 366 days (step 1h or 1d for older ranges)".to_string()
        })
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
        for tier in [Tier::Minute, Tier::Hour] {
            let rows = s.local_rows(tier, from, from + 120);
            let v = summarize(&rows, GroupBy::Consumer, 10, from, 60);
            assert_eq!(v["top"][0]["key"], "a");
            assert_eq!(v["top"][0]["tokens"], 115);
            assert_eq!(v["top"][0]["requests"], 2);
            assert_eq!(v["top"][1]["key"], "b");
            assert_eq!(v["timeline"].as_array().unwrap().len(), 2);
            assert_eq!(v["timeline"][0]["values"]["a"]["input_tokens"], 110);
        }
        let rows = s.local_rows(Tier::Minute, from, from + 120);
        let v = summarize(&rows, GroupBy::Model, 1, from, 60);
        assert_eq!(v["top"].as_array().unwrap().len(), 1);
        assert_eq!(v["top"][0]["key"], "embed");
        let v = summarize(&rows, GroupBy::Project, 5, from, 60);
        assert_eq!(v["top"][0]["key"], "search");
    }

    #[test]
    fn a_query_is_answered_by_the_finest_tier_that_holds_its_range() {
        let now = 30_000_000;
        assert_eq!(tier_for(now, now - 60, 5), Ok(Tier::Minute));
        assert_eq!(tier_for(now, now - 3 * 1440, 60), Ok(Tier::Hour));
        assert_eq!(tier_for(now, now - 3 * 1440, 1440), Ok(Tier::Hour));
        assert_eq!(tier_for(now, now - 60 * 1440, 1440), Ok(Tier::Day));
        assert!(
            tier_for(now, now - 3 * 1440, 5).is_err(),
            "minutes are kept a day"
        );
        assert!(tier_for(now, now - 400 * 1440, 1440).is_err());
    }
}
