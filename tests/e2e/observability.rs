//! Metrics and access log under a scripted mix: exact counts, one log line per request on
//! every path, GenAI histograms that agree with the log, and `promtool check metrics`.

use crate::harness::*;
use serde_json::Value;
use std::process::{Command, Stdio};

fn config(mock_url: &str) -> String {
    format!(
        "{}\n{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}\n\n\
         [[models]]\nname = \"ha\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"busy\", model = \"up\" }}, {{ provider = \"m\", model = \"up\" }}]\n",
        mock_provider("m", mock_url, ""),
        mock_provider("busy", mock_url, "status=503"),
    )
}

async fn send(gw: &Gateway, model: &str, stream: bool, script: &str) -> reqwest::Response {
    client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock", format!("prompt_tokens=10,tokens=5,{script}"))
        .json(&chat_body(model, stream))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_scripted_mix_is_counted_exactly_once_everywhere() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let mut sent = 0;
    for (model, stream, script, status) in [
        ("chat", false, "", 200),
        ("chat", false, "", 200),
        ("chat", true, "itl_ms=5", 200),
        ("chat", true, "itl_ms=5", 200),
        ("chat", false, "status=500", 500),
        ("ha", false, "", 200),
    ] {
        let r = send(&gw, model, stream, script).await;
        assert_eq!(r.status(), status);
        r.bytes().await.unwrap();
        sent += 1;
    }
    // A gateway-made 400 and a client that hangs up mid-stream.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    sent += 1;
    let mut r = send(&gw, "chat", true, "itl_ms=100,tokens=50").await;
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    sent += 1;

    let lines = gw.wait_log_lines(sent).await;
    gw.wait_metric("tollgate_inflight_requests", &[], 0.0).await;
    gw.wait_metric("tollgate_inflight_streams", &[], 0.0).await;
    let lines = {
        // Exactly one line per request, even for the disconnect (wait a moment for strays).
        let again = gw.log_lines();
        assert_eq!(again.len(), sent, "{again:#?}");
        lines
    };
    let mut ids: Vec<_> = lines
        .iter()
        .map(|l| l["request_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), sent);
    let outcomes: Vec<_> = lines
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    let count = |o: &str| outcomes.iter().filter(|x| **x == o).count();
    assert_eq!(count("success"), 5, "{outcomes:?}");
    assert_eq!(count("upstream_status"), 1);
    assert_eq!(count("bad_request"), 1);
    assert_eq!(count("client_disconnect"), 1);

    let m = gw.metrics().await;
    // requests_total by outcome sums to the number of requests.
    assert_eq!(metric(&m, "tollgate_requests_total", &[]), sent as f64);
    assert_eq!(
        metric(&m, "tollgate_requests_total", &[("outcome", "success")]),
        5.0
    );
    assert_eq!(
        metric(
            &m,
            "tollgate_requests_total",
            &[("outcome", "client_disconnect")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "tollgate_upstream_failovers_total",
            &[("reason", "status_503")]
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "tollgate_overhead_seconds_count", &[]),
        sent as f64
    );

    // GenAI histograms agree with the access log.
    let with_usage: Vec<&Value> = lines
        .iter()
        .filter(|l| l["usage_source"].is_string())
        .collect();
    let input: u64 = with_usage
        .iter()
        .map(|l| l["input_tokens"].as_u64().unwrap())
        .sum();
    let output: u64 = with_usage
        .iter()
        .map(|l| l["output_tokens"].as_u64().unwrap())
        .sum();
    let tokens = |kind: &str, what: &str| {
        metric(
            &m,
            &format!("gen_ai_client_token_usage_{what}"),
            &[
                ("gen_ai_token_type", kind),
                ("gen_ai_operation_name", "chat"),
            ],
        )
    };
    assert_eq!(tokens("input", "count"), with_usage.len() as f64);
    assert_eq!(tokens("input", "sum"), input as f64);
    assert_eq!(tokens("output", "sum"), output as f64);
    let streamed_with_ttft = lines.iter().filter(|l| l["ttft_ms"].is_number()).count();
    assert_eq!(
        metric(&m, "gen_ai_server_time_to_first_token_seconds_count", &[]),
        streamed_with_ttft as f64
    );
    let with_tpot = lines.iter().filter(|l| l["tpot_ms"].is_number()).count();
    assert!(with_tpot >= 2, "{lines:#?}");
    assert_eq!(
        metric(&m, "gen_ai_server_time_per_output_token_seconds_count", &[]),
        with_tpot as f64
    );
    // Every request that reached an upstream has an operation duration (not the 400).
    assert_eq!(
        metric(&m, "gen_ai_client_operation_duration_seconds_count", &[]),
        (sent - 1) as f64
    );
    for l in &lines {
        assert!(l["overhead_ms"].as_f64().unwrap() >= 0.0);
        assert!(l["overhead_ms"].as_f64() <= l["duration_ms"].as_f64());
    }
    let cost: f64 = lines.iter().filter_map(|l| l["cost_usd"].as_f64()).sum();
    let metric_cost = metric(&m, "tollgate_cost_usd_total", &[("model", "chat")]);
    assert!((cost - metric_cost).abs() < 1e-9, "{cost} vs {metric_cost}");

    promtool_check(&m);
}

/// `promtool check metrics` on the exposition (Debian's `prometheus` package; CI installs it).
fn promtool_check(text: &str) {
    let mut probe = Command::new("promtool");
    probe.arg("--version");
    if !tool_present("promtool", probe) {
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool:\n{report}"
    );
}

#[tokio::test]
async fn sigusr1_reopens_the_access_log_without_losing_a_line() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    // Four clients keep requests flowing the whole time.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, sent, url) = (stop.clone(), sent.clone(), gw.url("/v1/chat/completions"));
            tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    let r = c
                        .post(&url)
                        .bearer_auth(KEY)
                        .json(&chat_body("chat", false))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let wait_sent = |n: usize| {
        let sent = sent.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while sent.load(Ordering::Relaxed) < n {
                assert!(std::time::Instant::now() < deadline, "load stalled");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    };
    wait_sent(50).await;
    // logrotate: rename, then signal.
    let rotated = gw.access_log.with_extension("log.1");
    std::fs::rename(&gw.access_log, &rotated).unwrap();
    signal(gw.pid(), "USR1");
    gw.wait_metric(
        "tollgate_access_log_reopens_total",
        &[("result", "ok")],
        1.0,
    )
    .await;
    let after = sent.load(Ordering::Relaxed);
    wait_sent(after + 50).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let total = sent.load(Ordering::Relaxed);

    let read = |p: &std::path::Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("whole JSON lines"))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (old, new) = loop {
        let (old, new) = (read(&rotated), read(&gw.access_log));
        if old.len() + new.len() >= total || std::time::Instant::now() > deadline {
            break (old, new);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        old.len() >= 50 && new.len() >= 50,
        "{} old, {} new",
        old.len(),
        new.len()
    );
    let mut ids: Vec<_> = old
        .iter()
        .chain(&new)
        .map(|l| l["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), total, "every request has exactly one line");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no line is written twice");
}

#[tokio::test]
async fn captured_payloads_are_merged_and_never_hold_a_key() {
    let mock = mock();
    let cfg = format!(
        "{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[consumers]]\nname = \"audited\"\nkeys = [\"{}\"]\nlog_payloads = true\n\
         [[consumers]]\nname = \"plain\"\nkeys = [\"{}\"]\n",
        mock_provider("m", &mock.url(), ""),
        digest_line(KEY),
        digest_line(LIMITED_KEY)
    );
    let gw = Gateway::start_raw("", &cfg);
    let secret_text = format!(
        "my key is {KEY}, the backend's is {UPSTREAM_KEY}; header Authorization: Bearer abcdefghijklmnop"
    );
    let body = |stream: bool| {
        serde_json::json!({"model": "chat", "stream": stream,
            "messages": [{"role": "user", "content": secret_text}]})
    };
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body(true))
        .send()
        .await
        .unwrap();
    let streamed = r.text().await.unwrap();
    let seen: String = sse_data(&streamed)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert!(!seen.is_empty());
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(LIMITED_KEY)
        .json(&body(false))
        .send()
        .await
        .unwrap();
    r.bytes().await.unwrap();

    let lines = gw.wait_log_lines(3).await;
    let raw = std::fs::read_to_string(&gw.access_log).unwrap();
    for secret in [KEY, UPSTREAM_KEY, LIMITED_KEY, "abcdefghijklmnop"] {
        assert!(
            !raw.contains(secret),
            "`{secret}` leaked into the access log"
        );
    }
    let json_line = lines
        .iter()
        .find(|l| l["stream"] == false && l["consumer"] == "audited")
        .unwrap();
    let req = json_line["payload"]["request"].as_str().unwrap();
    assert!(req.contains("my key is [REDACTED]"), "{req}");
    assert!(json_line["payload"]["response"]
        .as_str()
        .unwrap()
        .contains("\"choices\""));
    let stream_line = lines.iter().find(|l| l["stream"] == true).unwrap();
    let merged = &stream_line["payload"]["response"];
    assert_eq!(
        merged["content"],
        seen.as_str(),
        "the merged text is what the client saw"
    );
    assert_eq!(merged["finish_reason"], "stop");
    let plain = lines.iter().find(|l| l["consumer"] == "plain").unwrap();
    assert!(
        plain.get("payload").is_none(),
        "capture is opt-in per consumer or model"
    );
}
