//! Incremental SSE metering for OpenAI-, Anthropic-, Responses- and Gemini-style streams.
//!
//! The meter reads complete events from the gateway's one framer ([`crate::wire::sse`]), reads the
//! usage, counts content deltas for estimates, notices `[DONE]` and error events, and — when
//! the gateway injected `include_usage` — removes the extra usage chunk and the `"usage":null`
//! fields so the client sees exactly the stream it asked for. Memory is bounded: an event
//! longer than [`crate::wire::sse::MAX_EVENT`] is passed through but not parsed.

use super::{usage_from, Transcript, Usage};
use crate::wire::sse::{Framer, Piece};
use bytes::Bytes;

#[derive(Debug, Default)]
pub struct SseMeter {
    /// Strip the injected usage chunk and `usage: null` fields from the output.
    strip: bool,
    framer: Framer,
    /// A reusable copy of an event's data (simd-json parses in place).
    scratch: Vec<u8>,
    pub usage: Option<Usage>,
    /// Content-bearing deltas seen (text, tool-call arguments, reasoning).
    pub deltas: u64,
    /// Bytes of content text seen.
    pub text_bytes: u64,
    /// `data: [DONE]` arrived.
    pub done: bool,
    /// Events with a payload seen so far.
    pub events: u64,
    /// The upstream sent an error event; `events` tells whether it was the first one.
    pub error_event: bool,
    /// What the client was sent, when the stream may have to be resumed.
    pub transcript: Option<Transcript>,
}

impl SseMeter {
    pub fn new(strip: bool) -> Self {
        SseMeter {
            strip,
            ..Default::default()
        }
    }

    /// Meter one upstream chunk. Returns the bytes to forward in its place, or `None` when the
    /// chunk goes through unchanged (always the case unless stripping).
    pub fn feed(&mut self, chunk: &[u8]) -> Option<Bytes> {
        let mut out = Vec::new();
        let mut framer = std::mem::take(&mut self.framer);
        framer.feed(chunk, |piece| self.piece(piece, &mut out));
        self.framer = framer;
        self.strip.then(|| Bytes::from(out))
    }

    /// The end of the upstream body: dispatch a final event that lacked its blank line and
    /// release anything held back.
    pub fn finish(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        let mut framer = std::mem::take(&mut self.framer);
        framer.finish(|piece| self.piece(piece, &mut out));
        self.framer = framer;
        self.strip.then(|| Bytes::from(out))
    }

    /// Keep a [`Transcript`] of what the client is sent (for stream recovery).
    pub fn with_transcript(mut self) -> Self {
        self.transcript = Some(Transcript::default());
        self
    }

    /// Whether any content reached the stream.
    pub fn saw_content(&self) -> bool {
        self.deltas > 0
    }

    /// Bytes held while waiting for the rest of an event (bounded by [`crate::wire::sse::MAX_EVENT`]).
    pub fn held_bytes(&self) -> usize {
        self.framer.held_bytes() + self.scratch.capacity()
    }

    fn piece(&mut self, piece: Piece<'_>, out: &mut Vec<u8>) {
        match piece {
            Piece::Event(e) => {
                let mut drop_event = false;
                if let Some(data) = e.data().filter(|d| !d.is_empty()) {
                    self.events += 1;
                    // Most events are OpenAI chunks: read in place, without building a tree
                    // (a transcript for stream recovery needs the tree).
                    let scanned = self
                        .transcript
                        .is_none()
                        .then(|| super::scan::chunk(&data))
                        .flatten();
                    drop_event = match scanned {
                        Some(c) => self.count_chunk(c, &data),
                        None => {
                            let mut scratch = std::mem::take(&mut self.scratch);
                            scratch.clear();
                            scratch.extend_from_slice(&data);
                            let drop = self.inspect_data(&mut scratch);
                            self.scratch = scratch;
                            drop
                        }
                    };
                }
                if self.strip && !drop_event {
                    remove_usage_null(e.raw, out);
                }
            }
            Piece::Oversized(bytes) => {
                if self.strip {
                    out.extend_from_slice(bytes);
                }
            }
        }
    }

