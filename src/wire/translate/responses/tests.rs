//! Responses translation: requests into chat, chat answers and streams into Responses,
//! streams split at every byte, and a Messages stream all the way to Responses events.

use super::request::responses_to_chat;
use super::response::completion_to_response;
use crate::types::dialect::{Dialect, Wire};
use crate::wire::translate::{JsonObject, ResponseTranslator};
use crate::wire::WireError;
use serde_json::{json, Value};

fn obj(v: Value) -> JsonObject {
    v.as_object().cloned().unwrap()
}

const CHAT_STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Let me \"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"check.\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":9,\"total_tokens\":30}}\n\n",
    "data: [DONE]\n\n",
);

/// `(event name, data)` of each event.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("");
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("null");
            (name.to_string(), serde_json::from_str(data).unwrap())
        })
        .collect()
}

fn translate(upstream: Wire, stream: &str, step: usize) -> Vec<(String, Value)> {
    let mut t =
        ResponseTranslator::new(Wire::Responses, Dialect::OpenAi, upstream, 200, true).unwrap();
    let mut out = Vec::new();
    for piece in stream.as_bytes().chunks(step) {
        out.extend_from_slice(&t.feed(piece));
    }
    out.extend_from_slice(&t.finish());
    // Every answer's ids end in its own random suffix: compared without it.
    let suffix = t
        .completed_response()
        .and_then(|r| r["id"].as_str())
        .and_then(|id| id.rfind('_').map(|at| id[at..].to_string()));
    let mut text = String::from_utf8(out).unwrap();
    if let Some(s) = suffix {
        text = text.replace(&s, "");
    }
    let mut evs = events(&text);
    for (_, v) in &mut evs {
        if let Some(r) = v.get_mut("response") {
            r["created_at"] = 0.into();
        }
    }
    evs
}

