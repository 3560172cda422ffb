//! Event streams across dialects, chunk by chunk: OpenAI chat chunks ⇄ Anthropic Messages
//! events. Events may be split anywhere across chunks; each translator frames them with the
//! gateway's one SSE framer (bounded) and writes complete events in the client's dialect.

use super::response::{anthropic_usage, finish_reason, openai_usage, stop_reason};
use super::text_delta::{self, TextFrame};
use crate::wire::sse;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Splits a byte stream into SSE events, `(event name, data)`, with the gateway's one framer
/// ([`crate::wire::sse`]). An event over its limit is dropped (the meter counts it).
#[derive(Debug, Default)]
struct Framer(sse::Framer);

impl Framer {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<(String, String)>) {
        self.0.feed(chunk, |p| collect(p, out));
    }

    fn finish(&mut self, out: &mut Vec<(String, String)>) {
        self.0.finish(|p| collect(p, out));
    }
}

fn collect(piece: sse::Piece<'_>, out: &mut Vec<(String, String)>) {
    let sse::Piece::Event(e) = piece else {
        return;
    };
    let Some(data) = e.data() else {
        return;
    };
    let name = e.name().map_or(String::new(), |n| {
        String::from_utf8_lossy(n).trim().to_string()
    });
    out.push((name, String::from_utf8_lossy(&data).into_owned()));
}

/// Splits a byte stream into its events' data (names ignored), with the gateway's framer:
/// what the Gemini and Responses translators read.
#[derive(Debug, Default)]
pub(crate) struct DataFramer(sse::Framer);

impl DataFramer {
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.0.feed(chunk, |p| data_of(p, &mut out));
        out
    }

    pub(crate) fn finish(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.0.finish(|p| data_of(p, &mut out));
        out
    }
}

fn data_of(piece: sse::Piece<'_>, out: &mut Vec<Vec<u8>>) {
    if let sse::Piece::Event(e) = piece {
        if let Some(data) = e.data() {
            out.push(data.into_owned());
        }
    }
}

fn anthropic_event(out: &mut Vec<u8>, v: &Value) {
    let name = v["type"].as_str().unwrap_or("message");
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    write_json(out, v);
    out.extend_from_slice(b"\n\n");
}

/// One chat chunk as an SSE event.
pub(crate) fn openai_event(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"data: ");
    write_json(out, v);
    out.extend_from_slice(b"\n\n");
}

/// A value's JSON, written in place (a `Value` always serialises; `Vec` writes cannot fail).
fn write_json(out: &mut Vec<u8>, v: &Value) {
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.extend_from_slice(b"null");
    }
}

/// A `content_block_delta` event of block `index`.
fn delta_event(out: &mut Vec<u8>, index: u64, delta: Value) {
    anthropic_event(
        out,
        &json!({"type": "content_block_delta", "index": index, "delta": delta}),
    );
}

/// The open content block of an Anthropic stream being written.
#[derive(Debug, PartialEq)]
enum Block {
    None,
    Text,
    Thinking,
    Tool(u64),
}

/// OpenAI chat chunks in, Anthropic Messages events out.
#[derive(Debug)]
pub struct ChunksToEvents {
    framer: Framer,
    started: bool,
    finished: bool,
    block: Block,
    index: u64,
    /// While a text block is open: its text-delta event's frame, for the fast path.
    text_frame: Option<TextFrame>,
    stop: Option<&'static str>,
    usage: Value,
    /// The prompt's tokens as the gateway estimated them: `message_start`'s `input_tokens`
    /// when the first chunk does not carry the backend's count (the final `message_delta`
    /// carries the real one).
    pub input_estimate: u64,
}

