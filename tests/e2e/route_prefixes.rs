//! `[[routes]]` over real sockets: the API under `/team-a` and `/team-b`, each with its own
//! model names; a consumer limited to one prefix, a route limited to one consumer, the model
//! list under a prefix, and every refusal in the client's dialect before any upstream call.

use crate::harness::*;
use serde_json::{json, Value};

const KEY_B: &str = "tg-test-key-team-b";
const KEY_ANY: &str = "tg-test-key-anywhere";

fn start(mock: &MockServer) -> Gateway {
    let url = mock.url();
    let rest = format!(
        "{}\n\
         [[models]]\nname = \"gpt-fast\"\ntargets = [{{ provider = \"m\", model = \"up-fast\" }}]\n\
         [[models]]\nname = \"gpt-big\"\ntargets = [{{ provider = \"m\", model = \"up-big\" }}]\n\
         [[models]]\nname = \"claude\"\ntargets = [{{ provider = \"m\", model = \"up-claude\" }}]\n\
         [[consumers]]\nname = \"team-a\"\nkeys = [\"{}\"]\nroutes = [\"team-a\"]\n\
         [[consumers]]\nname = \"team-b\"\nkeys = [\"{}\"]\nroutes = [\"team-b\"]\n\
         [[consumers]]\nname = \"platform\"\nkeys = [\"{}\"]\nmodels = [\"gpt-fast\", \"claude\"]\n\
         [[routes]]\nname = \"team-a\"\npath_prefix = \"/team-a\"\n\
         models = {{ chat = \"gpt-fast\", claude = \"claude\", big = \"gpt-big\" }}\n\
         [[routes]]\nname = \"team-b\"\npath_prefix = \"/org/team-b\"\nconsumers = [\"team-b\"]\n\
         models = {{ chat = \"gpt-big\" }}\n",
        mock_provider("m", &url, ""),
        digest_line(KEY),
        digest_line(KEY_B),
        digest_line(KEY_ANY),
    );
    Gateway::start_raw("", &rest)
}

async fn chat(gw: &Gateway, path: &str, key: &str, model: &str) -> (u16, Value) {
    let r = client()
        .post(gw.url(path))
        .bearer_auth(key)
        .json(&chat_body(model, false))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn each_prefix_serves_its_own_model_names() {
    let mock = mock();
    let gw = start(&mock);
    let (s, v) = chat(&gw, "/team-a/v1/chat/completions", KEY, "chat").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["model"], "up-fast");
    let (s, v) = chat(&gw, "/org/team-b/v1/chat/completions", KEY_B, "chat").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["model"], "up-big", "the same name means team-b's model");

    // Anthropic's dialect under a prefix, and its errors in that dialect.
    let body = json!({"model": "claude", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = client()
        .post(gw.url("/team-a/v1/messages"))
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .post(gw.url("/org/team-b/v1/messages"))
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "permission_error");

    // The model list under a prefix is that prefix's names; the root lists virtual models.
    let models = |path: &'static str, key: &'static str| {
        let gw = &gw;
        async move {
            let r = client()
                .get(gw.url(path))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let v: Value = r.json().await.unwrap();
            let mut ids: Vec<String> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(
        models("/team-a/v1/models", KEY).await,
        ["big", "chat", "claude"]
    );
    assert_eq!(models("/org/team-b/v1/models", KEY_B).await, ["chat"]);
    assert_eq!(models("/v1/models", KEY_ANY).await, ["claude", "gpt-fast"]);
    // The consumer's own model list still narrows a route's (platform may not use gpt-big).
    assert_eq!(
        models("/team-a/v1/models", KEY_ANY).await,
        ["chat", "claude"]
    );

    let lines = gw.wait_log_lines(8).await;
    let first = &lines[0];
    assert_eq!(first["route"], "team-a");
    assert_eq!(first["model"], "gpt-fast");
    assert_eq!(first["path"], "/team-a/v1/chat/completions");
    assert_eq!(lines[1]["route"], "team-b");
}

#[tokio::test]
async fn a_consumer_limited_to_one_prefix_cannot_reach_another_prefix_or_the_root() {
    let mock = mock();
    let gw = start(&mock);
    // team-a's key under team-b's prefix, and at the root with a virtual model's own name.
    let (s, v) = chat(&gw, "/org/team-b/v1/chat/completions", KEY, "chat").await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "permission_denied");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/org/team-b"));
    let (s, v) = chat(&gw, "/v1/chat/completions", KEY, "gpt-big").await;
    assert_eq!(s, 403, "{v}");
    // Under its own prefix, another prefix's (or the root's) model names do not exist.
    let (s, v) = chat(&gw, "/team-a/v1/chat/completions", KEY, "gpt-big").await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["error"]["code"], "model_not_found");
    // A route naming its consumers refuses the others, even unrestricted ones.
    let (s, _) = chat(&gw, "/org/team-b/v1/chat/completions", KEY_ANY, "chat").await;
    assert_eq!(s, 403);
    // The consumer's own allow list applies to what a route name maps to.
    let (s, _) = chat(&gw, "/team-a/v1/chat/completions", KEY_ANY, "chat").await;
    assert_eq!(s, 200);
    let (s, v) = chat(&gw, "/team-a/v1/chat/completions", KEY_ANY, "big").await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["error"]["code"], "model_not_found");
    // Unknown prefixes, half segments and paths the route does not serve are 404s.
    for path in [
        "/team-c/v1/chat/completions",
        "/team-ab/v1/chat/completions",
        "/team-a/v2/chat/completions",
        "/team-a/mcp",
    ] {
        let (s, v) = chat(&gw, path, KEY, "chat").await;
        assert_eq!(s, 404, "{path}: {v}");
        assert_eq!(v["error"]["code"], "unknown_url", "{path}");
        assert!(v["error"]["message"].as_str().unwrap().contains(path));
    }
    // Only the one allowed call reached the mock.
    assert_eq!(mock.requests().len(), 1);
    let lines = gw.wait_log_lines(9).await;
    assert_eq!(lines[0]["outcome"], "route_forbidden");
}
