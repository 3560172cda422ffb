//! Routing rules: context length, header, JSON field, content keyword and canary rules pick
//! their targets; too-small context windows are skipped; the access log and metrics say which
//! rule matched.

use crate::harness::*;
use serde_json::{json, Value};

fn config(url: &str) -> String {
    let t = |model: &str| format!("[{{ provider = \"m\", model = \"{model}\" }}]");
    format!(
        "{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"small-8k\", context_window = 8000 }}]\n\
         [[models.rules]]\nname = \"long-context\"\nmin_prompt_tokens = 300\ntargets = {}\n\
         [[models.rules]]\nname = \"gold\"\nheader = \"x-tenant\"\nheader_equals = \"gold\"\ntargets = {}\n\
         [[models.rules]]\nname = \"tools\"\nfield = \"tools\"\ntargets = {}\n\
         [[models.rules]]\nname = \"sql\"\nlast_user_contains = [\"SQL\", \"database\"]\ntargets = {}\n\
         [[models.rules]]\nname = \"canary\"\npercent = 20\ntargets = {}\n\n\
         [[models]]\nname = \"windowed\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"m\", model = \"tiny\", context_window = 100 }}, {{ provider = \"m\", model = \"roomy\" }}]\n\n\
         [[models]]\nname = \"tiny-only\"\ntargets = [{{ provider = \"m\", model = \"tiny\", context_window = 50 }}]\n",
        mock_provider("m", url, ""),
        t("big-128k"),
        t("gold-model"),
        t("tools-model"),
        t("sql-model"),
        t("canary-model"),
    )
}

async fn route(gw: &Gateway, mock: &MockServer, body: Value, tenant: Option<&str>) -> String {
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body);
    if let Some(t) = tenant {
        req = req.header("x-tenant", t);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let last = mock.requests().last().unwrap().json().unwrap();
    last["model"].as_str().unwrap().to_string()
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 16, "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": text}]})
}

#[tokio::test]
async fn each_rule_kind_picks_its_targets() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let long = "please summarise this paragraph about gateways ".repeat(60);
    assert_eq!(
        route(&gw, &mock, chat("chat", &long), None).await,
        "big-128k"
    );
    assert_eq!(
        route(&gw, &mock, chat("chat", "hi"), Some("gold")).await,
        "gold-model"
    );
    assert_ne!(
        route(&gw, &mock, chat("chat", "hi"), Some("silver")).await,
        "gold-model"
    );
    let mut with_tools = chat("chat", "hi");
    with_tools["tools"] =
        json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);
    assert_eq!(route(&gw, &mock, with_tools, None).await, "tools-model");
    let mut null_tools = chat("chat", "hi");
    null_tools["tools"] = Value::Null;
    assert_ne!(route(&gw, &mock, null_tools, None).await, "tools-model");
    // Only the last user message counts, case-insensitively, in text parts too.
    let sql = json!({"model": "chat", "messages": [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": [{"type": "text", "text": "Write an sql query"}]}]});
    assert_eq!(route(&gw, &mock, sql, None).await, "sql-model");
    let earlier = json!({"model": "chat", "messages": [
        {"role": "user", "content": "about SQL"}, {"role": "user", "content": "never mind"}]});
    assert_ne!(route(&gw, &mock, earlier, None).await, "sql-model");

    // The canary takes about its share of the rest.
    let mut canary = 0;
    for _ in 0..200 {
        canary += usize::from(route(&gw, &mock, chat("chat", "hi"), None).await == "canary-model");
    }
    assert!(
        (20..=60).contains(&canary),
        "canary got {canary} of 200 at 20%"
    );

    let lines = gw.wait_log_lines(207).await;
    assert_eq!(lines[0]["rule"], "long-context");
    assert_eq!(lines[1]["rule"], "gold");
    assert!(
        lines[2].get("rule").is_none() || lines[2]["rule"] == "canary",
        "no rule matched (but the canary may have)"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_route_decisions_total",
            &[("model", "chat"), ("rule", "gold")]
        ),
        1.0
    );
    let canary_lines = lines.iter().filter(|l| l["rule"] == "canary").count();
    assert!(canary_lines >= canary);
    assert_eq!(
        metric(&m, "tollgate_route_decisions_total", &[("rule", "canary")]),
        canary_lines as f64
    );
}

#[tokio::test]
async fn too_small_context_windows_are_skipped_before_sending() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let long = "tell me more about limits and routing ".repeat(30);
    assert_eq!(
        route(&gw, &mock, chat("windowed", &long), None).await,
        "roomy"
    );
    assert_eq!(
        route(&gw, &mock, chat("windowed", "hi"), None).await,
        "tiny"
    );
    let before = mock.requests().len();
    let r = post(&gw, "/v1/chat/completions", &chat("tiny-only", &long)).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "context_length_exceeded");
    assert_eq!(e["error"]["param"], "messages");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum context length is 50 tokens"));
    assert_eq!(mock.requests().len(), before, "never sent upstream");
    let lines = gw.wait_log_lines(3).await;
    assert_eq!(lines[0]["skipped_targets"], json!(["m/tiny"]));
    assert_eq!(lines[2]["outcome"], "context_too_long");
}
