//! A provider as a pool of replicas: four mock replicas on 127.0.0.2–5 behind one name (a
//! hosts file the test writes), picked per request by the provider's `strategy`. With
//! `prefix_affinity` every turn of a conversation goes back to the replica that has its prefix;
//! with `round_robin` the turns spread.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

pub const REPLICAS: u8 = 4;

pub struct Fleet {
    pub replicas: Vec<MockServer>,
    pub port: u16,
    _dir: tempfile::TempDir,
    pub hosts: std::path::PathBuf,
}

/// Four mock replicas on 127.0.0.2–5 at one port, and a hosts file naming them all
/// `fleet.test`.
pub fn fleet() -> Fleet {
    let first = MockServer::start_at(SocketAddr::from(([127, 0, 0, 2], 0)), Script::default())
        .expect("first replica");
    let port = first.addr.port();
    let mut replicas = vec![first];
    for i in 3..2 + REPLICAS {
        replicas.push(
            MockServer::start_at(SocketAddr::from(([127, 0, 0, i], port)), Script::default())
                .expect("replica on the same port"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let lines: String = (2..2 + REPLICAS)
        .map(|i| format!("127.0.0.{i} fleet.test\n"))
        .collect();
    std::fs::write(&hosts, lines).unwrap();
    Fleet {
        replicas,
        port,
        _dir: dir,
        hosts,
    }
}

fn gateway(f: &Fleet, strategy: &str) -> Gateway {
    let url = format!("http://fleet.test:{}/v1", f.port);
    let body =
        format!(
        "{}[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"fleet\", model = \"up\" }}]\n",
        provider_toml("fleet", "openai", &url, &format!("strategy = \"{strategy}\"")),
    );
    Gateway::start_with(&body, &format!("hosts_file = \"{}\"", f.hosts.display()))
}

/// Seven conversations of four turns each (seven: round robin must not bring a conversation
/// back to its replica by the count alone), a long system prompt apiece; which replicas served
/// each conversation.
async fn converse(gw: &Gateway, f: &Fleet) -> HashMap<usize, HashSet<usize>> {
    for turn in 0..4 {
        for c in 0..7 {
            let mut messages = vec![json!({"role": "system",
                "content": format!("conversation {c}: {}", "you are a careful assistant. ".repeat(40))})];
            for t in 0..=turn {
                messages.push(json!({"role": "user", "content": format!("question {t}")}));
                if t < turn {
                    messages.push(json!({"role": "assistant", "content": format!("answer {t}")}));
                }
            }
            let body = json!({"model": "chat", "messages": messages, "max_tokens": 8 + turn});
            let r = post(gw, "/v1/chat/completions", &body).await;
            assert_eq!(r.status(), 200);
        }
    }
    let mut served: HashMap<usize, HashSet<usize>> = HashMap::new();
    for (i, replica) in f.replicas.iter().enumerate() {
        for req in replica.requests() {
            let Some(v) = req.json() else { continue };
            let system = v["messages"][0]["content"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let c: usize = system
                .strip_prefix("conversation ")
                .and_then(|s| s.split(':').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            served.entry(c).or_default().insert(i);
        }
    }
    served
}

#[tokio::test]
async fn prefix_affinity_keeps_each_conversation_on_one_replica_and_uses_them_all() {
    let f = fleet();
    let gw = gateway(&f, "prefix_affinity");
    let served = converse(&gw, &f).await;
    assert_eq!(served.len(), 7, "{served:?}");
    for (c, replicas) in &served {
        assert_eq!(replicas.len(), 1, "conversation {c} moved: {replicas:?}");
    }
    let used: HashSet<usize> = served.values().flatten().copied().collect();
    assert!(
        used.len() >= 3,
        "the conversations spread over the pool: {used:?}"
    );
    let total: usize = f.replicas.iter().map(|r| r.requests().len()).sum();
    assert_eq!(total, 28);
    // A pick is released when its request's last phase ends, which may be just after the
    // client has read the answer: every replica's in-flight count comes back to 0.
    for i in 2..2 + REPLICAS {
        let endpoint = format!("127.0.0.{i}:{}", f.port);
        let labels = [("provider", "fleet"), ("endpoint", endpoint.as_str())];
        gw.wait_metric("tollgate_endpoint_in_flight", &labels, 0.0)
            .await;
    }
    let m = gw.metrics().await;
    let picks: f64 = (2..2 + REPLICAS)
        .map(|i| {
            let endpoint = format!("127.0.0.{i}:{}", f.port);
            let labels = [("provider", "fleet"), ("endpoint", endpoint.as_str())];
            metric(&m, "tollgate_endpoint_picks_total", &labels)
        })
        .sum();
    assert_eq!(picks, 28.0, "{m}");
    let tokens = |kind| {
        metric(
            &m,
            "tollgate_endpoint_prefix_tokens_total",
            &[("provider", "fleet"), ("kind", kind)],
        )
    };
    // Turns 2–4 of each conversation find their history (to the nearest 128 tokens): about
    // half of all prompt tokens; nothing would match without the affinity.
    assert!(tokens("matched") > 0.3 * tokens("prompt"), "{m}");
}

#[tokio::test]
async fn round_robin_spreads_each_conversation() {
    let f = fleet();
    let gw = gateway(&f, "round_robin");
    let served = converse(&gw, &f).await;
    let moved = served.values().filter(|r| r.len() > 1).count();
    assert_eq!(moved, 7, "round robin moves every conversation: {served:?}");
    let per: Vec<usize> = f.replicas.iter().map(|r| r.requests().len()).collect();
    assert_eq!(per, [7, 7, 7, 7], "each replica in turn");
}

#[tokio::test]
async fn a_misspelt_strategy_is_a_config_error_naming_the_field() {
    let cfg =
        format!(
        "{}[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"fleet\", model = \"up\" }}]\n{}",
        provider_toml("fleet", "openai", "http://127.0.0.1:9/v1", "strategy = \"prefix\""),
        consumers()
    );
    let err = tollgate::config::parse_with_env(&cfg, &|_| None).unwrap_err();
    let text: Value = json!(err.errors);
    assert!(
        text.to_string().contains("providers[0].strategy must be"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_replica_is_ejected_and_its_request_goes_to_another_in_place() {
    let f = fleet();
    // A fifth address in the pool where nothing listens.
    let mut hosts = std::fs::read_to_string(&f.hosts).unwrap();
    hosts.push_str("127.0.0.6 fleet.test\n");
    std::fs::write(&f.hosts, hosts).unwrap();
    let url = format!("http://fleet.test:{}/v1", f.port);
    // No retries configured, and one target: the request that meets the dead replica is
    // passed to another replica of the pool in place.
    let body = format!(
        "{}[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"fleet\", model = \"up\" }}]\n",
        provider_toml("fleet", "openai", &url, "strategy = \"prefix_affinity\""),
    );
    let gw = Gateway::start_with(&body, &format!("hosts_file = \"{}\"", f.hosts.display()));
    for i in 0..20 {
        let body = json!({"model": "chat", "messages": [{"role": "user",
            "content": format!("prompt {i}: {}", "tell me more. ".repeat(60))}]});
        let r = post(&gw, "/v1/chat/completions", &body).await;
        assert_eq!(r.status(), 200, "request {i}");
    }
    let lines = gw.wait_log_lines(20).await;
    let refused: usize = lines
        .iter()
        .flat_map(|l| l["attempt_log"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["outcome"] == "connect_refused")
        .count();
    assert!(
        refused <= 1,
        "the dead replica is tried once, then sits out: {refused}"
    );
    let served: usize = f.replicas.iter().map(|r| r.requests().len()).sum();
    assert_eq!(served, 20);
    let dead = format!("127.0.0.6:{}", f.port);
    let labels = [("provider", "fleet"), ("endpoint", dead.as_str())];
    let m = gw.metrics().await;
    assert_eq!(
        metric(&m, "tollgate_endpoint_ejections_total", &labels),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "tollgate_endpoint_in_flight", &labels),
        0.0,
        "{m}"
    );
}
