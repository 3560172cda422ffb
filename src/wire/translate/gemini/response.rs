//! A whole Gemini `GenerateContentResponse` as an OpenAI chat completion.

use super::{chat_id, finish_reason, usage};
use serde_json::{json, Value};

/// One candidate's parts: its text, its thinking, and its function calls (numbered from
/// `first_call` when Gemini gives them no id).
pub struct Parts {
    pub text: String,
    pub reasoning: String,
    pub calls: Vec<Value>,
}

pub fn parts(candidate: &Value, first_call: usize) -> Parts {
    let mut out = Parts {
        text: String::new(),
        reasoning: String::new(),
        calls: Vec::new(),
    };
    for p in candidate["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(call) = p.get("functionCall") {
            let n = first_call + out.calls.len();
            let id = call["id"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map_or_else(|| format!("call_{n}"), str::to_string);
            let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
            out.calls.push(json!({"id": id, "type": "function",
                "function": {"name": call["name"], "arguments": args.to_string()}}));
        } else if let Some(t) = p.get("text").and_then(Value::as_str) {
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                out.reasoning.push_str(t);
            } else {
                out.text.push_str(t);
            }
        }
    }
    out
}

pub fn to_completion(v: &Value) -> Value {
    let candidate = &v["candidates"][0];
    let p = parts(candidate, 0);
    let finish = match candidate["finishReason"].as_str() {
        Some(r) => finish_reason(r, !p.calls.is_empty()),
        // No candidate at all: the prompt was blocked.
        None if v["promptFeedback"]["blockReason"].is_string() => "content_filter",
        None => finish_reason("STOP", !p.calls.is_empty()),
    };
    let mut message = json!({"role": "assistant",
        "content": if p.text.is_empty() && !p.calls.is_empty() { Value::Null } else { p.text.into() }});
    if !p.reasoning.is_empty() {
        message["reasoning_content"] = p.reasoning.into();
    }
    if !p.calls.is_empty() {
        message["tool_calls"] = Value::Array(p.calls);
    }
    json!({
        "id": chat_id(v),
        "object": "chat.completion",
        "created": crate::wire::translate::now(),
        "model": v["modelVersion"],
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage(&v["usageMetadata"]),
    })
}
