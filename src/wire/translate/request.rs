//! Request bodies across dialects: Anthropic Messages ⇄ OpenAI Chat Completions.
//!
//! Every field either has a counterpart or is refused with [`WireError::Untranslatable`]
//! naming it; nothing is dropped silently. The exceptions are hints with no effect on the
//! answer (`cache_control`, `stream_options`, a `strict` flag on a tool), which the other API
//! has no place for.

use super::{untranslatable, JsonObject};
use crate::wire::WireError;
use serde_json::{json, Map, Value};

/// `max_tokens` sent to Anthropic when an OpenAI client gave none (Anthropic requires it).
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u64 = 4096;

/// An Anthropic Messages request as an OpenAI Chat Completions request for `model`.
pub fn messages_to_chat(body: &JsonObject, model: &str) -> Result<Value, WireError> {
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    let mut messages = Vec::new();
    for (key, value) in body {
        match key.as_str() {
            "model" | "messages" => {}
            "system" => {
                let text = text_content(value, "system", "\n\n", "a system prompt")?;
                messages.push(json!({"role": "system", "content": text}));
            }
            "max_tokens" | "temperature" | "top_p" | "top_k" | "stream" => {
                out.insert(key.clone(), value.clone());
            }
            "stop_sequences" => {
                out.insert("stop".into(), value.clone());
            }
            "metadata" => {
                if let Some(user) = value.get("user_id").filter(|u| !u.is_null()) {
                    out.insert("user".into(), user.clone());
                }
            }
            "tools" => {
                out.insert("tools".into(), tools_to_openai(value)?);
            }
            "tool_choice" => {
                let (choice, parallel) = tool_choice_to_openai(value)?;
                out.insert("tool_choice".into(), choice);
                if let Some(p) = parallel {
                    out.insert("parallel_tool_calls".into(), p.into());
                }
            }
            "thinking" if value.get("type").and_then(Value::as_str) == Some("disabled") => {}
            "output_config" => output_config_to_openai(value, &mut out)?,
            _ if value.is_null() => {}
            other => {
                return Err(untranslatable(
                    other,
                    format!("`{other}` has no equivalent in the OpenAI Chat Completions API"),
                ))
            }
        }
    }
    let list = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| untranslatable("messages", "messages must be an array"))?;
    for (i, m) in list.iter().enumerate() {
        message_to_openai(m, &format!("messages[{i}]"), &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    if out.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(out))
}

/// Anthropic's `output_config` (structured output and effort) as OpenAI's `response_format`
/// and `reasoning_effort`.
fn output_config_to_openai(value: &Value, out: &mut Map<String, Value>) -> Result<(), WireError> {
    let Some(config) = value.as_object() else {
        return Err(untranslatable(
            "output_config",
            "output_config must be an object",
        ));
    };
    for (key, v) in config {
        match key.as_str() {
            "format" if v["type"] == "json_schema" => {
                out.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": {"name": "output", "schema": v["schema"]}}),
                );
            }
            "effort" if v.is_string() => {
                out.insert("reasoning_effort".into(), v.clone());
            }
            _ if v.is_null() => {}
            other => {
                let message = format!("`output_config.{other}` has no OpenAI counterpart");
                return Err(untranslatable(format!("output_config.{other}"), message));
            }
        }
    }
    Ok(())
}

/// OpenAI's `response_format` as Anthropic's `output_config.format` (`None`: plain text).
fn response_format_to_anthropic(value: &Value) -> Result<Option<Value>, WireError> {
    match value["type"].as_str() {
        Some("text") => Ok(None),
        Some("json_schema") => match value["json_schema"].get("schema") {
            Some(schema) => Ok(Some(json!({"type": "json_schema", "schema": schema}))),
            None => Err(untranslatable(
                "response_format.json_schema.schema",
                "a json_schema response format needs a schema",
            )),
        },
        _ => Err(untranslatable(
            "response_format.type",
            "response_format.type must be text, json_object or json_schema",
        )),
    }
}

