//! OpenTelemetry traces over real sockets: the gateway exports OTLP/HTTP protobuf to a small
//! receiver (tests/otel/receiver.py, decoding with the official `opentelemetry-proto`
//! messages); the span tree, its GenAI attributes and events, the `traceparent` each attempt
//! carried to the mock, sampling by the client's flag, and a collector that is down.

use crate::harness::*;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    async fn start(python: PathBuf) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("spans.jsonl");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otel/receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver");
        let stdout = child.stdout.take().unwrap();
        let port = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .unwrap();
            line.trim()
                .strip_prefix("port=")
                .unwrap()
                .parse::<u16>()
                .unwrap()
        })
        .await
        .unwrap();
        Receiver {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The spans of `trace_id`, once there are `n`.
    async fn wait_trace(&self, trace_id: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans: Vec<Value> = self
                .spans()
                .into_iter()
                .filter(|s| s["trace_id"] == trace_id)
                .collect();
            if spans.len() >= n {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} spans of {trace_id}",
                spans.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(mock: &MockServer, endpoint: &str) -> String {
    format!(
        "{}\n[[models]]\nname = \"chat\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"m\", model = \"broken@status=500\" }}, {{ provider = \"m\", model = \"up\" }}]\n\
         [tracing]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"tollgate-test\"\n\
         flush_interval_ms = 50\ntimeout_ms = 500\n",
        mock_provider("m", &mock.url(), ""),
    )
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_request_is_a_server_span_with_a_client_span_per_attempt() {
    let Some(python) = python_with("aiohttp, opentelemetry.proto") else {
        return;
    };
    let receiver = Receiver::start(python).await;
    let mock = mock();
    let endpoint = format!("http://127.0.0.1:{}/v1/traces", receiver.port);
    let gw = Gateway::start(&config(&mock, &endpoint));
    let body = json!({"model": "chat", "max_tokens": 5,
        "messages": [{"role": "user", "content": "a private prompt 7f3k"}]});
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=abc")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let spans = receiver.wait_trace(TRACE, 3).await;
    assert_eq!(spans.len(), 3);
    let server = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .expect("a server span");
    assert_eq!(server["parent_span_id"], CLIENT_SPAN);
    assert_eq!(server["name"], "chat chat");
    assert_eq!(server["trace_state"], "vendor=abc");
    assert_eq!(server["resource"]["service.name"], "tollgate-test");
    assert_eq!(server["content_type"], "application/x-protobuf");
    let a = &server["attributes"];
    assert_eq!(a["gen_ai.operation.name"], "chat");
    assert_eq!(a["gen_ai.request.model"], "chat");
    assert_eq!(a["gen_ai.response.model"], "up");
    assert_eq!(a["gen_ai.provider.name"], "openai");
    assert_eq!(a["gen_ai.usage.output_tokens"], 5);
    assert!(a["gen_ai.usage.input_tokens"].as_i64().unwrap() > 0);
    assert_eq!(a["http.response.status_code"], 200);
    assert_eq!(a["tollgate.consumer"], "team-a");
    let events: Vec<&str> = server["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["tollgate.limits", "tollgate.failover"]);
    assert_eq!(
        server["events"][0]["attributes"]["tollgate.limits.decision"],
        "allowed"
    );
    let failover = &server["events"][1]["attributes"];
    assert_eq!(failover["http.response.status_code"], 500);
    assert!(!failover["tollgate.failover.reason"]
        .as_str()
        .unwrap()
        .is_empty());

    let mut attempts: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 3).collect();
    attempts.sort_by_key(|s| s["start"].as_u64());
    assert_eq!(attempts.len(), 2);
    for s in &attempts {
        assert_eq!(s["parent_span_id"], server["span_id"]);
        assert!(
            s["start"].as_u64() >= server["start"].as_u64()
                && s["end"].as_u64() <= server["end"].as_u64()
        );
    }
    assert_eq!(attempts[0]["attributes"]["http.response.status_code"], 500);
    assert_eq!(
        attempts[0]["status"]["code"], 2,
        "a failed attempt is an error span"
    );
    assert_eq!(attempts[1]["attributes"]["gen_ai.request.model"], "up");
    assert_eq!(attempts[1]["status"]["code"], 0);
    // Each attempt told the backend its own span.
    let sent: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.header("traceparent").unwrap().to_string())
        .collect();
    let want: Vec<String> = attempts
        .iter()
        .map(|s| format!("00-{TRACE}-{}-01", s["span_id"].as_str().unwrap()))
        .collect();
    assert_eq!(sent, want);
    // The prompt is nowhere in the spans.
    assert!(!std::fs::read_to_string(&receiver.out)
        .unwrap()
        .contains("7f3k"));

    // A client that does not sample: nothing exported, the flag passed on.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header(
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-00",
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let last = mock
        .requests()
        .last()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_string();
    assert!(
        last.starts_with("00-11111111111111111111111111111111-") && last.ends_with("-00"),
        "{last}"
    );
    // A later sampled request's spans arrive; the unsampled one's never did.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header(
            "traceparent",
            "00-33333333333333333333333333333333-2222222222222222-01",
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    receiver
        .wait_trace("33333333333333333333333333333333", 3)
        .await;
    assert!(!receiver
        .spans()
        .iter()
        .any(|s| s["trace_id"] == "11111111111111111111111111111111"));
}

#[tokio::test]
async fn with_the_collector_down_requests_are_unaffected_and_drops_are_counted() {
    let mock = mock();
    let endpoint = format!("http://127.0.0.1:{}/v1/traces", free_port());
    let gw = Gateway::start(&config(&mock, &endpoint));
    for _ in 0..10 {
        let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
        assert_eq!(r.status(), 200);
    }
    // A span per request and one per attempt (the broken deployment is soon ejected, so
    // later requests make one attempt).
    let spans: u64 = gw
        .wait_log_lines(10)
        .await
        .iter()
        .map(|l| 1 + l["attempts"].as_u64().unwrap())
        .sum();
    gw.wait_metric(
        "tollgate_trace_spans_dropped_total",
        &[("reason", "export_failed")],
        spans as f64,
    )
    .await;
    assert_eq!(
        metric(
            &gw.metrics().await,
            "tollgate_trace_spans_exported_total",
            &[]
        ),
        0.0
    );
}
