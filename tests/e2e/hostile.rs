//! An attacker's requests against the guardrails, the headers and the MCP bridge: `logprobs`
//! that used to spell out masked text, fields the guard never read, text translation joins,
//! escaped and Unicode-disguised addresses, blocked answers in capture, headers crossing
//! without being asked for, keys echoed in error bodies, and MCP path parameters.

use crate::harness::*;
use serde_json::{json, Value};

fn guarded_config(url: &str) -> String {
    format!(
        "{}[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[models]]\nname = \"masked\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[models]]\nname = \"masked-a\"\ntargets = [{{ provider = \"a\", model = \"up\" }}]\n\
         [[models]]\nname = \"halt\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[guardrails]]\nname = \"privacy\"\nmodels = [\"masked\", \"masked-a\"]\n\
         [[guardrails.rules]]\nname = \"pii\"\nkind = \"pii\"\ndetectors = [\"email\"]\naction = \"mask\"\n\
         [[guardrails]]\nname = \"secrets\"\ndirection = \"response\"\nmodels = [\"halt\"]\n\
         [[guardrails.rules]]\nname = \"no-secrets\"\nkind = \"words\"\nwords = [\"launch codes\"]\naction = \"block\"\n",
        [
            mock_provider("m", url, ""),
            provider_toml("a", "anthropic", &mock_base(url, ""), "")
        ]
        .concat()
    )
}

/// An Anthropic Messages request, the mock scripted by `reply` when given.
async fn messages(gw: &Gateway, body: &Value, reply: Option<&Value>) -> reqwest::Response {
    let mut r = client()
        .post(gw.url("/v1/messages"))
        .bearer_auth(KEY)
        .header("anthropic-version", "2023-06-01");
    if let Some(reply) = reply {
        r = r.header("x-mock-reply", reply.to_string());
    }
    r.json(body).send().await.expect("request sent")
}

async fn with_reply(gw: &Gateway, model: &str, stream: bool, reply: &Value) -> reqwest::Response {
    let mut body = chat_body(model, stream);
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(1);
    client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock-reply", reply.to_string())
        .json(&body)
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn logprobs_never_spell_out_masked_or_blocked_text() {
    let mock = mock();
    let gw = Gateway::start(&guarded_config(&mock.url()));
    let reply = json!({"content": ["write to ", "bob@example.org", " today"]});
    // JSON: the text is masked and the per-token list is gone.
    let r = with_reply(&gw, "masked", false, &reply).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "write to [EMAIL] today"
    );
    assert!(v["choices"][0]["logprobs"].is_null(), "{v}");
    assert!(!v.to_string().contains("bob@"), "{v}");
    // A stream: no chunk carries the address, in its text or its logprobs.
    let r = with_reply(&gw, "masked", true, &reply).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains("bob@"), "{text}");
    assert!(!text.contains("\"bytes\""), "{text}");
    // A blocked word never leaves in a chunk's logprobs before the block fires.
    let reply = json!({"content": ["the launch", " codes are 0000"]});
    let r = with_reply(&gw, "halt", true, &reply).await;
    let text = r.text().await.unwrap();
    assert!(!text.contains("launch"), "{text}");
    // Without a policy, logprobs pass as the backend sent them.
    let r = with_reply(&gw, "chat", false, &json!({"content": ["hi"]})).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["logprobs"]["content"][0]["token"], "hi");
}

const KEY_CONFINED: &str = "tg-test-key-confined-0007";

