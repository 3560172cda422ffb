//! Chat chunks as the Responses API's event stream: `response.created`,
//! `response.in_progress`, then per output item `response.output_item.added`, its deltas
//! (`response.output_text.delta` inside a content part, `response.reasoning_text.delta`,
//! `response.function_call_arguments.delta`), their `…done` events and
//! `response.output_item.done`, and last `response.completed` (or `response.incomplete`)
//! with every item and the usage. Items keep their text until the end, as the final event
//! repeats them (the SDK checks it against what streamed).

use super::response::{
    call_item, envelope, message_item, reasoning_item, response_id, status, usage,
};
use crate::wire::translate::stream::DataFramer;
use serde_json::{json, Value};

#[derive(Debug)]
enum Item {
    Message {
        id: String,
        text: String,
    },
    Reasoning {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: Value,
        arguments: String,
        index: u64,
    },
}

#[derive(Debug, Default)]
pub struct ChunksToResponses {
    framer: DataFramer,
    id: String,
    model: Value,
    created: u64,
    sequence: u64,
    items: Vec<Item>,
    /// Whether the last item is still open.
    open: bool,
    finish: Option<String>,
    usage: Value,
    finished: bool,
    /// The response object of `response.completed` (or `.incomplete`), once sent.
    pub completed: Option<Value>,
    /// What makes this answer's ids unique.
    suffix: String,
}

