//! A pool's membership and health: replicas listed beside the base URL, a session header
//! that keeps a conversation on its replica, per-replica active health checks, and a pool
//! that follows its name's addresses as they change (survivors keep their prefixes).

use crate::fleet::{fleet, Fleet};
use crate::harness::*;
use serde_json::json;
use std::collections::HashSet;

fn chat_model() -> &'static str {
    "[[models]]\nname = \"chat\"\ntargets = [{ provider = \"fleet\", model = \"up\" }]\n"
}

fn prompt(tag: &str) -> serde_json::Value {
    json!({"model": "chat", "messages": [{"role": "user",
        "content": format!("{tag}: {}", "tell me more about it. ".repeat(40))}]})
}

/// Which replicas (indexes into the fleet) served requests whose prompt starts with `tag`.
fn served_by(f: &Fleet, tag: &str) -> HashSet<usize> {
    f.replicas
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.requests().iter().any(|q| {
                q.json().is_some_and(|v| {
                    v["messages"][0]["content"]
                        .as_str()
                        .is_some_and(|c| c.starts_with(&format!("{tag}:")))
                })
            })
        })
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test]
async fn listed_replicas_form_a_pool_and_a_session_header_keeps_a_conversation_on_one() {
    let f = fleet();
    // No strategy: replicas make it a pool, picked by prefix affinity.
    let url = format!("http://127.0.0.2:{}/v1", f.port);
    let extra = format!(
        "replicas = [\"127.0.0.3:{p}\", \"http://127.0.0.4:{p}\"]\nsession_header = \"x-session-id\"",
        p = f.port
    );
    let body = format!(
        "{}{}",
        provider_toml("fleet", "openai", &url, &extra),
        chat_model()
    );
    let gw = Gateway::start_with(&body, "");
    // Unrelated prompts, one session: one replica.
    for i in 0..6 {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("x-session-id", "conversation-a")
            .json(&prompt(&format!("s{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let in_session: HashSet<usize> = (0..6)
        .flat_map(|i| served_by(&f, &format!("s{i}")))
        .collect();
    assert_eq!(in_session.len(), 1, "the session stayed: {in_session:?}");
    // Unrelated prompts without one spread over the other two
    for i in 0..6 {
        let r = post(&gw, "/v1/chat/completions", &prompt(&format!("n{i}"))).await;
        assert_eq!(r.status(), 200);
    }
    let spread: HashSet<usize> = (0..6)
        .flat_map(|i| served_by(&f, &format!("n{i}")))
        .collect();
    // (each to the replica remembering least: the two the session did not fill).
    assert_eq!(spread.len(), 2, "{spread:?}");
    let all: HashSet<usize> = spread.union(&in_session).copied().collect();
    assert_eq!(all.len(), 3, "every listed replica serves: {all:?}");
    assert!(
        f.replicas[3].requests().is_empty(),
        "127.0.0.5 is not in the pool"
    );
}

#[tokio::test]
async fn a_replica_failing_its_health_check_gets_no_request() {
    let f = fleet();
    // 127.0.0.6 has nothing listening: its check fails before any request is sent.
    let url = format!("http://127.0.0.2:{}/v1", f.port);
    let extra = format!(
        "replicas = [\"127.0.0.3:{p}\", \"127.0.0.6:{p}\"]\n\
         [providers.health_check]\npath = \"/models\"\ninterval_ms = 200\ntimeout_ms = 500",
        p = f.port
    );
    let body = format!(
        "{}{}",
        provider_toml("fleet", "openai", &url, &extra),
        chat_model()
    );
    let gw = Gateway::start_with(&body, "");
    let dead = format!("127.0.0.6:{}", f.port);
    let labels = [("provider", "fleet"), ("endpoint", dead.as_str())];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let m = gw.metrics().await;
        if metric(&m, "tollgate_endpoint_ejections_total", &labels) >= 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never ejected: {m}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for i in 0..20 {
        let r = post(&gw, "/v1/chat/completions", &prompt(&format!("h{i}"))).await;
        assert_eq!(r.status(), 200, "request {i}");
    }
    let lines = gw.wait_log_lines(20).await;
    let tried: usize = lines
        .iter()
        .flat_map(|l| l["attempt_log"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["outcome"] != "ok")
        .count();
    assert_eq!(tried, 0, "no attempt met the dead replica: {lines:?}");
    let m = gw.metrics().await;
    assert_eq!(
        metric(&m, "tollgate_endpoint_picks_total", &labels),
        0.0,
        "{m}"
    );
    // The provider itself stays up: two of its replicas pass.
    let served: usize = f
        .replicas
        .iter()
        .map(|r| r.requests().iter().filter(|q| q.json().is_some()).count())
        .sum();
    assert_eq!(served, 20, "chat requests, beside the health checks' GETs");
}

#[tokio::test]
async fn the_pool_follows_its_names_addresses_and_survivors_keep_their_prefixes() {
    let f = fleet();
    std::fs::write(&f.hosts, "127.0.0.2 fleet.test\n127.0.0.3 fleet.test\n").unwrap();
    let url = format!("http://fleet.test:{}/v1", f.port);
    let extra = "strategy = \"prefix_affinity\"\nslow_start_ms = 1";
    let body = format!(
        "{}{}",
        provider_toml("fleet", "openai", &url, extra),
        chat_model()
    );
    let server = format!(
        "hosts_file = \"{}\"\nresolve_interval_ms = 100",
        f.hosts.display()
    );
    let gw = Gateway::start_with(&body, &server);
    for c in 0..4 {
        let r = post(&gw, "/v1/chat/completions", &prompt(&format!("c{c}"))).await;
        assert_eq!(r.status(), 200);
    }
    let before: Vec<HashSet<usize>> = (0..4).map(|c| served_by(&f, &format!("c{c}"))).collect();
    // Two replicas join the name.
    std::fs::write(
        &f.hosts,
        "127.0.0.2 fleet.test\n127.0.0.3 fleet.test\n127.0.0.4 fleet.test\n127.0.0.5 fleet.test\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let m = gw.metrics().await;
        if metric(&m, "tollgate_upstream_addresses", &[("provider", "fleet")]) == 4.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never re-resolved: {m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Each conversation's next turn goes back to the replica holding its prefix.
    for c in 0..4 {
        let r = post(&gw, "/v1/chat/completions", &prompt(&format!("c{c}"))).await;
        assert_eq!(r.status(), 200);
    }
    for (c, was) in before.iter().enumerate() {
        assert_eq!(
            &served_by(&f, &format!("c{c}")),
            was,
            "conversation {c} moved"
        );
    }
    // New prompts reach the joiners.
    for i in 0..8 {
        let r = post(&gw, "/v1/chat/completions", &prompt(&format!("j{i}"))).await;
        assert_eq!(r.status(), 200);
    }
    let joined: usize = f.replicas[2..].iter().map(|r| r.requests().len()).sum();
    assert!(joined >= 2, "the joiners took new prompts: {joined}");
}