#[test]
fn a_responses_request_becomes_chat_with_every_part() {
    let body = obj(json!({
        "model": "m", "instructions": "Be brief.", "stream": true, "max_output_tokens": 50,
        "temperature": 0.3, "top_p": 0.9, "parallel_tool_calls": false, "store": false,
        "metadata": {"a": "b"}, "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
        "tools": [{"type": "function", "name": "weather", "description": "W", "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "weather"},
        "input": [
            {"role": "developer", "content": "Use tools."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]}
        ]
    }));
    let c = responses_to_chat(&body, "up").unwrap();
    assert_eq!(c["model"], "up");
    assert_eq!(c["max_completion_tokens"], 50);
    assert_eq!(c["stream_options"], json!({"include_usage": true}));
    assert_eq!(c["reasoning_effort"], "low");
    assert_eq!(c["parallel_tool_calls"], false);
    assert_eq!(
        c["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}})
    );
    assert_eq!(
        c["tools"],
        json!([{"type": "function", "function": {"name": "weather", "description": "W", "parameters": {"type": "object"}, "strict": true}}])
    );
    assert_eq!(
        c["tool_choice"],
        json!({"type": "function", "function": {"name": "weather"}})
    );
    let m = c["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(m[1], json!({"role": "system", "content": "Use tools."}));
    assert_eq!(
        m[2]["content"],
        json!([{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}])
    );
    assert_eq!(m[3]["content"], "Checking.");
    assert_eq!(
        m[3]["tool_calls"].as_array().unwrap().len(),
        2,
        "calls join the assistant turn"
    );
    assert_eq!(
        m[4],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
    );
    assert_eq!(m[5]["content"], "rain");
    assert_eq!(m.len(), 6);
}

#[test]
fn unresolved_state_and_built_in_features_are_refused_by_name() {
    // What reaches translation still naming stored state was not found in the store.
    for (extra, param) in [
        (
            json!({"previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"background": true}), "background"),
        (json!({"conversation": "c"}), "conversation"),
        (json!({"top_logprobs": 2}), "top_logprobs"),
        (json!({"tools": [{"type": "web_search"}]}), "tools[0].type"),
        (
            json!({"tools": [{"type": "mcp", "server_label": "x"}]}),
            "tools[0].type",
        ),
        (
            json!({"input": [{"type": "item_reference", "id": "x"}]}),
            "input[0].id",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input[0].content[0].type",
        ),
        (json!({"input": 3}), "input"),
    ] {
        let mut body = json!({"model": "m", "input": "hi"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        match responses_to_chat(&obj(body), "up") {
            Err(WireError::Untranslatable { param: p, .. }) => assert_eq!(p, param, "{extra}"),
            other => panic!("{extra}: {other:?}"),
        }
    }
}

#[test]
fn a_chat_completion_becomes_a_response() {
    let v = json!({"id": "chatcmpl-9", "created": 5, "model": "gpt", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "Hi", "reasoning_content": "hmm",
                    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 2}}});
    let r = completion_to_response(&v);
    assert_eq!(r["id"], "resp_9");
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    let kinds: Vec<_> = r["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reasoning", "message", "function_call"]);
    assert_eq!(r["output"][1]["content"][0]["text"], "Hi");
    assert_eq!(r["output"][2]["call_id"], "call_1");
    assert_eq!(r["usage"]["input_tokens"], 4);
    assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 2);
    assert_eq!(r["usage"]["total_tokens"], 7);
    let cut = completion_to_response(
        &json!({"id": "x", "choices": [{"message": {"content": "a"}, "finish_reason": "length"}], "usage": {}}),
    );
    assert_eq!(cut["status"], "incomplete");
    assert_eq!(cut["incomplete_details"]["reason"], "max_output_tokens");
}

#[test]
fn chat_chunks_become_the_responses_event_sequence_however_split() {
    let whole = translate(Wire::OpenAi, CHAT_STREAM, CHAT_STREAM.len());
    for step in [1, 3, 17] {
        assert_eq!(
            translate(Wire::OpenAi, CHAT_STREAM, step),
            whole,
            "split every {step}"
        );
    }
    let names: Vec<&str> = whole.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (name, v)) in whole.iter().enumerate() {
        assert_eq!(v["type"], name.as_str());
        assert_eq!(v["sequence_number"], i as u64);
    }
    assert_eq!(whole[6].1["text"], "Let me check.");
    assert_eq!(whole[12].1["arguments"], "{\"city\":\"Paris\"}");
    let done = &whole[14].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["output"][0]["id"], whole[2].1["item"]["id"],
        "one id from added to completed"
    );
    assert_eq!(done["output"][1]["call_id"], "call_1");
    assert_eq!(done["usage"]["output_tokens"], 9);
}

#[test]
fn a_messages_stream_reaches_a_responses_client_and_errors_end_it() {
    let anthropic = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":2}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let evs = translate(Wire::Anthropic, anthropic, 7);
    let last = &evs.last().unwrap();
    assert_eq!(last.0, "response.incomplete");
    assert_eq!(
        last.1["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(last.1["response"]["output"][0]["content"][0]["text"], "Hi");
    assert_eq!(last.1["response"]["usage"]["output_tokens"], 2);

    let broken = "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"overloaded\",\"code\":\"x\"}}\n\n";
    let evs = translate(Wire::OpenAi, broken, 5);
    let last = evs.last().unwrap();
    assert_eq!(last.0, "error");
    assert_eq!(last.1["message"], "overloaded");
    assert_eq!(
        last.1["error"]["message"], "overloaded",
        "the key SDKs raise on"
    );
    assert!(!evs.iter().any(|(n, _)| n == "response.completed"));
}

#[test]
fn reasoning_text_streams_inside_a_content_part() {
    let chunks = concat!(
        "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    let mut t = super::stream::ChunksToResponses::new();
    let mut out = t.feed(chunks.as_bytes());
    out.extend(t.finish());
    let evs = events(std::str::from_utf8(&out).unwrap());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    let added = at("response.content_part.added");
    assert_eq!(evs[added].1["part"]["type"], "reasoning_text");
    assert!(added < at("response.reasoning_text.delta"), "{names:?}");
    let done = at("response.content_part.done");
    assert!(at("response.reasoning_text.done") < done, "{names:?}");
    assert_eq!(evs[done].1["part"]["text"], "think");
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "response.content_part.added")
            .count(),
        2,
        "one part for the reasoning, one for the text: {names:?}"
    );
}

#[test]
fn two_answers_with_the_same_backend_ids_get_different_ids() {
    // A backend that repeats its ids (Gemini without a responseId, `call_0` numbering): the
    // stored turns and items they name must not collide.
    let body = json!({"id": "chatcmpl-same", "model": "m", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]});
    let ids = |stream: bool| {
        let mut t =
            ResponseTranslator::new(Wire::Responses, Dialect::OpenAi, Wire::OpenAi, 200, stream)
                .unwrap();
        if stream {
            t.feed(CHAT_STREAM.as_bytes());
        } else {
            t.feed(body.to_string().as_bytes());
        }
        t.finish();
        let r = t.completed_response().unwrap().clone();
        (
            r["id"].as_str().unwrap().to_string(),
            r["output"][0]["id"].as_str().unwrap().to_string(),
        )
    };
    for stream in [false, true] {
        let (a, b) = (ids(stream), ids(stream));
        assert_ne!(a.0, b.0, "response ids (stream: {stream})");
        assert_ne!(a.1, b.1, "item ids (stream: {stream})");
        assert!(a.0.starts_with("resp_"), "{}", a.0);
    }
}
