//! Limits shared through a real `redis-server`: no Redis call per request, two instances
//! under one limit, Redis dying under each failure policy, and convergence after it returns.

use crate::harness::*;
use crate::limits::{chat, limits_config, rpm_is_exact, LIMITS_VIEW};
use crate::redis_server::RedisServer;
use std::time::{Duration, Instant};

fn redis_section(r: &RedisServer, interval_ms: u64, on_failure: &str) -> String {
    format!(
        "[redis]\nurl = \"{}\"\nsync_interval_ms = {interval_ms}\non_failure = \"{on_failure}\"\n",
        r.url()
    )
}

async fn wait_store(gw: &Gateway, up: bool) {
    gw.wait_metric(
        "tollgate_ratelimit_store_up",
        &[("store", "redis")],
        if up { 1.0 } else { 0.0 },
    )
    .await;
}

/// Rate windows are wall-clock minutes: start a timing-sensitive run early in a minute so
/// the previous minute's weight does not enter the count.
async fn start_of_a_minute(run_secs: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = now.as_secs() % 60;
    if into + run_secs + 2 >= 60 {
        tokio::time::sleep(Duration::from_secs(60 - into + 1)).await;
    }
}

#[tokio::test]
async fn rpm_is_exact_on_one_instance_with_redis() {
    let redis = RedisServer::start();
    rpm_is_exact(Some(&redis_section(&redis, 100, "local"))).await;
}

#[tokio::test]
async fn a_stalled_redis_does_not_stall_requests() {
    let redis = RedisServer::start();
    let mock = mock();
    let gw = Gateway::start_raw(
        "",
        &limits_config(
            &mock.url(),
            "{ rpm = 1000 }",
            &redis_section(&redis, 100, "local"),
        ),
    );
    wait_store(&gw, true).await;
    // Redis holds every command for 3 s: sync round trips time out after 100 ms.
    redis.pause(3_000);
    wait_store(&gw, false).await;
    for _ in 0..5 {
        let r = chat(&gw, 1, false, "").await;
        assert_eq!(r.status(), 200, "requests go on while Redis is stalled");
        r.bytes().await.unwrap();
    }
    let still_paused = metric(
        &gw.metrics().await,
        "tollgate_ratelimit_store_up",
        &[("store", "redis")],
    );
    assert_eq!(still_paused, 0.0, "all five were served during the pause");
    wait_store(&gw, true).await;
}

