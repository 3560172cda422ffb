//! Resilience II: same-target retries that honour `Retry-After`, the first-token deadline,
//! context-overflow failover, recovery of an ejected primary, and error events that say what
//! happened.

use crate::harness::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How many chat requests the mock saw for upstream model `model`.
fn calls_to(mock: &tollgate::mock::MockServer, model: &str) -> usize {
    mock.requests()
        .iter()
        .filter_map(|r| r.json())
        .filter(|b| b["model"] == model)
        .count()
}

/// The attempt log of an access-log line as `outcome` words.
fn outcomes(line: &Value) -> Vec<String> {
    line["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_string())
        .collect()
}

/// A priority model over `primary` (model `up-primary`) then `backup` (model `up-backup`).
fn two_targets(name: &str, primary: &str, backup: &str, extra: &str) -> String {
    format!(
        "[[models]]\nname = \"{name}\"\nstrategy = \"priority\"\n{extra}\n\
         targets = [{{ provider = \"{primary}\", model = \"up-primary\" }}, {{ provider = \"{backup}\", model = \"up-backup\" }}]\n"
    )
}

const RETRIES: &str = "retries = { attempts = 2, backoff_ms = 50, max_retry_after_ms = 5000 }";

/// A gateway whose model `chat` (with [`RETRIES`]) tries a mock behaving as `script`, then a
/// good one.
fn primary_then_good(mock: &tollgate::mock::MockServer, script: &str) -> Gateway {
    let url = mock.url();
    let cfg = mock_provider("limited", &url, script)
        + &mock_provider("good", &url, "")
        + &two_targets("chat", "limited", "good", RETRIES);
    Gateway::start(&cfg)
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_on_the_same_target_after_the_wait() {
    let mock = mock();
    let gw = primary_then_good(&mock, "status=429,retry_after=1,times=1");
    let started = Instant::now();
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
    assert_eq!(calls_to(&mock, "up-primary"), 2);
    assert_eq!(calls_to(&mock, "up-backup"), 0, "no model switch");
    let line = &gw.wait_log_lines(1).await[0];
    assert_eq!(outcomes(line), ["status_429", "ok"]);
    assert_eq!(line["attempt_log"][1]["provider"], "limited");
    assert!(line["attempt_log"][1]["waited_ms"].as_u64().unwrap() >= 1000);
    assert!(line["attempt_log"][0].get("waited_ms").is_none());
}

#[tokio::test]
async fn a_single_500_is_retried_once_on_the_same_target() {
    let mock = mock();
    let gw = primary_then_good(&mock, "status=500,times=1");
    for stream in [false, true] {
        let r = post(&gw, "/v1/chat/completions", &chat_body("chat", stream)).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    // The first request met the one 500 and was retried there; the second went straight.
    assert_eq!(calls_to(&mock, "up-primary"), 3);
    assert_eq!(calls_to(&mock, "up-backup"), 0);
    let lines = gw.wait_log_lines(2).await;
    assert_eq!(outcomes(&lines[0]), ["status_500", "ok"]);
    let waited = lines[0]["attempt_log"][1]["waited_ms"].as_u64().unwrap();
    assert!(
        (25..=50).contains(&waited),
        "jittered back-off of 50 ms: {waited}"
    );
    assert_eq!(outcomes(&lines[1]), ["ok"]);
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_fails_over_at_once() {
    let mock = mock();
    let url = mock.url();
    let gw = primary_then_good(&mock, "status=429,retry_after=120");
    let started = Instant::now();
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "120 s were not waited"
    );
    let line = &gw.wait_log_lines(1).await[0];
    assert_eq!(outcomes(line), ["status_429", "ok"]);
    assert_eq!(line["attempt_log"][1]["provider"], "good");
    assert!(line["attempt_log"][1].get("waited_ms").is_none());
    // A gateway-made error keeps the SDKs' retry logic right: with nothing left, the 429
    // passes through with the provider's own wait.
    let cfg = mock_provider("limited", &url, "status=429,retry_after=120")
        + "[[models]]\nname = \"chat\"\ntargets = [{ provider = \"limited\", model = \"up-primary\" }]\n"
        + RETRIES;
    let gw = Gateway::start(&cfg);
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "120");
    assert!(r.headers().get("x-tollgate-error").is_none());
}

#[tokio::test]
async fn a_late_first_token_is_answered_by_the_fallback() {
    let mock = mock();
    let url = mock.url();
    let slow = format!(
        "[[providers]]\nname = \"slow\"\nkind = \"openai\"\nbase_url = \"{}\"\n\
         api_key_env = \"TG_UPSTREAM_KEY\"\nread_timeout_ms = 30000\nfirst_token_timeout_ms = 5000\n",
        mock_base(&url, "ttft_ms=20000")
    );
    let cfg = slow + &mock_provider("good", &url, "") + &two_targets("chat", "slow", "good", "");
    let gw = Gateway::start(&cfg);
    let started = Instant::now();
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", true)).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("[DONE]") && !body.contains("\"error\""));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let line = &gw.wait_log_lines(1).await[0];
    assert_eq!(outcomes(line), ["first_token_timeout", "ok"]);
    assert_eq!(line["provider"], "good");
}

