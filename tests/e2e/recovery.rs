//! Streams that finish on a fallback (`stream_recovery`): a stream cut after 40 tokens is
//! finished by the next candidate, by prefill (`continue`) or by regenerating and skipping the
//! sent prefix (`restart`), in both client dialects; tool-call streams keep the honest error.

use crate::harness::*;
use serde_json::Value;

/// A primary cut after 40 tokens, and fallbacks that finish: `rescue` (OpenAI-compatible,
/// prefill declared), `claude` (Anthropic), `plain` (no prefill).
fn config(url: &str) -> String {
    let cut = mock_provider("cutting", url, "fault=cut,cut_after=41,tokens=80");
    let rescue = provider_toml(
        "rescue",
        "openai",
        &mock_base(url, "tokens=80"),
        "prefill = true",
    );
    let claude = provider_toml("claude", "anthropic", &mock_base(url, "tokens=80"), "");
    let plain = mock_provider("plain", url, "tokens=80");
    // Declares prefill, but its template refuses it (a 400 to `continue_final_message`).
    let refusing = provider_toml(
        "refusing",
        "openai",
        &mock_base(url, "tokens=80,no_prefill=1"),
        "prefill = true",
    );
    let cut_tools = mock_provider("cutting-tools", url, "fault=cut,cut_after=3");
    let model = |name: &str, backup: &str, mode: &str| {
        format!(
            "[[models]]\nname = \"{name}\"\nstrategy = \"priority\"\nstream_recovery = \"{mode}\"\n\
             targets = [{{ provider = \"cutting\", model = \"up-cut\" }}, {{ provider = \"{backup}\", model = \"up-rescue\" }}]\n"
        )
    };
    let tools = "[[models]]\nname = \"tools\"\nstrategy = \"priority\"\nstream_recovery = \"continue\"\n\
                 targets = [{ provider = \"cutting-tools\", model = \"up-cut\" }, { provider = \"rescue\", model = \"up-rescue\" }]\n";
    cut + &rescue
        + &refusing
        + &model("recover-refused", "refusing", "continue")
        + &claude
        + &plain
        + &cut_tools
        + tools
        + &model("recover-openai", "rescue", "continue")
        + &model("recover-anthropic", "claude", "continue")
        + &model("restart", "plain", "restart")
        + &model("chat", "rescue", "off")
}

/// The text and finish reasons of an OpenAI stream, and its chunk ids.
fn openai_stream(body: &str) -> (String, Vec<String>, Vec<String>) {
    let (mut text, mut finishes, mut ids) = (String::new(), Vec::new(), Vec::new());
    for data in sse_data(body) {
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        ids.push(v["id"].as_str().unwrap_or("").to_string());
        if let Some(c) = v["choices"].get(0) {
            text.push_str(c["delta"]["content"].as_str().unwrap_or(""));
            if let Some(f) = c["finish_reason"].as_str() {
                finishes.push(f.to_string());
            }
        }
    }
    ids.dedup();
    (text, finishes, ids)
}

fn expected() -> String {
    tollgate::mock::openai::full_text(80)
}

#[tokio::test]
async fn a_cut_stream_is_continued_by_the_fallback_in_both_dialects() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    for model in ["recover-openai", "recover-anthropic", "restart"] {
        let mut body = chat_body(model, true);
        body["max_tokens"] = 80.into();
        body["stream_options"] = serde_json::json!({"include_usage": true});
        let r = post(&gw, "/v1/chat/completions", &body).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let (got, finishes, ids) = openai_stream(&text);
        assert_eq!(got, expected(), "{model}: one answer, no repeats:\n{text}");
        assert_eq!(finishes, ["stop"], "{model}");
        assert_eq!(ids.len(), 1, "{model}: one id: {ids:?}");
        assert!(!text.contains("\"error\""), "{model}");
    }
    // What the fallbacks were sent: the prefill, and vLLM's switch for it.
    let sent: Vec<Value> = mock.requests().iter().filter_map(|r| r.json()).collect();
    let rescue = sent
        .iter()
        .find(|b| b["continue_final_message"] == true)
        .unwrap();
    let last = rescue["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "assistant");
    assert_eq!(last["content"], tollgate::mock::openai::full_text(40));
    let lines = gw.wait_log_lines(3).await;
    for (line, mode) in lines.iter().zip(["continue", "continue", "restart"]) {
        assert_eq!(line["outcome"], "success");
        assert_eq!(line["stream_recovery"], mode);
        assert_eq!(line["attempt_log"][0]["outcome"], "connection_reset");
        assert_eq!(line["attempt_log"][1]["outcome"], "ok");
        assert!(
            line["output_tokens"].as_u64().unwrap() > 40,
            "both attempts: {line}"
        );
    }
    gw.wait_metric(
        "tollgate_stream_recoveries_total",
        &[("mode", "continue"), ("result", "resumed")],
        2.0,
    )
    .await;
}