#[tokio::test]
async fn requests_make_no_redis_calls() {
    let redis = RedisServer::start();
    let mock = mock();
    // One sync at start, the next a minute later: any command seen meanwhile is a request's.
    let gw = Gateway::start_raw(
        "",
        &limits_config(
            &mock.url(),
            "{ rpm = 1000, tpm = 1000000, concurrency = 50 }",
            &redis_section(&redis, 60_000, "local"),
        ),
    );
    wait_store(&gw, true).await;
    let syncs = metric(&gw.metrics().await, "tollgate_ratelimit_syncs_total", &[]);
    let before = redis.commands_processed();
    for _ in 0..40 {
        let r = chat(&gw, 10, false, "").await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    gw.wait_log_lines(40).await;
    let after = redis.commands_processed();
    assert_eq!(
        metric(&gw.metrics().await, "tollgate_ratelimit_syncs_total", &[]),
        syncs,
        "no sync ran during the requests"
    );
    assert_eq!(
        after - before,
        1,
        "only our own INFO reached Redis while 40 requests were limited"
    );
}

#[tokio::test]
async fn two_instances_admit_no_more_than_the_limit_plus_the_bound() {
    let redis = RedisServer::start();
    let mock = mock();
    const LIMIT: usize = 30;
    const INTERVAL_MS: u64 = 100;
    let config = limits_config(
        &mock.url(),
        &format!("{{ rpm = {LIMIT} }}"),
        &redis_section(&redis, INTERVAL_MS, "local"),
    );
    let a = Gateway::start_raw("", &config);
    let b = Gateway::start_raw("", &config);
    wait_store(&a, true).await;
    wait_store(&b, true).await;

    // Offer twice the limit, alternating instances, every 40 ms (12.5 req/s per instance).
    start_of_a_minute(6).await;
    let started = Instant::now();
    let mut admitted = 0;
    for i in 0..2 * LIMIT {
        let gw = if i % 2 == 0 { &a } else { &b };
        let r = chat(gw, 1, false, "").await;
        match r.status().as_u16() {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
        r.bytes().await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    // docs/limits.md's bound: (instances - 1) × per-instance rate × 2 × (sync interval + timeout),
    // the timeout being the interval by default.
    let per_instance_rate = (2 * LIMIT) as f64 / 2.0 / secs;
    let bound = (per_instance_rate * 2.0 * 2.0 * INTERVAL_MS as f64 / 1000.0).ceil() as usize;
    eprintln!("two instances: admitted {admitted} of {} offered in {secs:.2} s; limit {LIMIT}, bound {bound}", 2 * LIMIT);
    assert!(
        admitted >= LIMIT && admitted <= LIMIT + bound,
        "admitted {admitted}, limit {LIMIT}, bound {bound}"
    );
}

async fn redis_dies_mid_run(policy: &str) {
    let mut redis = RedisServer::start();
    let mock = mock();
    let gw = Gateway::start_raw(
        "",
        &limits_config(
            &mock.url(),
            "{ rpm = 4 }",
            &redis_section(&redis, 100, policy),
        ),
    );
    wait_store(&gw, true).await;
    start_of_a_minute(8).await;
    for _ in 0..2 {
        let r = chat(&gw, 1, false, "").await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    redis.kill();
    wait_store(&gw, false).await;
    let ready = gw.admin_json("/readyz").await;
    assert_eq!(ready["status"], "degraded", "{ready}");

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = chat(&gw, 1, false, "").await;
        statuses.push(r.status().as_u16());
        if r.status() == 503 {
            assert_eq!(r.headers()["x-should-retry"], "true");
            let e: serde_json::Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], "rate_limit_store_unavailable");
        } else {
            r.bytes().await.unwrap();
        }
    }
    let expected = match policy {
        // This instance's own counts still bind: 2 more fit under 4.
        "local" => vec![200, 200, 429, 429],
        "open" => vec![200, 200, 200, 200],
        _ => vec![503, 503, 503, 503],
    };
    assert_eq!(statuses, expected, "on_failure = {policy}");
    assert!(
        metric(
            &gw.metrics().await,
            "tollgate_ratelimit_store_degraded_decisions_total",
            &[]
        ) >= 4.0
    );

    redis.restart();
    wait_store(&gw, true).await;
    let ready = gw.admin_json("/readyz").await;
    assert_eq!(ready["status"], "ready");
    let down_lines = gw.stderr().matches("rate-limit store down").count();
    assert_eq!(
        down_lines,
        1,
        "one log line per state change:\n{}",
        gw.stderr()
    );
}

#[tokio::test]
async fn redis_dies_mid_run_with_local_policy() {
    redis_dies_mid_run("local").await;
}

#[tokio::test]
async fn redis_dies_mid_run_with_open_policy() {
    redis_dies_mid_run("open").await;
}

#[tokio::test]
async fn redis_dies_mid_run_with_closed_policy() {
    redis_dies_mid_run("closed").await;
}

#[tokio::test]
async fn counts_converge_after_redis_returns_without_double_counting() {
    let mut redis = RedisServer::start();
    let mock = mock();
    let config = limits_config(
        &mock.url(),
        "{ tokens_per_day = 100000 }",
        &redis_section(&redis, 100, "local"),
    );
    let a = Gateway::start_raw("", &config);
    let b = Gateway::start_raw("", &config);
    wait_store(&a, true).await;
    wait_store(&b, true).await;
    let used = |v: &serde_json::Value| v["scopes"][0]["tokens_per_day"]["used"].as_f64();

    for _ in 0..4 {
        chat(&a, 10, false, "").await.bytes().await.unwrap();
    }
    // B sees A's 4 × 15 tokens through Redis.
    b.wait_admin(LIMITS_VIEW, "B sees A", |v| used(v) == Some(60.0))
        .await;

    // Redis dies and comes back empty; A served 2 more meanwhile.
    redis.kill();
    wait_store(&a, false).await;
    for _ in 0..2 {
        chat(&a, 10, false, "").await.bytes().await.unwrap();
    }
    redis.restart();
    wait_store(&a, true).await;
    wait_store(&b, true).await;
    // Exactly 6 × 15 everywhere: rebuilt from the instances' own absolute counts.
    b.wait_admin(LIMITS_VIEW, "B converged", |v| used(v) == Some(90.0))
        .await;
    a.wait_admin(LIMITS_VIEW, "A converged", |v| used(v) == Some(90.0))
        .await;
    // And it stays exact over further ticks (nothing re-added).
    for gw in [&a, &b] {
        let syncs = metric(&gw.metrics().await, "tollgate_ratelimit_syncs_total", &[]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while metric(&gw.metrics().await, "tollgate_ratelimit_syncs_total", &[]) < syncs + 3.0 {
            assert!(Instant::now() < deadline, "syncs stopped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(used(&b.admin_json(LIMITS_VIEW).await), Some(90.0));
    assert_eq!(used(&a.admin_json(LIMITS_VIEW).await), Some(90.0));
}