#[tokio::test]
async fn a_context_overflow_goes_to_the_larger_window_and_other_400s_do_not() {
    let mock = mock();
    let url = mock.url();
    let cfg = mock_provider("small", &url, "fault=context")
        + &mock_provider("other", &url, "")
        + &mock_provider("large", &url, "")
        + &mock_provider("picky", &url, "status=400")
        + "[[models]]\nname = \"chat\"\nstrategy = \"priority\"\n\
           targets = [{ provider = \"small\", model = \"up-small\", context_window = 4096 }, \
           { provider = \"other\", model = \"up-other\", context_window = 4096 }, \
           { provider = \"large\", model = \"up-large\", context_window = 200000 }]\n\
           [[models]]\nname = \"strict\"\nstrategy = \"priority\"\n\
           targets = [{ provider = \"picky\", model = \"up-picky\", context_window = 4096 }, \
           { provider = \"large\", model = \"up-large\", context_window = 200000 }]\n";
    let gw = Gateway::start(&cfg);
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let mut body = chat_body("chat", false);
        body["max_tokens"] = 64.into();
        let r = post(&gw, path, &body).await;
        assert_eq!(r.status(), 200, "{path}");
        r.bytes().await.unwrap();
    }
    assert_eq!(calls_to(&mock, "up-large"), 2);
    assert_eq!(calls_to(&mock, "up-other"), 0, "same window: skipped");
    let lines = gw.wait_log_lines(2).await;
    for line in &lines {
        assert_eq!(outcomes(line), ["context_length_exceeded", "ok"]);
        assert_eq!(line["provider"], "large");
    }
    // Any other 400 is the client's: passed back, never failed over.
    let r = post(&gw, "/v1/chat/completions", &chat_body("strict", false)).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_value");
    assert_eq!(calls_to(&mock, "up-large"), 2);
}

#[tokio::test]
async fn a_cut_stream_says_after_how_many_events() {
    let mock = mock();
    let url = mock.url();
    let stalls = provider_toml(
        "stalls",
        "openai",
        &mock_base(&url, "fault=stall,cut_after=3"),
        "idle_timeout_ms = 300",
    );
    let cfg = mock_provider("cut", &url, "fault=cut,cut_after=5,tokens=40")
        + &stalls
        + "[[models]]\nname = \"chat\"\ntargets = [{ provider = \"cut\", model = \"up\" }]\n\
           [[models]]\nname = \"stall\"\ntargets = [{ provider = \"stalls\", model = \"up\" }]\n";
    let gw = Gateway::start(&cfg);
    let last_error = |body: &str| {
        let last: Value = serde_json::from_str(sse_data(body).last().unwrap()).unwrap();
        last["error"]["message"].as_str().unwrap().to_string()
    };
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", true)).await;
    let message = last_error(&r.text().await.unwrap());
    assert!(message.contains("broke off after 5 events"), "{message}");
    assert!(!message.contains("before a response"), "{message}");
    let r = post(&gw, "/v1/chat/completions", &chat_body("stall", true)).await;
    let message = last_error(&r.text().await.unwrap());
    assert!(
        message.contains("stalled for 300 ms after 3 events"),
        "{message}"
    );
}

