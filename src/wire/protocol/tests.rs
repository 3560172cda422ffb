use super::*;
use serde_json::Value;

fn chat(body: &str) -> Result<ParsedRequest, WireError> {
    parse(Operation::Chat, Bytes::from(body.to_string()))
}

fn json(b: &Bytes) -> Value {
    serde_json::from_slice(b).unwrap()
}

#[test]
fn reads_model_stream_and_max_tokens() {
    let r = chat(r#"{"messages":[{"role":"user","content":"hi"}],"model":"chat","stream":true,"max_tokens":7}"#).unwrap();
    assert_eq!(r.model, "chat");
    assert!(r.stream);
    assert!(!r.client_wants_usage);
    assert_eq!(r.max_tokens, Some(7));
    assert!(r.prompt_tokens_estimate > 0);
}

#[test]
fn rewrite_changes_only_the_model_when_not_streaming() {
    let original =
        r#"{ "model" : "chat", "messages": [{"role":"user","content":"model: \"chat\""}] }"#;
    let r = chat(original).unwrap();
    let out = r.upstream_body("gpt-4o-mini");
    let v = json(&out);
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(v["messages"][0]["content"], "model: \"chat\"");
    assert!(v.get("stream_options").is_none());
    assert_eq!(
        String::from_utf8(out.to_vec()).unwrap(),
        original.replace("\"chat\",", "\"gpt-4o-mini\",")
    );
}

#[test]
fn rewrite_escapes_upstream_model_names() {
    let r = chat(r#"{"model":"chat"}"#).unwrap();
    assert_eq!(json(&r.upstream_body("a\"b"))["model"], "a\"b");
}

#[test]
fn streaming_without_usage_gets_include_usage_injected() {
    let r = chat(r#"{"model":"chat","stream":true,"messages":[]}"#).unwrap();
    assert!(r.injects_usage());
    let v = json(&r.upstream_body("up"));
    assert_eq!(v["stream_options"]["include_usage"], true);
    assert_eq!(v["model"], "up");
    assert_eq!(v["stream"], true);
}

#[test]
fn existing_stream_options_are_kept_and_extended() {
    let r =
        chat(r#"{"model":"chat","stream":true,"stream_options":{"include_usage":false,"x":1}}"#)
            .unwrap();
    assert!(r.injects_usage());
    let v = json(&r.upstream_body("up"));
    assert_eq!(v["stream_options"]["include_usage"], true);
    assert_eq!(v["stream_options"]["x"], 1);

    let r = chat(r#"{"stream_options":null,"model":"chat","stream":true}"#).unwrap();
    assert_eq!(
        json(&r.upstream_body("up"))["stream_options"]["include_usage"],
        true
    );
}

#[test]
fn client_requested_usage_is_left_alone() {
    let body = r#"{"model":"chat","stream":true,"stream_options":{"include_usage":true}}"#;
    let r = chat(body).unwrap();
    assert!(r.client_wants_usage);
    assert!(!r.injects_usage());
    assert_eq!(r.upstream_body("chat"), Bytes::from(body));
}

#[test]
fn bad_bodies_are_rejected_with_the_field_named() {
    for (body, param) in [
        (r#"{"messages":[]}"#, "model"),
        (r#"{"model":3}"#, "model"),
        (r#"{"model":""}"#, "model"),
        (r#"{"model":"m","stream":"yes"}"#, "stream"),
        (r#"{"model":"m","max_tokens":-1}"#, "max_tokens"),
        (r#"{"model":"m","stream_options":[1]}"#, "stream_options"),
    ] {
        match chat(body) {
            Err(WireError::InvalidField { param: p, .. }) => assert_eq!(p, param, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[test]
fn malformed_json_is_invalid_json() {
    for body in [
        "{",
        "",
        "[]",
        "null",
        r#"{"model":"a","model":"b"}"#,
        "{\"model\":\"a\"} x",
    ] {
        assert!(
            matches!(chat(body), Err(WireError::InvalidJson(_))),
            "{body:?}"
        );
    }
    let deep = format!(
        "{{\"model\":\"m\",\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(matches!(chat(&deep), Err(WireError::InvalidJson(_))));
    // Invalid UTF-8 in a string the parser skips (found by the request fuzzer).
    let mut bad = br#"{"model":"m","messages":[{"role":"user","content":"a"#.to_vec();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(br#""}]}"#);
    assert!(matches!(
        parse(Operation::Chat, Bytes::from(bad)),
        Err(WireError::InvalidJson(_))
    ));
}

#[test]
fn embeddings_cannot_stream() {
    let r = parse(
        Operation::Embeddings,
        Bytes::from(r#"{"model":"e","input":"x","stream":true}"#),
    );
    assert!(matches!(
        r,
        Err(WireError::InvalidField {
            param: "stream",
            ..
        })
    ));
}

#[test]
fn operations_match_paths() {
    assert_eq!(
        Operation::from_path("/v1/chat/completions"),
        Some(Operation::Chat)
    );
    assert_eq!(
        Operation::from_path("/v1/embeddings/"),
        Some(Operation::Embeddings)
    );
    assert_eq!(Operation::from_path("/v1/nope"), None);
}

#[test]
fn brackets_inside_strings_do_not_count_as_nesting() {
    let inner = format!("{}\\\"{}", "[".repeat(500), "{".repeat(500));
    let body =
        format!("{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"{inner}\"}}]}}");
    assert!(chat(&body).is_ok());
    let nested = format!(
        "{{\"model\":\"m\",\"x\":{}1{}}}",
        "[".repeat(128),
        "]".repeat(128)
    );
    assert!(matches!(chat(&nested), Err(WireError::InvalidJson(_))));
    let ok = format!(
        "{{\"model\":\"m\",\"x\":{}1{}}}",
        "[".repeat(127),
        "]".repeat(127)
    );
    assert!(chat(&ok).is_ok());
}

#[test]
fn the_parser_knows_when_an_answer_is_json() {
    let json = |op, body: Value| {
        parse(op, Bytes::from(body.to_string()))
            .unwrap()
            .json_content
    };
    let msgs = serde_json::json!([{"role": "user", "content": "hi"}]);
    assert!(json(
        Operation::Chat,
        serde_json::json!({"model": "m", "messages": msgs,
        "response_format": {"type": "json_object"}})
    ));
    assert!(!json(
        Operation::Chat,
        serde_json::json!({"model": "m", "messages": msgs,
        "response_format": {"type": "text"}})
    ));
    assert!(json(
        Operation::Responses,
        serde_json::json!({"model": "m", "input": "hi",
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}})
    ));
    assert!(json(
        Operation::Messages,
        serde_json::json!({"model": "m", "max_tokens": 5, "messages": msgs,
        "output_config": {"format": {"type": "json_schema", "schema": {}}}})
    ));
    assert!(!json(
        Operation::Messages,
        serde_json::json!({"model": "m", "max_tokens": 5, "messages": msgs})
    ));
}