impl Default for ChunksToEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunksToEvents {
    pub fn new() -> Self {
        ChunksToEvents {
            framer: Framer::default(),
            started: false,
            finished: false,
            block: Block::None,
            index: 0,
            text_frame: None,
            stop: None,
            usage: json!({"input_tokens": 0, "output_tokens": 0}),
            input_estimate: 0,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut events = Vec::new();
        self.framer.push(chunk, &mut events);
        self.translate(events)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let mut events = Vec::new();
        self.framer.finish(&mut events);
        let mut out = self.translate(events);
        // No `[DONE]`, but the model had finished: close the message.
        if self.stop.is_some() {
            self.end(&mut out);
        }
        out
    }

    fn translate(&mut self, events: Vec<(String, String)>) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in events {
            if self.finished {
                break;
            }
            if data == "[DONE]" {
                self.end(&mut out);
                continue;
            }
            // The text block already open: a plain text delta is rewritten in place.
            if let Some(frame) = self.text_frame.as_ref().filter(|_| name.is_empty()) {
                if let Some(text) = text_delta::openai_content(data.as_bytes()) {
                    frame.write(&mut out, text);
                    continue;
                }
            }
            let Ok(v) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            if name == "error" || v.get("error").is_some_and(|e| !e.is_null()) {
                let message = v["error"]["message"].as_str().unwrap_or("upstream error");
                anthropic_event(
                    &mut out,
                    &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
                );
                self.finished = true;
                continue;
            }
            self.start(&v, &mut out);
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                self.usage = anthropic_usage(u);
            }
            let Some(choice) = v["choices"].get(0) else {
                continue;
            };
            let delta = &choice["delta"];
            if let Some(r) = delta
                .get("reasoning_content")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                self.open(
                    Block::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    &mut out,
                );
                self.delta(json!({"type": "thinking_delta", "thinking": r}), &mut out);
            }
            if let Some(t) = delta
                .get("content")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                self.open(Block::Text, json!({"type": "text", "text": ""}), &mut out);
                self.delta(json!({"type": "text_delta", "text": t}), &mut out);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let k = call["index"].as_u64().unwrap_or(0);
                if self.block != Block::Tool(k) {
                    let start = json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {}});
                    self.open(Block::Tool(k), start, &mut out);
                }
                if let Some(args) = call["function"]["arguments"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                {
                    self.delta(
                        json!({"type": "input_json_delta", "partial_json": args}),
                        &mut out,
                    );
                }
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                self.stop = Some(stop_reason(f));
                self.close(&mut out);
            }
        }
        out
    }

    fn start(&mut self, v: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = v["id"].as_str().unwrap_or("");
        // Clients that read input usage only here (@langchain/anthropic) see the backend's
        // count when its first chunk has one (Gemini's does), else the gateway's estimate.
        let input = v["usage"]["prompt_tokens"]
            .as_u64()
            .unwrap_or(self.input_estimate);
        anthropic_event(
            out,
            &json!({"type": "message_start", "message": {
                "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": v["model"],
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input, "output_tokens": 0}}}),
        );
        anthropic_event(out, &json!({"type": "ping"}));
    }

    fn open(&mut self, block: Block, start: Value, out: &mut Vec<u8>) {
        if self.block == block {
            return;
        }
        self.close(out);
        anthropic_event(
            out,
            &json!({"type": "content_block_start", "index": self.index, "content_block": start}),
        );
        if block == Block::Text {
            let index = self.index;
            self.text_frame = TextFrame::around(|out, text| {
                delta_event(out, index, json!({"type": "text_delta", "text": text}))
            });
        }
        self.block = block;
    }

    fn delta(&mut self, delta: Value, out: &mut Vec<u8>) {
        delta_event(out, self.index, delta);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.block != Block::None {
            anthropic_event(
                out,
                &json!({"type": "content_block_stop", "index": self.index}),
            );
            self.block = Block::None;
            self.text_frame = None;
            self.index += 1;
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.finished || !self.started {
            return;
        }
        self.close(out);
        anthropic_event(
            out,
            &json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": self.usage}),
        );
        anthropic_event(out, &json!({"type": "message_stop"}));
        self.finished = true;
    }
}

/// Anthropic Messages events in, OpenAI chat chunks out (a usage chunk and `[DONE]` last).
#[derive(Debug)]
pub struct EventsToChunks {
    framer: Framer,
    id: String,
    model: Value,
    created: u64,
    /// Anthropic block index → OpenAI tool call index.
    tools: HashMap<u64, u64>,
    usage: Value,
    finished: bool,
    /// From `message_start` on: a text chunk's frame, for the fast path.
    text_frame: Option<TextFrame>,
}

