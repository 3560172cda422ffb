//! A Gemini backend (`kind = "gemini"`) over real sockets: the official SDKs through it
//! (tests/sdk/test_gemini_sdk.py), what reached the backend (Gemini's paths, its key header
//! and never the client's, its body shape), metering from its usage metadata, and a failing
//! model of one Gemini provider failing over to another.

use crate::harness::*;
use crate::sdk::pytest;
use serde_json::{json, Value};

fn config(url: &str) -> String {
    format!(
        "{}{}\
         [[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[models]]\nname = \"gemini\"\ntargets = [{{ provider = \"g\", model = \"gemini-2.5-flash\" }}]\n\
         price = {{ input_per_mtok = 0.30, output_per_mtok = 2.50 }}\n\
         [[models]]\nname = \"gemini-busy\"\ntargets = [{{ provider = \"g\", model = \"busy@status=429\" }}]\n\
         [[models]]\nname = \"gemini-failover\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"g\", model = \"down@status=503\" }}, {{ provider = \"g\", model = \"gemini-2.5-pro\" }}]\n",
        provider_toml("g", "gemini", &format!("{url}/v1beta"), ""),
        mock_provider("m", url, ""),
    ) + &provider_toml("g-idle", "gemini", &format!("{url}/v1beta"), "idle_timeout_ms = 1000")
        + "[[models]]\nname = \"gemini-stall\"\n\
           targets = [{ provider = \"g-idle\", model = \"stall@fault=stall,cut_after=3,tokens=10\" }]\n\
           fallbacks = [{ provider = \"g\", model = \"gemini-2.5-pro\" }]\n"
}

#[tokio::test]
async fn both_sdks_work_against_a_gemini_backend() {
    let Some(python) = python_with("openai, anthropic, pytest") else {
        return;
    };
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let (ok, report) = pytest(
        python,
        "test_gemini_sdk.py",
        &[("TOLLGATE_ROOT_URL", gw.api.clone())],
    )
    .await;
    assert!(ok, "SDK tests failed:\n{report}");
    assert!(report.contains("11 passed"), "{report}");

    let calls = mock.requests();
    assert!(!calls.is_empty());
    for r in &calls {
        assert!(r.path.starts_with("/v1beta/models/"), "{}", r.path);
        assert_eq!(r.header("x-goog-api-key"), Some(UPSTREAM_KEY));
        assert_eq!(
            r.header("authorization"),
            None,
            "the client's key stays home"
        );
        assert_eq!(r.header("x-api-key"), None);
        let body = r.json().unwrap();
        assert!(body.get("model").is_none() && body.get("messages").is_none());
        assert!(body["contents"].is_array(), "{body}");
    }
    assert!(calls
        .iter()
        .any(|r| r.path.ends_with(":streamGenerateContent") && r.query == "alt=sse"));
    assert!(calls.iter().any(|r| r.path.ends_with(":generateContent")));
    // Images arrived inline from both SDKs, the schema as Gemini's JSON schema.
    let images = calls
        .iter()
        .filter_map(|r| r.json())
        .filter(|b| b.to_string().contains("IMAGE-CHECK"))
        .collect::<Vec<_>>();
    assert_eq!(images.len(), 2);
    for b in &images {
        let parts = b["contents"][0]["parts"].as_array().unwrap();
        let inline = parts.iter().find_map(|p| p.get("inlineData")).unwrap();
        assert_eq!(inline["mimeType"], "image/png");
    }
    assert!(images
        .iter()
        .any(|b| b["generationConfig"]["responseJsonSchema"] == json!({"type": "object"})));
}

#[tokio::test]
async fn gemini_usage_is_metered_and_a_failing_model_fails_over() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let r = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini", "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}], "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(
        !text.contains("\"usage\""),
        "the client did not ask for usage"
    );

    let r = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini-failover", "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "gemini-2.5-pro");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the Tollgate mock"
    );

    let lines = gw.wait_log_lines(2).await;
    assert_eq!(lines[0]["upstream_dialect"], "gemini");
    assert_eq!(lines[0]["provider"], "g");
    assert_eq!(lines[0]["output_tokens"], 5);
    assert_eq!(lines[0]["usage_source"], "provider");
    assert!(lines[0]["input_tokens"].as_u64().unwrap() > 0);
    assert!(lines[0]["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[1]["attempts"], 2);
    assert_eq!(lines[1]["attempt_log"][0]["status"], 503);
}

#[tokio::test]
async fn a_gemini_stream_reaches_the_client_as_it_is_generated() {
    // Three responses, then silence: the client has them, and then an honest error when the
    // idle clock runs out. (Were the first event not recognised as content, the stream would
    // be held until the clock ran out, then failed over to the fallback.)
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let r = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini-stall",
        "messages": [{"role": "user", "content": "hi"}], "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let data = sse_data(&text);
    let content: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "Hello from the");
    assert!(data.last().unwrap().contains("\"error\""), "{text}");
}