#[tokio::test]
async fn mcp_path_parameters_stay_one_segment_and_route_confinement_holds_at_mcp() {
    let Some(python) = python_with("aiohttp") else {
        return;
    };
    let api = crate::mcp::PetStore::start(&python).await;
    let config = format!(
        "{}\n{}[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[consumers]]\nname = \"confined\"\nkeys = [\"{}\"]\nroutes = [\"r\"]\n\
         [[routes]]\nname = \"r\"\npath_prefix = \"/r\"\nmodels = {{ chat = \"chat\" }}\n",
        crate::mcp::mcp_config(&api.url, ""),
        mock_provider("m", "http://127.0.0.1:9", ""),
        digest_line(KEY_CONFINED),
    );
    let gw = Gateway::start_raw("", &config);
    let call = |key: &str, pet: &str| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "getPet", "arguments": {"petId": pet},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}}}});
        client()
            .post(gw.url("/mcp/pets"))
            .bearer_auth(key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "getPet")
            .json(&body)
            .send()
    };
    // A consumer confined to a route prefix is refused at /mcp as at the root.
    let r = call(KEY_CONFINED, "1").await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("/mcp"),
        "{v}"
    );
    // `..`, `%2F`, `?`, `#` and CRLF in a path parameter stay inside its segment.
    for (pet, raw) in [
        ("..", "/pets/%2E%2E"),
        ("../admin", "/pets/%2E%2E%2Fadmin"),
        ("%2F", "/pets/%252F"),
        ("1?x=1#y", "/pets/1%3Fx%3D1%23y"),
        ("1\r\nX-Evil: 1", "/pets/1%0D%0AX-Evil%3A%201"),
    ] {
        let r = call(KEY, pet).await.unwrap();
        assert_eq!(r.status(), 200, "{pet}");
        r.bytes().await.unwrap();
        let seen = api.seen().await;
        let last = seen.last().unwrap();
        assert_eq!(last["raw_path"], raw, "{pet}: {last}");
    }
}

#[tokio::test]
async fn headers_cross_the_gateway_only_on_purpose_and_error_bodies_never_echo_the_key() {
    let mock = mock();
    let url = mock.url();
    let provider = format!(
        "[[providers]]\nname = \"m\"\nkind = \"openai\"\nbase_url = \"{url}/v1\"\n\
         api_key_env = \"TG_UPSTREAM_KEY\"\nforward_headers = [\"x-tenant\"]\n"
    );
    let config = format!(
        "{provider}{}[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[models]]\nname = \"refused\"\ntargets = [{{ provider = \"bad\", model = \"up\" }}]\n",
        mock_provider("bad", &url, "status=401"),
    );
    let gw = Gateway::start(&config);
    for stream in [false, true] {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("openai-organization", "org-attacker")
            .header("openai-project", "proj-attacker")
            .header("x-forwarded-for", "203.0.113.9")
            .header("cookie", "session=abc")
            .header("x-tenant", "acme")
            .header("x-stainless-lang", "python")
            .json(&chat_body("chat", stream))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        for name in [
            "set-cookie",
            "openai-organization",
            "x-ratelimit-remaining-requests",
        ] {
            assert!(r.headers().get(name).is_none(), "{name} reached the client");
        }
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(id.starts_with("req_"), "the gateway's own id: {id}");
        r.bytes().await.unwrap();
    }
    for seen in mock.requests() {
        let names: Vec<&str> = seen.headers.iter().map(|(k, _)| k.as_str()).collect();
        for dropped in [
            "openai-organization",
            "openai-project",
            "x-forwarded-for",
            "cookie",
            "x-stainless-lang",
        ] {
            assert!(
                !names.contains(&dropped),
                "{dropped} went upstream: {names:?}"
            );
        }
        assert_eq!(
            seen.header("x-tenant"),
            Some("acme"),
            "named by forward_headers"
        );
        assert_eq!(
            seen.header("authorization"),
            Some(format!("Bearer {UPSTREAM_KEY}").as_str())
        );
    }
    // A provider that quotes the refused key back: the client never reads it.
    let r = post(&gw, "/v1/chat/completions", &chat_body("refused", false)).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let text = r.text().await.unwrap();
    assert!(!text.contains(UPSTREAM_KEY), "{text}");
    assert!(
        text.contains("Incorrect API key provided: [REDACTED]"),
        "{text}"
    );
}

#[tokio::test]
async fn text_that_translation_joins_is_screened_as_the_backend_reads_it() {
    let mock = mock();
    let gw = Gateway::start(&guarded_config(&mock.url()));
    let body = json!({"model": "masked", "max_tokens": 20, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "write to john@"},
                                          {"type": "text", "text": "example.com"}]},
        {"role": "user", "content": "thanks"}]});
    let r = messages(&gw, &body, None).await;
    assert_eq!(r.status(), 200);
    let seen = mock.requests();
    let sent = String::from_utf8_lossy(&seen[0].body);
    assert!(!sent.contains("john@example.com"), "{sent}");
    assert!(sent.contains("write to [EMAIL]"), "{sent}");
}

