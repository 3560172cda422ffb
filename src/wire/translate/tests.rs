//! Translator tests on fixtures shaped like recorded provider traffic, fed whole and split
//! at every byte.

use super::request::{chat_to_messages, messages_to_chat};
use super::stream::{ChunksToEvents, EventsToChunks};
use super::*;
use serde_json::json;

fn obj(v: Value) -> JsonObject {
    v.as_object().cloned().unwrap()
}

/// An OpenAI stream (vLLM/OpenAI style) with text, then a tool call whose arguments arrive in
/// pieces, then the finish and usage chunks.
const OPENAI_STREAM: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Let me check\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":9,\"total_tokens\":30}}\n\n",
    "data: [DONE]\n\n",
);

/// An Anthropic stream (as api.anthropic.com sends it, CRLF-free) with thinking, text and a
/// tool use whose input arrives as partial JSON.
const ANTHROPIC_STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Hmm.\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":12}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

/// `(event name, data JSON)` of every event in an SSE text.
fn events_of(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_string();
                }
            }
            let v = serde_json::from_str(&data).unwrap_or(Value::String(data));
            (name, v)
        })
        .collect()
}

#[test]
fn openai_chunks_become_anthropic_events_however_split() {
    let mut whole = None;
    for step in [usize::MAX, 1, 7, 64] {
        let mut t = ChunksToEvents::new();
        let text = {
            let mut out = Vec::new();
            for piece in OPENAI_STREAM
                .as_bytes()
                .chunks(step.min(OPENAI_STREAM.len()))
            {
                out.extend(t.feed(piece));
            }
            out.extend(t.finish());
            String::from_utf8(out).unwrap()
        };
        match &whole {
            None => whole = Some(text),
            Some(w) => assert_eq!(w, &text, "split every {step} bytes"),
        }
    }
    let events = events_of(whole.as_deref().unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, v) in &events {
        assert_eq!(v["type"], name.as_str(), "event name and type agree");
    }
    assert_eq!(
        events[3].1["delta"],
        json!({"type": "text_delta", "text": "Let me check"})
    );
    assert_eq!(events[5].1["content_block"]["type"], "tool_use");
    assert_eq!(events[5].1["content_block"]["id"], "call_1");
    assert_eq!(events[5].1["index"], 1);
    let json: String = [&events[6].1, &events[7].1]
        .iter()
        .map(|e| e["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(events[9].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[9].1["usage"]["input_tokens"], 21);
    assert_eq!(events[9].1["usage"]["output_tokens"], 9);
}

#[test]
fn anthropic_events_become_openai_chunks_however_split() {
    let mut whole = None;
    for step in [usize::MAX, 1, 5, 100] {
        let mut t = EventsToChunks::new();
        let mut out = Vec::new();
        for piece in ANTHROPIC_STREAM
            .as_bytes()
            .chunks(step.min(ANTHROPIC_STREAM.len()))
        {
            out.extend(t.feed(piece));
        }
        out.extend(t.finish());
        let text = String::from_utf8(out).unwrap();
        match &whole {
            None => whole = Some(text),
            Some(w) => assert_eq!(w, &text, "split every {step} bytes"),
        }
    }
    let whole = whole.unwrap();
    assert!(whole.ends_with("data: [DONE]\n\n"));
    assert!(!whole.contains("event:"), "OpenAI chunks are unnamed");
    let chunks: Vec<Value> = events_of(&whole)
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| v.is_object())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let delta = |i: usize| chunks[i]["choices"][0]["delta"].clone();
    assert_eq!(delta(1), json!({"reasoning_content": "Hmm."}));
    assert_eq!(delta(2), json!({"content": "Checking"}));
    assert_eq!(delta(3)["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(delta(3)["tool_calls"][0]["function"]["name"], "weather");
    let args: String = (4..6)
        .map(|i| {
            delta(i)["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "tool_calls");
    let usage = &chunks[7]["usage"];
    assert_eq!(usage["prompt_tokens"], 30, "input plus cached input");
    assert_eq!(usage["completion_tokens"], 12);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 5);
    assert_eq!(chunks[7]["choices"], json!([]));
}

#[test]
fn an_error_event_is_translated_and_ends_the_stream() {
    let mut t = EventsToChunks::new();
    let out = t.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
    let v: Value = serde_json::from_str(
        std::str::from_utf8(&out)
            .unwrap()
            .trim()
            .strip_prefix("data: ")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["error"]["message"], "Overloaded");
    let mut t = ChunksToEvents::new();
    let out = t.feed(b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n");
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("event: error\ndata: "), "{text}");
    assert!(
        t.feed(OPENAI_STREAM.as_bytes()).is_empty(),
        "nothing after the error"
    );
}

#[test]
fn a_cut_openai_stream_is_not_closed_as_if_complete() {
    let mut t = ChunksToEvents::new();
    let cut = &OPENAI_STREAM[..OPENAI_STREAM.find("\"Paris").unwrap()];
    let mut text = String::from_utf8(t.feed(cut.as_bytes())).unwrap();
    text.push_str(&String::from_utf8(t.finish()).unwrap());
    assert!(!text.contains("message_stop"), "{text}");
    assert!(text.contains("message_start"));
}

#[test]
fn anthropic_requests_translate_to_chat_with_every_part() {
    let req = obj(json!({
        "model": "claude-x", "max_tokens": 300, "stream": true, "temperature": 0.2, "top_p": 0.9,
        "stop_sequences": ["END"],
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "u-1"},
        "tools": [{"name": "weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is here?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "text", "text": "Thanks"}]}
        ]
    }));
    let v = messages_to_chat(&req, "gpt-up").unwrap();
    assert_eq!(v["model"], "gpt-up");
    assert_eq!(v["max_tokens"], 300);
    assert_eq!(v["stop"], json!(["END"]));
    assert_eq!(v["user"], "u-1");
    assert_eq!(v["stream_options"], json!({"include_usage": true}));
    assert_eq!(v["tool_choice"], "required");
    assert_eq!(v["parallel_tool_calls"], false);
    assert_eq!(
        v["tools"][0]["function"]["parameters"]["properties"]["city"]["type"],
        "string"
    );
    let m = v["messages"].as_array().unwrap();
    assert_eq!(
        m[0],
        json!({"role": "system", "content": "Be brief.\n\nBe kind."})
    );
    assert_eq!(
        m[1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBOR"
    );
    assert_eq!(
        m[1]["content"][2]["image_url"]["url"],
        "https://x.test/a.png"
    );
    assert_eq!(m[2]["content"], "Checking.");
    assert_eq!(m[2]["tool_calls"][0]["function"]["name"], "weather");
    let args: Value = serde_json::from_str(
        m[2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"})
    );
    assert_eq!(m[4]["content"][0]["text"], "Thanks");
}

#[test]
fn chat_requests_translate_to_messages_with_every_part() {
    let req = obj(json!({
        "model": "chat", "max_completion_tokens": 200, "stream": true,
        "stream_options": {"include_usage": true}, "stop": "END", "user": "u-2",
        "parallel_tool_calls": false,
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "cold"},
            {"role": "tool", "tool_call_id": "call_2", "content": "warm"}
        ]
    }));
    let v = chat_to_messages(&req, "claude-up").unwrap();
    assert_eq!(v["model"], "claude-up");
    assert_eq!(v["max_tokens"], 200);
    assert_eq!(v["system"], "Be brief.");
    assert_eq!(v["stop_sequences"], json!(["END"]));
    assert_eq!(v["metadata"]["user_id"], "u-2");
    assert_eq!(
        v["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(v["tools"][0]["input_schema"], json!({"type": "object"}));
    assert!(v.get("stream_options").is_none());
    let m = v["messages"].as_array().unwrap();
    assert_eq!(
        m.len(),
        3,
        "the two tool results merge into one user turn: {m:?}"
    );
    assert_eq!(
        m[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/jpeg", "data": "/9j/"})
    );
    assert_eq!(m[1]["content"][0]["input"], json!({"city": "Oslo"}));
    assert_eq!(m[1]["content"][1]["id"], "call_2");
    assert_eq!(
        m[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "call_1", "content": "cold"})
    );
    assert_eq!(m[2]["content"][1]["tool_use_id"], "call_2");
    // Anthropic requires max_tokens: a default fills in.
    let v = chat_to_messages(&obj(json!({"model": "m", "messages": []})), "c").unwrap();
    assert_eq!(v["max_tokens"], request::DEFAULT_ANTHROPIC_MAX_TOKENS);
}

#[test]
fn untranslatable_fields_are_named_not_dropped() {
    let cases = [
        (json!({"model": "m", "messages": [], "n": 2}), "n"),
        (
            json!({"model": "m", "messages": [], "logprobs": true}),
            "logprobs",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{not json"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
    ];
    for (body, field) in cases {
        match chat_to_messages(&obj(body), "c") {
            Err(WireError::Untranslatable { param, .. }) => assert_eq!(param, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let cases = [
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "thinking": {"type": "enabled", "budget_tokens": 1024}}),
            "thinking",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}),
            "messages[0].content[0].type",
        ),
    ];
    for (body, field) in cases {
        match messages_to_chat(&obj(body), "o") {
            Err(WireError::Untranslatable { param, .. }) => assert_eq!(param, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let e = crate::error::GatewayError::from(untranslatable("n", "`n` has no equivalent"));
    let v: Value = serde_json::from_slice(&e.body(Dialect::OpenAi)).unwrap();
    assert_eq!(v["error"]["param"], "n");
    assert_eq!(v["error"]["code"], "untranslatable_field");
    assert_eq!(e.status(), 400);
}

#[test]
fn whole_bodies_and_errors_translate_both_ways() {
    let completion = json!({"id": "c9", "object": "chat.completion", "model": "gpt",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            "finish_reason": "length"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}});
    let mut t = ResponseTranslator::new(
        crate::types::dialect::Wire::Anthropic,
        Dialect::Anthropic,
        crate::types::dialect::Wire::OpenAi,
        200,
        false,
    )
    .unwrap();
    let body = completion.to_string();
    assert!(t.feed(&body.as_bytes()[..5]).is_empty());
    t.feed(&body.as_bytes()[5..]);
    let m: Value = serde_json::from_slice(&t.finish()).unwrap();
    assert_eq!(m["type"], "message");
    assert_eq!(m["content"][0], json!({"type": "text", "text": "Hi"}));
    assert_eq!(m["content"][1]["input"], json!({"a": 1}));
    assert_eq!(m["stop_reason"], "max_tokens");
    assert_eq!(m["usage"]["input_tokens"], 10);
    assert_eq!(m["usage"]["output_tokens"], 4);

    let back = response::message_to_completion(&m);
    assert_eq!(back["choices"][0]["message"]["content"], "Hi");
    assert_eq!(
        back["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"a\":1}"
    );
    assert_eq!(back["choices"][0]["finish_reason"], "length");
    assert_eq!(back["usage"]["total_tokens"], 14);

    let mut t = ResponseTranslator::new(
        crate::types::dialect::Wire::Anthropic,
        Dialect::Anthropic,
        crate::types::dialect::Wire::OpenAi,
        429,
        false,
    )
    .unwrap();
    t.feed(br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#);
    let e: Value = serde_json::from_slice(&t.finish()).unwrap();
    assert_eq!(
        e,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    );
    let mut t = ResponseTranslator::new(
        crate::types::dialect::Wire::OpenAi,
        Dialect::OpenAi,
        crate::types::dialect::Wire::Anthropic,
        529,
        true,
    )
    .unwrap();
    t.feed(br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
    let e: Value = serde_json::from_slice(&t.finish()).unwrap();
    assert_eq!(e["error"]["message"], "Overloaded");
    assert_eq!(e["error"]["code"], "overloaded_error");
    assert!(ResponseTranslator::new(
        crate::types::dialect::Wire::OpenAi,
        Dialect::OpenAi,
        crate::types::dialect::Wire::OpenAi,
        200,
        true
    )
    .is_none());
}

#[test]
fn structured_output_maps_between_response_format_and_output_config() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let chat = obj(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}),
    );
    let m = chat_to_messages(&chat, "claude").unwrap();
    assert_eq!(
        m["output_config"],
        json!({"format": {"type": "json_schema", "schema": schema}})
    );
    // JSON mode: asked for in the system prompt, the answer prefilled with `{`.
    let mut plain = chat.clone();
    plain.insert("response_format".into(), json!({"type": "json_object"}));
    let m = chat_to_messages(&plain, "claude").unwrap();
    assert!(m.get("output_config").is_none());
    assert!(m["system"].as_str().unwrap().contains("JSON object"));
    assert_eq!(
        m["messages"][1],
        json!({"role": "assistant", "content": [{"type": "text", "text": "{"}]})
    );
    // ...which needs the conversation to end with a user turn.
    let mut prefilled = plain.clone();
    prefilled.insert(
        "messages".into(),
        json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure"}]),
    );
    match chat_to_messages(&prefilled, "claude") {
        Err(WireError::Untranslatable { param, .. }) => assert_eq!(param, "response_format"),
        other => panic!("{other:?}"),
    }
    let messages = obj(
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}}),
    );
    let c = messages_to_chat(&messages, "gpt").unwrap();
    assert_eq!(c["response_format"]["json_schema"]["schema"], schema);
    assert_eq!(c["reasoning_effort"], "low");
    let mut odd = messages.clone();
    odd.insert("output_config".into(), json!({"task_budget": 3}));
    match messages_to_chat(&odd, "gpt") {
        Err(WireError::Untranslatable { param, .. }) => {
            assert_eq!(param, "output_config.task_budget")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn thinking_blocks_sent_back_with_tool_results_are_left_out_for_chat_backends() {
    // Turn two of a tool loop on a reasoning model: the client returns the thinking block it
    // got (from a backend's reasoning) with the tool call, as Anthropic requires.
    let body = obj(json!({
        "model": "m", "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should call the tool.", "signature": "c2ln"},
                {"type": "redacted_thinking", "data": "b3BhcXVl"},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}
            ]}
        ]
    }));
    let chat = messages_to_chat(&body, "up").unwrap();
    let turn = &chat["messages"][1];
    assert_eq!(turn["role"], "assistant");
    assert_eq!(turn["content"], Value::Null);
    assert_eq!(turn["tool_calls"][0]["function"]["name"], "weather");
    assert!(
        !chat.to_string().contains("c2ln"),
        "the signature stays out"
    );
    assert_eq!(chat["messages"][2]["role"], "tool");
    // A thinking block anywhere but an assistant turn is still refused.
    let user = obj(json!({"model": "m", "max_tokens": 1, "messages": [
        {"role": "user", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}]}
    ]}));
    assert!(messages_to_chat(&user, "up").is_err());
}
