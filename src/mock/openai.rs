//! The mock's OpenAI wire format: completion, chunk, embedding and error bodies.

use super::ToolCall;
use serde_json::{json, Value};

const WORDS: [&str; 12] = [
    "Hello",
    " from",
    " the",
    " Tollgate",
    " mock",
    " model",
    ",",
    " streaming",
    " one",
    " token",
    " at",
    " a time.",
];

/// The text of generated token `i`.
pub fn token(i: u64) -> &'static str {
    WORDS[(i % WORDS.len() as u64) as usize]
}

pub fn full_text(tokens: u64) -> String {
    (0..tokens).map(token).collect()
}

/// How many generated tokens `prefix` already holds (a prefill continues after them).
pub fn tokens_in(prefix: &str, limit: u64) -> u64 {
    let mut text = String::new();
    let mut n = 0;
    while n < limit {
        text.push_str(token(n));
        if !prefix.starts_with(&text) {
            break;
        }
        n += 1;
    }
    n
}

pub fn usage(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

pub fn chat_completion(
    id: &str,
    model: &str,
    tokens: u64,
    tool: Option<&ToolCall>,
    usage_value: Option<Value>,
) -> Value {
    let (message, finish) = match tool {
        Some(t) => (
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": t.id, "type": "function",
                "function": {"name": t.name, "arguments": t.input.to_string()}}]}),
            "tool_calls",
        ),
        None => (
            json!({"role": "assistant", "content": full_text(tokens)}),
            "stop",
        ),
    };
    let mut v = json!({
        "id": id, "object": "chat.completion", "created": now(), "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
    });
    if let Some(u) = usage_value {
        v["usage"] = u;
    }
    v
}

pub fn text_completion(id: &str, model: &str, tokens: u64, usage_value: Option<Value>) -> Value {
    let mut v = json!({
        "id": id, "object": "text_completion", "created": now(), "model": model,
        "choices": [{"index": 0, "text": full_text(tokens), "logprobs": null, "finish_reason": "stop"}],
    });
    if let Some(u) = usage_value {
        v["usage"] = u;
    }
    v
}

pub fn embeddings(model: &str, inputs: usize, prompt: u64, with_usage: bool) -> Value {
    let data: Vec<Value> = (0..inputs)
        .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.125, 1.0]}))
        .collect();
    let mut v = json!({"object": "list", "data": data, "model": model});
    if with_usage {
        v["usage"] = json!({"prompt_tokens": prompt, "total_tokens": prompt});
    }
    v
}

/// One streaming chunk. `delta` is a chat delta object or, for completions, the text.
pub fn chunk(
    id: &str,
    model: &str,
    chat: bool,
    delta: Option<Value>,
    text: Option<&str>,
    finish: Option<&str>,
    with_usage_null: bool,
) -> Value {
    let choice = if chat {
        json!({"index": 0, "delta": delta.unwrap_or_else(|| json!({})), "logprobs": null, "finish_reason": finish})
    } else {
        json!({"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish})
    };
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let mut v =
        json!({"id": id, "object": object, "created": now(), "model": model, "choices": [choice]});
    if with_usage_null {
        v["usage"] = Value::Null;
    }
    v
}

/// A whole stream's chunks: role, content (or a tool call), finish, and usage when asked for.
pub fn stream(
    id: &str,
    model: &str,
    chat: bool,
    tokens: std::ops::Range<u64>,
    tool: Option<&ToolCall>,
    include_usage: bool,
    usage_value: Option<Value>,
) -> Vec<Value> {
    let c = |delta: Option<Value>, text: Option<&str>, finish: Option<&str>| {
        chunk(id, model, chat, delta, text, finish, include_usage)
    };
    let mut events = vec![];
    if chat {
        events.push(c(
            Some(json!({"role": "assistant", "content": ""})),
            None,
            None,
        ));
    }
    let finish = match tool.filter(|_| chat) {
        Some(t) => {
            events.push(c(
                Some(
                    json!({"tool_calls": [{"index": 0, "id": t.id, "type": "function",
                    "function": {"name": t.name, "arguments": ""}}]}),
                ),
                None,
                None,
            ));
            for part in t.argument_parts() {
                events.push(c(
                    Some(json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})),
                    None,
                    None,
                ));
            }
            "tool_calls"
        }
        None => {
            for i in tokens {
                let delta = chat.then(|| json!({"content": token(i)}));
                events.push(c(delta, Some(token(i)), None));
            }
            "stop"
        }
    };
    events.push(c(None, Some(""), Some(finish)));
    if let Some(u) = usage_value {
        events.push(usage_chunk(id, model, chat, u));
    }
    events
}

pub fn usage_chunk(id: &str, model: &str, chat: bool, usage_value: Value) -> Value {
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    json!({"id": id, "object": object, "created": now(), "model": model, "choices": [], "usage": usage_value})
}

/// OpenAI's 400 for a prompt over the context window.
pub fn context_overflow() -> Value {
    json!({"error": {"message": "This model's maximum context length is 4096 tokens. However, your messages resulted in 9000 tokens. Please reduce the length of the messages.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
}

pub fn error(status: u16) -> Value {
    let (kind, code, message) = match status {
        429 => (
            "requests",
            "rate_limit_exceeded",
            "Rate limit reached (mock).",
        ),
        400 => (
            "invalid_request_error",
            "invalid_value",
            "Bad request (mock).",
        ),
        401 => (
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided (mock).",
        ),
        404 => (
            "invalid_request_error",
            "model_not_found",
            "The model does not exist (mock).",
        ),
        503 | 529 => (
            "server_error",
            "overloaded",
            "The server is overloaded (mock).",
        ),
        _ => (
            "server_error",
            "server_error",
            "The server had an error (mock).",
        ),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

fn now() -> u64 {
    crate::types::clock::unix_seconds()
}

/// Whether a chat request asks for JSON output (`response_format` json_object or json_schema).
pub fn wants_json(body: &Value) -> bool {
    body["response_format"]["type"]
        .as_str()
        .is_some_and(|t| t.starts_with("json"))
}

/// The JSON answer to such a request: an object holding the text.
pub fn json_text(tokens: u64) -> String {
    json!({"answer": full_text(tokens)}).to_string()
}

/// A completion's text replaced by the JSON answer.
pub fn answer_as_json(completion: &mut Value, tokens: u64) {
    completion["choices"][0]["message"]["content"] = json_text(tokens).into();
}

/// A stream's content deltas replaced by one delta holding the JSON answer.
pub fn stream_as_json(chunks: &mut Vec<Value>, tokens: u64) {
    chunks.retain(|c| {
        c["choices"][0]["delta"]["content"]
            .as_str()
            .is_none_or(str::is_empty)
    });
    if let Some(first) = chunks.first() {
        let mut piece = first.clone();
        piece["choices"][0]["delta"] = json!({"content": json_text(tokens)});
        piece["choices"][0]["finish_reason"] = Value::Null;
        chunks.insert(1.min(chunks.len()), piece);
    }
}
