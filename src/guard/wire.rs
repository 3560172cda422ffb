//! What the stream filter reads of each event: where the text fields are (byte spans into
//! the event's data), which choice or block they belong to, and whether a choice ends.
//! Found with [`crate::wire::json_spans::Cursor`], so an event's other bytes are never decoded.
//!
//! A field that appears twice in one object makes the event unreadable (`None`), as it is
//! for `serde_json`: the filter then treats it like any event that is not a text event.

use crate::wire::json_spans::{as_u32, string_value, Cursor};
use std::borrow::Cow;
use std::ops::Range;

/// Which text of which choice or block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Content,
    ReasoningContent,
    Reasoning,
    Refusal,
    /// `audio.transcript`: the spoken answer's text.
    Transcript,
    /// An Anthropic `citations_delta`'s quoted text (whole in one event).
    Citation,
    /// A tool call's arguments, by the tool call's index.
    Arguments(u32),
    /// Legacy completions' `text`.
    Text,
    /// An Anthropic block's text, thinking or partial JSON.
    Block(BlockKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Text,
    Thinking,
    ToolInput,
}

impl BlockKind {
    pub fn delta_type(self) -> &'static str {
        match self {
            BlockKind::Text => "text_delta",
            BlockKind::Thinking => "thinking_delta",
            BlockKind::ToolInput => "input_json_delta",
        }
    }

    pub fn field(self) -> &'static str {
        match self {
            BlockKind::Text => "text",
            BlockKind::Thinking => "thinking",
            BlockKind::ToolInput => "partial_json",
        }
    }
}

/// One OpenAI choice of a chunk: its text fields in the order they came.
#[derive(Debug, Default)]
pub struct ChoiceText {
    pub index: u32,
    pub fields: Vec<(Field, Range<usize>)>,
    /// A non-null `finish_reason`: the choice's channels end with this chunk.
    pub last: bool,
    /// A non-null `logprobs`: per-token text that would spell out what the filter masks.
    pub logprobs: Option<Range<usize>>,
}

/// Keep a span, refusing a second one for the same slot.
fn once(slot: &mut Option<Range<usize>>, span: Range<usize>) -> Option<()> {
    slot.replace(span).is_none().then_some(())
}

/// The choices of an OpenAI chunk (`choices` reused: cleared first, and the vectors inside
/// kept). `None`: not a chunk this filter can read.
pub fn read_chunk(data: &[u8], choices: &mut Vec<ChoiceText>) -> Option<()> {
    let mut n = 0;
    let mut seen = false;
    Cursor::new(data).object(|c, key| {
        if key != b"choices" || !c.opens(b'[') {
            return c.skip().map(drop);
        }
        if std::mem::replace(&mut seen, true) {
            return None;
        }
        c.array(|c| {
            if choices.len() == n {
                choices.push(ChoiceText::default());
            }
            let choice = &mut choices[n];
            n += 1;
            read_choice(c, data, choice)
        })
    })?;
    choices.truncate(n);
    Some(())
}

fn read_choice(c: &mut Cursor<'_>, data: &[u8], choice: &mut ChoiceText) -> Option<()> {
    choice.fields.clear();
    let (mut index, mut finish, mut text, mut logprobs) = (None, None, None, None);
    let mut delta = false;
    c.object(|c, key| match key {
        b"index" => once(&mut index, c.skip()?),
        b"logprobs" => once(&mut logprobs, c.skip()?),
        b"finish_reason" => once(&mut finish, c.skip()?),
        b"text" => once(&mut text, c.skip()?),
        b"delta" if c.opens(b'{') => {
            if std::mem::replace(&mut delta, true) {
                return None;
            }
            read_delta(c, &mut choice.fields)
        }
        _ => c.skip().map(drop),
    })?;
    if let Some(span) = text {
        choice.fields.push((Field::Text, span));
    }
    choice.index = index.and_then(|s| as_u32(&data[s])).unwrap_or(0);
    choice.last = finish.is_some_and(|s| &data[s] != b"null");
    choice.logprobs = logprobs.filter(|s| &data[s.clone()] != b"null");
    Some(())
}

