//! What a client has been sent of a stream, kept only when the model's stream recovery is on:
//! the text, the ids to keep, the open content block, and whether anything makes the stream
//! impossible to resume (tool calls, several choices, reasoning, text over the cap).

use simd_json::prelude::*;
use simd_json::BorrowedValue;

/// Most text kept; a longer answer is not resumed.
const MAX_TEXT: usize = 1024 * 1024;

#[derive(Debug, Default, Clone)]
pub struct Transcript {
    /// The assistant text sent so far.
    pub text: String,
    /// OpenAI chunks: the first chunk's `id`, `model` and `created`.
    pub id: Option<String>,
    pub model: Option<String>,
    pub created: Option<u64>,
    /// Anthropic events: the index of the last content block started, and whether it is
    /// still open.
    pub last_block: Option<u64>,
    pub block_open: bool,
    /// Tool calls, several choices, reasoning, or too much text: it cannot be resumed.
    pub unresumable: bool,
}

impl Transcript {
    /// Record one client-dialect event.
    pub fn observe(&mut self, v: &BorrowedValue) {
        match v.get("type").and_then(|t| t.as_str()) {
            Some(kind) => self.observe_anthropic(kind, v),
            None => self.observe_openai(v),
        }
    }

    fn push_text(&mut self, text: &str) {
        if self.text.len() + text.len() > MAX_TEXT {
            self.unresumable = true;
        } else {
            self.text.push_str(text);
        }
    }

    fn observe_openai(&mut self, v: &BorrowedValue) {
        if self.id.is_none() {
            self.id = v.get("id").and_then(|x| x.as_str()).map(str::to_owned);
            self.model = v.get("model").and_then(|x| x.as_str()).map(str::to_owned);
            self.created = v.get("created").and_then(|x| x.as_u64());
        }
        let Some(choices) = v.get("choices").and_then(|c| c.as_array()) else {
            return;
        };
        for choice in choices {
            if choice.get("index").and_then(|i| i.as_u64()).unwrap_or(0) > 0 {
                self.unresumable = true;
            }
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            if delta.get("tool_calls").is_some_and(|t| !t.is_null())
                || delta
                    .get("reasoning_content")
                    .and_then(|r| r.as_str())
                    .is_some_and(|r| !r.is_empty())
            {
                self.unresumable = true;
            }
            if let Some(text) = delta.get("content").and_then(|c| c.as_str()) {
                self.push_text(text);
            }
        }
    }

    fn observe_anthropic(&mut self, kind: &str, v: &BorrowedValue) {
        match kind {
            "message_start" => {
                let m = v.get("message");
                self.id = m
                    .and_then(|m| m.get("id"))
                    .and_then(|x| x.as_str())
                    .map(str::to_owned);
                self.model = m
                    .and_then(|m| m.get("model"))
                    .and_then(|x| x.as_str())
                    .map(str::to_owned);
            }
            "content_block_stop" => self.block_open = false,
            "content_block_start" => {
                self.last_block = v.get("index").and_then(|i| i.as_u64());
                self.block_open = true;
                let block = v
                    .get("content_block")
                    .and_then(|b| b.get("type"))
                    .and_then(|t| t.as_str());
                if block != Some("text") {
                    self.unresumable = true;
                }
            }
            "content_block_delta" => {
                let delta = v.get("delta");
                match delta.and_then(|d| d.get("type")).and_then(|t| t.as_str()) {
                    Some("text_delta") => {
                        let text = delta.and_then(|d| d.get("text")).and_then(|t| t.as_str());
                        self.push_text(text.unwrap_or(""));
                    }
                    _ => self.unresumable = true,
                }
            }
            _ => {}
        }
    }
}
