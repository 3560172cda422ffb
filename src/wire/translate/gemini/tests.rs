//! Gemini translation on fixtures shaped like the Gemini API's own traffic, streams fed whole
//! and split at every byte.

use super::request::chat_to_gemini;
use super::response::to_completion;
use crate::types::dialect::{Dialect, Wire};
use crate::wire::translate::{JsonObject, ResponseTranslator};
use serde_json::{json, Value};

fn client_wire(d: Dialect) -> Wire {
    match d {
        Dialect::OpenAi => Wire::OpenAi,
        Dialect::Anthropic => Wire::Anthropic,
    }
}

fn obj(v: Value) -> JsonObject {
    v.as_object().cloned().unwrap()
}

/// A Gemini stream as `streamGenerateContent?alt=sse` sends it (CRLF framing): two text
/// pieces, then a function call with the finish reason and the final usage.
const GEMINI_STREAM: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Let me \"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":21,\"candidatesTokenCount\":2,\"totalTokenCount\":23},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"check.\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":21,\"candidatesTokenCount\":4,\"totalTokenCount\":25},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"weather\",\"args\":{\"city\":\"Paris\"}}}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":21,\"candidatesTokenCount\":9,\"thoughtsTokenCount\":3,\"totalTokenCount\":33},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}\r\n\r\n",
);

fn data_of(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap_or(Value::String(d.into())))
        .collect()
}

fn translate(client: Dialect, step: usize) -> String {
    let mut t =
        ResponseTranslator::new(client_wire(client), client, Wire::Gemini, 200, true).unwrap();
    let mut out = Vec::new();
    for piece in GEMINI_STREAM.as_bytes().chunks(step) {
        out.extend_from_slice(&t.feed(piece));
    }
    out.extend_from_slice(&t.finish());
    String::from_utf8(out).unwrap()
}