/// The text of a content that is a string or an array of text blocks/parts (null: empty),
/// joined by `separator`. Anything but text is refused, naming its index; `what` names the
/// place in the message.
fn text_content(value: &Value, at: &str, separator: &str, what: &str) -> Result<String, WireError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (i, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => texts.push(t.as_str()),
                    _ => {
                        return Err(untranslatable(
                            format!("{at}[{i}]"),
                            format!("only text can be translated in {what}"),
                        ))
                    }
                }
            }
            Ok(texts.join(separator))
        }
        _ => Err(untranslatable(
            at,
            format!("{what} must be a string or text blocks"),
        )),
    }
}

fn tools_to_openai(value: &Value) -> Result<Value, WireError> {
    let tools = value
        .as_array()
        .ok_or_else(|| untranslatable("tools", "tools must be an array"))?;
    let mut out = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let kind = t.get("type").and_then(Value::as_str).unwrap_or("custom");
        if kind != "custom" {
            return Err(untranslatable(
                format!("tools[{i}].type"),
                format!("the server tool `{kind}` exists only on Anthropic backends"),
            ));
        }
        let name = t
            .get("name")
            .cloned()
            .ok_or_else(|| untranslatable(format!("tools[{i}].name"), "a tool needs a name"))?;
        let mut function = json!({"name": name});
        if let Some(d) = t.get("description") {
            function["description"] = d.clone();
        }
        function["parameters"] = t
            .get("input_schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Value::Array(out))
}

fn tool_choice_to_openai(value: &Value) -> Result<(Value, Option<bool>), WireError> {
    let parallel = value
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .map(|d| !d);
    let choice = match value.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            json!({"type": "function", "function": {"name": value.get("name").cloned().unwrap_or_default()}})
        }
        _ => {
            return Err(untranslatable(
                "tool_choice.type",
                "tool_choice.type must be auto, any, tool or none",
            ))
        }
    };
    Ok((choice, parallel))
}

