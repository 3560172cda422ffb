//! Four gateway processes behind a connection-alternating relay, sharing a limit through a
//! Sentinel group (a primary, a replica, three sentinels), offered twice the limit while the
//! primary is killed: the overshoot against the documented bound, how long until every
//! instance follows the promoted primary, and that no request is lost.

use crate::harness::*;
use crate::limits::{limits_config, LIMITS_VIEW};
use crate::redis_sentinel::Group;
use std::time::{Duration, Instant};

const INSTANCES: usize = 4;
const LIMIT: usize = 40;
const INTERVAL_MS: u64 = 100;

#[tokio::test]
async fn four_instances_share_a_limit_through_a_sentinel_failover() {
    let mut group = Group::start();
    let section = group.section(INTERVAL_MS);
    let mock = mock();
    let config = limits_config(&mock.url(), &format!("{{ rpm = {LIMIT} }}"), &section);
    let gws: Vec<Gateway> = (0..INSTANCES)
        .map(|_| Gateway::start_raw("", &config))
        .collect();
    for gw in &gws {
        gw.wait_metric("tollgate_ratelimit_store_up", &[("store", "redis")], 1.0)
            .await;
    }
    let backends = gws
        .iter()
        .map(|g| g.api.trim_start_matches("http://").to_string())
        .collect();
    let relay = alternating_relay(backends).await;
    // A fresh connection per request: the relay sends each to the next instance.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    // Twice the limit, one request every 50 ms; the primary dies halfway.
    let minute_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if minute_start + 12 >= 60 {
        tokio::time::sleep(Duration::from_secs(60 - minute_start + 1)).await;
    }
    let started = Instant::now();
    let mut admitted = 0;
    let mut killed_at = None;
    for i in 0..2 * LIMIT {
        if i == LIMIT {
            group.primary.kill();
            killed_at = Some(Instant::now());
        }
        let r = fresh
            .post(format!("{relay}/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("x-mock", "prompt_tokens=10,tokens=5")
            .json(&chat_body("chat", false))
            .send()
            .await
            .expect("every request answered");
        match r.status().as_u16() {
            200 => admitted += 1,
            429 => {}
            other => panic!("request {i}: unexpected status {other}"),
        }
        r.bytes().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    // Every instance follows the promoted replica.
    let after = format!("127.0.0.1:{}", group.replica.port);
    for gw in &gws {
        gw.wait_metric("tollgate_store_primary", &[("address", &after)], 1.0)
            .await;
        gw.wait_metric("tollgate_ratelimit_store_up", &[("store", "redis")], 1.0)
            .await;
    }
    let followed = killed_at.map_or(0.0, |k| k.elapsed().as_secs_f64());
    // docs/limits.md's bound, and what the switch adds: while no instance can sync, each
    // decides on the others' last known counts, so up to (N - 1) × r × the switch.
    let r = (2 * LIMIT) as f64 / INSTANCES as f64 / secs;
    let n1 = (INSTANCES - 1) as f64;
    let bound = (n1 * r * 2.0 * 2.0 * INTERVAL_MS as f64 / 1000.0).ceil() as usize;
    let switch = (n1 * r * followed).ceil() as usize;
    eprintln!(
        "four instances, sentinel failover: admitted {admitted} of {} offered in {secs:.1} s; limit {LIMIT}, sync bound {bound}, switch allowance {switch}; every instance followed within {followed:.1} s of the kill; no request lost",
        2 * LIMIT
    );
    assert!(admitted >= LIMIT, "admitted {admitted} < limit {LIMIT}");
    assert!(
        admitted <= LIMIT + bound + switch,
        "admitted {admitted}, limit {LIMIT}, bound {bound} + {switch}"
    );
    // After the switch the instances agree on the count: the new primary holds what was
    // replicated, and each instance's absolute count repairs the rest (nothing twice).
    let used = |v: &serde_json::Value| v["scopes"][0]["rpm"]["used"].as_f64();
    for gw in &gws {
        gw.wait_admin(LIMITS_VIEW, "converged", |v| {
            used(v) == Some(admitted as f64)
        })
        .await;
    }
}
