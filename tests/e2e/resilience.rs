//! Resilience: a 200 stream whose first event is an error fails over before any byte reaches
//! the client (CONVENTIONS U7); the retry budget stops failover from multiplying load (U2).

use crate::harness::*;
use serde_json::Value;

fn config(url: &str) -> String {
    format!(
        "{}\n{}\n[[models]]\nname = \"chat\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"broken\", model = \"up-a\" }}, {{ provider = \"good\", model = \"up-b\" }}]\n\
         [[models]]\nname = \"alone\"\ntargets = [{{ provider = \"broken\", model = \"up-a\" }}]\n\
         [[models]]\nname = \"budgeted\"\nstrategy = \"priority\"\nretry_budget = {{ percent = 1, min_per_second = 0.1 }}\n\
         targets = [{{ provider = \"busy\", model = \"up-a\" }}, {{ provider = \"good\", model = \"up-b\" }}]\n",
        mock_provider("broken", url, "fault=first_error"),
        mock_provider("good", url, ""),
    ) + &mock_provider("busy", url, "status=503")
}

#[tokio::test]
async fn an_error_as_the_first_event_fails_over_before_any_byte() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", true)).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("\"error\""),
        "the client never sees the failed attempt:\n{body}"
    );
    assert!(body.contains("data: [DONE]"));
    let models: Vec<Value> = mock.requests().iter().filter_map(|r| r.json()).collect();
    assert_eq!(models.len(), 2);
    assert_eq!(models[1]["model"], "up-b");

    // With nothing to fail over to, the error event goes through (the SDKs raise on it).
    let r = post(&gw, "/v1/chat/completions", &chat_body("alone", true)).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("\"error\""));

    let lines = gw.wait_log_lines(2).await;
    let outcomes: Vec<_> = lines[0]["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["first_frame_error", "ok"]);
    assert_eq!(lines[0]["outcome"], "success");
    gw.wait_metric(
        "tollgate_upstream_failovers_total",
        &[("reason", "first_frame_error")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn the_retry_budget_caps_failovers_during_an_outage() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    // One retry per 10 s (the floor) and 1% of requests: the first request fails over,
    // the next ones get the primary's 503 instead of doubling the load.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = post(&gw, "/v1/chat/completions", &chat_body("budgeted", false)).await;
        statuses.push(r.status().as_u16());
        r.bytes().await.unwrap();
    }
    assert_eq!(statuses, [200, 503, 503, 503]);
    assert_eq!(
        mock.requests().len(),
        5,
        "1 + 1 failover + 3 single attempts"
    );
    gw.wait_metric(
        "tollgate_retry_budget_exhausted_total",
        &[("model", "budgeted")],
        3.0,
    )
    .await;
    let lines = gw.wait_log_lines(4).await;
    assert_eq!(lines[0]["attempts"], 2);
    for l in &lines[1..] {
        assert_eq!(l["attempts"], 1);
        assert_eq!(l["outcome"], "upstream_status");
    }
}

#[tokio::test]
async fn consecutive_failures_eject_a_provider_until_a_probe_succeeds() {
    let mock = mock();
    let url = mock.url();
    let cfg = format!(
        "{}outlier = {{ consecutive_failures = 3, base_ejection_ms = 300, max_ejection_ms = 5000 }}\n{}\n\
         [[models]]\nname = \"chat\"\nstrategy = \"priority\"\n\
         retry_budget = {{ percent = 100, min_per_second = 100 }}\n\
         targets = [{{ provider = \"flaky\", model = \"up-a\" }}, {{ provider = \"steady\", model = \"up-b\" }}]\n",
        mock_provider("flaky", &url, "status=503,times=4"),
        mock_provider("steady", &url, ""),
    );
    let gw = Gateway::start(&cfg);
    let flaky_calls = || {
        mock.requests()
            .iter()
            .filter(|r| r.json().is_some_and(|j| j["model"] == "up-a"))
            .count()
    };
    for _ in 0..3 {
        let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
        assert_eq!(r.status(), 200, "fails over to the steady provider");
        r.bytes().await.unwrap();
    }
    assert_eq!(flaky_calls(), 3);
    // 503s are the deployment's failures (this model on this provider), not the provider's.
    let flaky_a = [("provider", "flaky"), ("model", "up-a")];
    gw.wait_metric("tollgate_upstream_healthy", &flaky_a, 0.0)
        .await;
    // Ejected: the next request goes straight to the steady provider.
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    r.bytes().await.unwrap();
    assert_eq!(flaky_calls(), 3, "an ejected provider is not tried first");

    // After the back-off one request probes it (the 4th call fails: ejected again, for
    // twice as long), then the 5th succeeds and it is back in rotation.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        let m = metric(&gw.metrics().await, "tollgate_upstream_healthy", &flaky_a);
        if flaky_calls() >= 5 && m == 1.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered ({} calls)",
            flaky_calls()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(flaky_calls(), 5, "exactly two probes");
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    r.bytes().await.unwrap();
    assert_eq!(flaky_calls(), 6, "healthy again: first in line");
}

#[tokio::test]
async fn a_failing_model_is_ejected_while_the_same_provider_keeps_serving_its_others() {
    let mock = mock();
    let url = mock.url();
    let outlier = "outlier = { consecutive_failures = 2, base_ejection_ms = 60000, max_ejection_ms = 60000 }\n";
    let cfg = format!(
        "{}{outlier}{}\n\
         [[models]]\nname = \"broken\"\nstrategy = \"priority\"\n\
         retry_budget = {{ percent = 100, min_per_second = 100 }}\n\
         targets = [{{ provider = \"shared\", model = \"bad@status=500\" }}, {{ provider = \"backup\", model = \"spare\" }}]\n\
         [[models]]\nname = \"chat\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"shared\", model = \"good\" }}, {{ provider = \"backup\", model = \"spare\" }}]\n",
        mock_provider("shared", &url, ""),
        mock_provider("backup", &url, ""),
    );
    let gw = Gateway::start(&cfg);
    let calls = |model: &str| {
        mock.requests()
            .iter()
            .filter(|r| r.json().is_some_and(|j| j["model"] == model))
            .count()
    };
    for _ in 0..6 {
        for model in ["broken", "chat"] {
            let r = post(&gw, "/v1/chat/completions", &chat_body(model, false)).await;
            assert_eq!(r.status(), 200, "{model}");
            r.bytes().await.unwrap();
        }
    }
    // Two 500s ejected the broken deployment: it is no longer tried first (a recovery probe,
    // due 3 s after the ejection, could let one more through on a very slow run).
    assert!(calls("bad@status=500") <= 3, "{}", calls("bad@status=500"));
    // The provider's other model kept every one of its requests; the backup got only the
    // broken model's.
    assert_eq!(calls("good"), 6);
    assert_eq!(calls("spare"), 6);
    let m = gw.metrics().await;
    let healthy = |labels: &[(&str, &str)]| metric(&m, "tollgate_upstream_healthy", labels);
    assert_eq!(
        healthy(&[("provider", "shared"), ("model", "bad@status=500")]),
        0.0
    );
    assert_eq!(healthy(&[("provider", "shared"), ("model", "good")]), 1.0);
    // The provider itself was never ejected.
    let provider_down = m.lines().any(|l| {
        l.starts_with("tollgate_upstream_healthy{")
            && l.contains("provider=\"shared\"")
            && l.contains("model=\"\"")
            && l.ends_with(" 0")
    });
    assert!(!provider_down, "{m}");
}

#[tokio::test]
async fn least_latency_prefers_the_faster_target() {
    let mock = mock();
    let url = mock.url();
    let cfg = format!(
        "{}{}\n[[models]]\nname = \"chat\"\nstrategy = \"least_latency\"\n\
         targets = [{{ provider = \"slow\", model = \"up-slow\" }}, {{ provider = \"fast\", model = \"up-fast\" }}]\n",
        mock_provider("slow", &url, "ttft_ms=120"),
        mock_provider("fast", &url, "ttft_ms=5"),
    );
    let gw = Gateway::start(&cfg);
    for _ in 0..60 {
        let r = post(&gw, "/v1/chat/completions", &chat_body("chat", true)).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let models: Vec<String> = mock
        .requests()
        .iter()
        .filter_map(|r| r.json())
        .map(|j| j["model"].as_str().unwrap_or("").to_string())
        .collect();
    let fast = models.iter().filter(|m| *m == "up-fast").count();
    let slow = models.len() - fast;
    assert!(fast >= 45, "fast {fast}, slow {slow}");
    assert!(
        slow >= 1,
        "the slower target is still measured now and then"
    );
}

#[tokio::test]
async fn active_health_checks_take_a_provider_out_and_back() {
    let mock = mock();
    let url = mock.url();
    let check = "health_check = { path = \"/models\", interval_ms = 100, timeout_ms = 500 }\n";
    let cfg = format!(
        "{}{check}{}{check}{}\n[[models]]\nname = \"chat\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"down\", model = \"up-down\" }}, {{ provider = \"good\", model = \"up-good\" }}]\n\
         [[models]]\nname = \"second\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"recovering\", model = \"up-rec\" }}, {{ provider = \"good\", model = \"up-good\" }}]\n",
        mock_provider("down", &url, "status=503"),
        mock_provider("recovering", &url, "status=503,times=2"),
        mock_provider("good", &url, ""),
    );
    let gw = Gateway::start(&cfg);
    let provider = |name| [("provider", name), ("model", "")];
    gw.wait_metric("tollgate_upstream_healthy", &provider("down"), 0.0)
        .await;
    // The failing check took `down` out before any client request reached it.
    for _ in 0..3 {
        let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let posts_to = |model: &str| {
        mock.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.json().is_some_and(|j| j["model"] == model))
            .count()
    };
    assert_eq!(posts_to("up-down"), 0);
    assert_eq!(posts_to("up-good"), 3);
    let checks = mock
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v1/models")
        .count();
    assert!(checks >= 2, "{checks} health checks");

    // `recovering` fails two checks, then passes and is back first in line.
    gw.wait_metric("tollgate_upstream_healthy", &provider("recovering"), 1.0)
        .await;
    let r = post(&gw, "/v1/chat/completions", &chat_body("second", false)).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    assert_eq!(posts_to("up-rec"), 1);
}

/// A provider at the mock with its own script and timeouts.
fn timed_provider(name: &str, url: &str, script: &str, timeouts: &str) -> String {
    format!(
        "[[providers]]\nname = \"{name}\"\nkind = \"openai\"\nbase_url = \"{url}/_mock/{script}/v1\"\n\
         api_key_env = \"TG_UPSTREAM_KEY\"\n{timeouts}\n"
    )
}

#[tokio::test]
async fn first_byte_idle_and_total_timeouts() {
    let mock = mock();
    let url = mock.url();
    let cfg = format!(
        "{}{}{}{}\n[[models]]\nname = \"chat\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"slow-start\", model = \"up-slow\" }}, {{ provider = \"good\", model = \"up-good\" }}]\n\
         [[models]]\nname = \"only-slow\"\ntargets = [{{ provider = \"slow-start\", model = \"up-slow\" }}]\n\
         [[models]]\nname = \"stall\"\ntargets = [{{ provider = \"stalls\", model = \"up-stall\" }}]\n\
         [[models]]\nname = \"long\"\ntargets = [{{ provider = \"long\", model = \"up-long\" }}]\n",
        timed_provider("slow-start", &url, "ttft_ms=3000", "first_byte_timeout_ms = 300"),
        timed_provider("good", &url, "ttft_ms=0", ""),
        timed_provider("stalls", &url, "fault=stall,cut_after=3,tokens=8", "idle_timeout_ms = 300"),
        timed_provider("long", &url, "itl_ms=100,tokens=100", "total_timeout_ms = 700"),
    );
    let gw = Gateway::start(&cfg);

    // U4: no first byte within 300 ms: fail over; with nothing to fail over to, 504.
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", true)).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("[DONE]"));
    let r = post(&gw, "/v1/chat/completions", &chat_body("only-slow", true)).await;
    assert_eq!(r.status(), 504);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "upstream_timeout");

    // U5: chunks stop for longer than 300 ms: the stream ends with an error event, and what
    // was generated so far is charged.
    let r = post(&gw, "/v1/chat/completions", &chat_body("stall", true)).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let data = sse_data(&body);
    assert!(data.last().unwrap().contains("\"error\""), "{body}");
    assert!(!body.contains("[DONE]"));

    // Total: a stream still going after 700 ms is ended the same way.
    let r = post(&gw, "/v1/chat/completions", &chat_body("long", true)).await;
    let body = r.text().await.unwrap();
    assert!(sse_data(&body).last().unwrap().contains("\"error\""));
    assert!(sse_data(&body).len() > 2, "some tokens came through first");

    let lines = gw.wait_log_lines(4).await;
    assert_eq!(lines[0]["attempt_log"][0]["outcome"], "timeout");
    assert_eq!(lines[0]["attempt_log"][1]["outcome"], "ok");
    assert_eq!(lines[1]["outcome"], "upstream_timeout");
    assert_eq!(lines[2]["outcome"], "upstream_idle_timeout");
    assert_eq!(lines[2]["usage_source"], "estimated");
    assert!(lines[2]["output_tokens"].as_u64().unwrap() >= 1);
    assert_eq!(lines[3]["outcome"], "upstream_total_timeout");
    gw.wait_metric("tollgate_inflight_requests", &[], 0.0).await;
}

#[tokio::test]
async fn ten_megabytes_of_garbage_in_a_stream_are_bounded_and_answered() {
    let mock = mock();
    let url = mock.url();
    let cfg = format!(
        "{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"junk\", model = \"up\" }}]\n",
        timed_provider("junk", &url, "fault=garbage,cut_after=2", ""),
    );
    let gw = Gateway::start(&cfg);
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", true)).await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    // The garbage passes through unparsed (lines over 1 MiB are not metered), then the cut
    // upstream ends the stream with an error event.
    assert!(body.len() > 10 * 1024 * 1024);
    let tail = String::from_utf8_lossy(&body[body.len() - 400..]).to_string();
    let last_event = tail.rsplit("\n\n").find(|e| !e.trim().is_empty()).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(last_event.trim().trim_start_matches("data: ")).unwrap();
    assert!(
        v["error"]["message"].is_string(),
        "a parseable error event of its own: {tail}"
    );
    let lines = gw.wait_log_lines(1).await;
    assert_eq!(lines[0]["outcome"], "upstream_cut");
    // Still serving.
    let r = post(&gw, "/v1/models", &serde_json::json!({})).await;
    assert_eq!(r.status(), 405);
    gw.wait_metric("tollgate_inflight_requests", &[], 0.0).await;
}

/// One timeout model on both paths: a non-streamed request whose first byte comes after
/// `first_byte_timeout_ms` but within `idle_timeout_ms` fails over (the clocks are not merged
/// into one per-read wait), and a short first-byte clock does not cut a body that follows.
#[tokio::test]
async fn a_late_first_byte_fails_over_even_when_the_idle_clock_is_longer() {
    let mock = mock();
    let url = mock.url();
    let cfg = format!(
        "{}{}\n[[models]]\nname = \"chat\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"late\", model = \"up-late\" }}, {{ provider = \"good\", model = \"up-good\" }}]\n",
        timed_provider(
            "late",
            &url,
            "ttft_ms=900",
            "first_byte_timeout_ms = 300\nidle_timeout_ms = 5000"
        ),
        timed_provider("good", &url, "ttft_ms=0", "first_byte_timeout_ms = 300\nidle_timeout_ms = 5000"),
    );
    let gw = Gateway::start(&cfg);
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    let lines = gw.wait_log_lines(1).await;
    assert_eq!(lines[0]["attempt_log"][0]["outcome"], "timeout");
    assert_eq!(lines[0]["attempt_log"][1]["outcome"], "ok");
    assert_eq!(lines[0]["outcome"], "success");
}
