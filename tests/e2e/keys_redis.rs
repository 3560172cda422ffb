//! The key table shared through a real `redis-server` by two gateway instances: creations,
//! rotations, revocations and expiries reach the other instance within the documented bound;
//! with Redis down existing keys keep working and new ones are refused with 503; when Redis
//! comes back (empty) the instances write their table back and converge; authenticating
//! never sends a command to Redis.

use crate::harness::*;
use crate::keys::{admin, chat_with};
use crate::redis_server::RedisServer;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `sync_interval_ms` of these tests (the default) and the sync timeout (it defaults to it).
const INTERVAL_MS: u64 = 200;
/// The documented bound: a change is live everywhere within one interval plus one timeout,
/// even when the change announcement is lost.
const BOUND: Duration = Duration::from_millis(2 * INTERVAL_MS);
/// What one test request may add on a loaded machine.
const REQUEST_SLACK: Duration = Duration::from_millis(300);

fn start(redis: &RedisServer, interval_ms: u64) -> Gateway {
    let rest = format!(
        "[[providers]]\nname = \"m\"\nkind = \"mock\"\n\
         [[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n{}\n\
         [admin]\ntoken_env = \"TG_ADMIN_TOKENS\"\n\
         [redis]\nurl = \"{}\"\nsync_interval_ms = {interval_ms}\n",
        consumers(),
        redis.url()
    );
    Gateway::start_raw(
        "grace_period_seconds = 0\ngraceful_shutdown_timeout_seconds = 1",
        &rest,
    )
}

async fn create(gw: &Gateway, body: Value) -> (String, String) {
    let (status, made) = admin(gw, Method::POST, "/admin/keys", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    (
        made["id"].as_str().unwrap().to_string(),
        made["key"].as_str().unwrap().to_string(),
    )
}

/// How long until `key` answers `want` on `gw` (polled every 5 ms, bounded).
async fn time_until(gw: &Gateway, key: &str, want: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if chat_with(gw, key, "chat").await == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "never {want} within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn within_bound(gw: &Gateway, key: &str, want: u16, what: &str) {
    let took = time_until(gw, key, want, Duration::from_secs(10)).await;
    eprintln!("propagation: {what} took {took:?} (bound {BOUND:?})");
    assert!(
        took <= BOUND + REQUEST_SLACK,
        "{what}: {took:?} is over the bound"
    );
}

#[tokio::test]
async fn changes_on_one_instance_reach_the_other_within_the_bound() {
    let redis = RedisServer::start();
    let a = start(&redis, INTERVAL_MS);
    let b = start(&redis, INTERVAL_MS);

    let (id, secret) = create(&a, json!({"consumer": "team-a", "name": "shared"})).await;
    assert_eq!(
        chat_with(&a, &secret, "chat").await,
        200,
        "live on A at once"
    );
    within_bound(&b, &secret, 200, "a creation").await;
    let (status, listed) = admin(&b, Method::GET, "/admin/keys?consumer=team-a", None).await;
    assert_eq!(status, 200);
    assert!(
        listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id.as_str()),
        "B lists the key: {listed}"
    );
    assert!(!listed.to_string().contains(&secret), "never the secret");

    // Rotation: the new secret reaches B; the old one works there for the grace period only.
    let (status, rotated) = admin(
        &a,
        Method::POST,
        &format!("/admin/keys/{id}/rotate"),
        Some(json!({"grace_seconds": 2})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let rotated_at = Instant::now();
    let new_secret = rotated["key"].as_str().unwrap().to_string();
    within_bound(&b, &new_secret, 200, "a rotation").await;
    assert_eq!(
        chat_with(&b, &secret, "chat").await,
        200,
        "old secret in its grace"
    );
    let old_off = time_until(&b, &secret, 401, Duration::from_secs(6)).await;
    assert!(
        rotated_at.elapsed() >= Duration::from_millis(1_000) && old_off > Duration::ZERO,
        "the old secret stopped only after the grace period"
    );
    assert_eq!(chat_with(&b, &new_secret, "chat").await, 200);

    // Revocation on A is refused on B within the bound.
    let (status, _) = admin(&a, Method::DELETE, &format!("/admin/keys/{id}"), None).await;
    assert_eq!(status, 200);
    within_bound(&b, &new_secret, 401, "a revocation").await;
    assert_eq!(chat_with(&a, &new_secret, "chat").await, 401);

    // A key that expires: works on B, then 401 on both.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (_, expiring) = create(&b, json!({"consumer": "team-a", "expires_at": now + 2})).await;
    within_bound(&a, &expiring, 200, "a creation on B").await;
    time_until(&a, &expiring, 401, Duration::from_secs(5)).await;
    assert_eq!(chat_with(&b, &expiring, "chat").await, 401, "expired");
}

#[tokio::test]
async fn with_redis_down_keys_keep_working_new_ones_are_refused_and_all_converge_after() {
    let mut redis = RedisServer::start();
    let a = start(&redis, INTERVAL_MS);
    let b = start(&redis, INTERVAL_MS);
    let (first_id, first) = create(&a, json!({"consumer": "team-a", "name": "before"})).await;
    within_bound(&b, &first, 200, "a creation").await;

    redis.kill();
    for gw in [&a, &b] {
        for _ in 0..5 {
            assert_eq!(
                chat_with(gw, &first, "chat").await,
                200,
                "existing key, Redis down"
            );
        }
        let (status, body) = admin(
            gw,
            Method::POST,
            "/admin/keys",
            Some(json!({"consumer": "team-a"})),
        )
        .await;
        assert_eq!(status, 503, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("unavailable"), "{message}");
    }

    // Redis returns empty (no persistence): the tables are written back, nothing is lost.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (_, second) = loop {
        let (status, made) = admin(
            &a,
            Method::POST,
            "/admin/keys",
            Some(json!({"consumer": "team-a", "name": "after"})),
        )
        .await;
        if status == 201 {
            break (
                made["id"].clone(),
                made["key"].as_str().unwrap().to_string(),
            );
        }
        assert!(
            Instant::now() < deadline,
            "creating never came back: {made}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // B's sync may be backing off after the outage (at most 1 s), so allow for it.
    time_until(&b, &second, 200, Duration::from_secs(3)).await;
    for gw in [&a, &b] {
        assert_eq!(
            chat_with(gw, &first, "chat").await,
            200,
            "the old key survived"
        );
    }
    // And changes flow again both ways.
    let (status, _) = admin(&b, Method::DELETE, &format!("/admin/keys/{first_id}"), None).await;
    assert_eq!(status, 200);
    within_bound(&a, &first, 401, "a revocation after the outage").await;
}

#[tokio::test]
async fn authenticating_with_an_api_key_sends_nothing_to_redis() {
    let redis = RedisServer::start();
    // A long interval: no sync tick runs while the requests are counted.
    let gw = start(&redis, 60_000);
    let (_, secret) = create(&gw, json!({"consumer": "team-a"})).await;
    assert_eq!(chat_with(&gw, &secret, "chat").await, 200);
    gw.wait_log_lines(1).await;
    // Let the ticks the creation's announcement woke finish: wait until only INFO counts.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut before = redis.commands_processed();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = redis.commands_processed();
        if now - before == 1 {
            before = now;
            break;
        }
        assert!(Instant::now() < deadline, "Redis never went quiet");
        before = now;
    }
    for _ in 0..30 {
        assert_eq!(chat_with(&gw, &secret, "chat").await, 200);
    }
    gw.wait_log_lines(31).await;
    assert_eq!(
        redis.commands_processed() - before,
        1,
        "only our own INFO reached Redis during 30 API-key requests"
    );
}
