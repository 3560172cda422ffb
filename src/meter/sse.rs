//! Incremental SSE metering for OpenAI-style streams.
//!
//! The meter frames events across arbitrary chunk boundaries (`\n` or `\r\n`), reads the usage
//! chunk, counts content deltas for estimates, notices `[DONE]` and error events, and — when the
//! gateway injected `include_usage` — removes the extra usage chunk and the `"usage":null`
//! fields so the client sees exactly the stream it asked for. Memory is bounded: a line longer
//! than [`MAX_LINE`] is passed through but not parsed.

use super::{usage_from, Usage};
use bytes::Bytes;

/// Longest line the meter parses; longer ones pass through unparsed.
pub const MAX_LINE: usize = 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseMeter {
    /// Strip the injected usage chunk and `usage: null` fields from the output.
    strip: bool,
    /// The current line so far (without its newline).
    line: Vec<u8>,
    line_too_long: bool,
    /// The current event's `data` payload.
    data: Vec<u8>,
    data_too_long: bool,
    /// Strip mode: raw bytes of the current event, held until it is complete.
    raw: Vec<u8>,
    /// Strip mode: the current event grew too large to hold and is being passed through.
    raw_passing: bool,
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
        let mut rest = chunk;
        while !rest.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let (line, tail) = rest.split_at(i + 1);
                    self.push_partial(line, &mut out);
                    self.end_line(&mut out);
                    rest = tail;
                }
                None => {
                    self.push_partial(rest, &mut out);
                    rest = &[];
                }
            }
        }
        self.strip.then(|| Bytes::from(out))
    }

    /// The end of the upstream body: dispatch a final event that lacked its blank line and
    /// release anything held back.
    pub fn finish(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        if !self.line.is_empty() || self.line_too_long {
            self.end_line(&mut out);
        }
        if !self.data.is_empty() {
            self.dispatch(&mut out);
        }
        if self.strip {
            out.append(&mut self.raw);
        }
        self.strip.then(|| Bytes::from(out))
    }

    /// Whether any content reached the stream.
    pub fn saw_content(&self) -> bool {
        self.deltas > 0
    }

    fn push_partial(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.strip {
            if self.raw_passing {
                out.extend_from_slice(bytes);
            } else {
                self.raw.extend_from_slice(bytes);
                if self.raw.len() > MAX_LINE {
                    out.append(&mut self.raw);
                    self.raw_passing = true;
                }
            }
        }
        if self.line_too_long {
            return;
        }
        if self.line.len() + bytes.len() > MAX_LINE {
            self.line_too_long = true;
            self.line = Vec::new();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        if self.line_too_long {
            self.line_too_long = false;
            self.data_too_long = true;
            return;
        }
        let mut line: &[u8] = &self.line;
        if let Some(l) = line.strip_suffix(b"\n") {
            line = l;
        }
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if line.is_empty() {
            self.line.clear();
            self.dispatch(out);
            return;
        }
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            if self.data.len() + value.len() > MAX_LINE {
                self.data_too_long = true;
            } else {
                self.data.extend_from_slice(value);
            }
        }
        self.line.clear();
    }

    fn dispatch(&mut self, out: &mut Vec<u8>) {
        let drop_event = if self.data_too_long || self.data.is_empty() {
            false
        } else {
            self.events += 1;
            self.inspect()
        };
        self.data.clear();
        self.data_too_long = false;
        if self.strip {
            if self.raw_passing {
                self.raw_passing = false;
            } else if drop_event {
                self.raw.clear();
            } else {
                remove_usage_null(&self.raw, out);
                self.raw.clear();
            }
        }
    }

    /// Read one complete event's data. Returns true when the event must not reach the client.
    fn inspect(&mut self) -> bool {
        // Parsed from a buffer of its own, so the meter's fields stay writable meanwhile.
        let mut data = std::mem::take(&mut self.data);
        let drop_event = self.inspect_data(&mut data);
        data.clear();
        self.data = data;
        drop_event
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
        if let Some(kind) = v.get("type").and_then(|t| t.as_str()) {
            self.inspect_anthropic(kind, &v);
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
/// gateway asked for usage). Safe on valid JSON: an unescaped `"` cannot occur inside a string.
fn remove_usage_null(event: &[u8], out: &mut Vec<u8>) {
    const PATTERNS: [&[u8]; 4] = [
        b",\"usage\":null",
        b",\"usage\": null",
        b"\"usage\":null,",
        b"\"usage\": null,",
    ];
    let mut at = 0;
    'scan: while let Some(i) = memchr::memchr(b'"', &event[at..]).map(|i| at + i) {
        for p in PATTERNS {
            let start = if p[0] == b',' { i.saturating_sub(1) } else { i };
            if start >= at && event[start..].starts_with(p) {
                out.extend_from_slice(&event[at..start]);
                at = start + p.len();
                continue 'scan;
            }
        }
        out.extend_from_slice(&event[at..=i]);
        at = i + 1;
    }
    out.extend_from_slice(&event[at..]);
}

#[cfg(test)]
mod tests;
