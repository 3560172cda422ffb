//! Optional payload capture for the access log (`log_payloads = true` on a consumer or a
//! model): the request body and the response, secrets redacted, size-capped. For an event
//! stream the log gets the **merged** assistant output (text, tool calls with their arguments
//! reassembled, finish reason), not the raw chunks.
//!
//! Capture copies bytes during the request (bounded by [`RAW_CAP`]); all parsing, merging and
//! redaction happen in `logging`, off the streaming path.

use crate::wire::json_spans::string_value;
use crate::wire::translate::text_delta;
use serde_json::{json, Map, Value};

/// Most raw response bytes kept for merging.
pub const RAW_CAP: usize = 1024 * 1024;
const REDACTED: &str = "[REDACTED]";

/// What one request captures.
#[derive(Debug, Default)]
pub struct Capture {
    pub request: bytes::Bytes,
    pub response: Vec<u8>,
    pub response_truncated: bool,
    /// Exact secrets to remove: the presented client key, the backend keys.
    pub secrets: Vec<String>,
}

impl Capture {
    pub fn push_response(&mut self, chunk: &[u8]) {
        let room = RAW_CAP.saturating_sub(self.response.len());
        if chunk.len() > room {
            self.response_truncated = true;
        }
        self.response
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// The `payload` object of the access-log line.
    pub fn render(&self, sse: bool, max_bytes: usize) -> Value {
        let request = self.clip(&String::from_utf8_lossy(&self.request), max_bytes);
        let response = if sse {
            let merged = merge_stream(&String::from_utf8_lossy(&self.response));
            let text = redact(&merged.to_string(), &self.secrets);
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        } else {
            self.clip(&String::from_utf8_lossy(&self.response), max_bytes)
        };
        json!({
            "request": request,
            "response": response,
            "response_truncated": self.response_truncated,
        })
    }

    fn clip(&self, text: &str, max_bytes: usize) -> Value {
        let redacted = redact(text, &self.secrets);
        if redacted.len() <= max_bytes {
            return Value::String(redacted);
        }
        let mut end = max_bytes;
        while !redacted.is_char_boundary(end) {
            end -= 1;
        }
        Value::String(format!(
            "{}…[{} more bytes]",
            &redacted[..end],
            redacted.len() - end
        ))
    }
}

/// Remove secrets: the exact ones given, and anything shaped like a key (`sk-…`, `tg-…`,
/// `Bearer …` followed by 8+ token characters).
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 6) {
        out = out.replace(s.as_str(), REDACTED);
    }
    for prefix in ["sk-", "tg-", "Bearer ", "bearer "] {
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(i) = rest.find(prefix) {
            let after = &rest[i + prefix.len()..];
            let token_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(after.len());
            // Only at the start of a word: "task-management-system" is not a key.
            let word_start = !rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric());
            result.push_str(&rest[..i]);
            if token_len >= 8 && word_start {
                result.push_str(REDACTED);
            } else {
                result.push_str(&rest[i..i + prefix.len() + token_len]);
            }
            rest = &after[token_len..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// Reassemble a chat stream the client received (OpenAI chunks or Anthropic events): the
/// text, tool calls by index (arguments concatenated), and the finish reason.
pub fn merge_stream(sse: &str) -> Value {
    let mut content = String::new();
    let mut tools: Vec<Map<String, Value>> = Vec::new();
    let mut finish = Value::Null;
    let mut error = Value::Null;
    for line in sse.lines() {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            continue;
        };
        // Most events are plain text deltas: read in place, as the stream translators do.
        let text = text_delta::openai_content(data.as_bytes())
            .or_else(|| text_delta::anthropic_text(data.as_bytes()).map(|(_, t)| t));
        if let Some(t) = text.and_then(string_value) {
            content.push_str(&t);
            continue;
        }
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if let Some(e) = event.get("error") {
            error = e.clone();
        }
        if merge_anthropic(&event, &mut content, &mut tools, &mut finish) {
            continue;
        }
        let Some(choice) = event["choices"].get(0) else {
            continue;
        };
        if let Some(f) = choice.get("finish_reason").filter(|f| !f.is_null()) {
            finish = f.clone();
        }
        let delta = choice
            .get("delta")
            .or_else(|| choice.get("text").map(|_| choice));
        let Some(delta) = delta else { continue };
        if let Some(t) = delta
            .get("content")
            .or_else(|| delta.get("text"))
            .and_then(Value::as_str)
        {
            content.push_str(t);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(0) as usize;
            while tools.len() <= index {
                tools.push(Map::new());
            }
            let slot = &mut tools[index];
            for field in ["id", "type"] {
                if let Some(v) = call.get(field).filter(|v| !v.is_null()) {
                    slot.insert(field.into(), v.clone());
                }
            }
            if let Some(name) = call["function"]["name"].as_str() {
                slot.insert("name".into(), json!(name));
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                let joined = format!(
                    "{}{args}",
                    slot.get("arguments").and_then(Value::as_str).unwrap_or("")
                );
                slot.insert("arguments".into(), json!(joined));
            }
        }
    }
    let mut merged = json!({"content": content, "finish_reason": finish});
    if !tools.is_empty() {
        merged["tool_calls"] = Value::Array(tools.into_iter().map(Value::Object).collect());
    }
    if !error.is_null() {
        merged["error"] = error;
    }
    merged
}

/// One Anthropic event into the merge; false when `event` is not one.
fn merge_anthropic(
    event: &Value,
    content: &mut String,
    tools: &mut Vec<Map<String, Value>>,
    finish: &mut Value,
) -> bool {
    match event["type"].as_str() {
        Some("content_block_start") if event["content_block"]["type"] == "tool_use" => {
            let block = &event["content_block"];
            let mut slot = Map::new();
            slot.insert("id".into(), block["id"].clone());
            slot.insert("type".into(), json!("function"));
            slot.insert("name".into(), block["name"].clone());
            tools.push(slot);
            true
        }
        Some("content_block_delta") => {
            let delta = &event["delta"];
            if let Some(t) = delta["text"].as_str() {
                content.push_str(t);
            } else if let (Some(part), Some(slot)) =
                (delta["partial_json"].as_str(), tools.last_mut())
            {
                let joined = format!(
                    "{}{part}",
                    slot.get("arguments").and_then(Value::as_str).unwrap_or("")
                );
                slot.insert("arguments".into(), json!(joined));
            }
            true
        }
        Some("message_delta") => {
            if let Some(r) = event["delta"].get("stop_reason").filter(|r| !r.is_null()) {
                *finish = r.clone();
            }
            true
        }
        Some(_) if event.get("choices").is_none() => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_redacted_exactly_and_by_shape() {
        let text = r#"{"messages":[{"content":"my key is tg-abc123def456 and sk-proj-ABCDEFGH12345, also hunter2-secret-value and Bearer eyJhbGciOi.x; short sk-1"}]}"#;
        let out = redact(text, &["hunter2-secret-value".into()]);
        assert!(!out.contains("tg-abc123def456"));
        assert!(!out.contains("sk-proj-ABCDEFGH12345"));
        assert!(!out.contains("hunter2-secret-value"));
        assert!(!out.contains("eyJhbGciOi"));
        assert!(out.contains("short sk-1"), "{out}");
        assert_eq!(
            redact("a task-management-system", &[]),
            "a task-management-system"
        );
        assert_eq!(out.matches(REDACTED).count(), 4, "{out}");
    }

    #[test]
    fn a_stream_merges_into_text_and_tool_calls() {
        let sse = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"ci\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\":\\\"Oslo\\\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let m = merge_stream(sse);
        assert_eq!(m["content"], "Hello");
        assert_eq!(m["finish_reason"], "tool_calls");
        assert_eq!(m["tool_calls"][0]["name"], "get_weather");
        assert_eq!(m["tool_calls"][0]["id"], "call_1");
        assert_eq!(m["tool_calls"][0]["arguments"], "{\"city\":\"Oslo\"}");
    }

    #[test]
    fn an_anthropic_stream_merges_its_text_deltas() {
        let sse = concat!(
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"caf\\u00e9 \"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"au lait\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n",
        );
        let m = merge_stream(sse);
        assert_eq!(m["content"], "café au lait");
        assert!(!m["finish_reason"].is_null());
    }

    #[test]
    fn long_bodies_are_clipped_on_a_char_boundary() {
        let c = Capture {
            request: bytes::Bytes::from("é".repeat(100)),
            ..Capture::default()
        };
        let v = c.render(false, 11);
        let s = v["request"].as_str().unwrap();
        assert!(s.starts_with("ééééé…[190 more bytes]"), "{s}");
    }
}
