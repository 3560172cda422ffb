//! Secrets out of upstream error bodies: a provider that echoes the gateway's key
//! (`Incorrect API key provided: sk-…`) must not hand it to the client. Every configured
//! secret (each provider's key) is matched at once (Aho-Corasick, built per config load) and
//! replaced as the body passes, with the last `longest − 1` bytes held back so a secret split
//! across chunks is still found.

use aho_corasick::AhoCorasick;
use std::sync::Arc;

/// What a redacted secret becomes.
pub const REDACTED: &[u8] = b"[REDACTED]";

/// The configured secrets, as one matcher.
#[derive(Debug, Clone)]
pub struct Secrets {
    matcher: Arc<AhoCorasick>,
    longest: usize,
}

impl Secrets {
    /// `None` when there is nothing to redact (or the matcher cannot be built).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Option<Secrets> {
        let secrets: Vec<&str> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        let longest = secrets.iter().map(|s| s.len()).max()?;
        let matcher = AhoCorasick::new(&secrets).ok()?;
        Some(Secrets {
            matcher: Arc::new(matcher),
            longest,
        })
    }

    /// A redactor for one body.
    pub fn redactor(&self) -> Redactor {
        Redactor {
            secrets: self.clone(),
            held: Vec::new(),
        }
    }
}

/// One body's redaction, chunk by chunk.
#[derive(Debug)]
pub struct Redactor {
    secrets: Secrets,
    held: Vec<u8>,
}

impl Redactor {
    /// Redact a chunk: what can go out now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(chunk);
        // A secret starting before `cut` lies wholly in what is held.
        let cut = self.held.len().saturating_sub(self.secrets.longest - 1);
        self.release(cut)
    }

    /// The body ended: the rest.
    pub fn finish(&mut self) -> Vec<u8> {
        self.release(self.held.len())
    }

    fn release(&mut self, cut: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(cut + REDACTED.len());
        let mut at = 0;
        for m in self.secrets.matcher.find_iter(&self.held) {
            if m.start() >= cut {
                break;
            }
            out.extend_from_slice(&self.held[at..m.start()]);
            out.extend_from_slice(REDACTED);
            at = m.end();
        }
        let upto = cut.max(at);
        out.extend_from_slice(&self.held[at..upto]);
        self.held.drain(..upto);
        out
    }
}

impl crate::wire::BodyStage for Redactor {
    fn feed(&mut self, input: &[u8]) -> Option<bytes::Bytes> {
        Some(bytes::Bytes::from(Redactor::feed(self, input)))
    }

    fn finish(&mut self, input: &[u8]) -> bytes::Bytes {
        let mut out = Redactor::feed(self, input);
        out.extend_from_slice(&Redactor::finish(self));
        bytes::Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_redacted_however_the_body_is_split() {
        let key = "sk-backend-0123456789abcdef";
        let body = format!(
            "{{\"error\":{{\"message\":\"Incorrect API key provided: {key}. Or {key}\"}}}}"
        );
        let Some(secrets) = Secrets::new([key, "other-secret"]) else {
            panic!("secrets");
        };
        for size in 1..body.len() {
            let mut r = secrets.redactor();
            let mut out = Vec::new();
            for chunk in body.as_bytes().chunks(size) {
                out.extend(r.feed(chunk));
            }
            out.extend(r.finish());
            let out = String::from_utf8_lossy(&out);
            assert!(!out.contains("sk-backend"), "split {size}: {out}");
            assert_eq!(out.matches("[REDACTED]").count(), 2, "split {size}: {out}");
            assert!(out.starts_with("{\"error\""), "{out}");
        }
    }

    #[test]
    fn nothing_to_redact_is_none() {
        assert!(Secrets::new([""]).is_none());
        assert!(Secrets::new(std::iter::empty()).is_none());
    }
}