fn read_delta(c: &mut Cursor<'_>, fields: &mut Vec<(Field, Range<usize>)>) -> Option<()> {
    let (mut content, mut reasoning_content, mut reasoning) = (None, None, None);
    let (mut refusal, mut transcript) = (None, None);
    let mut calls = false;
    let mut parts = Vec::new();
    c.object(|c, key| match key {
        // Content as a list of parts: each part's text is the content channel's.
        b"content" if c.opens(b'[') => {
            if content.is_some() || !parts.is_empty() {
                return None;
            }
            c.array(|c| {
                if !c.opens(b'{') {
                    return c.skip().map(drop);
                }
                c.object(|c, key| match key {
                    b"text" => {
                        parts.push(c.skip()?);
                        Some(())
                    }
                    _ => c.skip().map(drop),
                })
            })
        }
        b"content" => once(&mut content, c.skip()?),
        b"reasoning_content" => once(&mut reasoning_content, c.skip()?),
        b"reasoning" => once(&mut reasoning, c.skip()?),
        b"refusal" => once(&mut refusal, c.skip()?),
        b"audio" if c.opens(b'{') => c.object(|c, key| match key {
            b"transcript" => once(&mut transcript, c.skip()?),
            _ => c.skip().map(drop),
        }),
        b"tool_calls" if c.opens(b'[') => {
            if std::mem::replace(&mut calls, true) {
                return None;
            }
            c.array(|c| read_call(c, fields))
        }
        _ => c.skip().map(drop),
    })?;
    let texts = [
        (Field::Content, content),
        (Field::ReasoningContent, reasoning_content),
        (Field::Reasoning, reasoning),
        (Field::Refusal, refusal),
        (Field::Transcript, transcript),
    ];
    // The text fields go before the tool calls' arguments (read, and pushed, first).
    let calls = fields.len();
    fields.extend(parts.into_iter().map(|span| (Field::Content, span)));
    fields.extend(texts.into_iter().filter_map(|(f, s)| Some((f, s?))));
    let texts = fields.len() - calls;
    fields.rotate_right(texts);
    Some(())
}

fn read_call(c: &mut Cursor<'_>, fields: &mut Vec<(Field, Range<usize>)>) -> Option<()> {
    let (mut index, mut arguments) = (None, None);
    let data = c.bytes();
    c.object(|c, key| match key {
        b"index" => once(&mut index, c.skip()?),
        b"function" if c.opens(b'{') => c.object(|c, key| match key {
            b"arguments" => once(&mut arguments, c.skip()?),
            _ => c.skip().map(drop),
        }),
        _ => c.skip().map(drop),
    })?;
    if let Some(span) = arguments {
        let call = index.and_then(|s| as_u32(&data[s])).unwrap_or(0);
        fields.push((Field::Arguments(call), span));
    }
    Some(())
}

/// What the filter reads of an Anthropic event.
#[derive(Debug, Default)]
pub struct EventText<'a> {
    /// `type`'s value.
    pub kind: Cow<'a, str>,
    pub index: u32,
    /// `content_block_start`: the block's type and its opening text or thinking.
    pub block_kind: Option<BlockKind>,
    pub block_text: Option<Range<usize>>,
    /// `content_block_delta`: the delta's text, thinking or partial JSON.
    pub delta_text: Option<Range<usize>>,
    /// `citations_delta`: the citation's quoted text.
    pub cited_text: Option<Range<usize>>,
}

/// An Anthropic event's type, index and text spans (`None`: not an event this filter reads).
pub fn read_event(data: &[u8]) -> Option<EventText<'_>> {
    let (mut kind, mut index) = (None, None);
    let (mut block_type, mut block_text) = (None, None);
    let (mut delta_text, mut cited_text) = (None, None);
    Cursor::new(data).object(|c, key| match key {
        b"type" => once(&mut kind, c.skip()?),
        b"index" => once(&mut index, c.skip()?),
        b"content_block" if c.opens(b'{') => c.object(|c, key| match key {
            b"type" => once(&mut block_type, c.skip()?),
            b"text" | b"thinking" => once(&mut block_text, c.skip()?),
            _ => c.skip().map(drop),
        }),
        b"delta" if c.opens(b'{') => c.object(|c, key| match key {
            b"text" | b"thinking" | b"partial_json" => once(&mut delta_text, c.skip()?),
            b"citation" if c.opens(b'{') => c.object(|c, key| match key {
                b"cited_text" => once(&mut cited_text, c.skip()?),
                _ => c.skip().map(drop),
            }),
            _ => c.skip().map(drop),
        }),
        _ => c.skip().map(drop),
    })?;
    let string = |s: Range<usize>| string_value(&data[s]);
    let block_kind = match block_type.and_then(string).as_deref() {
        Some("text") => Some(BlockKind::Text),
        Some("thinking") => Some(BlockKind::Thinking),
        Some("tool_use" | "server_tool_use") => Some(BlockKind::ToolInput),
        _ => None,
    };
    Some(EventText {
        kind: string(kind?)?,
        index: index.and_then(|s| as_u32(&data[s])).unwrap_or(0),
        block_kind,
        block_text,
        delta_text,
        cited_text,
    })
}

/// `"id":…,"object":…,"created":…,"model":…` of a chunk, as they came (empty when it has
/// none of them).
pub fn envelope(data: &[u8]) -> String {
    let mut s = String::new();
    let _walked = Cursor::new(data).object(|c, key| {
        let span = c.skip()?;
        if matches!(key, b"id" | b"object" | b"created" | b"model") {
            if !s.is_empty() {
                s.push(',');
            }
            s.push('"');
            s.push_str(std::str::from_utf8(key).ok()?);
            s.push_str("\":");
            s.push_str(std::str::from_utf8(&data[span]).ok()?);
        }
        Some(())
    });
    s
}
