//! Every field a model reads or a client sees, in the guard's scope: answers' refusals,
//! content parts, audio transcripts, citations, server tool inputs and tool inputs whatever
//! their property names; requests' participant names, tool and schema descriptions and text
//! documents; JSON inside a string matched on its decoded value, in bodies and streams.

use super::stream::StreamGuard;
use super::tests::{pii, run, scanner};
use super::{text, Action, Verdict};
use crate::types::dialect::Dialect;
use serde_json::{json, Value};

const MAIL: &str = "john@example.com";

fn masked(mut body: Value) -> Value {
    let mut v = Verdict::default();
    text::scan_body(&scanner(vec![pii(Action::Mask)]), &mut body, &mut v);
    body
}

#[test]
fn json_answers_have_every_text_field_screened() {
    let answer = json!({"choices": [{"index": 0, "message": {"role": "assistant",
        "content": null, "refusal": format!("I won't mail {MAIL}"),
        "audio": {"id": "a1", "data": "UklGRg==", "transcript": format!("write to {MAIL}")},
        "annotations": [{"type": "url_citation", "url_citation": {"url": "https://e.example/",
            "title": format!("{MAIL} homepage"), "start_index": 0, "end_index": 3}}],
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "send",
            "arguments": "{\"to\":\"john\\u0040example.com\",\"cc\":[\"john@example.com\"]}"}}]}}]});
    let out = masked(answer).to_string();
    assert!(!out.contains("john"), "{out}");
    assert!(
        out.contains("https://e.example/") && out.contains("UklGRg=="),
        "{out}"
    );
    let anthropic = json!({"content": [
        {"type": "text", "text": "see", "citations": [{"type": "char_location",
            "cited_text": format!("mail {MAIL}"), "document_index": 0}]},
        {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": MAIL}},
        {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"source": MAIL,
            "file": MAIL, "format": MAIL, "detail": MAIL, "model": MAIL, "role": MAIL,
            "media_type": MAIL, "id": MAIL, "nested": {"url": MAIL}}}]});
    let out = masked(anthropic);
    assert!(!out.to_string().contains("john"), "{out}");
    assert_eq!(out["content"][2]["id"], "t1", "identifiers untouched");
    assert_eq!(out["content"][2]["name"], "lookup");
}

#[test]
fn requests_have_names_descriptions_and_text_documents_screened() {
    let request = json!({"model": "m", "messages": [
        {"role": "user", "name": MAIL, "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": MAIL}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}],
        "tools": [{"type": "function", "function": {"name": "send_mail",
            "description": format!("Sends mail to {MAIL}"),
            "parameters": {"type": "object", "properties": {"to": {"type": "string",
                "description": format!("e.g. {MAIL}")}}}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r",
            "schema": {"type": "object", "description": MAIL}}}});
    let out = masked(request);
    assert!(!out.to_string().contains("john"), "{out}");
    assert_eq!(out["tools"][0]["function"]["name"], "send_mail");
    assert_eq!(
        out["messages"][0]["content"][1]["source"]["data"],
        "iVBORw0KGgo="
    );
}

fn openai_events(deltas: &[Value]) -> String {
    let mut s = String::new();
    for d in deltas {
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": d, "finish_reason": null}]});
        s.push_str(&format!("data: {chunk}\n\n"));
    }
    let end = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    s.push_str(&format!("data: {end}\n\ndata: [DONE]\n\n"));
    s
}

#[test]
fn streamed_refusals_parts_transcripts_and_escaped_arguments_are_masked() {
    let cases = [
        vec![
            json!({"refusal": "I won't mail john@"}),
            json!({"refusal": "example.com"}),
        ],
        vec![
            json!({"content": [{"type": "text", "text": "to john@exa"}]}),
            json!({"content": [{"type": "text", "text": "mple.com"}]}),
        ],
        vec![
            json!({"audio": {"transcript": "to john@example"}}),
            json!({"audio": {"transcript": ".com"}}),
        ],
        vec![
            json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                "function": {"name": "send", "arguments": "{\"to\":\"john\\u00"}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "40example.com\"}"}}]}),
        ],
    ];
    for deltas in cases {
        let body = openai_events(&deltas);
        for cut in [1, body.len() / 2, body.len() - 3] {
            let mut g = StreamGuard::new(scanner(vec![pii(Action::Mask)]), Dialect::OpenAi, false);
            let (a, b) = body.as_bytes().split_at(cut);
            let out = run(&mut g, &[a, b]);
            assert!(!out.contains("john"), "{deltas:?} cut at {cut}: {out}");
            assert!(out.contains("[EMAIL]"), "{out}");
        }
    }
}

