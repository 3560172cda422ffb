//! Where the text is in a body: request bodies of both dialects (system prompt, every
//! message's text parts, tool calls and tool results) and whole JSON answers (content,
//! reasoning, refusals, tool-call arguments and inputs).
//!
//! One walk serves both: a string is text when the nearest key above it is a text key, or it
//! sits below one (a tool's input object, a prompt list). Identifiers, roles, types, URLs
//! and media (base64 images, signatures) are never touched.

use super::scan::{Scanner, Verdict};
use serde_json::Value;

/// Keys whose strings (and everything below) are text.
const TEXT_KEYS: &[&str] = &[
    "content",
    "text",
    "system",
    "prompt",
    "input",
    "instructions",
    "arguments",
    "reasoning_content",
    "reasoning",
    "thinking",
    "refusal",
    "partial_json",
];

/// Keys that are never text, even below a text key.
const SKIP_KEYS: &[&str] = &[
    "type",
    "role",
    "id",
    "tool_call_id",
    "tool_use_id",
    "name",
    "model",
    "image_url",
    "url",
    "source",
    "input_audio",
    "file",
    "data",
    "media_type",
    "signature",
    "cache_control",
    "finish_reason",
    "stop_reason",
    "detail",
    "format",
];

/// Scan every text string of `body` in place. Returns whether anything changed.
pub fn scan_body(scanner: &Scanner, body: &mut Value, v: &mut Verdict) -> bool {
    let mut changed = false;
    each_text(body, false, &mut |s| {
        if let Some(masked) = scanner.scan(s, v) {
            *s = masked;
            changed = true;
        }
    });
    changed
}

/// Drop the answer's per-token `logprobs` (Chat Completions choices, legacy completions,
/// Responses output text): their token strings and bytes would spell out what masking
/// rewrote. Returns whether anything changed.
pub fn drop_logprobs(body: &mut Value) -> bool {
    let mut changed = false;
    let mut clear = |slot: Option<&mut Value>, empty: Value| {
        if let Some(v) = slot.filter(|v| !v.is_null() && **v != empty) {
            *v = empty;
            changed = true;
        }
    };
    if let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            clear(choice.get_mut("logprobs"), Value::Null);
        }
    }
    if let Some(output) = body.get_mut("output").and_then(Value::as_array_mut) {
        for item in output {
            if let Some(parts) = item.get_mut("content").and_then(Value::as_array_mut) {
                for part in parts {
                    clear(part.get_mut("logprobs"), Value::Array(Vec::new()));
                }
            }
        }
    }
    changed
}

/// Every text string of `body`, one per line (what the moderation hook is asked about).
pub fn joined(body: &mut Value) -> String {
    let mut out = String::new();
    each_text(body, false, &mut |s| {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(s);
    });
    out
}

fn each_text(value: &mut Value, in_text: bool, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::String(s) if in_text => f(s),
        Value::Array(items) => {
            for item in items {
                each_text(item, in_text, f);
            }
        }
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let key = k.as_str();
                let text = !SKIP_KEYS.contains(&key) && (in_text || TEXT_KEYS.contains(&key));
                each_text(child, text, f);
            }
        }
        _ => {}
    }
}
