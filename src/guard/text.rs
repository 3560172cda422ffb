//! Where the text is in a body: request bodies of both dialects (system prompt, every
//! message's text parts and participant names, tool calls and tool results, tool and schema
//! descriptions, text documents) and whole JSON answers (content, reasoning, refusals, audio
//! transcripts, citations and their titles, tool-call arguments and inputs).
//!
//! One walk serves both. A string is text when the nearest key above it is a text key, or it
//! sits below one, unless its own key names structure (identifiers, roles, types, URLs,
//! media). Below a tool's input or a JSON schema everything is the model's or the client's
//! words, so nothing there is exempt. A text string that is itself JSON (tool-call
//! `arguments`, JSON-mode content) is matched on its decoded strings, escapes resolved, and
//! written back as JSON when a mask changed it.

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
    "description",
    "title",
    "transcript",
    "annotations",
    "citations",
    "summary",
];

/// Keys that are never text below a text key (structure, identifiers, media).
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

/// Where the walk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Structure: strings here are not text.
    Outside,
    /// Below a text key: strings are text unless their key names structure.
    Text,
    /// Words end to end (a tool's input, a schema, a text document): every string is text.
    Free,
}

/// What a key's scope depends on in the object that holds it.
struct Parent {
    /// A tool call's block (`tool_use`, `server_tool_use`): its `input` is the model's words.
    is_tool_use: bool,
    /// It has a `role`: a message.
    is_message: bool,
}

/// The scope of `key`'s value `child` inside `parent` (an object in scope `scope`).
fn scope_of(scope: Scope, parent: &Parent, key: &str, child: &Value) -> Scope {
    if scope == Scope::Free {
        return Scope::Free;
    }
    match key {
        // A tool's input (Anthropic `tool_use`, `server_tool_use`), arguments given as an
        // object, and a schema the model is told to follow: every string is words.
        "input" if parent.is_tool_use => Scope::Free,
        "arguments" | "args" if child.is_object() => Scope::Free,
        "schema" | "parameters" | "input_schema" => Scope::Free,
        // A participant's name is read by the model; a tool's is an identifier.
        "name" if parent.is_message => Scope::Text,
        // An Anthropic document whose source is plain text.
        "source" if child.get("type").and_then(Value::as_str) == Some("text") => Scope::Free,
        k if SKIP_KEYS.contains(&k) => Scope::Outside,
        k if TEXT_KEYS.contains(&k) => Scope::Text,
        _ => scope,
    }
}

/// Scan every text string of `body` in place. Returns whether anything changed.
pub fn scan_body(scanner: &Scanner, body: &mut Value, v: &mut Verdict) -> bool {
    each_text(body, Scope::Outside, &mut |s| match scanner.scan(s, v) {
        Some(masked) => {
            *s = masked;
            true
        }
        None => false,
    })
}

/// Screen a whole JSON body (a request translated for its backend): the body to send
/// instead when a mask changed it (`None`: send it as it is, or it was not JSON).
pub fn screen_json(scanner: &Scanner, body: &[u8], v: &mut Verdict) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    scan_body(scanner, &mut value, v).then(|| value.to_string().into_bytes())
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
    each_text(body, Scope::Outside, &mut |s| {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(s);
        false
    });
    out
}

/// Call `f` on every text string of `value` (it says whether it changed the string);
/// whether anything changed.
fn each_text(value: &mut Value, scope: Scope, f: &mut dyn FnMut(&mut String) -> bool) -> bool {
    match value {
        Value::String(s) if scope != Scope::Outside => text_string(s, f),
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| each_text(item, scope, f) | changed),
        Value::Object(map) => {
            let parent = Parent {
                is_tool_use: matches!(
                    map.get("type").and_then(Value::as_str),
                    Some("tool_use" | "server_tool_use")
                ),
                is_message: map.contains_key("role"),
            };
            map.iter_mut().fold(false, |changed, (k, child)| {
                let scope = scope_of(scope, &parent, k, child);
                each_text(child, scope, f) | changed
            })
        }
        _ => false,
    }
}

/// One text string: a JSON object or array inside it is walked on its decoded strings (and
/// written back when they changed); anything else is text as it is.
fn text_string(s: &mut String, f: &mut dyn FnMut(&mut String) -> bool) -> bool {
    let trimmed = s.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(mut inner) = serde_json::from_str::<Value>(s) {
            let changed = each_text(&mut inner, Scope::Free, f);
            if changed {
                *s = inner.to_string();
            }
            return changed;
        }
    }
    f(s)
}
