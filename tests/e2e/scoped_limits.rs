//! Limits beyond the consumer's: an API key's own `limits` bind that key alone, and a
//! `[[tenants]]` entry's limits are shared by every consumer of the tenant; refusals come in
//! the client's dialect and name the scope; usage groups by the key's project and tenant.

use crate::harness::*;
use crate::keys::{admin, chat_with, TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

fn start(state: &std::path::Path) -> Gateway {
    let rest = format!(
        "[[providers]]\nname = \"m\"\nkind = \"mock\"\n\
         [[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[tenants]]\nname = \"acme\"\nlimits = {{ rpm = 5 }}\n\
         [[consumers]]\nname = \"team-a\"\nkeys = [\"{}\"]\ntenant = \"acme\"\nproject = \"search\"\n\
         [[consumers]]\nname = \"team-b\"\nkeys = [\"{}\"]\ntenant = \"acme\"\n\
         [admin]\ntoken_env = \"TG_ADMIN_TOKENS\"\n[keys]\nstate_file = \"{}\"\n",
        digest_line(KEY),
        digest_line(LIMITED_KEY),
        state.join("keys.json").display()
    );
    Gateway::start_raw(
        "grace_period_seconds = 0\ngraceful_shutdown_timeout_seconds = 1",
        &rest,
    )
}

async fn refusal(gw: &Gateway, key: &str) -> (u16, Option<String>, Value) {
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body("chat", false))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

fn top<'a>(v: &'a Value, key: &str) -> &'a Value {
    v["top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("no `{key}` in {v}"))
}

#[tokio::test]
async fn a_keys_limits_bind_that_key_and_a_tenant_is_shared_by_its_consumers() {
    let state = tempfile::tempdir().unwrap();
    let gw = start(state.path());
    let (status, made) = admin(
        &gw,
        Method::POST,
        "/admin/keys",
        Some(json!({"consumer": "team-a", "name": "mobile", "limits": {"rpm": 2}, "project": "mobile"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["limits"]["rpm"], 2);
    let id = made["id"].as_str().unwrap().to_string();
    let key = made["key"].as_str().unwrap().to_string();

    for _ in 0..2 {
        assert_eq!(chat_with(&gw, &key, "chat").await, 200);
    }
    let (status, retry, e) = refusal(&gw, &key).await;
    assert_eq!(status, 429, "{e}");
    assert!(retry.is_some(), "Retry-After on a key refusal");
    assert_eq!(e["error"]["code"], "rate_limit_exceeded", "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("key `{id}`")), "{message}");
    // The Anthropic dialect gets its own shape.
    let r = client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "chat", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "rate_limit_error", "{e}");

    // The same consumer's other key is not bound by it; the tenant (5 a minute) is.
    assert_eq!(chat_with(&gw, KEY, "chat").await, 200);
    assert_eq!(chat_with(&gw, LIMITED_KEY, "chat").await, 200);
    assert_eq!(chat_with(&gw, LIMITED_KEY, "chat").await, 200);
    let (status, _, e) = refusal(&gw, LIMITED_KEY).await;
    assert_eq!(status, 429, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("tenant `acme`"), "{message}");
    assert_eq!(refusal(&gw, KEY).await.0, 429, "team-a shares the tenant");

    // Malformed key limits are refused, naming the field.
    let (status, e) = admin(
        &gw,
        Method::POST,
        "/admin/keys",
        Some(json!({"consumer": "team-a", "limits": {"rpm": 0}})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.rpm must be > 0"),
        "{e}"
    );

    // Usage: the key's project is its own; the tenant sums both consumers.
    gw.wait_log_lines(9).await;
    let v = gw.admin_json("/admin/usage?group_by=project").await;
    assert_eq!(
        top(&v, "mobile")["requests"],
        4,
        "2 served + 2 refused: {v}"
    );
    assert_eq!(top(&v, "mobile")["errors"], 2);
    assert_eq!(top(&v, "search")["requests"], 2);
    let v = gw.admin_json("/admin/usage?group_by=tenant").await;
    assert_eq!(top(&v, "acme")["requests"], 9, "{v}");
    assert_eq!(top(&v, "acme")["errors"], 4);
    let v = gw.admin_json("/admin/usage?group_by=key").await;
    assert_eq!(top(&v, &id)["requests"], 4);
    // The admin view shows the tenant's scope beside the consumer's.
    let r = client()
        .get(format!("{}/admin/limits?consumer=team-b", gw.admin))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["scopes"][0]["scope"], "tenant:acme", "{v}");
    assert_eq!(v["scopes"][0]["rpm"]["limit"], 5);
}

#[tokio::test]
async fn a_keys_address_rules_narrow_where_it_works() {
    let state = tempfile::tempdir().unwrap();
    let gw = start(state.path());
    let make = |rules: Value| {
        let gw = &gw;
        async move {
            let mut body = json!({"consumer": "team-a"});
            body.as_object_mut()
                .unwrap()
                .extend(rules.as_object().unwrap().clone());
            admin(gw, Method::POST, "/admin/keys", Some(body)).await
        }
    };
    let (_, elsewhere) = make(json!({"allow_ips": ["10.0.0.0/8"]})).await;
    let (_, denied) = make(json!({"deny_ips": ["127.0.0.0/8"]})).await;
    let (_, here) = make(json!({"allow_ips": ["127.0.0.1"]})).await;
    for (made, want) in [(&elsewhere, 403), (&denied, 403), (&here, 200)] {
        let key = made["key"].as_str().unwrap();
        let (status, _, e) = refusal(&gw, key).await;
        assert_eq!(status, want, "{made} -> {e}");
        if want == 403 {
            assert_eq!(e["error"]["code"], "permission_denied", "{e}");
        }
    }
    let (status, e) = make(json!({"allow_ips": ["10.0.0.300/8"]})).await;
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allow_ips[0]"),
        "{e}"
    );
}
