//! The meter's fast path for OpenAI chunks: what it needs of an event (content bytes per
//! choice, the usage object's span, whether the chunk has choices) found by walking the
//! event's bytes with [`crate::wire::json_spans::Cursor`] instead of parsing it into a tree.
//!
//! Anything else — an event with a `type` (Anthropic, Responses), Gemini's `candidates`, a
//! non-null `error`, or bytes the cursor cannot walk — gives `None`, and the meter parses
//! the event fully as before.

use crate::wire::json_spans::{string_value, Cursor};
use std::ops::Range;

/// What one OpenAI chunk holds, for the meter.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Content bytes (text, reasoning, tool-call arguments) of each choice that had some.
    pub content: Vec<usize>,
    /// Whether `choices` held any choice.
    pub has_choices: bool,
    /// The span of a non-null `usage` value.
    pub usage: Option<Range<usize>>,
}

/// Read `data` as an OpenAI chunk, or `None` (see the module doc).
pub fn chunk(data: &[u8]) -> Option<Chunk> {
    let mut out = Chunk::default();
    Cursor::new(data).object(|c, key| match key {
        b"type" | b"candidates" => None,
        b"error" => {
            let span = c.skip()?;
            (&data[span] == b"null").then_some(())
        }
        b"usage" => {
            let span = c.skip()?;
            if &data[span.clone()] != b"null" {
                out.usage = Some(span);
            }
            Some(())
        }
        b"choices" if c.opens(b'[') => c.array(|c| {
            out.has_choices = true;
            let bytes = choice(c)?;
            if bytes > 0 {
                out.content.push(bytes);
            }
            Some(())
        }),
        _ => c.skip().map(drop),
    })?;
    Some(out)
}

/// A string value's decoded length (0 for anything but a string).
fn text_len(c: &mut Cursor<'_>) -> Option<usize> {
    let span = c.skip()?;
    let raw = &c.bytes()[span];
    if raw.first() != Some(&b'"') {
        return Some(0);
    }
    Some(string_value(raw)?.len())
}

fn choice(c: &mut Cursor<'_>) -> Option<usize> {
    if !c.opens(b'{') {
        return c.skip().map(|_| 0);
    }
    let mut bytes = 0;
    c.object(|c, key| match key {
        b"text" => {
            bytes += text_len(c)?;
            Some(())
        }
        b"delta" if c.opens(b'{') => c.object(|c, key| match key {
            b"content" | b"reasoning_content" => {
                bytes += text_len(c)?;
                Some(())
            }
            b"tool_calls" if c.opens(b'[') => c.array(|c| {
                if !c.opens(b'{') {
                    return c.skip().map(drop);
                }
                c.object(|c, key| match key {
                    b"function" if c.opens(b'{') => c.object(|c, key| match key {
                        b"arguments" => {
                            bytes += text_len(c)?;
                            Some(())
                        }
                        _ => c.skip().map(drop),
                    }),
                    _ => c.skip().map(drop),
                })
            }),
            _ => c.skip().map(drop),
        }),
        _ => c.skip().map(drop),
    })?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_read_for_their_content_and_usage() {
        let c = chunk(br#"{"id":"x","choices":[{"index":0,"delta":{"content":"He\"llo","reasoning_content":null},"finish_reason":null}],"usage":null}"#).unwrap();
        assert_eq!(
            c,
            Chunk {
                content: vec![6],
                has_choices: true,
                usage: None
            }
        );
        let data = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
        let c = chunk(data).unwrap();
        assert!(!c.has_choices && c.content.is_empty());
        assert_eq!(
            &data[c.usage.unwrap()],
            br#"{"prompt_tokens":3,"completion_tokens":2}"#
        );
        let calls = br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}}]}},{"text":"abc"}]}"#;
        assert_eq!(chunk(calls).unwrap().content, vec![7, 3]);
        for other in [
            &br#"{"type":"message_start"}"#[..],
            br#"{"candidates":[]}"#,
            br#"{"error":{"message":"x"}}"#,
            br#"{"choices":[{"delta":{"content":"x"}}]"#,
        ] {
            assert!(chunk(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
        assert!(chunk(br#"{"error":null,"choices":[]}"#).is_some());
    }
}
