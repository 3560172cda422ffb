//! Auth, model access, and bad input: clear errors, and the upstream is never called.

use crate::harness::*;
use serde_json::{json, Value};

fn config(url: &str) -> String {
    format!(
        "{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up-chat\" }}]\n\n\
         [[models]]\nname = \"other\"\ntargets = [{{ provider = \"m\", model = \"up-other\" }}]\n",
        mock_provider("m", url, "")
    )
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["x-tollgate-error"], "true");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.expect("JSON error body");
    for field in ["message", "type", "param", "code"] {
        assert!(
            body["error"].get(field).is_some(),
            "error.{field} missing in {body}"
        );
    }
    (status, body)
}

#[tokio::test]
async fn keys_and_model_access_are_enforced() {
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let c = client();
    let body = chat_body("chat", false);

    let (status, e) = error_of(
        c.post(gw.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"].as_str().unwrap().contains("API key"));

    let resp = c
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("tg-wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, e) = error_of(resp).await;
    assert_eq!(status, 401);
    assert_eq!(e["error"]["code"], "invalid_api_key");
    assert!(
        !e.to_string().contains("tg-wrong"),
        "a presented key is never echoed"
    );

    let resp = c
        .post(gw.url("/v1/chat/completions"))
        .header("x-api-key", LIMITED_KEY)
        .json(&chat_body("other", false))
        .send()
        .await
        .unwrap();
    let (status, e) = error_of(resp).await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["code"], "model_not_found");
    assert_eq!(e["error"]["param"], "model");

    let (status, _) =
        error_of(post(&gw, "/v1/chat/completions", &chat_body("nope", false)).await).await;
    assert_eq!(status, 404);

    let models: Value = c
        .get(gw.url("/v1/models"))
        .header("x-api-key", LIMITED_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["chat"]);
    let models: Value = c
        .get(gw.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 2);

    assert!(
        mock.requests().is_empty(),
        "refused requests never reach the upstream"
    );
    let lines = gw.wait_log_lines(6).await;
    assert_eq!(lines[0]["outcome"], "unauthorized");
    assert_eq!(lines[2]["outcome"], "model_not_found");
}

#[tokio::test]
async fn bad_bodies_get_400_and_413_and_never_reach_upstream() {
    let mock = mock();
    let gw = Gateway::start_with(&config(&mock.url()), "max_body_bytes = 1048576");
    let c = client();
    let send = |body: Vec<u8>| {
        c.post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let (status, e) = error_of(send(b"{\"model\":".to_vec()).await.unwrap()).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, e) = error_of(send(b"{\"messages\":[]}".to_vec()).await.unwrap()).await;
    assert_eq!((status, e["error"]["param"].as_str()), (400, Some("model")));
    let (status, _) = error_of(send(b"\xff\xfe".to_vec()).await.unwrap()).await;
    assert_eq!(status, 400);
    let deep = format!(
        "{{\"model\":\"chat\",\"x\":{}{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let (status, _) = error_of(send(deep.into_bytes()).await.unwrap()).await;
    assert_eq!(status, 400);

    let big = serde_json::to_vec(&big_chat_body("chat", false, 2 * 1024 * 1024)).unwrap();
    let (status, e) = error_of(send(big.clone()).await.unwrap()).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (413, Some("request_too_large"))
    );

    // Without Content-Length (chunked): the cap applies while reading.
    let stream = futures_util::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let resp = c
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let (status, e) = error_of(resp).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (413, Some("request_too_large"))
    );

    let resp = c
        .get(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let (status, e) = error_of(resp).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let resp = c
        .post(gw.url("/v2/whatever"))
        .bearer_auth(KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, e) = error_of(resp).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("unknown_url"))
    );

    assert!(
        mock.requests().is_empty(),
        "bad input never reaches the upstream"
    );
    gw.wait_metric("tollgate_inflight_requests", &[], 0.0).await;
}

/// A client still writing an oversized body reads the 413 instead of a reset: the rest of the
/// body (up to 16 MiB) is read and dropped before the answer.
#[tokio::test]
async fn a_client_still_writing_an_oversized_body_reads_the_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = mock();
    let gw = Gateway::start_with(&config(&mock.url()), "max_body_bytes = 1048576");
    let addr = gw.api.trim_start_matches("http://").to_string();
    let body = vec![b' '; 12 * 1024 * 1024];
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body)
        .await
        .expect("the whole body is taken, not refused mid-write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        s.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("request_too_large"), "{text}");
}