    fn inspect_data(&mut self, data: &mut Vec<u8>) -> bool {
        use simd_json::prelude::*;
        if data == b"[DONE]" {
            self.done = true;
            return false;
        }
        let Ok(v) = simd_json::to_borrowed_value(data) else {
            return false;
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            self.error_event = true;
            return false;
        }
        if let Some(t) = self.transcript.as_mut() {
            t.observe(&v);
        }
        if let Some(kind) = v.get("type").and_then(|t| t.as_str()) {
            self.inspect_typed(kind, &v);
            return false;
        }
        if let Some(candidates) = v.get("candidates").and_then(|c| c.as_array()) {
            self.inspect_gemini(candidates, &v);
            return false;
        }
        let mut usage_only = false;
        if let Some(u) = v.get("usage").and_then(usage_from) {
            self.usage = Some(u);
            usage_only = v
                .get("choices")
                .and_then(|c| c.as_array())
                .is_none_or(|c| c.is_empty());
        }
        if let Some(choices) = v.get("choices").and_then(|c| c.as_array()) {
            for choice in choices {
                let mut bytes = 0usize;
                let delta = choice.get("delta");
                for text in [
                    delta.and_then(|d| d.get("content")),
                    delta.and_then(|d| d.get("reasoning_content")),
                    choice.get("text"),
                ]
                .into_iter()
                .flatten()
                {
                    bytes += text.as_str().map_or(0, str::len);
                }
                if let Some(calls) = delta
                    .and_then(|d| d.get("tool_calls"))
                    .and_then(|t| t.as_array())
                {
                    for call in calls {
                        let args = call.get("function").and_then(|f| f.get("arguments"));
                        bytes += args.and_then(|a| a.as_str()).map_or(0, str::len);
                    }
                }
                if bytes > 0 {
                    self.deltas += 1;
                    self.text_bytes += bytes as u64;
                }
            }
        }
        self.strip && usage_only
    }
}

impl SseMeter {
    /// An OpenAI chunk read by the fast path. Returns whether to drop it (a usage-only chunk
    /// the gateway asked for).
    fn count_chunk(&mut self, c: super::scan::Chunk, data: &[u8]) -> bool {
        for bytes in c.content {
            self.count_delta(bytes);
        }
        let Some(span) = c.usage else {
            return false;
        };
        let mut raw = data[span].to_vec();
        let usage = simd_json::to_borrowed_value(&mut raw)
            .ok()
            .and_then(|v| usage_from(&v));
        match usage {
            Some(u) => {
                self.usage = Some(u);
                self.strip && !c.has_choices
            }
            None => false,
        }
    }

    fn count_delta(&mut self, bytes: usize) {
        if bytes > 0 {
            self.deltas += 1;
            self.text_bytes += bytes as u64;
        }
    }

    /// A Gemini response (seen only while the forwarder holds an upstream stream's first
    /// event; clients get it translated): text and function-call parts are content, and
    /// `usageMetadata` is the running usage.
    fn inspect_gemini(
        &mut self,
        candidates: &[simd_json::BorrowedValue],
        v: &simd_json::BorrowedValue,
    ) {
        use simd_json::prelude::*;
        let mut bytes = 0;
        for c in candidates {
            let parts = c
                .get("content")
                .and_then(|c| c.get("parts"))
                .and_then(|p| p.as_array());
            for part in parts.into_iter().flatten() {
                bytes += part
                    .get("text")
                    .and_then(|t| t.as_str())
                    .map_or(0, str::len);
                bytes += part.get("functionCall").map_or(0, |_| 1);
            }
        }
        self.count_delta(bytes);
        if let Some(u) = v.get("usageMetadata") {
            let n = |k: &str| u.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
            self.usage = Some(Usage {
                input: n("promptTokenCount"),
                output: n("candidatesTokenCount").saturating_add(n("thoughtsTokenCount")),
            });
        }
    }