#[tokio::test]
async fn an_answer_refused_by_a_block_rule_is_never_captured() {
    let mock = mock();
    let config = format!(
        "{}[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[models]]\nname = \"halt\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         log_payloads = true\n\
         [[guardrails]]\nname = \"secrets\"\ndirection = \"response\"\nmodels = [\"halt\"]\n\
         [[guardrails.rules]]\nname = \"no-secrets\"\nkind = \"words\"\nwords = [\"launch codes\"]\naction = \"block\"\n",
        mock_provider("m", &mock.url(), "")
    );
    let gw = Gateway::start(&config);
    for stream in [false, true] {
        let mut body = chat_body("halt", stream);
        body["max_tokens"] = json!(20);
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header(
                "x-mock-reply",
                json!({"content": ["the launch codes are ZEBRA-7731"]}).to_string(),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        assert!(!text.contains("ZEBRA"), "{text}");
    }
    let lines = gw.wait_log_lines(2).await;
    for line in &lines {
        assert_eq!(line["outcome"], "content_blocked", "{line}");
        assert!(line.get("payload").is_some(), "captured: {line}");
    }
    let raw = std::fs::read_to_string(&gw.access_log).unwrap();
    assert!(
        !raw.contains("ZEBRA"),
        "the blocked text reached capture: {raw}"
    );
}

#[tokio::test]
async fn text_the_model_reads_is_screened_wherever_the_request_puts_it() {
    let mock = mock();
    let gw = Gateway::start(&guarded_config(&mock.url()));
    let mail = "john@example.com";
    let body = json!({"model": "masked", "messages": [
            {"role": "user", "name": mail, "content": "hi"},
            {"role": "user", "content": "ｍａｉｌ ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ or jo\u{200b}hn@exam\u{200d}ple.com"}],
        "tools": [{"type": "function", "function": {"name": "send",
            "description": format!("Sends mail to {mail}"),
            "parameters": {"type": "object", "properties": {"to": {"type": "string",
                "description": format!("e.g. {mail}")}}}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r",
            "schema": {"type": "object", "description": mail}}}});
    let r = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let anthropic = json!({"model": "masked-a", "max_tokens": 20, "messages": [{"role": "user",
        "content": [{"type": "document", "source": {"type": "text", "media_type": "text/plain",
            "data": format!("contact {mail}")}}, {"type": "text", "text": "summarise"}]}]});
    let r = messages(&gw, &anthropic, None).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    assert_eq!(mock.requests().len(), 2);
    for seen in mock.requests() {
        let sent = String::from_utf8_lossy(&seen.body);
        assert!(
            !sent.contains("john") && !sent.contains("ｊｏｈｎ"),
            "{sent}"
        );
    }
}

#[tokio::test]
async fn escaped_addresses_in_tool_arguments_are_masked_in_both_dialects() {
    let mock = mock();
    let gw = Gateway::start(&guarded_config(&mock.url()));
    let reply = json!({"content": ["ok"], "tool": {"name": "mail",
        "arguments": ["{\"to\":\"john\\u00", "40example.com\"}"]}});
    for stream in [false, true] {
        let r = with_reply(&gw, "masked", stream, &reply).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(!text.contains("john"), "chat, stream {stream}: {text}");
        assert!(text.contains("[EMAIL]"), "{text}");
    }
    for stream in [false, true] {
        let body = json!({"model": "masked", "max_tokens": 20, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]});
        let r = messages(&gw, &body, Some(&reply)).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(!text.contains("john"), "messages, stream {stream}: {text}");
    }
}

#[tokio::test]
async fn refusals_are_screened_in_json_answers_and_streams() {
    let mock = mock();
    let gw = Gateway::start(&guarded_config(&mock.url()));
    let reply = json!({"refusal": ["I will not write to john@", "example.com"]});
    for stream in [false, true] {
        let r = with_reply(&gw, "masked", stream, &reply).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(!text.contains("john"), "stream {stream}: {text}");
        assert!(text.contains("[EMAIL]"), "{text}");
    }
}