#[tokio::test]
async fn an_anthropic_client_gets_one_well_formed_message() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    for model in ["recover-openai", "recover-anthropic"] {
        let body = serde_json::json!({"model": model, "max_tokens": 80, "stream": true,
            "messages": [{"role": "user", "content": "Say hello"}]});
        let r = post(&gw, "/v1/messages", &body).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let events: Vec<Value> = sse_data(&text)
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        let count = |k: &str| kinds.iter().filter(|x| **x == k).count();
        assert_eq!(count("message_start"), 1, "{model}: {kinds:?}");
        assert_eq!(count("content_block_start"), 1, "{model}: {kinds:?}");
        assert_eq!(count("content_block_stop"), 1, "{model}: {kinds:?}");
        assert_eq!(count("message_stop"), 1, "{model}: {kinds:?}");
        assert_eq!(count("error"), 0, "{model}: {kinds:?}");
        let got: String = events
            .iter()
            .filter(|e| e["type"] == "content_block_delta")
            .map(|e| {
                assert_eq!(e["index"], 0);
                e["delta"]["text"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(got, expected(), "{model}");
        let delta = events
            .iter()
            .find(|e| e["type"] == "message_delta")
            .unwrap();
        assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 40);
    }
}

#[tokio::test]
async fn without_recovery_or_for_tool_calls_the_honest_error_stays() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", true)).await;
    let text = r.text().await.unwrap();
    assert!(sse_data(&text).last().unwrap().contains("\"error\""));
    // A tool call cut mid-arguments cannot be continued: the honest error.
    let mut body = chat_body("tools", true);
    body["tools"] = serde_json::json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let r = post(&gw, "/v1/chat/completions", &body).await;
    let text = r.text().await.unwrap();
    assert!(text.contains("tool_calls"), "{text}");
    assert!(
        sse_data(&text).last().unwrap().contains("\"error\""),
        "{text}"
    );
    let lines = gw.wait_log_lines(2).await;
    for line in &lines {
        assert_eq!(line["outcome"], "upstream_cut");
        assert!(line.get("stream_recovery").is_none());
    }
    gw.wait_metric(
        "tollgate_stream_recoveries_total",
        &[("mode", "continue"), ("result", "not_resumable")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn the_official_sdks_read_one_complete_answer() {
    let Some(python) = python_with("anthropic, openai, pytest") else {
        return;
    };
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let (ok, report) = crate::sdk::pytest(
        python,
        "test_stream_recovery.py",
        &[
            ("TOLLGATE_ROOT_URL", gw.api.clone()),
            ("TOLLGATE_EXPECTED_TEXT", expected()),
        ],
    )
    .await;
    assert!(ok, "SDK tests failed:\n{report}");
    assert!(report.contains("4 passed"), "{report}");
    let lines = gw.wait_log_lines(4).await;
    assert!(lines.iter().all(|l| l["stream_recovery"] == "continue"));
}

/// A fallback that refuses the prefill (400 to `continue_final_message`): the recovery
/// switches to a restart on it, and the client still gets one whole answer.
#[tokio::test]
async fn a_fallback_that_refuses_the_prefill_restarts_instead() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let mut body = chat_body("recover-refused", true);
    body["max_tokens"] = 80.into();
    let r = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let (got, finishes, _) = openai_stream(&text);
    assert_eq!(got, expected(), "one answer, no repeats:\n{text}");
    assert_eq!(finishes, ["stop"]);
    let line = &gw.wait_log_lines(1).await[0];
    assert_eq!(line["outcome"], "success", "{line}");
    assert_eq!(line["stream_recovery"], "restart", "{line}");
    let outcomes: Vec<&str> = line["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["connection_reset", "status_400", "ok"], "{line}");
}