impl ChunksToResponses {
    pub fn new() -> Self {
        ChunksToResponses {
            created: crate::wire::translate::now(),
            suffix: super::response::unique_suffix(),
            usage: Value::Null,
            ..Self::default()
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let events = self.framer.feed(chunk);
        self.translate(events)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let events = self.framer.finish();
        let mut out = self.translate(events);
        // No `[DONE]`, but the model had finished.
        if self.finish.is_some() {
            self.complete(&mut out);
        }
        out
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut v: Value) {
        v["type"] = kind.into();
        v["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        out.extend_from_slice(format!("event: {kind}\ndata: {v}\n\n").as_bytes());
    }

    fn translate(&mut self, events: Vec<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        for data in events {
            if self.finished {
                break;
            }
            if data == b"[DONE]" {
                self.complete(&mut out);
                continue;
            }
            let Ok(v) = serde_json::from_slice::<Value>(&data) else {
                continue;
            };
            if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
                // Both shapes: Responses' error event, and the `error` key the SDKs raise on.
                let body = json!({"code": e["code"], "message": e["message"], "param": e["param"], "error": e});
                self.emit(&mut out, "error", body);
                self.finished = true;
                continue;
            }
            self.start(&v, &mut out);
            if v["usage"].is_object() {
                self.usage = v["usage"].clone();
            }
            let Some(choice) = v["choices"].get(0) else {
                continue;
            };
            let delta = &choice["delta"];
            if let Some(r) = delta["reasoning_content"]
                .as_str()
                .filter(|s| !s.is_empty())
            {
                if !matches!(self.items.last(), Some(Item::Reasoning { .. })) || !self.open {
                    self.open_item(
                        Item::Reasoning {
                            id: format!("rs_{}_{}", self.bare(), self.items.len()),
                            text: String::new(),
                        },
                        &mut out,
                    );
                }
                self.text_delta(r, &mut out);
            }
            if let Some(t) = delta["content"].as_str().filter(|s| !s.is_empty()) {
                if !matches!(self.items.last(), Some(Item::Message { .. })) || !self.open {
                    self.open_item(
                        Item::Message {
                            id: format!("msg_{}_{}", self.bare(), self.items.len()),
                            text: String::new(),
                        },
                        &mut out,
                    );
                }
                self.text_delta(t, &mut out);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap_or(0);
                let same = matches!(self.items.last(), Some(Item::Call { index: i, .. }) if *i == index)
                    && self.open;
                if !same {
                    let call_id = call["id"].as_str().unwrap_or("").to_string();
                    let item = Item::Call {
                        id: format!("fc_{call_id}{}", self.suffix),
                        call_id,
                        name: call["function"]["name"].clone(),
                        arguments: String::new(),
                        index,
                    };
                    self.open_item(item, &mut out);
                }
                if let Some(args) = call["function"]["arguments"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                {
                    self.text_delta(args, &mut out);
                }
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                self.close(&mut out);
                self.finish = Some(f.to_string());
            }
        }
        out
    }

    fn bare(&self) -> String {
        self.id.trim_start_matches("resp_").to_string()
    }

    fn start(&mut self, v: &Value, out: &mut Vec<u8>) {
        if !self.id.is_empty() {
            return;
        }
        // Unique, as the ids of a whole answer are (`make_ids_unique`): item ids derive from it.
        self.id = response_id(v["id"].as_str().unwrap_or("stream")) + &self.suffix;
        self.model = v["model"].clone();
        let r = envelope(&self.id, self.created, &self.model, "in_progress", vec![]);
        self.emit(out, "response.created", json!({"response": r}));
        self.emit(out, "response.in_progress", json!({"response": r}));
    }

    fn item_json(&self, k: usize, status: &str) -> Value {
        match &self.items[k] {
            Item::Message { id, text } => message_item(id, text, status),
            Item::Reasoning { id, text } => reasoning_item(id, text),
            Item::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            } => call_item(id, call_id, name, arguments, status),
        }
    }

    fn open_item(&mut self, item: Item, out: &mut Vec<u8>) {
        self.close(out);
        self.items.push(item);
        self.open = true;
        let k = self.items.len() - 1;
        let mut added = self.item_json(k, "in_progress");
        if let Some(c) = added.get_mut("content") {
            *c = json!([]);
        }
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": k, "item": added}),
        );
        // Text and reasoning text live in a content part, announced before its first delta
        // (the official Node SDK's `responses.stream()` needs the part to add deltas to).
        let part = match &self.items[k] {
            Item::Message { id, .. } => Some((
                id.clone(),
                json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []}),
            )),
            Item::Reasoning { id, .. } => {
                Some((id.clone(), json!({"type": "reasoning_text", "text": ""})))
            }
            Item::Call { .. } => None,
        };
        if let Some((id, part)) = part {
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": k, "content_index": 0, "part": part}),
            );
        }
    }

    fn text_delta(&mut self, piece: &str, out: &mut Vec<u8>) {
        let k = self.items.len() - 1;
        let (kind, id) = match &mut self.items[k] {
            Item::Message { id, text } => {
                text.push_str(piece);
                ("response.output_text.delta", id.clone())
            }
            Item::Reasoning { id, text } => {
                text.push_str(piece);
                ("response.reasoning_text.delta", id.clone())
            }
            Item::Call { id, arguments, .. } => {
                arguments.push_str(piece);
                ("response.function_call_arguments.delta", id.clone())
            }
        };
        let mut v = json!({"item_id": id, "output_index": k, "delta": piece});
        if kind != "response.function_call_arguments.delta" {
            v["content_index"] = 0.into();
        }
        if kind == "response.output_text.delta" {
            v["logprobs"] = json!([]);
        }
        self.emit(out, kind, v);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if !self.open {
            return;
        }
        self.open = false;
        let k = self.items.len() - 1;
        match &self.items[k] {
            Item::Message { id, text } => {
                let (id, text) = (id.clone(), text.clone());
                self.emit(out, "response.output_text.done", json!({"item_id": id, "output_index": k, "content_index": 0, "text": text, "logprobs": []}));
                self.emit(out, "response.content_part.done", json!({"item_id": id, "output_index": k, "content_index": 0,
                    "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}));
            }
            Item::Reasoning { id, text } => {
                let (id, text) = (id.clone(), text.clone());
                self.emit(
                    out,
                    "response.reasoning_text.done",
                    json!({"item_id": id, "output_index": k, "content_index": 0, "text": text}),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": k, "content_index": 0,
                    "part": {"type": "reasoning_text", "text": text}}),
                );
            }
            Item::Call {
                id,
                name,
                arguments,
                ..
            } => {
                let (id, name, arguments) = (id.clone(), name.clone(), arguments.clone());
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": k, "name": name, "arguments": arguments}),
                );
            }
        }
        let item = self.item_json(k, "completed");
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": k, "item": item}),
        );
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        if self.finished || self.id.is_empty() {
            return;
        }
        self.close(out);
        let (status, incomplete) = status(self.finish.as_deref().unwrap_or("stop"));
        let output = (0..self.items.len())
            .map(|k| self.item_json(k, "completed"))
            .collect();
        let mut r = envelope(&self.id, self.created, &self.model, status, output);
        r["usage"] = usage(&self.usage);
        r["incomplete_details"] = incomplete;
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(out, kind, json!({"response": &r}));
        self.completed = Some(r);
        self.finished = true;
    }
}
