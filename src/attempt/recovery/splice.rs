//! Splicing a continuation into a stream the client is already reading, event by event, in
//! the client's dialect (after translation, before the meter):
//! - OpenAI chunks keep the first stream's `id`, `model` and `created`; the continuation's
//!   role chunk is dropped.
//! - Anthropic events: the continuation's `message_start` and `ping` are dropped, its first
//!   text block continues the block the client has open (indices follow on), and
//!   `message_delta` carries the usage of both attempts.
//! - The usage chunk / `message_delta` adds the first attempt's share.
//! - For a restart, the text already sent is skipped when the new text starts with it exactly;
//!   otherwise [`Splice::mismatch`] is set and nothing more is let through.

use crate::types::dialect::Dialect;
use crate::wire::meter::{Transcript, Usage};
use crate::wire::sse::{Framer, Piece};
use serde_json::{json, Value};

#[derive(Debug)]
pub struct Splice {
    dialect: Dialect,
    framer: Framer,
    /// What the client was sent of the first stream.
    first: Transcript,
    /// The first attempt's usage, added to the continuation's.
    base: Usage,
    /// Text still to skip (a restart, or white space trimmed off a prefill).
    skip: String,
    /// Anthropic: the continuation's input tokens (from its dropped `message_start`).
    input: u64,
    /// Anthropic: added to the continuation's block indices; `None` until its first block.
    shift: Option<i64>,
    /// The continuation's first block continues the client's open block.
    continues_block: bool,
    /// The restarted text did not start with what was sent.
    pub mismatch: bool,
}

impl Splice {
    pub fn new(dialect: Dialect, first: Transcript, base: Usage, skip: String) -> Splice {
        Splice {
            dialect,
            framer: Framer::default(),
            first,
            base,
            skip,
            input: 0,
            shift: None,
            continues_block: false,
            mismatch: false,
        }
    }

