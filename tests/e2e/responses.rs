//! OpenAI's Responses API over real sockets: the official SDK (tests/sdk/test_responses_sdk.py)
//! against a backend serving Responses (passed through) and three that do not (translated
//! through Chat Completions to OpenAI, Anthropic and Gemini wire formats); what each backend
//! received, and what was charged.

use crate::harness::*;
use crate::sdk::pytest;

fn config(url: &str) -> String {
    format!(
        "{}{}{}{}\
         [[models]]\nname = \"chat\"\ntargets = [{{ provider = \"openai-chat\", model = \"gpt-up\" }}]\n\
         price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}\n\
         [[models]]\nname = \"native\"\ntargets = [{{ provider = \"openai-native\", model = \"gpt-native\" }}]\n\
         [[models]]\nname = \"claude\"\ntargets = [{{ provider = \"claude\", model = \"claude-up\" }}]\n\
         [[models]]\nname = \"gemini\"\ntargets = [{{ provider = \"gemini\", model = \"gemini-2.5-flash\" }}]\n",
        provider_toml("openai-chat", "openai", &format!("{url}/v1"), ""),
        provider_toml("openai-native", "openai", &format!("{url}/v1"), "responses = true"),
        provider_toml("claude", "anthropic", &format!("{url}/v1"), ""),
        provider_toml("gemini", "gemini", &format!("{url}/v1beta"), ""),
    )
}

#[tokio::test]
async fn the_openai_sdk_responses_api_works_against_every_backend() {
    let Some(python) = python_with("openai, pytest") else {
        return;
    };
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let (ok, report) = pytest(
        python,
        "test_responses_sdk.py",
        &[("TOLLGATE_ROOT_URL", gw.api.clone())],
    )
    .await;
    assert!(ok, "SDK tests failed:\n{report}");
    assert!(report.contains("25 passed"), "{report}");

    let calls = mock.requests();
    let on = |prefix: &str| calls.iter().filter(|r| r.path.starts_with(prefix)).count();
    // Only the native backend saw /v1/responses, with the client's own body.
    let native: Vec<_> = calls.iter().filter(|r| r.path == "/v1/responses").collect();
    assert!(!native.is_empty());
    for r in &native {
        let b = r.json().unwrap();
        assert_eq!(b["model"], "gpt-native");
        assert!(
            b.get("input").is_some() && b.get("messages").is_none(),
            "{b}"
        );
    }
    assert!(on("/v1/chat/completions") > 0 && on("/v1/messages") > 0 && on("/v1beta/models/") > 0);
    for r in calls.iter().filter(|r| r.path == "/v1/chat/completions") {
        let b = r.json().unwrap();
        assert!(b.get("input").is_none() && b["messages"].is_array(), "{b}");
    }

    // Every answered request was charged from the backend's own usage figures.
    let lines = gw.log_lines();
    // Model calls (the stored responses' GET and DELETE are answered here, uncharged).
    let answered: Vec<_> = lines
        .iter()
        .filter(|l| l["status"] == 200 && l["method"] == "POST")
        .collect();
    assert!(answered.len() >= 20, "{}", answered.len());
    for l in &answered {
        assert_eq!(l["path"], "/v1/responses");
        assert_eq!(l["usage_source"], "provider", "{l}");
        assert!(l["output_tokens"].as_u64().unwrap() > 0, "{l}");
    }
    let dialects: std::collections::BTreeSet<_> = answered
        .iter()
        .map(|l| l["upstream_dialect"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        dialects.into_iter().collect::<Vec<_>>(),
        ["anthropic", "gemini", "openai", "openai_responses"]
    );
    assert!(answered
        .iter()
        .any(|l| l["model"] == "chat" && l["cost_usd"].as_f64().unwrap() > 0.0));
    let metrics = gw.metrics().await;
    assert!(metric(&metrics, "tollgate_tokens_total", &[("model", "gemini")]) > 0.0);
}

#[tokio::test]
async fn responses_streams_in_order_and_refuses_what_it_cannot_screen() {
    let mock = mock();
    let guarded = "[[models]]\nname = \"guarded\"\ntargets = [{ provider = \"openai-chat\", model = \"g\" }]\n\
        [[guardrails]]\nname = \"privacy\"\nmodels = [\"guarded\"]\n[[guardrails.rules]]\nname = \"pii\"\n\
        kind = \"pii\"\ndetectors = [\"email\"]\naction = \"mask\"\n";
    let gw = Gateway::start(&(config(&mock.url()) + guarded));
    // A raw stream through the Anthropic backend: the Responses sequence, in order.
    let body = serde_json::json!({"model": "claude", "input": "hi", "stream": true, "max_output_tokens": 3});
    let r = post(&gw, "/v1/responses", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"response.created"));
    assert_eq!(names.last(), Some(&"response.completed"));
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "response.output_text.delta")
            .count(),
        3
    );
    // Content policies cannot read a Responses body yet: refused, and nothing went upstream.
    let before = mock.requests().len();
    let r = post(
        &gw,
        "/v1/responses",
        &serde_json::json!({"model": "guarded", "input": "a@b.example"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Responses API"),
        "{v}"
    );
    assert_eq!(mock.requests().len(), before);
}