    /// An event with a `type`: Anthropic Messages or OpenAI Responses.
    fn inspect_typed(&mut self, kind: &str, v: &simd_json::BorrowedValue) {
        if kind.starts_with("response.") {
            self.inspect_responses(kind, v);
        } else {
            self.inspect_anthropic(kind, v);
        }
    }

    /// A Responses event: text, reasoning and function arguments arrive as `…delta` events
    /// with a string `delta`; the usage is the final response's.
    fn inspect_responses(&mut self, kind: &str, v: &simd_json::BorrowedValue) {
        use simd_json::prelude::*;
        match kind {
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(u) = v
                    .get("response")
                    .and_then(|r| r.get("usage"))
                    .and_then(usage_from)
                {
                    self.usage = Some(u);
                }
                if kind == "response.failed" {
                    self.error_event = true;
                }
                self.done = true;
            }
            k if k.ends_with(".delta") => {
                let bytes = v.get("delta").and_then(|d| d.as_str()).map_or(0, str::len);
                self.count_delta(bytes);
            }
            _ => {}
        }
    }

    /// An Anthropic Messages event: usage starts in `message_start` (input) and is cumulative
    /// in each `message_delta` (the latest figures win); content arrives in block deltas.
    fn inspect_anthropic(&mut self, kind: &str, v: &simd_json::BorrowedValue) {
        use simd_json::prelude::*;
        match kind {
            "message_start" => {
                if let Some(u) = v
                    .get("message")
                    .and_then(|m| m.get("usage"))
                    .and_then(usage_from)
                {
                    self.usage = Some(u);
                }
            }
            "message_delta" => {
                let Some(raw) = v.get("usage") else { return };
                let Some(u) = usage_from(raw) else { return };
                let mut merged = self.usage.unwrap_or_default();
                merged.output = u.output;
                if raw
                    .get("input_tokens")
                    .and_then(|x| x.as_u64())
                    .is_some_and(|i| i > 0)
                {
                    merged.input = u.input;
                }
                self.usage = Some(merged);
            }
            "content_block_delta" => {
                let Some(d) = v.get("delta") else { return };
                let bytes: usize = ["text", "partial_json", "thinking"]
                    .iter()
                    .filter_map(|k| d.get(*k).and_then(|x| x.as_str()))
                    .map(str::len)
                    .sum();
                if bytes > 0 {
                    self.deltas += 1;
                    self.text_bytes += bytes as u64;
                }
            }
            "message_stop" => self.done = true,
            _ => {}
        }
    }
}

/// Copy `event` to `out` without its `"usage":null` fields (added upstream only because the
/// gateway asked for usage). Safe on valid JSON: an unescaped `"` cannot occur inside a string,
/// so a `"usage"` found by substring search is a key unless it is inside a string, where its
/// quotes would be escaped.
fn remove_usage_null(event: &[u8], out: &mut Vec<u8>) {
    const PATTERNS: [&[u8]; 4] = [
        b",\"usage\":null",
        b",\"usage\": null",
        b"\"usage\":null,",
        b"\"usage\": null,",
    ];
    let finder = memchr::memmem::Finder::new(b"\"usage\"");
    let mut at = 0;
    while let Some(i) = finder.find(&event[at..]).map(|i| at + i) {
        let cut = PATTERNS.iter().find_map(|p| {
            let start = if p[0] == b',' { i.checked_sub(1)? } else { i };
            (start >= at && event[start..].starts_with(p)).then_some((start, p.len()))
        });
        match cut {
            Some((start, len)) => {
                out.extend_from_slice(&event[at..start]);
                at = start + len;
            }
            None => {
                out.extend_from_slice(&event[at..i + 1]);
                at = i + 1;
            }
        }
    }
    out.extend_from_slice(&event[at..]);
}

#[cfg(test)]
mod tests;
