//! The live-stream filter: client-dialect SSE bytes in, the same events out with their text
//! masked, and nothing a match could still be forming in released early.
//!
//! Every text channel has its own [`Hold`]: per OpenAI choice its `content`, its reasoning
//! and each tool call's `arguments`; per Anthropic content block its text, thinking or
//! `partial_json`. Each event's text fields are replaced by what their channel releases
//! (a span splice; the rest of the event's bytes stay as they were). What a channel still
//! holds when it ends (a choice's `finish_reason`, a block's `content_block_stop`, `[DONE]`,
//! the end of the body) goes out in one more delta event just before that event.
//! A `block` finding ends the stream: the filter stops and says so; the caller sends the
//! error event. A choice's `logprobs` (each token's text and bytes, and the alternatives)
//! would spell out what the channels mask or hold back, so they go out as `null`.

use super::channel::Channel;
use super::scan::{Scanner, Verdict};
use super::wire::{self, BlockKind, ChoiceText, Field};
use crate::types::dialect::Dialect;
use crate::wire::json_spans::string_value;
use crate::wire::sse::{Framer, Piece};
use std::ops::Range;

/// The filter of one response stream.
pub struct StreamGuard {
    scanner: Scanner,
    dialect: Dialect,
    framer: Framer,
    channels: Vec<Channel>,
    /// Anthropic: each open block's kind.
    blocks: Vec<(u32, BlockKind)>,
    /// OpenAI: the data of the last chunk with choices, whose envelope (`id`, `object`,
    /// `created`, `model`) the flush chunks repeat.
    last_chunk: Vec<u8>,
    /// The current event's replacements: a span of its data, and where the replacement
    /// (a JSON string) lies in `edit_bytes`. Both are reused from event to event.
    edits: Vec<(Range<usize>, Range<usize>)>,
    edit_bytes: Vec<u8>,
    /// What a channel released for the field at hand (reused).
    scratch: String,
    /// The current chunk's choices (reused).
    choices: Vec<ChoiceText>,
    pub verdict: Verdict,
    /// Text released so far, for the moderation hook's windows (only when it is on).
    pub released: Option<String>,
    stopped: bool,
    /// Every rule only logs: findings are counted, and every byte goes out as it came.
    shadow: bool,
    /// The answer's content is JSON (JSON mode, structured output): decoded like arguments.
    json_content: bool,
    /// The stream's last event (`[DONE]`, `message_stop`), kept for [`Self::finish`] while a
    /// moderation hook may still refuse the text before it.
    terminal: Vec<u8>,
}

impl StreamGuard {
    pub fn new(scanner: Scanner, dialect: Dialect, keep_released: bool) -> StreamGuard {
        StreamGuard {
            dialect,
            framer: Framer::default(),
            channels: Vec::new(),
            blocks: Vec::new(),
            last_chunk: Vec::new(),
            edits: Vec::new(),
            edit_bytes: Vec::new(),
            scratch: String::new(),
            choices: Vec::new(),
            verdict: Verdict::default(),
            released: keep_released.then(String::new),
            stopped: false,
            shadow: scanner.only_logs(),
            json_content: false,
            terminal: Vec::new(),
            scanner,
        }
    }

    /// The answer's content is JSON: its channels decode needless escapes before matching.
    pub fn with_json_content(mut self, json: bool) -> StreamGuard {
        self.json_content = json;
        self
    }

    /// Cut the released text into moderation windows of `window` characters, each repeating
    /// the last `overlap` of the one before; `all` takes the rest too (the stream ended).
    pub fn take_windows(&mut self, window: usize, overlap: usize, all: bool) -> Vec<String> {
        let Some(text) = self.released.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        loop {
            let cut = text.char_indices().nth(window).map(|(i, _)| i);
            let Some(end) = cut.or((all && !text.is_empty()).then_some(text.len())) else {
                break;
            };
            out.push(text[..end].to_string());
            if cut.is_none() {
                text.clear();
                break;
            }
            let keep = text[..end]
                .char_indices()
                .rev()
                .nth(overlap.saturating_sub(1))
                .map_or(0, |(i, _)| i);
            text.drain(..if overlap == 0 { end } else { keep });
        }
        out
    }

    /// A `block` rule fired: nothing more is released.
    pub fn blocked(&self) -> Option<usize> {
        self.verdict.blocked
    }

    pub fn scanner(&self) -> &Scanner {
        &self.scanner
    }

    /// Bytes held now (text in channels and a partial event).
    pub fn held_bytes(&self) -> usize {
        self.framer.held_bytes()
            + self
                .channels
                .iter()
                .map(|c| c.hold.held_bytes())
                .sum::<usize>()
    }