/// A primary down for 60 s, then healthy, serves again within 15 s of recovering.
#[tokio::test]
async fn a_recovered_primary_gets_traffic_again_within_15_seconds() {
    let mock = mock();
    let url = mock.url();
    let cfg = mock_provider("primary", &url, "outage_ms=60000")
        + &mock_provider("backup", &url, "")
        + &two_targets("chat", "primary", "backup", "");
    let gw = Gateway::start(&cfg);
    // The outage clock starts at the primary's first request.
    let outage_start = Instant::now();
    let recovered = outage_start + Duration::from_secs(60);
    let deadline = recovered + Duration::from_secs(30);
    let mut served_again = None;
    let mut sent = 0;
    while Instant::now() < deadline {
        let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
        assert_eq!(r.status(), 200, "the backup answers during the outage");
        r.bytes().await.unwrap();
        sent += 1;
        let line = gw.wait_log_lines(sent).await.pop().unwrap();
        if line["provider"] == "primary" {
            served_again = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let served_again = served_again.expect("the primary served again");
    assert!(served_again >= recovered, "not before it recovered");
    let after = served_again - recovered;
    assert!(
        after < Duration::from_secs(15),
        "back {after:?} after recovering"
    );
}

#[tokio::test]
async fn a_missing_backend_key_is_reported_once_as_the_root_cause() {
    let cfg =
        "[[providers]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
               api_key_env = \"TG_NOT_SET_ANYWHERE\"\n\
               [[models]]\nname = \"a\"\ntargets = [{ provider = \"p\", model = \"x\" }]\n\
               [[models]]\nname = \"b\"\ntargets = [{ provider = \"p\", model = \"y\" }]\n";
    let errors = tollgate::config::parse(cfg).unwrap_err().errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("TG_NOT_SET_ANYWHERE is not set"),
        "{errors:?}"
    );
}

/// Retries set and nothing else changed: a primary that keeps failing is retried twice, and
/// the fallback still answers (same-target retries do not use up `max_attempts`).
#[tokio::test]
async fn retries_never_starve_the_fallback() {
    let mock = mock();
    let gw = primary_then_good(&mock, "status=500");
    for stream in [false, true] {
        let r = post(&gw, "/v1/chat/completions", &chat_body("chat", stream)).await;
        assert_eq!(r.status(), 200, "the fallback answered (stream: {stream})");
        r.bytes().await.unwrap();
    }
    let lines = gw.wait_log_lines(2).await;
    assert_eq!(
        outcomes(&lines[0]),
        ["status_500", "status_500", "status_500", "ok"]
    );
    assert_eq!(lines[0]["attempt_log"][3]["provider"], "good");
    assert_eq!(calls_to(&mock, "up-backup"), 2);
}

/// A primary whose connections break while its model list still answers: during the outage
/// it gets the requests that eject it, then only one half-open probe per recovery interval
/// (never a retried probe), and every client request is answered by the backup.
#[tokio::test]
async fn an_ejected_primary_gets_only_half_open_probes_during_an_outage() {
    let mock = mock();
    let gw = primary_then_good(&mock, "fault=refuse,models_ok=1");
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(8) {
        let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
        assert_eq!(r.status(), 200, "request {sent}");
        r.bytes().await.unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lines = gw.wait_log_lines(sent).await;
    let on_primary: usize = lines
        .iter()
        .flat_map(|l| l["attempt_log"].as_array().unwrap())
        .filter(|a| a["provider"] == "limited")
        .count();
    // Five consecutive failures eject it (1 + 2 retries, then 2 more); after that one probe
    // per 3 s recovery interval at most.
    let intervals = (started.elapsed().as_secs() / 3 + 1) as usize;
    assert!(
        on_primary <= 5 + intervals,
        "{on_primary} attempts on the down primary over {sent} requests"
    );
    assert!(sent >= 20, "{sent} requests sent");
}
