//! IP rules over real sockets: global and per-consumer allow/deny lists, `X-Forwarded-For`
//! believed only from trusted proxies (its rightmost untrusted entry), and 403
//! `permission_denied` in the client's dialect. Every client here connects from 127.0.0.1.

use crate::harness::*;
use serde_json::Value;

fn start(mock: &tollgate::mock::MockServer, access: &str, consumer_extra: &str) -> Gateway {
    let url = mock.url();
    let rest = format!(
        "{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[consumers]]\nname = \"team-a\"\nkeys = [\"{}\"]\n{consumer_extra}\n\
         [access]\n{access}\n",
        mock_provider("m", &url, ""),
        digest_line(KEY),
    );
    Gateway::start_raw("", &rest)
}

async fn chat_from(gw: &Gateway, forwarded: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body("chat", false));
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_denied_address_gets_403_in_its_dialect() {
    let mock = mock();
    let gw = start(&mock, "deny = [\"127.0.0.0/8\"]", "");
    let r = chat_from(&gw, None).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-should-retry"], "false");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "permission_denied");
    let r = client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .json(&serde_json::json!({"model": "chat", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "permission_error");
    let lines = gw.wait_log_lines(2).await;
    assert_eq!(lines[0]["outcome"], "ip_denied");
    assert_eq!(lines[0]["client_ip"], "127.0.0.1");
}

#[tokio::test]
async fn an_allowed_address_passes_and_a_spoofed_forwarded_for_is_not_believed() {
    let mock = mock();
    // Loopback is allowed; 10/8 is not. The peer is no trusted proxy, so its claim to be
    // 10.1.1.1 (or anything else) changes nothing.
    let gw = start(&mock, "allow = [\"127.0.0.1/32\"]", "");
    assert_eq!(chat_from(&gw, None).await.status(), 200);
    assert_eq!(chat_from(&gw, Some("10.1.1.1")).await.status(), 200);
    let gw = start(&mock, "allow = [\"10.0.0.0/8\"]", "");
    assert_eq!(
        chat_from(&gw, Some("10.1.1.1")).await.status(),
        403,
        "spoofed"
    );
    let lines = gw.wait_log_lines(1).await;
    assert_eq!(lines[0]["client_ip"], "127.0.0.1");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_rightmost_untrusted_address_is_the_client() {
    let mock = mock();
    let gw = start(
        &mock,
        "trusted_proxies = [\"127.0.0.1\", \"192.0.2.10\"]\ndeny = [\"203.0.113.0/24\"]",
        "",
    );
    assert_eq!(chat_from(&gw, Some("203.0.113.9")).await.status(), 403);
    assert_eq!(chat_from(&gw, Some("198.51.100.7")).await.status(), 200);
    // The left entry is the client's own claim; the right one came from a trusted hop.
    let chain = "203.0.113.9, 198.51.100.7, 192.0.2.10";
    assert_eq!(chat_from(&gw, Some(chain)).await.status(), 200);
    let chain = "198.51.100.7, 203.0.113.9";
    assert_eq!(chat_from(&gw, Some(chain)).await.status(), 403);
    let lines = gw.wait_log_lines(4).await;
    let ips: Vec<&str> = lines
        .iter()
        .map(|l| l["client_ip"].as_str().unwrap())
        .collect();
    assert_eq!(
        ips,
        ["203.0.113.9", "198.51.100.7", "198.51.100.7", "203.0.113.9"]
    );
}

#[tokio::test]
async fn a_consumer_can_be_bound_to_its_networks() {
    let mock = mock();
    let gw = start(&mock, "", "allow_ips = [\"192.0.2.0/24\"]");
    let r = chat_from(&gw, None).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "permission_denied");
    let gw = start(&mock, "", "deny_ips = [\"192.0.2.0/24\"]");
    assert_eq!(chat_from(&gw, None).await.status(), 200);
    let errors = tollgate::config::parse(
        "[access]\nallow = [\"10.0.0.0/99\"]\n[[consumers]]\nname = \"c\"\nkeys = []\ndeny_ips = [\"x\"]\n",
    )
    .unwrap_err()
    .errors;
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("access.allow[0] must be an IP address or CIDR")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("consumers[0].deny_ips[0]")),
        "{errors:?}"
    );
}

fn start_keyless(mock: &tollgate::mock::MockServer, keyless: &str) -> Gateway {
    let rest = format!(
        "{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[consumers]]\nname = \"team-a\"\nkeys = [\"{}\"]\n\
         [[consumers]]\nname = \"local-agents\"\nkeys = []\nkeyless_from = [\"{keyless}\"]\n",
        mock_provider("m", &mock.url(), ""),
        digest_line(KEY),
    );
    Gateway::start_raw("", &rest)
}

#[tokio::test]
async fn a_keyless_request_from_a_keyless_network_is_its_consumer_and_a_key_is_still_judged() {
    let mock = mock();
    let gw = start_keyless(&mock, "127.0.0.0/8");
    let keyless = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(keyless.status(), 200);
    // A presented key is judged by the key: a wrong one is 401, not the keyless consumer.
    let wrong = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("tg-wrong")
        .json(&chat_body("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let lines = gw.wait_log_lines(2).await;
    assert_eq!(lines[0]["consumer"], "local-agents");
    assert_eq!(lines[1]["status"], 401);
}

#[tokio::test]
async fn a_keyless_request_from_elsewhere_still_needs_a_key() {
    let mock = mock();
    let gw = start_keyless(&mock, "10.0.0.0/8");
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("API key"));
}
