//! Resilience: a 200 stream whose first event is an error fails over before any byte reaches
//! the client (CONVENTIONS U7).

use crate::harness::*;
use serde_json::Value;

fn config(url: &str) -> String {
    format!(
        "{}\n{}\n[[models]]\nname = \"chat\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"broken\", model = \"up-a\" }}, {{ provider = \"good\", model = \"up-b\" }}]\n\
         [[models]]\nname = \"alone\"\ntargets = [{{ provider = \"broken\", model = \"up-a\" }}]\n",
        mock_provider("broken", url, "fault=first_error"),
        mock_provider("good", url, ""),
    )
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
