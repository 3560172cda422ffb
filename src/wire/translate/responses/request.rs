//! A Responses API request (the stateless subset) as a Chat Completions request, from which
//! the other translators reach Anthropic and Gemini backends.
//!
//! As the other translators: every field has a counterpart or is refused naming it. Left
//! out, as hints that change nothing in a stateless answer: `store = false`, `metadata`,
//! `include`, `truncation`, `service_tier`, `prompt_cache_key`, `safety_identifier`,
//! `reasoning.summary`, and `reasoning` items sent back from an earlier turn (their
//! encrypted content means something only to the provider that made them).

use crate::wire::translate::{untranslatable, JsonObject};
use crate::wire::WireError;
use serde_json::{json, Map, Value};

/// The Chat Completions body for `body`, with `model`.
pub fn responses_to_chat(body: &JsonObject, model: &str) -> Result<Value, WireError> {
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    let mut messages = Vec::new();
    if let Some(i) = body.get("instructions").filter(|i| !i.is_null()) {
        let text = i
            .as_str()
            .ok_or_else(|| untranslatable("instructions", "instructions must be a string"))?;
        messages.push(json!({"role": "system", "content": text}));
    }
    for (key, value) in body {
        match key.as_str() {
            "model" | "input" | "instructions" => {}
            _ if value.is_null() => {}
            "stream" => {
                out.insert("stream".into(), value.clone());
                if value.as_bool() == Some(true) {
                    out.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            "max_output_tokens" => {
                out.insert("max_completion_tokens".into(), value.clone());
            }
            "temperature" | "top_p" | "parallel_tool_calls" | "user" => {
                out.insert(key.clone(), value.clone());
            }
            // The gateway keeps the conversation (`crate::runtime::conversations`).
            "store" if value.is_boolean() => {}
            "metadata" | "include" | "truncation" | "service_tier" | "prompt_cache_key"
            | "safety_identifier" | "stream_options" => {}
            "tools" => {
                out.insert("tools".into(), tools(value)?);
            }
            "tool_choice" => {
                out.insert("tool_choice".into(), tool_choice(value)?);
            }
            "text" => text_options(value, &mut out)?,
            "reasoning" => {
                if let Some(effort) = value.get("effort").filter(|e| !e.is_null()) {
                    out.insert("reasoning_effort".into(), effort.clone());
                }
            }
            other => {
                let why = match other {
                    "previous_response_id" => {
                        "no response with this id is stored here for you (it expired, or was made elsewhere)"
                    }
                    "conversation" => {
                        "conversations are not kept on a translated route: use `previous_response_id`"
                    }
                    "background" => "background responses need a backend that serves Responses",
                    _ => "it has no equivalent in the Chat Completions API this route is translated to",
                };
                return Err(untranslatable(
                    other,
                    format!("`{other}` is not supported here: {why}"),
                ));
            }
        }
    }
    match body.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => input_items(items, &mut messages)?,
        _ => {
            return Err(untranslatable(
                "input",
                "input must be a string or an array of items",
            ))
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    Ok(Value::Object(out))
}

fn tools(value: &Value) -> Result<Value, WireError> {
    let list = value
        .as_array()
        .ok_or_else(|| untranslatable("tools", "tools must be an array"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let kind = t.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "function" {
            return Err(untranslatable(
                format!("tools[{i}].type"),
                format!("the built-in tool `{kind}` needs a backend that serves Responses; only function tools are translated"),
            ));
        }
        let mut function = Map::new();
        for k in ["name", "description", "parameters", "strict"] {
            if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
                function.insert(k.into(), v.clone());
            }
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Value::Array(out))
}

fn tool_choice(value: &Value) -> Result<Value, WireError> {
    match value {
        Value::String(s) if ["auto", "none", "required"].contains(&s.as_str()) => Ok(value.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => Ok(
            json!({"type": "function", "function": {"name": o.get("name").cloned().unwrap_or_default()}}),
        ),
        _ => Err(untranslatable(
            "tool_choice",
            "tool_choice must be auto, none, required or a function",
        )),
    }
}

/// `text.format` as `response_format` (`text.verbosity` passes as `verbosity`).
fn text_options(value: &Value, out: &mut JsonObject) -> Result<(), WireError> {
    if let Some(format) = value.get("format").filter(|f| !f.is_null()) {
        let rf = match format.get("type").and_then(Value::as_str) {
            Some("text") => None,
            Some("json_object") => Some(json!({"type": "json_object"})),
            Some("json_schema") => {
                let mut schema = Map::new();
                for k in ["name", "description", "schema", "strict"] {
                    if let Some(v) = format.get(k).filter(|v| !v.is_null()) {
                        schema.insert(k.into(), v.clone());
                    }
                }
                Some(json!({"type": "json_schema", "json_schema": schema}))
            }
            _ => {
                return Err(untranslatable(
                    "text.format.type",
                    "text.format.type must be text, json_object or json_schema",
                ))
            }
        };
        if let Some(rf) = rf {
            out.insert("response_format".into(), rf);
        }
    }
    if let Some(v) = value.get("verbosity").filter(|v| !v.is_null()) {
        out.insert("verbosity".into(), v.clone());
    }
    Ok(())
}

/// Input items as chat messages: function calls join the assistant turn before them.
fn input_items(items: &[Value], messages: &mut Vec<Value>) -> Result<(), WireError> {
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind {
            "message" => messages.push(message(item, &at)?),
            "function_call" => {
                let call = json!({
                    "id": item.get("call_id").cloned().unwrap_or_default(),
                    "type": "function",
                    "function": {"name": item.get("name").cloned().unwrap_or_default(),
                                 "arguments": item.get("arguments").cloned().unwrap_or_else(|| "{}".into())},
                });
                match messages.last_mut() {
                    Some(m) if m["role"] == "assistant" => match m["tool_calls"].as_array_mut() {
                        Some(calls) => calls.push(call),
                        None => m["tool_calls"] = json!([call]),
                    },
                    _ => messages
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            "function_call_output" => {
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => text_of(parts, &format!("{at}.output"))?,
                    _ => {
                        return Err(untranslatable(
                            format!("{at}.output"),
                            "output must be a string or text parts",
                        ))
                    }
                };
                messages.push(json!({"role": "tool",
                    "tool_call_id": item.get("call_id").cloned().unwrap_or_default(), "content": output}));
            }
            "reasoning" => {}
            "item_reference" => return Err(untranslatable(
                format!("{at}.id"),
                "no item with this id is stored here for you (it expired, or was made elsewhere)",
            )),
            other => {
                return Err(untranslatable(
                    format!("{at}.type"),
                    format!("a `{other}` item needs a backend that serves Responses"),
                ))
            }
        }
    }
    Ok(())
}

fn message(item: &Value, at: &str) -> Result<Value, WireError> {
    let role = item.get("role").and_then(Value::as_str).unwrap_or("");
    let content = item.get("content").unwrap_or(&Value::Null);
    match role {
        "system" | "developer" | "assistant" => {
            let text = match content {
                Value::String(s) => s.clone(),
                Value::Array(parts) => text_of(parts, &format!("{at}.content"))?,
                _ => String::new(),
            };
            let role = if role == "assistant" {
                "assistant"
            } else {
                "system"
            };
            Ok(json!({"role": role, "content": text}))
        }
        "user" => {
            let Value::Array(parts) = content else {
                return Ok(json!({"role": "user", "content": content.as_str().unwrap_or("")}));
            };
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                let here = format!("{at}.content[{j}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("input_text") | Some("output_text") | Some("text") => out.push(
                        json!({"type": "text", "text": p.get("text").cloned().unwrap_or_default()}),
                    ),
                    Some("input_image") => {
                        let url = p.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                            untranslatable(format!("{here}.image_url"), "an image needs an image_url (file_id needs a backend that serves Responses)")
                        })?;
                        let mut image = json!({"url": url});
                        if let Some(d) = p.get("detail").filter(|d| !d.is_null()) {
                            image["detail"] = d.clone();
                        }
                        out.push(json!({"type": "image_url", "image_url": image}));
                    }
                    other => {
                        return Err(untranslatable(
                            format!("{here}.type"),
                            format!(
                                "a `{}` part has no equivalent in Chat Completions",
                                other.unwrap_or("?")
                            ),
                        ))
                    }
                }
            }
            Ok(json!({"role": "user", "content": out}))
        }
        _ => Err(untranslatable(
            format!("{at}.role"),
            "role must be user, assistant, system or developer",
        )),
    }
}

/// The text of content parts (`input_text`, `output_text`); anything else is refused.
fn text_of(parts: &[Value], at: &str) -> Result<String, WireError> {
    let mut text = String::new();
    for (j, p) in parts.iter().enumerate() {
        match (
            p.get("type").and_then(Value::as_str),
            p.get("text").and_then(Value::as_str),
        ) {
            (Some("input_text" | "output_text" | "text"), Some(t)) => text.push_str(t),
            (Some("refusal"), _) => {}
            _ => {
                return Err(untranslatable(
                    format!("{at}[{j}]"),
                    "only text can be translated here",
                ))
            }
        }
    }
    Ok(text)
}
