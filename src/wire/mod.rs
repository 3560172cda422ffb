//! The wire formats, with no Pingora and no config: SSE framing, JSON spans, token counts,
//! request parsing ([`protocol`]), translation between the dialects ([`translate`]) and
//! metering of answers ([`meter`]). Its errors are [`WireError`]; the gateway turns them into
//! responses.

pub mod json_spans;
pub mod meter;
pub mod protocol;
pub mod sse;
pub mod tokens;
pub mod translate;

/// What the wire layer refuses: the client's body or a field of it, or a translation the
/// backend's dialect has no counterpart for. [`crate::wire::WireError`] turns each into a
/// response in the client's dialect.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The body is not JSON, or not the shape of the operation.
    #[error("We could not parse the JSON body of your request: {0}")]
    InvalidJson(String),
    /// A field is out of its bounds or of the wrong type.
    #[error("{message}")]
    InvalidField {
        param: &'static str,
        message: String,
    },
    /// A field of the client's request has no counterpart in the backend's dialect.
    #[error("{message} (field `{param}`).")]
    Untranslatable { param: String, message: String },
    /// A pairing of formats the gateway never asks for: a bug, not the client's fault.
    #[error("no translation between these formats")]
    NoTranslation,
}

/// One stage of an answer's body on its way to the client: the translator into the client's
/// format, the splice of a resumed stream, the meter, the guardrails and the secret redactor
/// all take bytes in and give bytes out, and `crate::request::exchange` runs them as one chain
/// on both I/O paths.
pub trait BodyStage {
    /// Take `input`. `None`: it passes on unchanged; `Some`: what passes on instead (possibly
    /// nothing yet, while the stage holds bytes back).
    fn feed(&mut self, input: &[u8]) -> Option<bytes::Bytes>;

    /// The end of the body: take `input` (the rest the stages before gave) and give what is
    /// left to pass on, the bytes held back included.
    fn finish(&mut self, input: &[u8]) -> bytes::Bytes;
}

impl BodyStage for translate::ResponseTranslator {
    fn feed(&mut self, input: &[u8]) -> Option<bytes::Bytes> {
        Some(translate::ResponseTranslator::feed(self, input))
    }

    fn finish(&mut self, input: &[u8]) -> bytes::Bytes {
        let mut out = if input.is_empty() {
            Vec::new()
        } else {
            translate::ResponseTranslator::feed(self, input).to_vec()
        };
        out.extend_from_slice(&translate::ResponseTranslator::finish(self));
        bytes::Bytes::from(out)
    }
}