    /// Filter one chunk of the client-dialect stream.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + 64);
        let mut framer = std::mem::take(&mut self.framer);
        framer.feed(chunk, |piece| self.piece(piece, &mut out));
        self.framer = framer;
        out
    }

    /// The body ended: a partial event, then whatever is still held.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut framer = std::mem::take(&mut self.framer);
        framer.finish(|piece| self.piece(piece, &mut out));
        self.framer = framer;
        self.flush_where(&mut out, |_| true);
        if !self.stopped {
            out.append(&mut self.terminal);
        }
        out
    }

    fn piece(&mut self, piece: Piece<'_>, out: &mut Vec<u8>) {
        if self.stopped {
            return;
        }
        match piece {
            Piece::Oversized(bytes) => out.extend_from_slice(bytes),
            Piece::Event(event) => {
                let name = event.name();
                let before = out.len();
                let Some(data) = event.data() else {
                    out.extend_from_slice(event.raw);
                    return;
                };
                self.edits.clear();
                self.edit_bytes.clear();
                match self.dialect {
                    Dialect::OpenAi => self.openai_event(&data, out),
                    Dialect::Anthropic => self.anthropic_event(&data, out),
                }
                if self.verdict.blocked.is_some() {
                    self.stopped = true;
                    return;
                }
                let terminal = match self.dialect {
                    Dialect::OpenAi => data.trim_ascii() == b"[DONE]",
                    Dialect::Anthropic => name == Some(b"message_stop"),
                };
                if terminal && self.released.is_some() {
                    // What the end flushed stays in `out`; only the end itself waits.
                    self.terminal.extend_from_slice(event.raw);
                    return;
                }
                if self.shadow {
                    // The findings were counted; the client gets the bytes as they came.
                    out.truncate(before);
                    out.extend_from_slice(event.raw);
                    return;
                }
                if self.edits.is_empty() {
                    out.extend_from_slice(event.raw);
                } else {
                    self.write_edited(out, name, &data);
                }
            }
        }
    }

    /// Feed `text` to its channel; the released text (all of it when `last`: the channel
    /// ends with this text) is appended to `out`.
    fn release(&mut self, index: u32, field: Field, text: &str, last: bool, out: &mut String) {
        let at = match self
            .channels
            .iter()
            .position(|c| c.index == index && c.field == field)
        {
            Some(at) => at,
            None => {
                self.channels
                    .push(Channel::new(index, field, self.json_content));
                self.channels.len() - 1
            }
        };
        let start = out.len();
        self.channels[at].feed(&self.scanner, text, last, out, &mut self.verdict);
        if last {
            self.channels.remove(at);
        }
        if let Some(r) = self.released.as_mut() {
            r.push_str(&out[start..]);
        }
    }

    /// Release a field's text (`data[span]`, a JSON string) through its channel, and note
    /// the replacement when what goes out differs.
    fn edit_field(
        &mut self,
        data: &[u8],
        span: Range<usize>,
        index: u32,
        field: Field,
        last: bool,
    ) {
        let Some(original) = string_value(&data[span.clone()]) else {
            return;
        };
        let mut released = std::mem::take(&mut self.scratch);
        released.clear();
        self.release(index, field, &original, last, &mut released);
        if released != original {
            let at = self.edit_bytes.len();
            if serde_json::to_writer(&mut self.edit_bytes, released.as_str()).is_err() {
                self.edit_bytes.truncate(at);
                self.edit_bytes.extend_from_slice(b"\"\"");
            }
            self.edits.push((span, at..self.edit_bytes.len()));
        }
        self.scratch = released;
    }

    /// Write the current event with its edits in place.
    fn write_edited(&mut self, out: &mut Vec<u8>, name: Option<&[u8]>, data: &[u8]) {
        if let Some(n) = name {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(n);
            out.push(b'\n');
        }
        out.extend_from_slice(b"data: ");
        self.edits.sort_unstable_by_key(|(span, _)| span.start);
        let mut at = 0;
        for (span, with) in &self.edits {
            out.extend_from_slice(&data[at..span.start]);
            out.extend_from_slice(&self.edit_bytes[with.clone()]);
            at = span.end;
        }
        out.extend_from_slice(&data[at..]);
        out.extend_from_slice(b"\n\n");
    }

    /// Flush the channels `which` selects, as delta events written to `out`.
    fn flush_where(&mut self, out: &mut Vec<u8>, which: impl Fn(&Channel) -> bool) {
        let mut flushed: Vec<(u32, Field, String)> = Vec::new();
        let mut i = 0;
        while i < self.channels.len() {
            if which(&self.channels[i]) {
                let mut c = self.channels.remove(i);
                let mut text = String::new();
                c.feed(&self.scanner, "", true, &mut text, &mut self.verdict);
                if !text.is_empty() {
                    if let Some(r) = self.released.as_mut() {
                        r.push_str(&text);
                    }
                    flushed.push((c.index, c.field, text));
                }
            } else {
                i += 1;
            }
        }
        if self.verdict.blocked.is_some() {
            self.stopped = true;
            return;
        }
        if self.shadow {
            return;
        }
        for (index, field, text) in flushed {
            match self.dialect {
                Dialect::OpenAi => self.openai_flush(out, index, field, &text),
                Dialect::Anthropic => {
                    if let Field::Block(kind) = field {
                        let data = serde_json::json!({
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": kind.delta_type(), kind.field(): text},
                        });
                        write_event(
                            out,
                            Some(b"content_block_delta"),
                            data.to_string().as_bytes(),
                        );
                    }
                }
            }
        }
    }

    fn openai_flush(&self, out: &mut Vec<u8>, index: u32, field: Field, text: &str) {
        let delta = match field {
            Field::Content => serde_json::json!({"content": text}),
            Field::ReasoningContent => serde_json::json!({"reasoning_content": text}),
            Field::Reasoning => serde_json::json!({"reasoning": text}),
            Field::Refusal => serde_json::json!({"refusal": text}),
            Field::Transcript => serde_json::json!({"audio": {"transcript": text}}),
            Field::Arguments(call) => {
                serde_json::json!({"tool_calls": [{"index": call, "function": {"arguments": text}}]})
            }
            Field::Text | Field::Block(_) | Field::Citation => serde_json::Value::Null,
        };
        let choice = if field == Field::Text {
            serde_json::json!({"index": index, "text": text, "logprobs": null, "finish_reason": null})
        } else {
            serde_json::json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": null})
        };
        let mut data = String::with_capacity(text.len() + 160);
        data.push('{');
        let env = wire::envelope(&self.last_chunk);
        if !env.is_empty() {
            data.push_str(&env);
            data.push(',');
        }
        data.push_str("\"choices\":[");
        data.push_str(&choice.to_string());
        data.push_str("]}");
        write_event(out, None, data.as_bytes());
    }

    /// One OpenAI chunk: its replacements go to `self.edits` (none: it goes out as it came).
    fn openai_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.trim_ascii() == b"[DONE]" {
            self.flush_where(out, |_| true);
            return;
        }
        let mut choices = std::mem::take(&mut self.choices);
        if wire::read_chunk(data, &mut choices).is_some() && !choices.is_empty() {
            self.last_chunk.clear();
            self.last_chunk.extend_from_slice(data);
            for choice in &choices {
                if let Some(span) = choice.logprobs.clone() {
                    // Per-token logprobs would spell out what the text's channel masks or
                    // holds back: they are dropped while a policy screens the answer.
                    let at = self.edit_bytes.len();
                    self.edit_bytes.extend_from_slice(b"null");
                    self.edits.push((span, at..self.edit_bytes.len()));
                }
                for (field, span) in &choice.fields {
                    self.edit_field(data, span.clone(), choice.index, *field, choice.last);
                }
            }
            if choices.iter().any(|c| c.last) {
                self.flush_where(out, |c| {
                    choices.iter().any(|ch| ch.last && ch.index == c.index)
                });
            }
        }
        self.choices = choices;
    }

    /// One Anthropic event: its replacements go to `self.edits` (none: it goes out as it
    /// came).
    fn anthropic_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let Some(ev) = wire::read_event(data) else {
            return;
        };
        match &*ev.kind {
            "content_block_start" => {
                let Some(kind) = ev.block_kind else {
                    return;
                };
                self.blocks.push((ev.index, kind));
                if let Some(span) = ev.block_text {
                    self.edit_field(data, span, ev.index, Field::Block(kind), false);
                }
            }
            "content_block_delta" => {
                let kind = self
                    .blocks
                    .iter()
                    .find(|(i, _)| *i == ev.index)
                    .map(|(_, k)| *k);
                if let (Some(kind), Some(span)) = (kind, ev.delta_text) {
                    self.edit_field(data, span, ev.index, Field::Block(kind), false);
                }
                // A citation comes whole: screened at once, nothing held.
                if let Some(span) = ev.cited_text {
                    self.edit_field(data, span, ev.index, Field::Citation, true);
                }
            }
            "content_block_stop" => {
                let index = ev.index;
                self.flush_where(out, |c| c.index == index);
                self.blocks.retain(|(i, _)| *i != index);
            }
            "message_delta" | "message_stop" => self.flush_where(out, |_| true),
            _ => {}
        }
    }
}

fn write_event(out: &mut Vec<u8>, name: Option<&[u8]>, data: &[u8]) {
    if let Some(n) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(n);
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}
