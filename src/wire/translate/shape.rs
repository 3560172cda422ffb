//! Answer shapes the gateway emulates where a backend lacks the client's option, applied at
//! the hub (chat chunks, or a chat completion) so every client format gets the same answer:
//! - **JSON mode on Anthropic** (`response_format: {"type": "json_object"}`): Anthropic's
//!   structured output takes only a full schema, so the request asks for one JSON object and
//!   prefills the answer with `{`; the model continues after it, and the answer's text gets
//!   the `{` back here, streamed or whole.
//! - **`parallel_tool_calls: false` on Gemini**: Gemini has no switch for it, so the answer
//!   keeps its first function call and drops the others.

use super::stream::{openai_event, DataFramer};
use crate::types::dialect::Wire;
use serde_json::{Map, Value};

/// The prefill that starts a JSON-mode answer on Anthropic.
pub const JSON_PREFILL: &str = "{";

/// What the gateway changes in a backend's answer to give the client the shape it asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Text the backend was prefilled with: the answer's text starts with it.
    pub text_prefix: Option<&'static str>,
    /// Only the answer's first tool call reaches the client.
    pub one_tool_call: bool,
}

impl Shape {
    /// The shape an answer from `upstream` needs for the chat request `chat` (the hub form
    /// of the client's request).
    pub fn of(chat: &Map<String, Value>, upstream: Wire) -> Shape {
        let json_mode = chat
            .get("response_format")
            .is_some_and(|f| f["type"] == "json_object");
        let serial = chat.get("parallel_tool_calls") == Some(&Value::Bool(false));
        Shape {
            text_prefix: (json_mode && upstream == Wire::Anthropic).then_some(JSON_PREFILL),
            one_tool_call: serial && upstream == Wire::Gemini,
        }
    }

    pub fn is_plain(&self) -> bool {
        *self == Shape::default()
    }

    /// A whole chat completion in this shape.
    pub fn apply_to_completion(&self, completion: &mut Value) {
        let Some(message) = completion
            .get_mut("choices")
            .and_then(|c| c.get_mut(0))
            .and_then(|c| c.get_mut("message"))
        else {
            return;
        };
        if let Some(prefix) = self.text_prefix {
            if let Some(text) = message.get("content").and_then(Value::as_str) {
                message["content"] = format!("{prefix}{text}").into();
            }
        }
        if self.one_tool_call {
            if let Some(calls) = message.get_mut("tool_calls").and_then(Value::as_array_mut) {
                calls.truncate(1);
            }
        }
    }
}

/// The stream stage that puts chat chunks in a [`Shape`].
#[derive(Debug, Default)]
pub struct ShapeChunks {
    shape: Shape,
    framer: DataFramer,
    prefixed: bool,
}

impl ShapeChunks {
    pub fn new(shape: Shape) -> ShapeChunks {
        ShapeChunks {
            shape,
            ..ShapeChunks::default()
        }
    }

    pub fn feed(&mut self, chat: &[u8]) -> Vec<u8> {
        let events = self.framer.feed(chat);
        self.reshape(events)
    }

    pub fn finish(&mut self, chat: &[u8]) -> Vec<u8> {
        let mut events = self.framer.feed(chat);
        events.extend(self.framer.finish());
        self.reshape(events)
    }

    fn reshape(&mut self, events: Vec<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        for data in events {
            let Ok(mut v) = serde_json::from_slice::<Value>(&data) else {
                // `[DONE]` and anything else that is not a chunk pass as they came.
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\n\n");
                continue;
            };
            if let Some(delta) = v
                .get_mut("choices")
                .and_then(|c| c.get_mut(0))
                .and_then(|c| c.get_mut("delta"))
            {
                self.reshape_delta(delta);
            }
            openai_event(&mut out, &v);
        }
        out
    }

    fn reshape_delta(&mut self, delta: &mut Value) {
        if let Some(prefix) = self.shape.text_prefix.filter(|_| !self.prefixed) {
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                if !text.is_empty() {
                    delta["content"] = format!("{prefix}{text}").into();
                    self.prefixed = true;
                }
            }
        }
        if self.shape.one_tool_call {
            if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
                calls.retain(|c| c["index"].as_u64().unwrap_or(0) == 0);
                if calls.is_empty() {
                    if let Some(d) = delta.as_object_mut() {
                        d.remove("tool_calls");
                    }
                }
            }
        }
    }
}
