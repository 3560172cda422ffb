//! A whole chat completion as a Responses API `response` object, and the parts of one both
//! the JSON and the stream translation build: output items, usage, status.

use serde_json::{json, Value};

/// The response id for a chat completion id.
pub fn response_id(chat_id: &str) -> String {
    let bare = chat_id
        .strip_prefix("chatcmpl-")
        .or_else(|| chat_id.strip_prefix("msg_"))
        .unwrap_or(chat_id);
    format!("resp_{bare}")
}

/// A random suffix that makes the ids of one translated answer unique: they name stored turns
/// and items (`crate::runtime::conversations`), and a backend's own ids may repeat (Gemini's
/// when it sends no `responseId`, a server that numbers its calls `call_0`...).
pub fn unique_suffix() -> String {
    use rand::RngCore;
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    format!("_{}", hex::encode(b))
}

/// The response's id and each output item's id, made unique with [`unique_suffix`].
pub fn make_ids_unique(response: &mut Value) {
    let suffix = unique_suffix();
    if let Some(Value::String(id)) = response.get_mut("id") {
        id.push_str(&suffix);
    }
    let items = response.get_mut("output").and_then(Value::as_array_mut);
    for item in items.into_iter().flatten() {
        if let Some(Value::String(id)) = item.get_mut("id") {
            id.push_str(&suffix);
        }
    }
}

/// Chat usage → Responses usage.
pub fn usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let input = n(&u["prompt_tokens"]);
    let output = n(&u["completion_tokens"]);
    json!({"input_tokens": input,
           "input_tokens_details": {"cached_tokens": n(&u["prompt_tokens_details"]["cached_tokens"])},
           "output_tokens": output,
           "output_tokens_details": {"reasoning_tokens": n(&u["completion_tokens_details"]["reasoning_tokens"])},
           "total_tokens": input.saturating_add(output)})
}

/// `status` and `incomplete_details` for a chat `finish_reason`.
pub fn status(finish: &str) -> (&'static str, Value) {
    match finish {
        "length" => ("incomplete", json!({"reason": "max_output_tokens"})),
        "content_filter" => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

pub fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [],
           "content": [{"type": "reasoning_text", "text": text}]})
}

pub fn call_item(id: &str, call_id: &str, name: &Value, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
           "arguments": arguments, "status": status})
}

/// The `response` object around `output`.
pub fn envelope(id: &str, created: u64, model: &Value, status: &str, output: Vec<Value>) -> Value {
    json!({"id": id, "object": "response", "created_at": created, "status": status,
           "model": model, "output": output, "usage": null, "error": null,
           "incomplete_details": null, "instructions": null, "metadata": {},
           "parallel_tool_calls": true, "temperature": null, "top_p": null,
           "tool_choice": "auto", "tools": [], "text": {"format": {"type": "text"}},
           "previous_response_id": null, "reasoning": {"effort": null, "summary": null},
           "store": false, "truncation": "disabled", "max_output_tokens": null, "user": null})
}

/// A chat completion as a response.
pub fn completion_to_response(v: &Value) -> Value {
    let id = response_id(v["id"].as_str().unwrap_or(""));
    let choice = &v["choices"][0];
    let m = &choice["message"];
    let mut output = Vec::new();
    let bare = id.trim_start_matches("resp_");
    if let Some(r) = m["reasoning_content"].as_str().filter(|s| !s.is_empty()) {
        output.push(reasoning_item(&format!("rs_{bare}"), r));
    }
    if let Some(t) = m["content"].as_str().filter(|s| !s.is_empty()) {
        output.push(message_item(&format!("msg_{bare}"), t, "completed"));
    }
    for c in m["tool_calls"].as_array().into_iter().flatten() {
        let call_id = c["id"].as_str().unwrap_or("");
        output.push(call_item(
            &format!("fc_{call_id}"),
            call_id,
            &c["function"]["name"],
            c["function"]["arguments"].as_str().unwrap_or(""),
            "completed",
        ));
    }
    let (status, incomplete) = status(choice["finish_reason"].as_str().unwrap_or("stop"));
    let created = v["created"]
        .as_u64()
        .unwrap_or_else(crate::wire::translate::now);
    let mut r = envelope(&id, created, &v["model"], status, output);
    r["usage"] = usage(&v["usage"]);
    r["incomplete_details"] = incomplete;
    r
}