#[test]
fn a_chat_request_becomes_a_gemini_request_with_every_part() {
    let body = obj(json!({
        "model": "g", "stream": true, "stream_options": {"include_usage": true},
        "max_completion_tokens": 300, "temperature": 0.2, "top_p": 0.9, "stop": "END", "seed": 7,
        "reasoning_effort": "low", "user": "u1",
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?x=1"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":21}"},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": "You're welcome."}
        ]
    }));
    let g = chat_to_gemini(&body).unwrap();
    assert_eq!(
        g["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}, {"text": "Use tools."}]})
    );
    let contents = g["contents"].as_array().unwrap();
    let roles: Vec<&str> = contents
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    // The tool's answer and the next user words are one user turn.
    assert_eq!(roles, ["user", "model", "user", "model"]);
    assert_eq!(
        contents[0]["parts"],
        json!([{"text": "What is this?"},
               {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
               {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?x=1"}}])
    );
    assert_eq!(
        contents[1]["parts"],
        json!([{"functionCall": {"id": "call_1", "name": "weather", "args": {"city": "Paris"}}}])
    );
    assert_eq!(
        contents[2]["parts"],
        json!([{"functionResponse": {"id": "call_1", "name": "weather", "response": {"temp": 21}}},
               {"text": "Thanks"}])
    );
    assert_eq!(
        g["generationConfig"],
        json!({"maxOutputTokens": 300, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"],
               "seed": 7, "thinkingConfig": {"thinkingBudget": 1024},
               "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}})
    );
    assert_eq!(
        g["tools"],
        json!([{"functionDeclarations": [{"name": "weather", "description": "Weather",
            "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}]}])
    );
    assert_eq!(
        g["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}})
    );
    assert!(g.get("model").is_none() && g.get("stream").is_none());
}

#[test]
fn fields_gemini_has_no_place_for_are_refused_by_name() {
    let base = |extra: Value| {
        let mut b = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        obj(b)
    };
    for (extra, param) in [
        (json!({"logprobs": true}), "logprobs"),
        (json!({"n": 2}), "n"),
        (json!({"logit_bias": {"1": 2}}), "logit_bias"),
        (json!({"reasoning_effort": "max"}), "reasoning_effort"),
        (json!({"tools": [{"type": "web_search"}]}), "tools[0].type"),
        (json!({"temperature": "hot"}), "temperature"),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/pic"}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
        (
            json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "1"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages[0].content[0].type",
        ),
    ] {
        match chat_to_gemini(&base(extra.clone())) {
            Err(crate::wire::WireError::Untranslatable { param: p, .. }) => {
                assert_eq!(p, param, "{extra}")
            }
            other => panic!("{extra}: {other:?}"),
        }
    }
}

#[test]
fn a_gemini_answer_becomes_a_chat_completion() {
    let v = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "Thinking...", "thought": true}, {"text": "Calling."},
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
            {"functionCall": {"id": "fc_9", "name": "time", "args": {}}}]},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 2,
                          "cachedContentTokenCount": 4, "totalTokenCount": 17},
        "modelVersion": "gemini-2.5-pro", "responseId": "abc"});
    let c = to_completion(&v);
    assert_eq!(c["id"], "chatcmpl-abc");
    assert_eq!(c["model"], "gemini-2.5-pro");
    let m = &c["choices"][0]["message"];
    assert_eq!(m["content"], "Calling.");
    assert_eq!(m["reasoning_content"], "Thinking...");
    assert_eq!(m["tool_calls"][0]["id"], "call_0");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(m["tool_calls"][1]["id"], "fc_9");
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        c["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
               "prompt_tokens_details": {"cached_tokens": 4},
               "completion_tokens_details": {"reasoning_tokens": 2}})
    );
    let blocked = to_completion(&json!({"promptFeedback": {"blockReason": "SAFETY"}}));
    assert_eq!(blocked["choices"][0]["finish_reason"], "content_filter");
    let long = to_completion(
        &json!({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS"}]}),
    );
    assert_eq!(long["choices"][0]["finish_reason"], "length");
}

#[test]
fn a_gemini_stream_becomes_chat_chunks_however_split() {
    // `created` is the clock's; the rest must not depend on where the stream was cut.
    let chunks_of = |step| {
        let mut chunks = data_of(&translate(Dialect::OpenAi, step));
        for c in &mut chunks {
            if let Some(o) = c.as_object_mut() {
                o.remove("created");
            }
        }
        chunks
    };
    let chunks = chunks_of(GEMINI_STREAM.len());
    for step in [1, 2, 7, 64] {
        assert_eq!(chunks_of(step), chunks, "split every {step} bytes");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["id"], "chatcmpl-r1");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Let me check.");
    let call = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
        .unwrap();
    assert_eq!(call["index"], 0);
    assert_eq!(call["function"]["name"], "weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    let finish: Vec<_> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["tool_calls"]);
    let usage = &chunks[chunks.len() - 2]["usage"];
    assert_eq!(usage["prompt_tokens"], 21);
    assert_eq!(usage["completion_tokens"], 12);
    assert_eq!(chunks.last().unwrap(), &Value::String("[DONE]".into()));
}

#[test]
fn a_gemini_stream_becomes_anthropic_events_through_chat() {
    let out = translate(Dialect::Anthropic, 5);
    let names: Vec<String> = out
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("event: ")))
        .map(str::to_string)
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert!(out.contains("\"text_delta\""));
    assert!(out.contains("\"tool_use\""));
    assert!(out.contains("\"stop_reason\":\"tool_use\""));
    assert!(out.contains("\"output_tokens\":12"));
}

#[test]
fn a_cut_gemini_stream_is_not_closed_and_an_error_event_ends_it() {
    let first_only = GEMINI_STREAM.split("\r\n\r\n").next().unwrap().to_string() + "\r\n\r\n";
    let mut t = ResponseTranslator::new(
        crate::types::dialect::Wire::OpenAi,
        Dialect::OpenAi,
        Wire::Gemini,
        200,
        true,
    )
    .unwrap();
    let mut out = t.feed(first_only.as_bytes()).to_vec();
    out.extend_from_slice(&t.finish());
    assert!(!String::from_utf8_lossy(&out).contains("[DONE]"));

    let mut t = ResponseTranslator::new(
        crate::types::dialect::Wire::OpenAi,
        Dialect::OpenAi,
        Wire::Gemini,
        200,
        true,
    )
    .unwrap();
    let err = "data: {\"error\":{\"code\":503,\"message\":\"overloaded\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n";
    let out = String::from_utf8(t.feed(err.as_bytes()).to_vec()).unwrap();
    let v = &data_of(&out)[0];
    assert_eq!(v["error"]["message"], "overloaded");
    assert_eq!(v["error"]["code"], "UNAVAILABLE");
}

#[test]
fn gemini_errors_reach_each_client_in_its_own_shape() {
    let body = br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
    for (client, check) in [
        (
            Dialect::OpenAi,
            json!({"message": "Resource has been exhausted", "type": "rate_limit_error", "code": "RESOURCE_EXHAUSTED"}),
        ),
        (
            Dialect::Anthropic,
            json!({"type": "rate_limit_error", "message": "Resource has been exhausted"}),
        ),
    ] {
        let mut t =
            ResponseTranslator::new(client_wire(client), client, Wire::Gemini, 429, false).unwrap();
        assert!(t.feed(body).is_empty());
        let v: Value = serde_json::from_slice(&t.finish()).unwrap();
        for (k, want) in check.as_object().unwrap() {
            assert_eq!(&v["error"][k], want, "{client:?} {k}");
        }
    }
    // A whole answer reaches an Anthropic client as a message.
    let answer = br#"{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"totalTokenCount":4},"modelVersion":"gemini-2.5-flash","responseId":"x"}"#;
    let mut t = ResponseTranslator::new(
        crate::types::dialect::Wire::Anthropic,
        Dialect::Anthropic,
        Wire::Gemini,
        200,
        false,
    )
    .unwrap();
    t.feed(answer);
    let v: Value = serde_json::from_slice(&t.finish()).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Hi");
    assert_eq!(v["usage"]["input_tokens"], 3);
    assert_eq!(v["stop_reason"], "end_turn");
}

#[test]
fn parallel_tool_calls_false_keeps_the_first_call_whole_and_streamed() {
    use crate::wire::translate::Shape;
    let serial = Shape {
        one_tool_call: true,
        ..Shape::default()
    };
    let two_calls = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "time", "args": {}}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}, "modelVersion": "g"});
    // The request side accepts the flag.
    let asked = obj(json!({"model": "g", "parallel_tool_calls": false,
        "messages": [{"role": "user", "content": "hi"}]}));
    assert!(chat_to_gemini(&asked).is_ok());
    // Whole.
    let mut t = ResponseTranslator::new(Wire::OpenAi, Dialect::OpenAi, Wire::Gemini, 200, false)
        .unwrap()
        .with_shape(serial);
    t.feed(two_calls.to_string().as_bytes());
    let v: Value = serde_json::from_slice(&t.finish()).unwrap();
    let calls = v["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["function"]["name"], "weather");
    // Streamed.
    let mut t = ResponseTranslator::new(Wire::OpenAi, Dialect::OpenAi, Wire::Gemini, 200, true)
        .unwrap()
        .with_shape(serial);
    let mut out = t
        .feed(format!("data: {two_calls}\r\n\r\n").as_bytes())
        .to_vec();
    out.extend_from_slice(&t.finish());
    let text = String::from_utf8(out).unwrap();
    let names: Vec<String> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .flat_map(|v| {
            v["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| c["function"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, ["weather"], "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}