    /// Rewrite one chunk of the continuation.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut framer = std::mem::take(&mut self.framer);
        framer.feed(chunk, |p| self.piece(p, &mut out));
        self.framer = framer;
        out
    }

    /// The end of the continuation.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut framer = std::mem::take(&mut self.framer);
        framer.finish(|p| self.piece(p, &mut out));
        self.framer = framer;
        out
    }

    fn piece(&mut self, piece: Piece<'_>, out: &mut Vec<u8>) {
        if self.mismatch {
            return;
        }
        let Piece::Event(e) = piece else {
            return; // an oversized event has no place in a continued answer
        };
        let Some(data) = e.data() else {
            return; // comments and keep-alives
        };
        if &*data == b"[DONE]" {
            out.extend_from_slice(e.raw);
            return;
        }
        let Ok(mut v) = serde_json::from_slice::<Value>(&data) else {
            return;
        };
        let name = e.name().map(|n| String::from_utf8_lossy(n).into_owned());
        let keep = match self.dialect {
            Dialect::OpenAi => self.openai(&mut v),
            Dialect::Anthropic => self.anthropic(&mut v),
        };
        if keep && !self.mismatch {
            if let Some(n) = name {
                out.extend_from_slice(format!("event: {n}\n").as_bytes());
            }
            out.extend_from_slice(format!("data: {v}\n\n").as_bytes());
        }
    }

    /// The text of a delta after the skip; `None` on a mismatch.
    fn after_skip(&mut self, text: &str) -> Option<String> {
        if self.skip.is_empty() {
            return Some(text.to_string());
        }
        if let Some(rest) = self.skip.strip_prefix(text) {
            self.skip = rest.to_string();
            return Some(String::new());
        }
        if let Some(rest) = text.strip_prefix(self.skip.as_str()) {
            self.skip.clear();
            return Some(rest.to_string());
        }
        if self.skip.trim().is_empty() {
            // Only trimmed white space was left to skip: the model did not repeat it.
            self.skip.clear();
            return Some(text.to_string());
        }
        self.mismatch = true;
        None
    }

    /// Returns whether the chunk goes to the client.
    fn openai(&mut self, v: &mut Value) -> bool {
        if v.get("error").is_some_and(|e| !e.is_null()) {
            return true;
        }
        if let Some(id) = &self.first.id {
            v["id"] = json!(id);
        }
        if let Some(m) = &self.first.model {
            v["model"] = json!(m);
        }
        if let Some(c) = self.first.created {
            v["created"] = json!(c);
        }
        if let Some(u) = v.get_mut("usage").filter(|u| u.is_object()) {
            let add = |u: &mut Value, k: &str, n: u64| {
                u[k] = json!(u[k].as_u64().unwrap_or(0) + n);
            };
            add(u, "prompt_tokens", self.base.input);
            add(u, "completion_tokens", self.base.output);
            let total = u["prompt_tokens"].as_u64().unwrap_or(0)
                + u["completion_tokens"].as_u64().unwrap_or(0);
            u["total_tokens"] = json!(total);
        }
        let Some(choice) = v["choices"].get_mut(0) else {
            return true; // the usage chunk
        };
        let finish = !choice["finish_reason"].is_null();
        let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) else {
            return true;
        };
        delta.remove("role");
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            match self.after_skip(&text) {
                Some(rest) if rest.is_empty() => {
                    delta.remove("content");
                }
                Some(rest) => {
                    delta.insert("content".into(), json!(rest));
                }
                None => return false,
            }
        }
        !delta.is_empty() || finish
    }

    /// Returns whether the event goes to the client.
    fn anthropic(&mut self, v: &mut Value) -> bool {
        let kind = v["type"].as_str().unwrap_or("").to_string();
        match kind.as_str() {
            "message_start" => {
                self.input = v["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
                false
            }
            "ping" => false,
            "content_block_start" => {
                let index = v["index"].as_i64().unwrap_or(0);
                if self.shift.is_none() {
                    // A text block the client still has open (a resumable stream has no
                    // others) is continued by the first text block; else blocks follow on.
                    let first = &self.first;
                    let open = first.last_block.filter(|_| first.block_open);
                    self.continues_block = open.is_some() && v["content_block"]["type"] == "text";
                    let next = first.last_block.map_or(0, |k| k as i64 + 1);
                    let target = match open {
                        Some(k) if self.continues_block => k as i64,
                        _ => next,
                    };
                    self.shift = Some(target - index);
                    if self.continues_block {
                        return false;
                    }
                }
                v["index"] = json!(index + self.shift.unwrap_or(0));
                true
            }
            "content_block_delta" | "content_block_stop" => {
                let index = v["index"].as_i64().unwrap_or(0);
                v["index"] = json!(index + self.shift.unwrap_or(0));
                if v["delta"]["type"] == "text_delta" {
                    let text = v["delta"]["text"].as_str().unwrap_or("").to_string();
                    match self.after_skip(&text) {
                        Some(rest) if rest.is_empty() => return false,
                        Some(rest) => v["delta"]["text"] = json!(rest),
                        None => return false,
                    }
                }
                true
            }
            "message_delta" => {
                let u = &mut v["usage"];
                let output = u["output_tokens"].as_u64().unwrap_or(0) + self.base.output;
                let input = u["input_tokens"].as_u64().unwrap_or(self.input) + self.base.input;
                u["output_tokens"] = json!(output);
                u["input_tokens"] = json!(input);
                true
            }
            _ => true,
        }
    }
}

impl crate::wire::BodyStage for Splice {
    fn feed(&mut self, input: &[u8]) -> Option<bytes::Bytes> {
        Some(bytes::Bytes::from(Splice::feed(self, input)))
    }

    fn finish(&mut self, input: &[u8]) -> bytes::Bytes {
        let mut out = Splice::feed(self, input);
        out.extend_from_slice(&Splice::finish(self));
        bytes::Bytes::from(out)
    }
}