/// One Anthropic message as OpenAI messages (a user turn's tool results become `tool` messages).
fn message_to_openai(m: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), WireError> {
    let role = m.get("role").and_then(Value::as_str).unwrap_or("");
    if role != "user" && role != "assistant" {
        return Err(untranslatable(
            format!("{at}.role"),
            "role must be user or assistant",
        ));
    }
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(b)) => b,
        _ => {
            return Err(untranslatable(
                format!("{at}.content"),
                "content must be a string or an array of blocks",
            ))
        }
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let here = format!("{at}.content[{j}]");
        match b.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(json!({"type": "text", "text": b.get("text").cloned().unwrap_or_default()})),
            Some("image") if role == "user" => parts.push(image_to_openai(b, &here)?),
            Some("tool_use") if role == "assistant" => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or_default(),
                    "type": "function",
                    "function": {"name": b.get("name").cloned().unwrap_or_default(), "arguments": input.to_string()},
                }));
            }
            // Reasoning the client got from this gateway (a backend's reasoning becomes a
            // `thinking` block) and sends back with its tool results, as Anthropic requires.
            // Chat Completions has no field for it: it is left out, signature and all.
            Some("thinking" | "redacted_thinking") if role == "assistant" => {}
            Some("tool_result") if role == "user" => {
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": b.get("tool_use_id").cloned().unwrap_or_default(),
                    "content": tool_result_text(b, &here)?,
                }));
            }
            other => {
                return Err(untranslatable(
                    format!("{here}.type"),
                    format!(
                        "a `{}` block in a {role} message has no equivalent in the OpenAI Chat Completions API",
                        other.unwrap_or("?")
                    ),
                ))
            }
        }
    }
    if role == "assistant" {
        let text: String = parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("");
        let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { text.into() }});
        if !tool_calls.is_empty() {
            msg["tool_calls"] = Value::Array(tool_calls);
        }
        out.push(msg);
    } else if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn image_to_openai(b: &Value, at: &str) -> Result<Value, WireError> {
    let source = &b["source"];
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            source["media_type"].as_str().unwrap_or("image/png"),
            source["data"].as_str().unwrap_or("")
        ),
        Some("url") => source["url"].as_str().unwrap_or("").to_string(),
        _ => {
            return Err(untranslatable(
                format!("{at}.source.type"),
                "an image source must be base64 or url",
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A tool result's content as text (`is_error` is kept as a marker the model can read).
fn tool_result_text(b: &Value, at: &str) -> Result<String, WireError> {
    let content = b.get("content").unwrap_or(&Value::Null);
    let mut text = text_content(content, &format!("{at}.content"), "\n", "a tool result")?;
    if b.get("is_error").and_then(Value::as_bool) == Some(true) {
        text.insert_str(0, "[tool error] ");
    }
    Ok(text)
}

/// An OpenAI Chat Completions request as an Anthropic Messages request for `model`.
pub fn chat_to_messages(body: &JsonObject, model: &str) -> Result<Value, WireError> {
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    let mut tool_choice: Option<Value> = None;
    let mut parallel: Option<bool> = None;
    let mut json_mode = false;
    for (key, value) in body {
        match key.as_str() {
            "model" | "messages" | "stream_options" | "max_tokens" | "max_completion_tokens" => {}
            "temperature" | "top_p" | "stream" => {
                out.insert(key.clone(), value.clone());
            }
            "stop" => {
                let list = match value {
                    Value::String(s) => json!([s]),
                    Value::Array(_) => value.clone(),
                    Value::Null => continue,
                    _ => return Err(untranslatable("stop", "stop must be a string or an array")),
                };
                out.insert("stop_sequences".into(), list);
            }
            "user" => {
                out.insert("metadata".into(), json!({"user_id": value}));
            }
            "tools" => {
                out.insert("tools".into(), tools_to_anthropic(value)?);
            }
            "tool_choice" => tool_choice = Some(tool_choice_to_anthropic(value)?),
            "parallel_tool_calls" => parallel = value.as_bool(),
            "response_format" if value["type"] == "json_object" => json_mode = true,
            "response_format" => {
                if let Some(format) = response_format_to_anthropic(value)? {
                    out.insert("output_config".into(), json!({"format": format}));
                }
            }
            "n" if value.as_u64() == Some(1) => {}
            "logprobs" | "store" if value.as_bool() == Some(false) => {}
            _ if value.is_null() => {}
            other => {
                return Err(untranslatable(
                    other,
                    format!("`{other}` has no equivalent in the Anthropic Messages API"),
                ))
            }
        }
    }
    let max_tokens = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS);
    out.insert("max_tokens".into(), max_tokens.into());
    if parallel == Some(false) {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        choice["disable_parallel_tool_use"] = true.into();
    }
    if let Some(c) = tool_choice {
        out.insert("tool_choice".into(), c);
    }
    let list = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| untranslatable("messages", "messages must be an array"))?;
    let (mut system, mut messages) = anthropic_turns(list)?;
    if json_mode {
        json_mode_prefill(&mut system, &mut messages)?;
    }
    if !system.is_empty() {
        out.insert("system".into(), system.join("\n\n").into());
    }
    out.insert("messages".into(), Value::Array(messages));
    Ok(Value::Object(out))
}

/// JSON mode on Anthropic, whose structured output takes only a full schema: the model is
/// asked for one JSON object and its answer is prefilled with `{` (the answer gets the `{`
/// back on its way to the client: [`super::shape`]). Streaming and usage stay exact.
fn json_mode_prefill(system: &mut Vec<String>, messages: &mut Vec<Value>) -> Result<(), WireError> {
    if messages.last().is_some_and(|m| m["role"] == "assistant") {
        return Err(untranslatable(
            "response_format",
            "JSON mode on an Anthropic backend prefills the answer, so the conversation must end with a user turn",
        ));
    }
    system.push("Answer with one JSON object and nothing else.".into());
    messages.push(json!({"role": "assistant", "content": [
        {"type": "text", "text": super::shape::JSON_PREFILL}
    ]}));
    Ok(())
}

/// OpenAI messages as Anthropic's system texts and turns: tool results become user turns,
/// and consecutive turns of one role are merged (Anthropic wants them to alternate).
fn anthropic_turns(list: &[Value]) -> Result<(Vec<String>, Vec<Value>), WireError> {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.push(openai_text(&m["content"], &format!("{at}.content"))?);
                continue;
            }
            "user" => ("user", user_blocks(&m["content"], &at)?),
            "assistant" => ("assistant", assistant_blocks(m, &at)?),
            "tool" => {
                let content = openai_text(&m["content"], &format!("{at}.content"))?;
                let block = json!({"type": "tool_result", "tool_use_id": m.get("tool_call_id").cloned().unwrap_or_default(), "content": content});
                ("user", vec![block])
            }
            other => {
                return Err(untranslatable(
                    format!("{at}.role"),
                    format!("the role `{other}` has no equivalent in the Anthropic Messages API"),
                ))
            }
        };
        // Anthropic wants turns to alternate: consecutive turns of one role are merged.
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(arr) = last["content"].as_array_mut() {
                    arr.extend(blocks);
                }
            }
            _ => messages.push(json!({"role": role, "content": blocks})),
        }
    }
    Ok((system, messages))
}

