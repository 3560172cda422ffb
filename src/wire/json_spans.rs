//! Where values are in a JSON document, without decoding it: a byte cursor that walks
//! objects and arrays and hands back the byte span of each value it skips.
//!
//! The stream paths (the guardrail filter on every SSE event) need a handful of values out
//! of each event — a delta's text, an index, a type — and the event's other bytes untouched.
//! `serde_json` and `jiter` both decode and validate every value on the way (about 1 µs for
//! a 200-byte chunk here; `jiter` 0.6 µs); this cursor only finds boundaries (`memchr` for
//! string ends), several times cheaper, and callers decode just the values they use (with
//! `serde_json`, which then checks those). It is not a validator: a document it cannot walk
//! gives `None`, and a key written with an escape sequence gives `None` too (a caller must
//! not silently skip a key it would have matched), so callers treat `None` as "not the
//! shape I look for".

use std::borrow::Cow;
use std::ops::Range;

/// How deeply objects and arrays may nest before the walk gives up.
const MAX_DEPTH: u32 = 128;

/// A position in one JSON document.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: u32,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor {
            bytes,
            at: 0,
            depth: 0,
        }
    }

    /// The whole document.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// The members of the object at the cursor, in order: `member(cursor, key)` must take
    /// the member's value (with [`Self::skip`] or a nested walk). `key` is the key's raw
    /// bytes, without quotes.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        self.nest()?;
        if self.peek()? == b'}' {
            self.at += 1;
        } else {
            loop {
                self.ws();
                let key = self.string()?;
                let key = &self.bytes[key.start + 1..key.end - 1];
                if key.contains(&b'\\') {
                    return None;
                }
                self.eat(b':')?;
                member(self, key)?;
                match self.peek()? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// The items of the array at the cursor: `item(cursor)` must take each one.
    pub fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.nest()?;
        if self.peek()? == b']' {
            self.at += 1;
        } else {
            loop {
                item(self)?;
                match self.peek()? {
                    b',' => self.at += 1,
                    b']' => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    fn nest(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// Pass over the value at the cursor: its span.
    pub fn skip(&mut self) -> Option<Range<usize>> {
        let start = match self.peek()? {
            b'"' => return self.string(),
            b'{' => {
                let start = self.at;
                self.object(|c, _| c.skip().map(drop))?;
                start
            }
            b'[' => {
                let start = self.at;
                self.array(|c| c.skip().map(drop))?;
                start
            }
            _ => {
                let start = self.at;
                while let Some(&b) = self.bytes.get(self.at) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' | b'"') {
                        break;
                    }
                    self.at += 1;
                }
                if self.at == start {
                    return None;
                }
                start
            }
        };
        Some(start..self.at)
    }

    /// A string at the cursor (already past whitespace): its span, quotes included.
    fn string(&mut self) -> Option<Range<usize>> {
        let start = self.at;
        if self.bytes.get(start) != Some(&b'"') {
            return None;
        }
        let mut at = start + 1;
        loop {
            let i = memchr::memchr2(b'"', b'\\', self.bytes.get(at..)?)?;
            at += i;
            if self.bytes[at] == b'"' {
                self.at = at + 1;
                return Some(start..self.at);
            }
            at += 2;
        }
    }

    /// Whether the value at the cursor opens with `b` (`{` an object, `[` an array).
    pub fn opens(&mut self, b: u8) -> bool {
        self.peek() == Some(b)
    }
}

/// A JSON string's value (borrowed when it has no escapes; `None` for anything else).
pub fn string_value(raw: &[u8]) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if memchr::memchr(b'\\', inner).is_none() {
        return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    serde_json::from_slice::<String>(raw).ok().map(Cow::Owned)
}

/// A non-negative integer's value (`None` for anything else).
pub fn as_u32(raw: &[u8]) -> Option<u32> {
    std::str::from_utf8(raw).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// Every member's key and value span, as serde_json reads the same document.
    fn members(doc: &str) -> Option<Vec<(String, Value)>> {
        let mut out = Vec::new();
        Cursor::new(doc.as_bytes()).object(|c, key| {
            let span = c.skip()?;
            let value = serde_json::from_str(&doc[span]).ok()?;
            out.push((String::from_utf8(key.to_vec()).ok()?, value));
            Some(())
        })?;
        Some(out)
    }

    #[test]
    fn spans_match_what_serde_reads() {
        let v = json!({
            "a": "x\"y\\\\", "b": [1, -2.5e3, true, null, {"c": []}, "]},"],
            "d": {"e": {"f": "\u{4e2d}\n"}}, "g": {}, "h": 0
        });
        for doc in [v.to_string(), serde_json::to_string_pretty(&v).unwrap()] {
            let got = members(&doc).unwrap();
            let want: Vec<(String, Value)> = v.as_object().unwrap().clone().into_iter().collect();
            assert_eq!(got, want, "{doc}");
        }
    }

    #[test]
    fn whole_documents_are_one_span() {
        for doc in [
            r#"{"a":[1,{"b":"}"}]}"#,
            "[]",
            r#""s\"""#,
            "12",
            " [ 1 , 2 ] ",
        ] {
            let mut c = Cursor::new(doc.as_bytes());
            let span = c.skip().unwrap();
            assert_eq!(doc[span].trim(), doc.trim());
        }
    }

    #[test]
    fn what_it_cannot_walk_is_none() {
        for doc in [
            r#"{"a":1"#,
            r#"{"a" 1}"#,
            r#"{"a":1,}"#,
            r#"{"a":"unterminated}"#,
            r#"{"c\u006fntent":"x"}"#,
            "[1 2]",
            "",
        ] {
            assert!(members(doc).is_none(), "{doc}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(Cursor::new(deep.as_bytes()).skip().is_none());
        assert_eq!(string_value(br#""plain""#).as_deref(), Some("plain"));
        assert_eq!(
            string_value(br#""a\"b\u00e9""#).as_deref(),
            Some("a\"b\u{e9}")
        );
        assert_eq!(string_value(b"12"), None);
        assert_eq!(as_u32(b"7"), Some(7));
        assert_eq!(as_u32(b"-1"), None);
        assert!(Cursor::new(b" {").opens(b'{'));
    }
}
