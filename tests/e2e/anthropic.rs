//! Anthropic's Messages API in front and behind: native pass-through, translation to and from
//! OpenAI-compatible backends (JSON and SSE), errors in the client's dialect, Azure paths.

use crate::harness::*;
use serde_json::{json, Value};

fn provider(name: &str, kind: &str, url: &str, script: &str, extra: &str) -> String {
    provider_toml(name, kind, &mock_base(url, script), extra)
}

/// `chat` and `claude` go to an Anthropic backend; `gpt` to an OpenAI one; `cut-*` are cut.
pub fn config(url: &str) -> String {
    [
        provider("claude-backend", "anthropic", url, "", ""),
        provider("openai-backend", "openai", url, "", ""),
        provider("claude-cut", "anthropic", url, "fault=cut,cut_after=4", ""),
        provider("openai-cut", "openai", url, "fault=cut,cut_after=3", ""),
        provider("claude-busy", "anthropic", url, "status=529", ""),
        "[[models]]\nname = \"chat\"\ntargets = [{ provider = \"claude-backend\", model = \"claude-up\" }]\n".into(),
        "[[models]]\nname = \"claude\"\ntargets = [{ provider = \"claude-backend\", model = \"claude-up\" }]\n".into(),
        "[[models]]\nname = \"gpt\"\ntargets = [{ provider = \"openai-backend\", model = \"gpt-up\" }]\n".into(),
        "[[models]]\nname = \"cut-claude\"\ntargets = [{ provider = \"claude-cut\", model = \"c\" }]\n".into(),
        "[[models]]\nname = \"cut-gpt\"\ntargets = [{ provider = \"openai-cut\", model = \"g\" }]\n".into(),
        "[[models]]\nname = \"busy\"\ntargets = [{ provider = \"claude-busy\", model = \"c\" }]\n".into(),
    ]
    .concat()
}

async fn messages(gw: &Gateway, body: &Value) -> reqwest::Response {
    anthropic_post(gw, "/v1/messages", body).await
}

/// A POST as the anthropic SDK sends it (`x-api-key`, `anthropic-version`).
async fn anthropic_post(gw: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .expect("request sent")
}

fn messages_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 8, "stream": stream,
           "system": "Be brief.", "messages": [{"role": "user", "content": "Hello"}]})
}

/// `(event name, data)` of every event in an SSE body.
fn named_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("null");
            (name, serde_json::from_str(data).unwrap_or(Value::Null))
        })
        .collect()
}

fn text_of_events(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter_map(|(_, v)| v["delta"]["text"].as_str())
        .collect()
}

