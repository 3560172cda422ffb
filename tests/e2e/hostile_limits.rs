//! An attacker's numbers against the limits: output caps near 2^64 that used to wrap the
//! budget arithmetic, and `n`, tools and the output field the backend really honours, which
//! used to slip past the TPM reservation.

use crate::harness::*;
use crate::limits::limits_config;
use serde_json::{json, Value};

async fn send(gw: &Gateway, body: &Value) -> reqwest::Response {
    client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock", "prompt_tokens=10,tokens=5")
        .json(body)
        .send()
        .await
        .expect("request sent")
}

fn body_with(field: &str, value: Value) -> Value {
    let mut body = chat_body("chat", false);
    body[field] = value;
    body
}

#[tokio::test]
async fn output_caps_near_2_to_the_64_are_refused_by_name_and_never_wrap_a_budget() {
    let mock = mock();
    let gw = Gateway::start_raw(
        "",
        &limits_config(&mock.url(), "{ tokens_per_day = 1000 }", ""),
    );
    // Spend the budget: a 900-token reservation settles to the real 15.
    let r = send(&gw, &body_with("max_tokens", json!(900))).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let used = |want: f64| {
        move |v: &Value| v["scopes"][0]["tokens_per_day"]["used"].as_f64() == Some(want)
    };
    gw.wait_admin(
        crate::limits::LIMITS_VIEW,
        "the first request settled",
        used(15.0),
    )
    .await;
    for (field, value) in [
        ("max_tokens", json!(u64::MAX)),
        ("max_completion_tokens", json!(u64::MAX - 5)),
        ("max_tokens", json!(1u64 << 63)),
        ("max_tokens", json!(1u64 << 53)),
        ("max_tokens", json!(-1)),
        ("max_tokens", json!(1.5)),
        ("n", json!(0)),
        ("n", json!(1u64 << 32)),
    ] {
        let r = send(&gw, &body_with(field, value.clone())).await;
        assert_eq!(r.status(), 400, "{field} = {value}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["param"], field, "{e}");
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
    // What stays is exact: 15 used of 1000, so 985 fits once and nothing more does.
    let r = send(&gw, &body_with("max_tokens", json!(970))).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let r = send(&gw, &body_with("max_tokens", json!(980))).await;
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("daily token budget") && message.contains("resets in"),
        "{message}"
    );
    assert!(
        !message.contains("Used"),
        "the refusal tells nothing of what is used: {message}"
    );
    gw.wait_admin(
        crate::limits::LIMITS_VIEW,
        "two settled requests of 15",
        used(30.0),
    )
    .await;
}

#[tokio::test]
async fn the_tpm_reservation_counts_n_tools_and_the_field_chat_honours() {
    let mock = mock();
    let gw = Gateway::start_raw("", &limits_config(&mock.url(), "{ tpm = 1000 }", ""));
    // n = 8 completions of up to 200 tokens each: 1,600 can never fit a 1,000 TPM.
    let mut body = body_with("max_tokens", json!(200));
    body["n"] = json!(8);
    let r = send(&gw, &body).await;
    assert_eq!(r.status(), 429, "n multiplies the output cap");
    r.bytes().await.unwrap();
    // 100 KB of tool definitions are prompt the model reads.
    let mut body = body_with("max_tokens", json!(10));
    let description = "a tool ".repeat(15_000);
    body["tools"] = json!([{"type": "function", "function": {"name": "t", "description": description,
        "parameters": {"type": "object"}}}]);
    let r = send(&gw, &body).await;
    assert_eq!(r.status(), 429, "tools count toward the prompt");
    r.bytes().await.unwrap();
    // Chat backends ignore `max_output_tokens`: a chat reserves the default (1024) instead.
    let r = send(&gw, &body_with("max_output_tokens", json!(1))).await;
    assert_eq!(
        r.status(),
        429,
        "max_output_tokens is not what chat honours"
    );
    r.bytes().await.unwrap();
    assert!(mock.requests().is_empty(), "nothing was admitted");
    // Eight at once under the same TPM: only what fits is admitted.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = gw.url("/v1/chat/completions");
            tokio::spawn(async move {
                let mut body = chat_body("chat", false);
                body["max_tokens"] = json!(400);
                client()
                    .post(url)
                    .bearer_auth(KEY)
                    .header("x-mock", "prompt_tokens=10,tokens=5,ttft_ms=300")
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap() == 200);
    }
    assert_eq!(admitted, 2, "two 400-token reservations fit in 1,000");
}
