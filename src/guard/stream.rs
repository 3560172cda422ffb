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
//! error event.

use super::scan::{Hold, Scanner, Verdict};
use crate::dialect::Dialect;
use crate::sse::{Framer, Piece};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Which text of which choice or block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Content,
    ReasoningContent,
    Reasoning,
    /// A tool call's arguments, by the tool call's index.
    Arguments(u32),
    /// Legacy completions' `text`.
    Text,
    /// An Anthropic block's text, thinking or partial JSON.
    Block(BlockKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    ToolInput,
}

impl BlockKind {
    fn delta_type(self) -> &'static str {
        match self {
            BlockKind::Text => "text_delta",
            BlockKind::Thinking => "thinking_delta",
            BlockKind::ToolInput => "input_json_delta",
        }
    }

    fn field(self) -> &'static str {
        match self {
            BlockKind::Text => "text",
            BlockKind::Thinking => "thinking",
            BlockKind::ToolInput => "partial_json",
        }
    }
}

struct Channel {
    /// The choice (OpenAI) or content block (Anthropic) index.
    index: u32,
    field: Field,
    hold: Hold,
}

/// The filter of one response stream.
pub struct StreamGuard {
    scanner: Scanner,
    dialect: Dialect,
    framer: Framer,
    channels: Vec<Channel>,
    /// Anthropic: each open block's kind.
    blocks: Vec<(u32, BlockKind)>,
    /// OpenAI: the envelope (`id`, `object`, `created`, `model`) of the last chunk, for the
    /// flush chunks.
    envelope: Option<String>,
    pub verdict: Verdict,
    /// Text released so far, for the moderation hook's windows (only when it is on).
    pub released: Option<String>,
    stopped: bool,
    /// Every rule only logs: findings are counted, and every byte goes out as it came.
    shadow: bool,
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
            envelope: None,
            verdict: Verdict::default(),
            released: keep_released.then(String::new),
            stopped: false,
            shadow: scanner_is_shadow(&scanner),
            terminal: Vec::new(),
            scanner,
        }
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
                let rewritten = match self.dialect {
                    Dialect::OpenAi => self.openai_event(&data, out),
                    Dialect::Anthropic => self.anthropic_event(&data, out),
                };
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
                match rewritten {
                    None => out.extend_from_slice(event.raw),
                    Some(data) => write_event(out, name, &data),
                }
            }
        }
    }

    /// Feed `text` to its channel; the released text (all of it when `last`: the channel
    /// ends with this text).
    fn release(&mut self, index: u32, field: Field, text: &str, last: bool) -> String {
        let at = match self
            .channels
            .iter()
            .position(|c| c.index == index && c.field == field)
        {
            Some(at) => at,
            None => {
                self.channels.push(Channel {
                    index,
                    field,
                    hold: Hold::default(),
                });
                self.channels.len() - 1
            }
        };
        let mut released = self.channels[at]
            .hold
            .feed(&self.scanner, text, &mut self.verdict);
        if last {
            let mut c = self.channels.remove(at);
            released.push_str(&c.hold.flush(&self.scanner, &mut self.verdict));
        }
        if let Some(r) = self.released.as_mut() {
            r.push_str(&released);
        }
        released
    }

    /// Flush the channels `which` selects, as delta events written to `out`.
    fn flush_where(&mut self, out: &mut Vec<u8>, which: impl Fn(&Channel) -> bool) {
        let mut flushed: Vec<(u32, Field, String)> = Vec::new();
        let mut i = 0;
        while i < self.channels.len() {
            if which(&self.channels[i]) {
                let mut c = self.channels.remove(i);
                let text = c.hold.flush(&self.scanner, &mut self.verdict);
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
            Field::Arguments(call) => {
                serde_json::json!({"tool_calls": [{"index": call, "function": {"arguments": text}}]})
            }
            Field::Text | Field::Block(_) => serde_json::Value::Null,
        };
        let choice = if field == Field::Text {
            serde_json::json!({"index": index, "text": text, "logprobs": null, "finish_reason": null})
        } else {
            serde_json::json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": null})
        };
        let mut data = String::with_capacity(text.len() + 160);
        data.push('{');
        if let Some(env) = &self.envelope {
            data.push_str(env);
            data.push(',');
        }
        data.push_str("\"choices\":[");
        data.push_str(&choice.to_string());
        data.push_str("]}");
        write_event(out, None, data.as_bytes());
    }

    /// One OpenAI chunk: `None` when it goes out as it came.
    fn openai_event(&mut self, data: &[u8], out: &mut Vec<u8>) -> Option<Vec<u8>> {
        if data.trim_ascii() == b"[DONE]" {
            self.flush_where(out, |_| true);
            return None;
        }
        let text = std::str::from_utf8(data).ok()?;
        let chunk: Chunk = serde_json::from_str(text).ok()?;
        if chunk.choices.is_empty() {
            return None;
        }
        self.envelope = Some(envelope(&chunk));
        let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        let mut finished = Vec::new();
        for choice in &chunk.choices {
            let i = choice.index;
            let mut fields: Vec<(Field, &RawValue)> = Vec::new();
            if let Some(d) = &choice.delta {
                fields.extend(d.content.map(|r| (Field::Content, r)));
                fields.extend(d.reasoning_content.map(|r| (Field::ReasoningContent, r)));
                fields.extend(d.reasoning.map(|r| (Field::Reasoning, r)));
                for call in d.tool_calls.iter().flatten() {
                    if let Some(args) = call.function.as_ref().and_then(|f| f.arguments) {
                        fields.push((Field::Arguments(call.index), args));
                    }
                }
            }
            fields.extend(choice.text.map(|r| (Field::Text, r)));
            let last = choice.finish_reason.is_some_and(|r| r.get() != "null");
            for (field, raw) in fields {
                let Ok(original) = serde_json::from_str::<Cow<str>>(raw.get()) else {
                    continue;
                };
                let released = self.release(i, field, &original, last);
                if released != original {
                    edits.push((span_of(text, raw), json_string(&released)));
                }
            }
            if last {
                finished.push(i);
            }
        }
        if !finished.is_empty() {
            self.flush_where(out, |c| finished.contains(&c.index));
        }
        (!edits.is_empty()).then(|| splice(text, edits))
    }

    /// One Anthropic event: `None` when it goes out as it came.
    fn anthropic_event(&mut self, data: &[u8], out: &mut Vec<u8>) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(data).ok()?;
        let ev: Event = serde_json::from_str(text).ok()?;
        match ev.kind {
            "content_block_start" => {
                let block = ev.content_block.as_ref()?;
                let kind = match block.kind {
                    "text" => BlockKind::Text,
                    "thinking" => BlockKind::Thinking,
                    "tool_use" => BlockKind::ToolInput,
                    _ => return None,
                };
                self.blocks.push((ev.index, kind));
                let raw = block.text.or(block.thinking)?;
                let original = serde_json::from_str::<Cow<str>>(raw.get()).ok()?;
                let released = self.release(ev.index, Field::Block(kind), &original, false);
                (released != original)
                    .then(|| splice(text, vec![(span_of(text, raw), json_string(&released))]))
            }
            "content_block_delta" => {
                let delta = ev.delta.as_ref()?;
                let kind = self
                    .blocks
                    .iter()
                    .find(|(i, _)| *i == ev.index)
                    .map(|(_, k)| *k)?;
                let raw = delta.text.or(delta.thinking).or(delta.partial_json)?;
                let original = serde_json::from_str::<Cow<str>>(raw.get()).ok()?;
                let released = self.release(ev.index, Field::Block(kind), &original, false);
                (released != original)
                    .then(|| splice(text, vec![(span_of(text, raw), json_string(&released))]))
            }
            "content_block_stop" => {
                let index = ev.index;
                self.flush_where(out, |c| c.index == index);
                self.blocks.retain(|(i, _)| *i != index);
                None
            }
            "message_delta" | "message_stop" => {
                self.flush_where(out, |_| true);
                None
            }
            _ => None,
        }
    }
}