#[test]
fn streamed_citations_and_server_tool_inputs_are_masked() {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut body = ev(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0,
        "content_block": {"type": "text", "text": ""}}),
    );
    body += &ev(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 0,
        "delta": {"type": "citations_delta", "citation": {"type": "char_location",
            "cited_text": format!("mail {MAIL}"), "document_index": 0}}}),
    );
    body += &ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    );
    body += &ev(
        "content_block_start",
        json!({"type": "content_block_start", "index": 1,
        "content_block": {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}}}),
    );
    for part in ["{\"query\":\"john\\u0040", "example.com\"}"] {
        body += &ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": part}}),
        );
    }
    body += &ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 1}),
    );
    body += &ev("message_stop", json!({"type": "message_stop"}));
    let mut g = StreamGuard::new(scanner(vec![pii(Action::Mask)]), Dialect::Anthropic, false);
    let out = run(&mut g, &[body.as_bytes()]);
    assert!(!out.contains("john"), "{out}");
    let partial: String = out
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["partial_json"].as_str().map(String::from))
        .collect();
    let input: Value = serde_json::from_str(&partial).unwrap();
    assert_eq!(input["query"], "[EMAIL]");
}

#[test]
fn unicode_tricks_match_as_their_plain_forms_and_masks_stay_exact() {
    use super::tests::words;
    let rules = scanner(vec![
        pii(Action::Mask),
        words(&["voldemort", "kill", "机密"], Action::Mask),
    ]);
    for (text, want) in [
        (
            "mail ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ now",
            "mail [EMAIL] now",
        ),
        ("I am Vol\u{200d}de\u{200b}mort.", "I am [REDACTED]."),
        ("I am Vo\u{301}lde\u{308}mort.", "I am [REDACTED]."),
        ("then KİLL it", "then [REDACTED] it"),
        (
            "card 4111\u{a0}1111\u{a0}1111\u{a0}1111 ok",
            "card [CARD] ok",
        ),
        (
            "card ４１１１ １１１１ １１１１ １１１１ ok",
            "card [CARD] ok",
        ),
        ("这是机\u{200b}密文件", "这是[REDACTED]文件"),
        ("plain résumé stays", "plain résumé stays"),
    ] {
        let mut v = Verdict::default();
        let out = rules.scan(text, &mut v).unwrap_or_else(|| text.to_string());
        assert_eq!(out, want, "{text}");
    }
    // In a stream, split inside the full-width address at every character.
    let text = "to ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ.";
    for (at, _) in text.char_indices().skip(1) {
        let (a, b) = text.split_at(at);
        let body = openai_events(&[json!({"content": a}), json!({"content": b})]);
        let mut g = StreamGuard::new(rules.clone(), Dialect::OpenAi, false);
        let out = run(&mut g, &[body.as_bytes()]);
        assert!(
            !out.contains('ｊ') && out.contains("[EMAIL]"),
            "split at {at}: {out}"
        );
    }
}

#[test]
fn json_mode_content_is_matched_on_its_decoded_value_in_a_stream() {
    // JSON mode: the content is JSON text whose escapes the client's parser resolves.
    let deltas = [
        json!({"content": "{\"to\":\"john\\u00"}),
        json!({"content": "40example.com\"}"}),
    ];
    let body = openai_events(&deltas);
    let guard = || StreamGuard::new(scanner(vec![pii(Action::Mask)]), Dialect::OpenAi, false);
    let mut g = guard().with_json_content(true);
    let out = run(&mut g, &[body.as_bytes()]);
    assert!(!out.contains("john") && out.contains("[EMAIL]"), "{out}");
    // Prose is left as written: its backslashes are not JSON escapes.
    let mut g = guard();
    let out = run(&mut g, &[body.as_bytes()]);
    assert!(out.contains("u0040") && !out.contains("[EMAIL]"), "{out}");
}
