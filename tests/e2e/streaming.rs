//! Metering: token counts in `/metrics` and the access log, `include_usage` injection and
//! stripping, cut streams, and client disconnects.

use crate::harness::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

fn config(url: &str) -> String {
    format!(
        "{}\n{}\n{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[models]]\nname = \"cut\"\ntargets = [{{ provider = \"cutting\", model = \"up\" }}]\n\
         [[models]]\nname = \"slow\"\ntargets = [{{ provider = \"slow\", model = \"up\" }}]\n\
         [[models]]\nname = \"embed\"\ntargets = [{{ provider = \"m\", model = \"up-embed\" }}]\n",
        mock_provider("m", url, "prompt_tokens=17,tokens=9"),
        mock_provider("cutting", url, "fault=cut,cut_after=4,tokens=20,split=1"),
        mock_provider("slow", url, "itl_ms=40,tokens=200"),
    )
}

#[tokio::test]
async fn token_counts_match_the_upstream_usage() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));

    let plain: Value = post(&gw, "/v1/chat/completions", &chat_body("chat", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(plain["usage"]["prompt_tokens"], 17);
    assert_eq!(plain["usage"]["completion_tokens"], 9);

    // Streaming without include_usage: the gateway asks upstream and strips the extra chunk.
    let text = post(&gw, "/v1/chat/completions", &chat_body("chat", true))
        .await
        .text()
        .await
        .unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(
        !text.contains("usage"),
        "client did not ask for usage: {text}"
    );
    let content: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, tollgate::mock::openai::full_text(9));
    let upstream_body = mock.requests()[1].json().unwrap();
    assert_eq!(upstream_body["stream_options"]["include_usage"], true);

    // Streaming with include_usage: the client gets its usage chunk untouched.
    let mut asked = chat_body("chat", true);
    asked["stream_options"] = json!({"include_usage": true});
    let text = post(&gw, "/v1/chat/completions", &asked)
        .await
        .text()
        .await
        .unwrap();
    let events = sse_data(&text);
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 17);
    assert!(text.contains("\"usage\":null"));

    let emb: Value = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "embed", "input": ["a", "b"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(emb["data"].as_array().unwrap().len(), 2);

    let lines = gw.wait_log_lines(4).await;
    for line in &lines[..3] {
        assert_eq!(line["input_tokens"], 17, "{line}");
        assert_eq!(line["output_tokens"], 9, "{line}");
        assert_eq!(line["usage_source"], "provider");
        assert_eq!(line["consumer"], "team-a");
    }
    assert!(lines[1]["ttft_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[3]["input_tokens"], 17);
    let want_input = 17.0 * 3.0;
    gw.wait_metric(
        "tollgate_tokens_total",
        &[("consumer", "team-a"), ("model", "chat"), ("type", "input")],
        want_input,
    )
    .await;
    gw.wait_metric(
        "tollgate_tokens_total",
        &[("model", "chat"), ("type", "output")],
        27.0,
    )
    .await;
    gw.wait_metric(
        "tollgate_tokens_total",
        &[("model", "embed"), ("type", "input")],
        17.0,
    )
    .await;
    gw.wait_metric(
        "tollgate_requests_total",
        &[("model", "chat"), ("provider", "m"), ("status", "200")],
        3.0,
    )
    .await;
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_time_to_first_token_seconds_count",
            &[("model", "chat")]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "tollgate_request_duration_seconds_count",
            &[("model", "chat")]
        ),
        3.0
    );
}

async fn cut_case(body: Value) {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let resp = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let text = resp
        .text()
        .await
        .expect("the stream ends cleanly with an error event");
    let events = sse_data(&text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{text}");
    assert!(last["error"]["message"].is_string());
    assert!(!text.contains("[DONE]"));
    let line = &gw.wait_log_lines(1).await[0];
    assert_eq!(line["outcome"], "upstream_cut");
    assert_eq!(line["usage_source"], "estimated");
    assert!(line["output_tokens"].as_u64().unwrap() >= 3, "{line}");
    assert!(line["input_tokens"].as_u64().unwrap() > 0, "{line}");
    gw.wait_metric(
        "tollgate_tokens_total",
        &[("model", "cut"), ("type", "output")],
        line["output_tokens"].as_f64().unwrap(),
    )
    .await;
    gw.wait_metric("tollgate_inflight_requests", &[], 0.0).await;
}

#[tokio::test]
async fn cut_stream_ends_with_error_event_and_is_charged() {
    cut_case(chat_body("cut", true)).await;
}

#[tokio::test]
async fn cut_stream_on_the_large_body_path() {
    cut_case(big_chat_body("cut", true, 200 * 1024)).await;
}

#[tokio::test]
async fn client_disconnect_mid_stream_is_logged_and_released() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let resp = post(&gw, "/v1/chat/completions", &chat_body("slow", true)).await;
    let mut stream = resp.bytes_stream();
    let mut seen = 0;
    while let Some(chunk) = stream.next().await {
        seen += chunk.unwrap().len();
        if seen > 600 {
            break;
        }
    }
    drop(stream);
    let line = &gw.wait_log_lines(1).await[0];
    assert_eq!(line["outcome"], "client_disconnect");
    assert_eq!(line["usage_source"], "estimated");
    assert!(line["output_tokens"].as_u64().unwrap() < 200);
    gw.wait_metric("tollgate_inflight_requests", &[], 0.0).await;
    // U8: the upstream request is cancelled too: its connection is closed, not left streaming.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while mock.state.open_connections() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream connection is still open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
