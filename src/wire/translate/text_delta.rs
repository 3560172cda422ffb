//! The stream translators' fast path for the event most of a stream is made of: one choice's
//! text delta (OpenAI) or one `text_delta` (Anthropic). Such an event is recognised by walking
//! its bytes with [`Cursor`] and rewritten with its text copied as the JSON string it already
//! is, instead of being parsed into a `serde_json::Value`, rebuilt and printed (about 2 µs an
//! event, most of a translated stream's cost). Anything else, and any text the walk cannot
//! vouch for (bad UTF-8, a raw control character, an escape `serde_json` refuses), gives
//! `None`: the caller translates that event the general way.

use crate::wire::json_spans::{string_value, Cursor};
use serde_json::Value;
use std::ops::Range;

/// An event as the general path writes it, cut where its text value goes: the fast path
/// writes a delta's raw JSON string between the two halves, so both paths lay an event out
/// the same way and its layout is written once.
#[derive(Debug)]
pub struct TextFrame {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl TextFrame {
    /// The frame of the event `write(out, text)` writes with `text` as its text value.
    pub fn around(write: impl FnOnce(&mut Vec<u8>, Value)) -> Option<TextFrame> {
        // Written as `"\u0000text\u0000"`; serde_json sorts keys, and both events put the
        // text (under `choices` or `delta`) before any upstream-chosen id or model.
        const MARK: &str = "\u{0}text\u{0}";
        const WRITTEN: &[u8] = br#""\u0000text\u0000""#;
        let mut head = Vec::new();
        write(&mut head, Value::from(MARK));
        let at = memchr::memmem::find(&head, WRITTEN)?;
        let tail = head.split_off(at)[WRITTEN.len()..].to_vec();
        Some(TextFrame { head, tail })
    }

    /// The event with `text`, a JSON string, as its text value.
    pub fn write(&self, out: &mut Vec<u8>, text: &[u8]) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(text);
        out.extend_from_slice(&self.tail);
    }
}

/// The span of a string value's raw JSON (quotes included) if it is valid, non-empty text.
fn text_span(c: &mut Cursor<'_>) -> Option<Range<usize>> {
    let span = c.skip()?;
    let raw = &c.bytes()[span.clone()];
    if raw.len() <= 2 || raw[0] != b'"' || raw.iter().any(|&b| b < 0x20) {
        return None;
    }
    string_value(raw)?;
    Some(span)
}

/// A value that must be `null` (or absent) for the fast path.
fn null(c: &mut Cursor<'_>) -> Option<()> {
    let span = c.skip()?;
    (&c.bytes()[span] == b"null").then_some(())
}

/// An OpenAI chunk that is exactly one choice's non-empty `delta.content` (no role, reasoning,
/// tool calls, finish reason, usage or error): the content's raw JSON string.
pub fn openai_content(data: &[u8]) -> Option<&[u8]> {
    let mut content = None;
    let mut choices = 0;
    Cursor::new(data).object(|c, key| match key {
        b"id"
        | b"object"
        | b"created"
        | b"model"
        | b"system_fingerprint"
        | b"service_tier"
        | b"obfuscation" => c.skip().map(drop),
        b"usage" | b"error" => null(c),
        b"choices" if c.opens(b'[') => c.array(|c| {
            choices += 1;
            c.object(|c, key| match key {
                b"index" => {
                    let span = c.skip()?;
                    (&c.bytes()[span] == b"0").then_some(())
                }
                b"logprobs" | b"finish_reason" => null(c),
                b"delta" => c.object(|c, key| match key {
                    b"content" => {
                        content = Some(text_span(c)?);
                        Some(())
                    }
                    b"role" | b"refusal" | b"reasoning_content" | b"tool_calls" => null(c),
                    _ => None,
                }),
                _ => None,
            })
        }),
        _ => None,
    })?;
    (choices == 1).then_some(())?;
    content.map(|span| &data[span])
}

/// An Anthropic `content_block_delta` event carrying a non-empty `text_delta`: its block index
/// and the text's raw JSON string.
pub fn anthropic_text(data: &[u8]) -> Option<(u64, &[u8])> {
    let (mut kind, mut delta_kind) = (false, false);
    let (mut index, mut text) = (None, None);
    Cursor::new(data).object(|c, key| match key {
        b"type" => {
            let span = c.skip()?;
            kind = &c.bytes()[span] == br#""content_block_delta""#;
            Some(())
        }
        b"index" => {
            let span = c.skip()?;
            index = Some(std::str::from_utf8(&c.bytes()[span]).ok()?.parse().ok()?);
            Some(())
        }
        b"delta" => c.object(|c, key| match key {
            b"type" => {
                let span = c.skip()?;
                delta_kind = &c.bytes()[span] == br#""text_delta""#;
                Some(())
            }
            b"text" => {
                text = Some(text_span(c)?);
                Some(())
            }
            _ => None,
        }),
        _ => None,
    })?;
    (kind && delta_kind).then_some(())?;
    Some((index?, &data[text?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_writes_what_the_general_path_writes() {
        let write = |out: &mut Vec<u8>, text: Value| {
            let v = serde_json::json!({"delta": {"text": text, "type": "text_delta"}, "index": 3});
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(v.to_string().as_bytes());
            out.extend_from_slice(b"\n\n");
        };
        let frame = TextFrame::around(write).unwrap();
        let mut fast = Vec::new();
        frame.write(&mut fast, br#""say \"caf\u00e9\"""#);
        let mut general = Vec::new();
        write(&mut general, Value::from("say \"caf\u{e9}\""));
        let parse = |b: &[u8]| -> Value {
            serde_json::from_slice(b.strip_prefix(b"data: ").unwrap().trim_ascii_end()).unwrap()
        };
        assert_eq!(parse(&fast), parse(&general));
        assert!(fast.starts_with(br#"data: {"delta":{"text":"say"#) && fast.ends_with(b"}\n\n"));
    }

    #[test]
    fn only_plain_text_deltas_take_the_fast_path() {
        let plain = br#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"He said \"hi\""},"logprobs":null,"finish_reason":null}],"usage":null}"#;
        assert_eq!(openai_content(plain), Some(&br#""He said \"hi\"""#[..]));
        for other in [
            &br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"x"}}]}"#[..],
            br#"{"choices":[{"index":0,"delta":{"content":""}}]}"#,
            br#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}"#,
            br#"{"choices":[{"index":1,"delta":{"content":"x"}}]}"#,
            br#"{"choices":[{"index":0,"delta":{"content":"x"}},{"index":1,"delta":{"content":"y"}}]}"#,
            br#"{"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":1}}"#,
            br#"{"choices":[{"index":0,"delta":{"content":"bad \x escape"}}]}"#,
            b"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"raw \x01 control\"}}]}",
            b"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xff\"}}]}",
            br#"{"choices":[{"index":0,"delta":{"content":"x"}}],"extra":1}"#,
            br#"{"choices":[]}"#,
        ] {
            assert_eq!(openai_content(other), None, "{}", String::from_utf8_lossy(other));
        }
        let text = br#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"caf\u00e9"}}"#;
        assert_eq!(anthropic_text(text), Some((2, &br#""caf\u00e9""#[..])));
        for other in [
            &br#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#[..],
            br#"{"type":"content_block_start","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
            br#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#,
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#,
        ] {
            assert_eq!(anthropic_text(other), None, "{}", String::from_utf8_lossy(other));
        }
    }
}
