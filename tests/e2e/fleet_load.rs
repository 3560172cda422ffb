//! The fleet end to end: `tollgate-mock --replica` processes (a prefix cache, a prefill queue
//! and vLLM's `/metrics` each) behind the gateway, multi-turn conversations streamed through
//! it. Prefix affinity against round robin on the replicas' own hit counters and the clients'
//! time to first byte; a replica killed and restarted mid-run; two gateway instances that never
//! talk, each with its own index.
//!
//! The short form runs in `cargo test`; `bash load-tests/fleet.sh` runs the long form (more
//! replicas, conversations and turns: `TOLLGATE_FLEET_SCALE`).

use crate::harness::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A replica process; killed when dropped.
struct Replica {
    child: Child,
    addr: String,
}

impl Replica {
    fn start(listen: &str) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-mock"))
            .args(["--listen", listen, "--script", "itl_ms=1,tokens=8"])
            .args([
                "--replica",
                "prefill_tok_s=20000,cache_tokens=32768,fixed_ms=5",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("tollgate-mock starts");
        let mut line = String::new();
        let out = child.stdout.take().expect("its stdout");
        BufReader::new(out)
            .read_line(&mut line)
            .expect("its address");
        let addr = line.trim().trim_start_matches("listening on ").to_string();
        assert!(addr.contains(':'), "{line}");
        Replica { child, addr }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its prefix cache's (hits, queries) in tokens, from its `/metrics`.
    async fn cache(&self) -> (f64, f64) {
        let text = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
                .unwrap_or(0.0)
        };
        (
            value("vllm:prefix_cache_hits_total"),
            value("vllm:prefix_cache_queries_total"),
        )
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The run's size: 4 replicas × `k`, 8 × `k` - 1 conversations (not a multiple of the
/// replicas, so round robin cannot bring a conversation back by the count alone) of 4 + 2(`k`-1)
/// turns.
fn scale() -> usize {
    std::env::var("TOLLGATE_FLEET_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn fleet(n: usize) -> Vec<Replica> {
    (0..n).map(|_| Replica::start("127.0.0.1:0")).collect()
}

fn gateway(replicas: &[Replica], strategy: &str) -> Gateway {
    let (first, rest) = replicas.split_first().unwrap();
    let listed: Vec<String> = rest.iter().map(|r| format!("\"{}\"", r.addr)).collect();
    let extra = format!(
        "strategy = \"{strategy}\"\nreplicas = [{}]\nslow_start_ms = 500\n\
         [providers.health_check]\npath = \"/models\"\ninterval_ms = 100\ntimeout_ms = 500",
        listed.join(", ")
    );
    let url = format!("http://{}/v1", first.addr);
    let body = format!(
        "{}[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"fleet\", model = \"m\" }}]\n",
        provider_toml("fleet", "openai", &url, &extra)
    );
    Gateway::start_with(&body, "")
}

/// What a run saw: the time to first byte of every request, and how many failed.
#[derive(Default)]
struct Seen {
    ttfb: Vec<f64>,
    failed: usize,
}

/// `conversations` conversations, all at once, turns `from..turns` of each, every turn
/// streamed through the gateways in turn (`gateways[(c + turn) % len]`).
async fn converse(gateways: &[&Gateway], conversations: usize, turns: usize, from: usize) -> Seen {
    let urls: Arc<Vec<String>> = Arc::new(
        gateways
            .iter()
            .map(|g| g.url("/v1/chat/completions"))
            .collect(),
    );
    let mut seen = Seen::default();
    for turn in from..turns {
        let mut tasks = Vec::new();
        for c in 0..conversations {
            let urls = Arc::clone(&urls);
            tasks.push(tokio::spawn(async move {
                let mut messages = vec![json!({"role": "system",
                    "content": format!("conversation {c}. {}", "You answer carefully and briefly. ".repeat(120))})];
                for t in 0..=turn {
                    messages.push(json!({"role": "user", "content": format!("question {t}: {}", "and what then? ".repeat(20))}));
                    if t < turn {
                        messages.push(json!({"role": "assistant", "content": format!("answer {t}: {}", "it depends. ".repeat(30))}));
                    }
                }
                let body = json!({"model": "chat", "messages": messages, "stream": true});
                let url = &urls[(c + turn) % urls.len()];
                let started = Instant::now();
                let r = client().post(url).bearer_auth(KEY).json(&body).send().await;
                let ttfb = started.elapsed().as_secs_f64();
                match r {
                    Ok(r) if r.status() == 200 => {
                        let text = r.text().await.unwrap_or_default();
                        (text.contains("[DONE]"), ttfb)
                    }
                    _ => (false, ttfb),
                }
            }));
        }
        for t in tasks {
            let (ok, ttfb) = t.await.unwrap();
            seen.ttfb.push(ttfb);
            seen.failed += usize::from(!ok);
        }
    }
    seen
}

async fn hit_rate(replicas: &[Replica]) -> f64 {
    let (mut hits, mut queries) = (0.0, 0.0);
    for r in replicas {
        let (h, q) = r.cache().await;
        hits += h;
        queries += q;
    }
    hits / queries.max(1.0)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

#[tokio::test]
async fn prefix_affinity_beats_round_robin_on_the_replicas_own_counters_and_survives_a_restart() {
    let k = scale();
    let (n, conversations, turns) = (4 * k, 8 * k - 1, 4 + 2 * (k - 1));
    let rr_fleet = fleet(n);
    let rr = gateway(&rr_fleet, "round_robin");
    let rr_seen = converse(&[&rr], conversations, turns, 0).await;
    let rr_hit = hit_rate(&rr_fleet).await;

    let mut pa_fleet = fleet(n);
    let pa = gateway(&pa_fleet, "prefix_affinity");
    let mut pa_seen = converse(&[&pa], conversations, 1, 0).await;
    // The first replica dies mid-run: the next turn goes on without it.
    let victim = pa_fleet[0].addr.clone();
    pa_fleet[0].kill();
    let dead = converse(&[&pa], conversations, 2, 1).await;
    // It comes back empty at the same address: how long until it serves again.
    pa_fleet[0] = Replica::start(&victim);
    let back = Instant::now();
    let mut extra = 0;
    while pa_fleet[0].cache().await.1 == 0.0 {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "the restarted replica never served"
        );
        let r = post(&pa, "/v1/chat/completions", &json!({"model": "chat",
            "messages": [{"role": "user", "content": format!("new {extra}: {}", "hello there. ".repeat(80))}]})).await;
        assert_eq!(r.status(), 200);
        extra += 1;
    }
    let back_ms = back.elapsed().as_millis();
    let rest = converse(&[&pa], conversations, turns, 2).await;
    let pa_hit = hit_rate(&pa_fleet).await;
    pa_seen.failed += dead.failed + rest.failed;
    pa_seen.ttfb.extend(dead.ttfb.iter().chain(&rest.ttfb));
    eprintln!(
        "fleet: {n} replicas, {conversations} conversations × {turns} turns: hit rate {pa_hit:.3} vs round robin {rr_hit:.3}; mean time to first byte {:.1} ms vs {:.1} ms; a restarted replica served again after {back_ms} ms ({extra} new prompts)",
        mean(&pa_seen.ttfb) * 1e3,
        mean(&rr_seen.ttfb) * 1e3
    );
    assert_eq!(rr_seen.failed, 0);
    assert_eq!(pa_seen.failed, 0, "the dead replica cost no request");
    assert!(pa_hit > rr_hit + 0.2, "{pa_hit} vs {rr_hit}");
    assert!(
        mean(&pa_seen.ttfb) < mean(&rr_seen.ttfb),
        "{:?} vs {:?}",
        pa_seen.ttfb,
        rr_seen.ttfb
    );
}

#[tokio::test]
async fn two_gateway_instances_each_with_its_own_index_still_beat_round_robin() {
    let k = scale();
    let (n, conversations, turns) = (4 * k, 8 * k - 1, 4 + 2 * (k - 1));
    let rr_fleet = fleet(n);
    let rr = gateway(&rr_fleet, "round_robin");
    let _ = converse(&[&rr], conversations, turns, 0).await;
    let rr_hit = hit_rate(&rr_fleet).await;
    let one_fleet = fleet(n);
    let one = gateway(&one_fleet, "prefix_affinity");
    let _ = converse(&[&one], conversations, turns, 0).await;
    let one_hit = hit_rate(&one_fleet).await;
    let two_fleet = fleet(n);
    let (a, b) = (
        gateway(&two_fleet, "prefix_affinity"),
        gateway(&two_fleet, "prefix_affinity"),
    );
    let seen = converse(&[&a, &b], conversations, turns, 0).await;
    let two_hit = hit_rate(&two_fleet).await;
    eprintln!(
        "fleet: hit rate one instance {one_hit:.3}, two alternating per request {two_hit:.3}, round robin {rr_hit:.3}"
    );
    assert_eq!(seen.failed, 0);
    assert!(two_hit > rr_hit, "{two_hit} vs {rr_hit}");
}
