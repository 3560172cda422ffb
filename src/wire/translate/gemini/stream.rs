//! A Gemini `streamGenerateContent?alt=sse` stream as OpenAI chat chunks.
//!
//! Gemini sends whole `GenerateContentResponse`s, each with the new parts and the running
//! usage; the last carries `finishReason`, and the body simply ends (no `[DONE]`). The chunks
//! end with a usage chunk and `[DONE]` once a finish reason was seen, as an OpenAI stream
//! with `include_usage` does (the meter strips the usage chunk when the client did not ask).

use super::response::parts;
use super::{chat_id, finish_reason, usage};
use crate::wire::translate::stream::{openai_event as event, DataFramer};
use serde_json::{json, Value};

#[derive(Debug, Default)]
pub struct GeminiToChunks {
    framer: DataFramer,
    id: String,
    model: Value,
    created: u64,
    started: bool,
    calls: usize,
    finish: Option<&'static str>,
    usage: Value,
    finished: bool,
}

impl GeminiToChunks {
    pub fn new() -> Self {
        GeminiToChunks {
            created: crate::wire::translate::now(),
            usage: json!({}),
            ..Self::default()
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let events = self.framer.feed(chunk);
        self.translate(events)
    }

    /// The end of the body: close the stream if the model had finished.
    pub fn finish(&mut self) -> Vec<u8> {
        let events = self.framer.finish();
        let mut out = self.translate(events);
        if self.finish.is_some() && !self.finished {
            let mut last = self.chunk(json!({}), None);
            last["choices"] = json!([]);
            last["usage"] = usage(&self.usage);
            event(&mut out, &last);
            out.extend_from_slice(b"data: [DONE]\n\n");
            self.finished = true;
        }
        out
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
               "model": self.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn translate(&mut self, events: Vec<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        for data in events {
            if self.finished {
                break;
            }
            let Ok(v) = serde_json::from_slice::<Value>(&data) else {
                continue;
            };
            if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
                event(
                    &mut out,
                    &json!({"error": {"message": e["message"], "type": "server_error",
                        "param": null, "code": e["status"]}}),
                );
                self.finished = true;
                continue;
            }
            if !self.started {
                self.started = true;
                self.id = chat_id(&v);
                self.model = v["modelVersion"].clone();
                let first = self.chunk(json!({"role": "assistant", "content": ""}), None);
                event(&mut out, &first);
            }
            if v["usageMetadata"].is_object() {
                self.usage = v["usageMetadata"].clone();
            }
            let candidate = &v["candidates"][0];
            let p = parts(candidate, self.calls);
            if !p.reasoning.is_empty() {
                event(
                    &mut out,
                    &self.chunk(json!({"reasoning_content": p.reasoning}), None),
                );
            }
            if !p.text.is_empty() {
                event(&mut out, &self.chunk(json!({"content": p.text}), None));
            }
            for mut call in p.calls {
                call["index"] = self.calls.into();
                self.calls += 1;
                event(&mut out, &self.chunk(json!({"tool_calls": [call]}), None));
            }
            let reason = candidate["finishReason"].as_str().or_else(|| {
                v["promptFeedback"]["blockReason"]
                    .is_string()
                    .then_some("SAFETY")
            });
            if let Some(r) = reason {
                let f = finish_reason(r, self.calls > 0);
                self.finish = Some(f);
                event(&mut out, &self.chunk(json!({}), Some(f)));
            }
        }
        out
    }
}
