//! JSON text as a stream channel carries it (tool-call `arguments`, Anthropic `partial_json`):
//! the client will decode it, so the guard must match what decoding gives. A `\uXXXX` escape of
//! a character that needs none (`john\u0040example.com`) is written as the character itself —
//! the same JSON value, and now visible to every rule. Escapes that must stay (quote,
//! backslash, control characters, surrogate halves) and the short ones (`\n`, `\"`) are kept
//! as they came. An escape split across deltas waits for its end.

/// One channel's canonicaliser: what is pending is at most an unfinished escape.
#[derive(Debug, Default)]
pub struct Canon {
    pending: String,
}

impl Canon {
    /// Canonicalise `text`, appending to `out`; `last`: the channel ends here (an unfinished
    /// escape goes out as it is).
    pub fn feed(&mut self, text: &str, last: bool, out: &mut String) {
        let joined;
        let buf: &str = if self.pending.is_empty() {
            text
        } else {
            self.pending.push_str(text);
            joined = std::mem::take(&mut self.pending);
            &joined
        };
        let bytes = buf.as_bytes();
        let mut at = 0;
        while let Some(rel) = memchr::memchr(b'\\', &bytes[at..]) {
            let slash = at + rel;
            out.push_str(&buf[at..slash]);
            let Some(&kind) = bytes.get(slash + 1) else {
                return self.wait(&buf[slash..], last, out);
            };
            if kind != b'u' {
                // `\"`, `\\`, `\n`…: kept whole (the next backslash is not an escape's start).
                let end = slash + 1 + buf[slash + 1..].chars().next().map_or(0, char::len_utf8);
                out.push_str(&buf[slash..end]);
                at = end;
                continue;
            }
            let Some(hex) = buf.get(slash + 2..slash + 6) else {
                return self.wait(&buf[slash..], last, out);
            };
            match u32::from_str_radix(hex, 16).ok().and_then(needs_no_escape) {
                Some(c) => out.push(c),
                None => out.push_str(&buf[slash..slash + 6]),
            }
            at = slash + 6;
        }
        out.push_str(&buf[at..]);
    }

    fn wait(&mut self, rest: &str, last: bool, out: &mut String) {
        if last {
            out.push_str(rest);
        } else {
            self.pending.push_str(rest);
        }
    }
}

/// The character a `\uXXXX` escape stands for, when JSON lets it stand for itself.
fn needs_no_escape(code: u32) -> Option<char> {
    let c = char::from_u32(code)?;
    (code >= 0x20 && c != '"' && c != '\\').then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(parts: &[&str]) -> String {
        let mut c = Canon::default();
        let mut out = String::new();
        for (i, p) in parts.iter().enumerate() {
            c.feed(p, i + 1 == parts.len(), &mut out);
        }
        out
    }

    #[test]
    fn needless_escapes_are_decoded_however_split() {
        let text =
            r#"{"to":"john\u0040example.com","n":"a\"b\\u0040\n\u00e9\u4e2d\ud83d\ude00\u0022"}"#;
        let want = r#"{"to":"john@example.com","n":"a\"b\\u0040\né中\ud83d\ude00\u0022"}"#;
        for cut in 0..=text.len() {
            if !text.is_char_boundary(cut) {
                continue;
            }
            assert_eq!(canon(&[&text[..cut], &text[cut..]]), want, "cut at {cut}");
        }
        for (i, _) in text.char_indices() {
            let mut parts = Vec::new();
            let mut rest = text;
            while !rest.is_empty() {
                let n = rest
                    .char_indices()
                    .nth(i % 3 + 1)
                    .map_or(rest.len(), |(j, _)| j);
                parts.push(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(canon(&parts), want);
        }
        let decoded: serde_json::Value = serde_json::from_str(want).unwrap();
        let original: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(decoded, original, "the same JSON value");
    }

    #[test]
    fn an_unfinished_escape_at_the_end_goes_out_as_it_came() {
        assert_eq!(canon(&["ab\\u00"]), "ab\\u00");
        assert_eq!(canon(&["ab\\"]), "ab\\");
    }
}
