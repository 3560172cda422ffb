//! The mock's Anthropic Messages wire format: message, stream events and error bodies.

use super::openai::{full_text, token};
use super::ToolCall;
use serde_json::{json, Value};

pub fn usage(input: u64, output: u64) -> Value {
    json!({"input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

/// A whole message: `tokens` of text, or a tool call.
pub fn message(id: &str, model: &str, tokens: u64, tool: Option<&ToolCall>, usage: Value) -> Value {
    let (content, stop) = match tool {
        Some(t) => (
            json!([{"type": "tool_use", "id": t.id, "name": t.name, "input": t.input}]),
            "tool_use",
        ),
        None => (
            json!([{"type": "text", "text": full_text(tokens)}]),
            "end_turn",
        ),
    };
    json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
           "stop_reason": stop, "stop_sequence": null, "usage": usage})
}

/// The stream's events, named, in order (each is one SSE event).
pub fn events(
    id: &str,
    model: &str,
    from: u64,
    tokens: u64,
    tool: Option<&ToolCall>,
    prompt: u64,
) -> Vec<(Option<&'static str>, Value)> {
    let mut out = vec![
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": usage(prompt, 1)}}),
        ),
        (Some("ping"), json!({"type": "ping"})),
    ];
    let (output, stop) = match tool {
        Some(t) => {
            out.push((
                Some("content_block_start"),
                json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "tool_use", "id": t.id, "name": t.name, "input": {}}}),
            ));
            for part in t.argument_parts() {
                out.push((
                    Some("content_block_delta"),
                    json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": part}}),
                ));
            }
            (t.argument_parts().len() as u64, "tool_use")
        }
        None => {
            out.push((
                Some("content_block_start"),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ));
            for i in from..tokens {
                out.push((
                    Some("content_block_delta"),
                    json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": token(i)}}),
                ));
            }
            (tokens - from, "end_turn")
        }
    };
    out.push((
        Some("content_block_stop"),
        json!({"type": "content_block_stop", "index": 0}),
    ));
    out.push((
        Some("message_delta"),
        // As the API does now: the final input usage too.
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"input_tokens": prompt, "output_tokens": output}}),
    ));
    out.push((Some("message_stop"), json!({"type": "message_stop"})));
    out
}

/// Anthropic's 400 for a prompt over the context window.
pub fn context_overflow() -> Value {
    json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 9000 tokens > 4096 maximum"}, "request_id": "req_mock"})
}

pub fn error(status: u16) -> Value {
    let (kind, message) = match status {
        400 => ("invalid_request_error", "Bad request (mock)."),
        401 => ("authentication_error", "invalid x-api-key (mock)."),
        403 => ("permission_error", "Not allowed (mock)."),
        404 => ("not_found_error", "The model does not exist (mock)."),
        429 => ("rate_limit_error", "Rate limit reached (mock)."),
        529 | 503 => ("overloaded_error", "Overloaded (mock)."),
        _ => ("api_error", "Internal server error (mock)."),
    };
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock"})
}

/// Whether a Messages request asks for JSON output (`output_config.format` of `json_schema`).
pub fn wants_json(body: &Value) -> bool {
    body["output_config"]["format"]["type"] == "json_schema"
}

/// The JSON answer's text, if the request wants one: the whole object for structured output,
/// or what follows a `{` prefill (JSON mode as gateways emulate it), as a model continues it.
pub fn json_answer(body: &Value, prefill: Option<&str>, tokens: u64) -> Option<String> {
    let text = super::openai::json_text(tokens);
    if wants_json(body) {
        return Some(text);
    }
    (prefill == Some("{")).then(|| text[1..].to_string())
}

/// A stream's text deltas replaced by one delta holding the JSON answer `text`.
pub fn events_as_json(events: &mut Vec<(Option<&'static str>, Value)>, text: String) {
    let Some(at) = events
        .iter()
        .position(|(_, v)| v["delta"]["type"] == "text_delta")
    else {
        return;
    };
    events.retain(|(_, v)| v["delta"]["type"] != "text_delta");
    events.insert(
        at,
        (
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": text}}),
        ),
    );
}