impl Default for EventsToChunks {
    fn default() -> Self {
        Self::new()
    }
}

impl EventsToChunks {
    pub fn new() -> Self {
        EventsToChunks {
            framer: Framer::default(),
            id: String::new(),
            model: Value::Null,
            created: super::now(),
            tools: HashMap::new(),
            usage: json!({}),
            finished: false,
            text_frame: None,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut events = Vec::new();
        self.framer.push(chunk, &mut events);
        self.translate(events)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let mut events = Vec::new();
        self.framer.finish(&mut events);
        self.translate(events)
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
               "model": self.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn translate(&mut self, events: Vec<(String, String)>) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in events {
            if self.finished {
                break;
            }
            let plain = matches!(name.as_str(), "" | "content_block_delta");
            if let Some(frame) = self.text_frame.as_ref().filter(|_| plain) {
                if let Some((_, text)) = text_delta::anthropic_text(data.as_bytes()) {
                    frame.write(&mut out, text);
                    continue;
                }
            }
            let Ok(v) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            let kind = v["type"].as_str().unwrap_or(name.as_str()).to_string();
            match kind.as_str() {
                "message_start" => {
                    let m = &v["message"];
                    self.id = m["id"].as_str().unwrap_or("").to_string();
                    self.model = m["model"].clone();
                    self.usage = m["usage"].clone();
                    let frame = TextFrame::around(|out, text| {
                        openai_event(out, &self.chunk(json!({"content": text}), None))
                    });
                    self.text_frame = frame;
                    openai_event(
                        &mut out,
                        &self.chunk(json!({"role": "assistant", "content": ""}), None),
                    );
                }
                "content_block_start" => {
                    let block = &v["content_block"];
                    if block["type"] == "tool_use" {
                        let k = self.tools.len() as u64;
                        self.tools.insert(v["index"].as_u64().unwrap_or(0), k);
                        let call = json!({"index": k, "id": block["id"], "type": "function",
                            "function": {"name": block["name"], "arguments": ""}});
                        openai_event(&mut out, &self.chunk(json!({"tool_calls": [call]}), None));
                    }
                }
                "content_block_delta" => {
                    let d = &v["delta"];
                    let delta = match d["type"].as_str() {
                        Some("text_delta") => json!({"content": d["text"]}),
                        Some("thinking_delta") => json!({"reasoning_content": d["thinking"]}),
                        Some("input_json_delta") => {
                            let k = self
                                .tools
                                .get(&v["index"].as_u64().unwrap_or(0))
                                .copied()
                                .unwrap_or(0);
                            json!({"tool_calls": [{"index": k, "function": {"arguments": d["partial_json"]}}]})
                        }
                        _ => continue,
                    };
                    openai_event(&mut out, &self.chunk(delta, None));
                }
                "message_delta" => {
                    // Cumulative: the latest figures replace the earlier ones.
                    if let (Some(u), Some(acc)) =
                        (v["usage"].as_object(), self.usage.as_object_mut())
                    {
                        for (k, n) in u {
                            if !n.is_null() {
                                acc.insert(k.clone(), n.clone());
                            }
                        }
                    }
                    if let Some(stop) = v["delta"]["stop_reason"].as_str() {
                        openai_event(&mut out, &self.chunk(json!({}), Some(finish_reason(stop))));
                    }
                }
                "message_stop" => {
                    let mut usage_chunk = self.chunk(json!({}), None);
                    usage_chunk["choices"] = json!([]);
                    usage_chunk["usage"] = openai_usage(&self.usage);
                    openai_event(&mut out, &usage_chunk);
                    out.extend_from_slice(b"data: [DONE]\n\n");
                    self.finished = true;
                }
                "error" => {
                    let e = &v["error"];
                    openai_event(
                        &mut out,
                        &json!({"error": {"message": e["message"], "type": e["type"], "param": null, "code": null}}),
                    );
                    self.finished = true;
                }
                _ => {} // ping, content_block_stop, unknown future events
            }
        }
        out
    }
}