fn scanner_is_shadow(s: &Scanner) -> bool {
    s.rules.iter().all(|r| r.action == super::Action::Log)
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: u32,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    #[serde(default)]
    index: u32,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    index: u32,
    #[serde(borrow, default)]
    delta: Option<BlockText<'a>>,
    #[serde(borrow, default)]
    content_block: Option<BlockStart<'a>>,
}

#[derive(Deserialize)]
struct BlockText<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    thinking: Option<&'a RawValue>,
    #[serde(borrow, default)]
    partial_json: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct BlockStart<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    thinking: Option<&'a RawValue>,
}

/// `"id":…,"object":…,"created":…,"model":…` of a chunk, as it came.
fn envelope(c: &Chunk<'_>) -> String {
    let mut s = String::new();
    for (k, v) in [
        ("id", c.id),
        ("object", c.object),
        ("created", c.created),
        ("model", c.model),
    ] {
        if let Some(v) = v {
            if !s.is_empty() {
                s.push(',');
            }
            s.push('"');
            s.push_str(k);
            s.push_str("\":");
            s.push_str(v.get());
        }
    }
    s
}

fn span_of(text: &str, raw: &RawValue) -> std::ops::Range<usize> {
    let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
    start..start + raw.get().len()
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn splice(text: &str, mut edits: Vec<(std::ops::Range<usize>, String)>) -> Vec<u8> {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut at = 0;
    for (range, with) in edits {
        out.extend_from_slice(&text.as_bytes()[at..range.start]);
        out.extend_from_slice(with.as_bytes());
        at = range.end;
    }
    out.extend_from_slice(&text.as_bytes()[at..]);
    out
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