#[tokio::test]
async fn anthropic_clients_pass_through_to_anthropic_backends() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let history = json!({"model": "claude", "max_tokens": 8,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "secret chain", "signature": "sig=="},
                                              {"type": "text", "text": "Hello"}]},
            {"role": "user", "content": "Again"}]});
    let r = client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&history)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(
        v["content"][0]["text"],
        "Hello from the Tollgate mock model, streaming"
    );

    let seen = &mock.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14")
    );
    let sent = seen.json().unwrap();
    assert_eq!(sent["model"], "claude-up");
    assert_eq!(
        sent["thinking"], history["thinking"],
        "thinking passes untouched"
    );
    assert_eq!(sent["messages"], history["messages"]);

    let r = messages(&gw, &messages_body("claude", true)).await;
    assert_eq!(r.status(), 200);
    let events = named_events(&r.text().await.unwrap());
    assert_eq!(events.first().unwrap().0, "message_start");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(
        text_of_events(&events),
        "Hello from the Tollgate mock model, streaming"
    );

    let lines = gw.wait_log_lines(2).await;
    for line in &lines {
        assert_eq!(line["client_dialect"], "anthropic");
        assert_eq!(line["upstream_dialect"], "anthropic");
        assert_eq!(line["usage_source"], "provider");
        assert_eq!(line["output_tokens"], 8, "{line}");
        assert!(line["input_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn anthropic_clients_are_served_by_openai_backends() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let r = messages(&gw, &messages_body("gpt", false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["usage"]["output_tokens"], 8);

    let r = messages(&gw, &messages_body("gpt", true)).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = named_events(&r.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert_eq!(
        text_of_events(&events),
        "Hello from the Tollgate mock model, streaming"
    );
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["usage"]["output_tokens"], 8);
    // Input usage in message_start (clients such as @langchain/anthropic read it only there):
    // the gateway's estimate, since an OpenAI backend counts only at the end; message_delta
    // carries the backend's count.
    let start = &events[0].1["message"]["usage"];
    assert!(
        start["input_tokens"].as_u64().unwrap() > 0,
        "message_start usage: {start}"
    );
    assert!(
        delta["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{delta}"
    );

    let seen = mock.requests();
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    assert_eq!(seen[0].header("anthropic-version"), None);
    let sent = seen[1].json().unwrap();
    assert_eq!(sent["model"], "gpt-up");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["stream_options"]["include_usage"], true);

    let lines = gw.wait_log_lines(2).await;
    for line in &lines {
        assert_eq!(line["client_dialect"], "anthropic");
        assert_eq!(line["upstream_dialect"], "openai");
        assert_eq!(line["usage_source"], "provider");
        assert_eq!(line["output_tokens"], 8, "{line}");
    }
}

#[tokio::test]
async fn openai_clients_are_served_by_anthropic_backends() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let r = post(&gw, "/v1/chat/completions", &chat_body("claude", false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("Hello"));
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    // Without include_usage, the client gets no usage chunk (the gateway still meters).
    let r = post(&gw, "/v1/chat/completions", &chat_body("claude", true)).await;
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.starts_with("Hello from the Tollgate"));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    let seen = mock.requests();
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(seen[0].header("anthropic-version"), Some("2023-06-01"));
    let sent = seen[0].json().unwrap();
    assert_eq!(sent["model"], "claude-up");
    assert!(sent["max_tokens"].as_u64().is_some());

    let lines = gw.wait_log_lines(2).await;
    assert_eq!(lines[1]["client_dialect"], "openai");
    assert_eq!(lines[1]["upstream_dialect"], "anthropic");
    assert_eq!(lines[1]["usage_source"], "provider");
    assert!(lines[1]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn errors_speak_the_clients_dialect() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let anthropic_error = |v: &Value, kind: &str| {
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(v["error"]["message"].is_string());
    };
    // Gateway-made: no key, wrong key, unknown model, malformed JSON, missing max_tokens.
    let r = client()
        .post(gw.url("/v1/messages"))
        .json(&messages_body("claude", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    anthropic_error(&r.json().await.unwrap(), "authentication_error");
    let r = client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", "nope")
        .json(&messages_body("claude", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = messages(&gw, &messages_body("no-such-model", false)).await;
    assert_eq!(r.status(), 404);
    anthropic_error(&r.json().await.unwrap(), "not_found_error");
    let r = client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    anthropic_error(&r.json().await.unwrap(), "invalid_request_error");
    let r = messages(&gw, &json!({"model": "claude", "messages": []})).await;
    assert_eq!(r.status(), 400);
    anthropic_error(&r.json().await.unwrap(), "invalid_request_error");

    // Untranslatable: named, never sent.
    let before = mock.requests().len();
    let mut body = messages_body("gpt", false);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let r = messages(&gw, &body).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    anthropic_error(&v, "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`thinking`"),
        "{v}"
    );
    let mut body = chat_body("claude", false);
    body["n"] = json!(3);
    let r = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "n");
    assert_eq!(v["error"]["code"], "untranslatable_field");
    assert_eq!(mock.requests().len(), before);

    // An Anthropic backend's 529 reaches an OpenAI client in OpenAI's shape.
    let r = post(&gw, "/v1/chat/completions", &chat_body("busy", false)).await;
    assert_eq!(r.status(), 529);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "overloaded_error");
    assert!(v["error"]["message"].is_string());

    // Cut mid-stream: `event: error` for Anthropic clients, whichever backend.
    for model in ["cut-claude", "cut-gpt"] {
        let r = messages(&gw, &messages_body(model, true)).await;
        assert_eq!(r.status(), 200);
        let events = named_events(&r.text().await.unwrap());
        let (name, v) = events.last().unwrap();
        assert_eq!(name, "error", "{model}: {events:?}");
        anthropic_error(v, "api_error");
        assert!(!events.iter().any(|(n, _)| n == "message_stop"), "{model}");
    }
}

#[tokio::test]
async fn count_tokens_is_answered_locally() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let long = "word ".repeat(1000);
    let count = |body: Value| {
        let gw = &gw;
        async move {
            let r = anthropic_post(gw, "/v1/messages/count_tokens", &body).await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let hello = json!([{"role": "user", "content": "Hello there"}]);
    let short = count(json!({"model": "claude", "messages": hello})).await;
    let long = count(json!({"model": "claude", "system": long, "messages": hello})).await;
    let (s, l) = (
        short["input_tokens"].as_u64().unwrap(),
        long["input_tokens"].as_u64().unwrap(),
    );
    assert!((3..20).contains(&s), "{s}");
    assert!((900..1100).contains(&(l - s)), "{l} - {s}");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn azure_deployments_get_their_path_version_and_key_header() {
    let mock = mock();
    let body = [
        provider("az", "azure", &mock.url(), "", "api_version = \"2024-10-21\""),
        "[[models]]\nname = \"chat\"\ntargets = [{ provider = \"az\", model = \"gpt4o-deploy\" }]\n".into(),
    ]
    .concat();
    // The mock serves /v1/..., so the Azure base URL is the mock's root.
    let body = body.replace(&format!("{}/v1", mock.url()), &mock.url());
    let gw = Gateway::start(&body);
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    assert_eq!(r.status(), 200);
    let seen = &mock.requests()[0];
    assert_eq!(
        seen.path,
        "/openai/deployments/gpt4o-deploy/chat/completions"
    );
    assert_eq!(seen.query, "api-version=2024-10-21");
    assert_eq!(seen.header("api-key"), Some(UPSTREAM_KEY));
    assert_eq!(seen.header("authorization"), None);
    let lines = gw.wait_log_lines(1).await;
    assert_eq!(lines[0]["upstream_dialect"], "openai");
}

#[tokio::test]
async fn limits_answer_anthropic_clients_with_anthropic_headers() {
    let mock = mock();
    let rest = format!(
        "{}[[consumers]]\nname = \"team-a\"\nkeys = [\"{}\"]\nlimits = {{ rpm = 1 }}\n",
        config(&mock.url()),
        digest_line(KEY)
    );
    let gw = Gateway::start_raw("", &rest);
    let r = messages(&gw, &messages_body("gpt", false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["anthropic-ratelimit-requests-limit"], "1");
    assert_eq!(r.headers()["anthropic-ratelimit-requests-remaining"], "0");
    assert!(r.headers().get("x-ratelimit-limit-requests").is_none());
    let r = messages(&gw, &messages_body("gpt", false)).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let reset = r.headers()["anthropic-ratelimit-requests-reset"]
        .to_str()
        .unwrap();
    assert!(reset.parse::<jiff::Timestamp>().is_ok(), "{reset}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn oversized_bodies_and_first_event_errors_on_the_messages_endpoint() {
    let mock = mock();
    let body = [
        config(&mock.url()),
        provider("claude-first-error", "anthropic", &mock.url(), "fault=first_error", ""),
        "[[models]]\nname = \"mixed\"\nstrategy = \"priority\"\ntargets = [{ provider = \"claude-first-error\", model = \"c\" }, { provider = \"openai-backend\", model = \"g\" }]\n".into(),
    ]
    .concat();
    let gw = Gateway::start_with(&body, "max_body_bytes = 2048");
    let mut big = messages_body("claude", false);
    big["system"] = json!("x".repeat(4096));
    let r = messages(&gw, &big).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "request_too_large");

    // The Anthropic backend's first event is `event: error`: fail over to the OpenAI one
    // before any byte, and the client gets one clean Anthropic stream.
    let r = messages(&gw, &messages_body("mixed", true)).await;
    assert_eq!(r.status(), 200);
    let events = named_events(&r.text().await.unwrap());
    assert!(!events.iter().any(|(n, _)| n == "error"), "{events:?}");
    assert_eq!(
        events.iter().filter(|(n, _)| n == "message_start").count(),
        1
    );
    assert_eq!(events.last().unwrap().0, "message_stop");
    let lines = gw.wait_log_lines(2).await;
    let outcomes: Vec<&str> = lines[1]["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["first_frame_error", "ok"]);
    assert_eq!(lines[1]["upstream_dialect"], "openai");
}

/// JSON mode (`response_format: json_object`, the OpenAI SDK's and LiteLLM's JSON mode) on an
/// Anthropic backend: the request is prefilled with `{` and the client gets a whole JSON
/// object, whole and streamed.
#[tokio::test]
async fn json_mode_reaches_anthropic_backends_as_a_prefill() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    // What a model continuing after the `{` says.
    let reply = r#"{"content": ["\"answer\": ", "\"hi\"}"]}"#;
    for stream in [false, true] {
        let mut body = chat_body("claude", stream);
        body["response_format"] = json!({"type": "json_object"});
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("x-mock-reply", reply)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "stream: {stream}");
        let text = if stream {
            let body = r.text().await.unwrap();
            sse_data(&body)
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|v| {
                    v["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(String::from)
                })
                .collect::<String>()
        } else {
            let v: Value = r.json().await.unwrap();
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(answer, json!({"answer": "hi"}), "stream: {stream}");
    }
    let sent = mock.requests()[0].json().unwrap();
    let last = sent["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "assistant");
    assert_eq!(last["content"][0]["text"], "{");
    assert!(sent.get("output_config").is_none(), "{sent}");
}
