//! An OpenAI Chat Completions request as a Gemini `generateContent` request (Anthropic
//! clients arrive here through [`crate::wire::translate::request::messages_to_chat`]).
//!
//! As the other translators: every field has a counterpart or is refused naming it. Hints
//! with no effect on the answer (`stream_options`, `user`, a tool's `strict`) are dropped.

use crate::wire::translate::{untranslatable, JsonObject};
use crate::wire::WireError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// `reasoning_effort` → Gemini's `thinkingBudget` (tokens).
fn thinking_budget(effort: &str) -> Option<u64> {
    match effort {
        "none" | "minimal" => Some(0),
        "low" => Some(1024),
        "medium" => Some(8192),
        "high" => Some(24576),
        _ => None,
    }
}

/// The body of `models/{model}:generateContent` (or `:streamGenerateContent`) for `body`.
pub fn chat_to_gemini(body: &JsonObject) -> Result<Value, WireError> {
    let mut out = Map::new();
    let mut generation = Map::new();
    let number = |key: &str, v: &Value| {
        if v.is_number() {
            Ok(v.clone())
        } else {
            Err(untranslatable(key, format!("{key} must be a number")))
        }
    };
    for (key, value) in body {
        match key.as_str() {
            "model" | "messages" | "stream" | "stream_options" | "user" => {}
            _ if value.is_null() => {}
            "max_tokens" | "max_completion_tokens" => {
                generation.insert("maxOutputTokens".into(), number(key, value)?);
            }
            "temperature" => {
                generation.insert("temperature".into(), number(key, value)?);
            }
            "top_p" => {
                generation.insert("topP".into(), number(key, value)?);
            }
            "top_k" => {
                generation.insert("topK".into(), number(key, value)?);
            }
            "seed" => {
                generation.insert("seed".into(), number(key, value)?);
            }
            "presence_penalty" => {
                generation.insert("presencePenalty".into(), number(key, value)?);
            }
            "frequency_penalty" => {
                generation.insert("frequencyPenalty".into(), number(key, value)?);
            }
            "stop" => {
                let list = match value {
                    Value::String(s) => json!([s]),
                    Value::Array(_) => value.clone(),
                    _ => return Err(untranslatable("stop", "stop must be a string or an array")),
                };
                generation.insert("stopSequences".into(), list);
            }
            "n" if value.as_u64() == Some(1) => {}
            "logprobs" | "store" if value.as_bool() == Some(false) => {}
            // Gemini has no switch for it: with `false`, the answer keeps its first call
            // (`super::super::shape`).
            "parallel_tool_calls" if value.is_boolean() => {}
            "response_format" => response_format(value, &mut generation)?,
            "reasoning_effort" => {
                let budget = value.as_str().and_then(thinking_budget).ok_or_else(|| {
                    untranslatable(
                        "reasoning_effort",
                        "reasoning_effort must be none, minimal, low, medium or high",
                    )
                })?;
                generation.insert("thinkingConfig".into(), json!({"thinkingBudget": budget}));
            }
            "tools" => {
                out.insert("tools".into(), tools(value)?);
            }
            "tool_choice" => {
                out.insert("toolConfig".into(), tool_config(value)?);
            }
            other => {
                return Err(untranslatable(
                    other,
                    format!("`{other}` has no equivalent in the Gemini API"),
                ))
            }
        }
    }
    let list = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| untranslatable("messages", "messages must be an array"))?;
    let (system, contents) = contents(list)?;
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    out.insert("contents".into(), Value::Array(contents));
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }
    Ok(Value::Object(out))
}

fn response_format(value: &Value, generation: &mut JsonObject) -> Result<(), WireError> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            generation.insert("responseMimeType".into(), "application/json".into());
        }
        Some("json_schema") => {
            let schema = value["json_schema"].get("schema").ok_or_else(|| {
                untranslatable(
                    "response_format.json_schema.schema",
                    "a json_schema response format needs a schema",
                )
            })?;
            generation.insert("responseMimeType".into(), "application/json".into());
            generation.insert("responseJsonSchema".into(), schema.clone());
        }
        _ => {
            return Err(untranslatable(
                "response_format.type",
                "response_format.type must be text, json_object or json_schema",
            ))
        }
    }
    Ok(())
}

fn tools(value: &Value) -> Result<Value, WireError> {
    let list = value
        .as_array()
        .ok_or_else(|| untranslatable("tools", "tools must be an array"))?;
    let mut declarations = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(untranslatable(
                format!("tools[{i}].type"),
                "only function tools can be offered to a Gemini backend",
            ));
        }
        let f = &t["function"];
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
            untranslatable(format!("tools[{i}].function.name"), "a tool needs a name")
        })?;
        let mut d = json!({"name": name});
        if let Some(desc) = f.get("description").filter(|d| !d.is_null()) {
            d["description"] = desc.clone();
        }
        if let Some(p) = f.get("parameters").filter(|p| !p.is_null()) {
            d["parametersJsonSchema"] = p.clone();
        }
        declarations.push(d);
    }
    Ok(json!([{"functionDeclarations": declarations}]))
}

