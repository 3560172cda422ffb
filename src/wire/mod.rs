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
