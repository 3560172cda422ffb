//! The guard of one answer: a stream filtered as it passes, or a JSON body kept whole and
//! screened at its end.

use super::stream::StreamGuard;
use super::{text, Blocked, Scanner, Selected, Verdict};
use crate::types::dialect::Dialect;
use bytes::Bytes;

/// How a committed answer is screened.
pub enum ResponseGuard {
    /// An event stream, filtered as it passes.
    Stream(Box<StreamGuard>),
    /// A JSON body, kept whole and screened at its end.
    Json {
        scanner: Scanner,
        body: Vec<u8>,
        verdict: Verdict,
    },
}

impl std::fmt::Debug for ResponseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseGuard::Stream(_) => f.write_str("ResponseGuard::Stream"),
            ResponseGuard::Json { body, .. } => {
                write!(f, "ResponseGuard::Json({} bytes)", body.len())
            }
        }
    }
}

impl ResponseGuard {
    /// The guard for an answer in `dialect`, when the request's policies screen answers.
    pub fn new(
        selected: &Selected,
        dialect: Dialect,
        sse: bool,
        keep_text: bool,
        json_content: bool,
    ) -> Option<ResponseGuard> {
        if !selected.guards_response() {
            return None;
        }
        let scanner = selected.response.clone();
        Some(if sse {
            ResponseGuard::Stream(Box::new(
                StreamGuard::new(scanner, dialect, keep_text).with_json_content(json_content),
            ))
        } else {
            ResponseGuard::Json {
                scanner,
                body: Vec::new(),
                verdict: Verdict::default(),
            }
        })
    }

    /// Screen a chunk of the client-bound body: what is sent now.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        match self {
            ResponseGuard::Stream(g) => Bytes::from(g.feed(chunk)),
            ResponseGuard::Json { body, .. } => {
                body.extend_from_slice(chunk);
                Bytes::new()
            }
        }
    }

    /// The body ended (`tail` is its last client-bound bytes): the rest to send.
    pub fn finish(&mut self, tail: &[u8]) -> Bytes {
        match self {
            ResponseGuard::Stream(g) => {
                let mut out = g.feed(tail);
                out.extend_from_slice(&g.finish());
                Bytes::from(out)
            }
            ResponseGuard::Json {
                scanner,
                body,
                verdict,
            } => {
                body.extend_from_slice(tail);
                let whole = std::mem::take(body);
                let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&whole) else {
                    // Not JSON (an upstream's plain-text error): nothing to look into.
                    return Bytes::from(whole);
                };
                let dropped = !scanner.only_logs() && text::drop_logprobs(&mut value);
                if text::scan_body(scanner, &mut value, verdict) | dropped {
                    Bytes::from(value.to_string())
                } else {
                    Bytes::from(whole)
                }
            }
        }
    }

    /// The `block` that fired.
    pub fn blocked(&self) -> Option<Blocked> {
        let (scanner, rule) = match self {
            ResponseGuard::Stream(g) => (g.scanner(), g.blocked()?),
            ResponseGuard::Json {
                scanner, verdict, ..
            } => (scanner, verdict.blocked?),
        };
        scanner.rules.get(rule).map(|r| Blocked::of_rule(r))
    }

    /// `policy/rule` of every rule that fired on the answer.
    pub fn fired(&self, out: &mut Vec<String>) {
        let (scanner, verdict) = match self {
            ResponseGuard::Stream(g) => (g.scanner(), &g.verdict),
            ResponseGuard::Json {
                scanner, verdict, ..
            } => (scanner, verdict),
        };
        note_fired(out, scanner, verdict);
    }
}

/// Add `policy/rule` for each rule that fired (each once).
pub fn note_fired(out: &mut Vec<String>, scanner: &Scanner, v: &Verdict) {
    for &r in &v.fired {
        if let Some(rule) = scanner.rules.get(r) {
            let name = format!("{}/{}", rule.policy, rule.name);
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
}

impl crate::wire::BodyStage for ResponseGuard {
    fn feed(&mut self, input: &[u8]) -> Option<bytes::Bytes> {
        Some(ResponseGuard::feed(self, input))
    }

    fn finish(&mut self, input: &[u8]) -> bytes::Bytes {
        ResponseGuard::finish(self, input)
    }
}
