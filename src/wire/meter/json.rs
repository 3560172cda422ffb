//! Usage from a non-streaming JSON response body.
//!
//! Bodies up to [`MAX_BODY`] are parsed whole. A larger body (a big embeddings batch) keeps
//! only its last [`TAIL`] bytes, where OpenAI-style APIs put `usage`, and the last `"usage"`
//! object found there is read.

use super::{usage_from, Usage};

const MAX_BODY: usize = 4 * 1024 * 1024;
const TAIL: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct JsonMeter {
    buf: Vec<u8>,
    truncated: bool,
}

impl JsonMeter {
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        if self.buf.len() > MAX_BODY {
            let cut = self.buf.len() - TAIL;
            self.buf.drain(..cut);
            self.truncated = true;
        } else if self.truncated && self.buf.len() > 2 * TAIL {
            let cut = self.buf.len() - TAIL;
            self.buf.drain(..cut);
        }
    }

    /// The usage the body reported, if any.
    pub fn finish(&mut self) -> Option<Usage> {
        use simd_json::prelude::*;
        if !self.truncated {
            let v = simd_json::to_borrowed_value(&mut self.buf).ok()?;
            return v.get("usage").and_then(usage_from);
        }
        let at = memchr::memmem::rfind(&self.buf, b"\"usage\"")?;
        let rest = &self.buf[at + b"\"usage\"".len()..];
        let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        if rest[colon] != b':' {
            return None;
        }
        let mut de = serde_json::Deserializer::from_slice(&rest[colon + 1..]).into_iter();
        let value: serde_json::Value = de.next()?.ok()?;
        let mut text = value.to_string().into_bytes();
        let v = simd_json::to_borrowed_value(&mut text).ok()?;
        usage_from(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_from_a_whole_body_in_pieces() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
        let mut m = JsonMeter::default();
        for piece in body.chunks(7) {
            m.feed(piece);
        }
        assert_eq!(
            m.finish(),
            Some(Usage {
                input: 12,
                output: 3
            })
        );
    }

    #[test]
    fn reads_usage_from_the_tail_of_a_huge_body() {
        let mut body = br#"{"data":[{"embedding":["#.to_vec();
        body.extend(std::iter::repeat_n(b"0.123456,".as_slice(), 800_000).flatten());
        body.extend_from_slice(br#"0.1]}],"usage":{"prompt_tokens":40,"total_tokens":40}}"#);
        let mut m = JsonMeter::default();
        for piece in body.chunks(16 * 1024) {
            m.feed(piece);
        }
        assert!(m.buf.len() <= 2 * TAIL);
        assert_eq!(
            m.finish(),
            Some(Usage {
                input: 40,
                output: 0
            })
        );
    }

    #[test]
    fn no_usage_or_garbage_gives_none() {
        let mut m = JsonMeter::default();
        m.feed(b"{\"id\":1}");
        assert_eq!(m.finish(), None);
        let mut m = JsonMeter::default();
        m.feed(b"<html>");
        assert_eq!(m.finish(), None);
    }
}