fn tool_config(value: &Value) -> Result<Value, WireError> {
    let config = match value {
        Value::String(s) => match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" => json!({"mode": "ANY"}),
            _ => {
                return Err(untranslatable(
                    "tool_choice",
                    "tool_choice must be auto, none, required or a function",
                ))
            }
        },
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o["function"]["name"].as_str().ok_or_else(|| {
                untranslatable("tool_choice.function.name", "name the function to call")
            })?;
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
        _ => {
            return Err(untranslatable(
                "tool_choice",
                "tool_choice must be auto, none, required or a function",
            ))
        }
    };
    Ok(json!({"functionCallingConfig": config}))
}

/// The system parts, and the turns: `user` and `model`, consecutive turns of one role
/// merged (tool results answer in one user turn, as Gemini expects).
fn contents(list: &[Value]) -> Result<(Vec<Value>, Vec<Value>), WireError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // A tool result names its call by id; Gemini's answer names the function.
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, m) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let (role, parts) = match role {
            "system" | "developer" => {
                system.extend(text_parts(&m["content"], &format!("{at}.content"))?);
                continue;
            }
            "user" => ("user", user_parts(&m["content"], &at)?),
            "assistant" => ("model", assistant_parts(m, &at, &mut call_names)?),
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                let name = call_names.get(id).ok_or_else(|| {
                    untranslatable(
                        format!("{at}.tool_call_id"),
                        "a tool result must answer a tool call of an earlier assistant message",
                    )
                })?;
                let text: String = text_parts(&m["content"], &format!("{at}.content"))?
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    Ok(v) => json!({"result": v}),
                    Err(_) => json!({"result": text}),
                };
                let part =
                    json!({"functionResponse": {"id": id, "name": name, "response": response}});
                ("user", vec![part])
            }
            _ => {
                return Err(untranslatable(
                    format!("{at}.role"),
                    "role must be system, developer, user, assistant or tool",
                ))
            }
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((r, p)) if *r == role => p.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
}

/// Text content (a string or text parts) as Gemini text parts.
fn text_parts(content: &Value, at: &str) -> Result<Vec<Value>, WireError> {
    match content {
        Value::String(s) if s.is_empty() => Ok(vec![]),
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Null => Ok(vec![]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match (p["type"].as_str(), p.get("text")) {
                (Some("text"), Some(Value::String(t))) => Ok(json!({"text": t})),
                _ => Err(untranslatable(
                    format!("{at}[{j}]"),
                    "only text can be translated here",
                )),
            })
            .collect(),
        _ => Err(untranslatable(at, "content must be a string or text parts")),
    }
}

fn user_parts(content: &Value, at: &str) -> Result<Vec<Value>, WireError> {
    let Value::Array(parts) = content else {
        return text_parts(content, &format!("{at}.content"));
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        let here = format!("{at}.content[{j}]");
        match p["type"].as_str() {
            Some("text") => out.push(json!({"text": p["text"].as_str().unwrap_or("")})),
            Some("image_url") => out.push(image_part(&p["image_url"]["url"], &here)?),
            other => {
                return Err(untranslatable(
                    format!("{here}.type"),
                    format!(
                        "a `{}` part has no equivalent in the Gemini API",
                        other.unwrap_or("?")
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// A `data:` URL as inline data; an http(s) URL of a known image type as file data.
fn image_part(url: &Value, at: &str) -> Result<Value, WireError> {
    let url = url.as_str().unwrap_or("");
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((mime, data)) = rest.split_once(";base64,") {
            return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
        }
    }
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime = [
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".webp", "image/webp"),
        (".gif", "image/gif"),
        (".heic", "image/heic"),
    ]
    .iter()
    .find(|(ext, _)| path.ends_with(ext))
    .map(|(_, m)| *m);
    match mime {
        Some(mime) if url.starts_with("https://") || url.starts_with("http://") => {
            Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}))
        }
        _ => Err(untranslatable(
            format!("{at}.image_url.url"),
            "a Gemini backend takes an image as a base64 data: URL, or an http(s) URL ending in .png, .jpg, .jpeg, .webp, .gif or .heic",
        )),
    }
}

fn assistant_parts(
    m: &Value,
    at: &str,
    call_names: &mut HashMap<String, String>,
) -> Result<Vec<Value>, WireError> {
    let mut parts = text_parts(&m["content"], &format!("{at}.content"))?;
    for (k, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
        let here = format!("{at}.tool_calls[{k}]");
        let name = call["function"]["name"].as_str().ok_or_else(|| {
            untranslatable(format!("{here}.function.name"), "a tool call needs a name")
        })?;
        let id = call["id"].as_str().unwrap_or("");
        call_names.insert(id.to_string(), name.to_string());
        let arguments = call["function"]["arguments"].as_str().unwrap_or("");
        let args = if arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str::<Value>(arguments)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    untranslatable(
                        format!("{here}.function.arguments"),
                        "tool call arguments must be a JSON object for a Gemini backend",
                    )
                })?
        };
        parts.push(json!({"functionCall": {"id": id, "name": name, "args": args}}));
    }
    Ok(parts)
}