/// The text of an OpenAI message content: a string or text parts.
fn openai_text(content: &Value, at: &str) -> Result<String, WireError> {
    text_content(content, at, "\n", "this message")
}

fn user_blocks(content: &Value, at: &str) -> Result<Vec<Value>, WireError> {
    let parts = match content {
        Value::String(s) => return Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(p) => p,
        _ => {
            return Err(untranslatable(
                format!("{at}.content"),
                "content must be a string or parts",
            ))
        }
    };
    let mut blocks = Vec::new();
    for (k, p) in parts.iter().enumerate() {
        let here = format!("{at}.content[{k}]");
        match p.get("type").and_then(Value::as_str) {
            Some("text") => blocks
                .push(json!({"type": "text", "text": p.get("text").cloned().unwrap_or_default()})),
            Some("image_url") => {
                let url = p["image_url"]["url"].as_str().unwrap_or("");
                blocks.push(image_to_anthropic(url, &here)?);
            }
            other => {
                return Err(untranslatable(
                    format!("{here}.type"),
                    format!(
                        "a `{}` part has no equivalent in the Anthropic Messages API",
                        other.unwrap_or("?")
                    ),
                ))
            }
        }
    }
    Ok(blocks)
}

fn image_to_anthropic(url: &str, at: &str) -> Result<Value, WireError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or_else(|| {
            untranslatable(format!("{at}.image_url.url"), "a data URL needs a comma")
        })?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            untranslatable(
                format!("{at}.image_url.url"),
                "only base64 data URLs can be translated",
            )
        })?;
        return Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}),
        );
    }
    Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
}

fn assistant_blocks(m: &Value, at: &str) -> Result<Vec<Value>, WireError> {
    let mut blocks = Vec::new();
    let text = openai_text(&m["content"], &format!("{at}.content"))?;
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        for (k, c) in calls.iter().enumerate() {
            let args = c["function"]["arguments"].as_str().unwrap_or("{}");
            let input: Value = if args.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args).map_err(|_| {
                    untranslatable(
                        format!("{at}.tool_calls[{k}].function.arguments"),
                        "tool call arguments must be a JSON object to be translated",
                    )
                })?
            };
            blocks.push(
                json!({"type": "tool_use", "id": c.get("id").cloned().unwrap_or_default(),
                "name": c["function"].get("name").cloned().unwrap_or_default(), "input": input}),
            );
        }
    }
    Ok(blocks)
}

fn tools_to_anthropic(value: &Value) -> Result<Value, WireError> {
    let tools = value
        .as_array()
        .ok_or_else(|| untranslatable("tools", "tools must be an array"))?;
    let mut out = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(untranslatable(
                format!("tools[{i}].type"),
                "only function tools can be translated",
            ));
        }
        let f = &t["function"];
        let mut tool = json!({"name": f.get("name").cloned().unwrap_or_default(),
            "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}))});
        if let Some(d) = f.get("description") {
            tool["description"] = d.clone();
        }
        out.push(tool);
    }
    Ok(Value::Array(out))
}

fn tool_choice_to_anthropic(value: &Value) -> Result<Value, WireError> {
    Ok(match value {
        Value::String(s) if s == "auto" => json!({"type": "auto"}),
        Value::String(s) if s == "required" => json!({"type": "any"}),
        Value::String(s) if s == "none" => json!({"type": "none"}),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            json!({"type": "tool", "name": value["function"]["name"]})
        }
        _ => {
            return Err(untranslatable(
                "tool_choice",
                "tool_choice must be auto, required, none or a function",
            ))
        }
    })
}
