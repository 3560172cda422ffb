//! Client requests: which operation, what the body says, and the body each upstream attempt sends.
//!
//! Parsing validates the whole JSON body once and remembers where the fields the gateway
//! rewrites sit in the original bytes. Rewriting for an attempt (the upstream model name, and
//! `stream_options.include_usage` for metering) is then a splice of those spans, so a 1 MiB
//! agent history is copied once per attempt, never re-serialised.

use crate::types::dialect::{Dialect, Wire};
use crate::wire::tokens;
use crate::wire::WireError;
use bytes::Bytes;
use serde_json::value::RawValue;
use std::ops::Range;

mod fields;
use fields::Fields;
pub use fields::{MAX_CHOICES, MAX_OUTPUT_TOKENS};

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// The operations the gateway proxies: OpenAI's, and Anthropic's Messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    Completion,
    Embeddings,
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// Anthropic `POST /v1/messages/count_tokens`, answered locally.
    CountTokens,
    /// OpenAI `POST /v1/responses` (passed through, or translated via Chat with the gateway
    /// keeping the conversation).
    Responses,
}

impl Operation {
    /// Match a request path (already stripped of its query).
    pub fn from_path(path: &str) -> Option<Operation> {
        match path.trim_end_matches('/') {
            "/v1/chat/completions" => Some(Operation::Chat),
            "/v1/completions" => Some(Operation::Completion),
            "/v1/embeddings" => Some(Operation::Embeddings),
            "/v1/messages" => Some(Operation::Messages),
            "/v1/messages/count_tokens" => Some(Operation::CountTokens),
            "/v1/responses" => Some(Operation::Responses),
            _ => None,
        }
    }

    /// Path below the provider's base URL.
    pub fn upstream_path(self) -> &'static str {
        match self {
            Operation::Chat => "/chat/completions",
            Operation::Completion => "/completions",
            Operation::Embeddings => "/embeddings",
            Operation::Messages => "/messages",
            Operation::CountTokens => "/messages/count_tokens",
            Operation::Responses => "/responses",
        }
    }

    /// The operation a backend speaking `wire` performs for this one (a chat in the other
    /// format's words; the rest have no counterpart and stay as they are).
    pub fn served_by(self, wire: Wire) -> Operation {
        match (self, wire) {
            (Operation::Messages | Operation::Responses, Wire::OpenAi) => Operation::Chat,
            (Operation::Chat | Operation::Responses, Wire::Anthropic) => Operation::Messages,
            (op, _) => op,
        }
    }

    /// The dialect a client of this operation speaks (its errors' and headers' shape).
    pub fn dialect(self) -> Dialect {
        match self {
            Operation::Messages | Operation::CountTokens => Dialect::Anthropic,
            Operation::Chat
            | Operation::Completion
            | Operation::Embeddings
            | Operation::Responses => Dialect::OpenAi,
        }
    }

    /// The format the client's body is written in.
    pub fn wire(self) -> Wire {
        match self {
            Operation::Messages | Operation::CountTokens => Wire::Anthropic,
            Operation::Responses => Wire::Responses,
            Operation::Chat | Operation::Completion | Operation::Embeddings => Wire::OpenAi,
        }
    }

    /// `gen_ai.operation.name`.
    pub fn label(self) -> &'static str {
        match self {
            Operation::Chat | Operation::Messages | Operation::Responses => "chat",
            Operation::Completion => "text_completion",
            Operation::Embeddings => "embeddings",
            Operation::CountTokens => "count_tokens",
        }
    }

    fn streams(self) -> bool {
        !matches!(self, Operation::Embeddings | Operation::CountTokens)
    }
}

/// What the gateway needs to know about a request body.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub operation: Operation,
    /// The client's original body.
    pub body: Bytes,
    /// The virtual model the client asked for.
    pub model: String,
    pub stream: bool,
    /// The client itself asked for `stream_options.include_usage`.
    pub client_wants_usage: bool,
    /// The output-token cap the backend honours for this operation, when given (chat:
    /// `max_completion_tokens`, else `max_tokens`; completions and Messages: `max_tokens`;
    /// Responses: `max_output_tokens`). At most [`MAX_OUTPUT_TOKENS`].
    pub max_tokens: Option<u64>,
    /// The answer's content is JSON (JSON mode or structured output), so the guard matches
    /// it on its decoded value.
    pub json_content: bool,
    /// How many completions the request generates (`n`, or `best_of` when larger): each may
    /// run to `max_tokens`. At least 1, at most [`MAX_CHOICES`].
    pub choices: u64,
    /// A cheap estimate of the prompt's tokens (used when the upstream reports no usage).
    pub prompt_tokens_estimate: u64,
    model_span: Range<usize>,
    stream_options: Option<(Range<usize>, Option<JsonObject>)>,
}

/// Deepest nesting accepted (as serde_json's own limit for the values it builds).
const MAX_DEPTH: usize = 128;

/// Reject bodies nested deeper than [`MAX_DEPTH`]; fields the gateway skips are otherwise
/// never depth-checked, and later stages (translators, upstreams) should not see them.
fn check_depth(body: &[u8]) -> Result<(), WireError> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                // Jump through the string: only a quote or a backslash can end or escape it.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &body[i.min(body.len())..]) {
                        Some(j) if body[i + j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j;
                            break;
                        }
                        None => return Ok(()),
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(WireError::InvalidJson(format!(
                        "the body is nested deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn span_of(body: &[u8], raw: &RawValue) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    start..start + raw.get().len()
}

fn invalid(param: &'static str, message: impl Into<String>) -> WireError {
    WireError::InvalidField {
        param,
        message: message.into(),
    }
}

/// Validate and read a request body for `operation`.
pub fn parse(operation: Operation, body: Bytes) -> Result<ParsedRequest, WireError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(WireError::InvalidJson(
            "the body must be a JSON object".into(),
        ));
    }
    check_depth(&body)?;
    // serde_json checks UTF-8 only in the strings it decodes, not in those it skips, and the
    // body goes upstream nearly as it came: JSON text must be UTF-8 (RFC 8259 §8.1).
    if std::str::from_utf8(&body).is_err() {
        return Err(WireError::InvalidJson("the body is not valid UTF-8".into()));
    }
    let fields: Fields =
        serde_json::from_slice(&body).map_err(|e| WireError::InvalidJson(e.to_string()))?;

    let model_raw = fields
        .model
        .ok_or_else(|| invalid("model", "you must provide a model parameter"))?;
    let model: String = serde_json::from_str(model_raw.get())
        .map_err(|_| invalid("model", "model must be a string"))?;
    if model.is_empty() {
        return Err(invalid("model", "you must provide a model parameter"));
    }
    let model_span = span_of(&body, model_raw);

    let stream = match fields.stream.map(|r| r.get()) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("stream", "stream must be a boolean")),
    };
    if stream && !operation.streams() {
        return Err(invalid("stream", "this endpoint does not stream"));
    }

    let mut client_wants_usage = false;
    let stream_options = match fields.stream_options {
        None => None,
        Some(raw) => {
            let span = span_of(&body, raw);
            let map: Option<JsonObject> = serde_json::from_str(raw.get())
                .map_err(|_| invalid("stream_options", "stream_options must be an object"))?;
            if let Some(m) = &map {
                match m.get("include_usage") {
                    None | Some(serde_json::Value::Null) => {}
                    Some(serde_json::Value::Bool(b)) => client_wants_usage = *b,
                    Some(_) => {
                        return Err(invalid(
                            "stream_options",
                            "stream_options.include_usage must be a boolean",
                        ))
                    }
                }
            }
            Some((span, map))
        }
    };

    let max_tokens = fields.output_cap(operation)?;
    let choices = fields.choices(operation)?;
    let json_content = fields.json_content(operation);
    let prompt_tokens_estimate = tokens::estimate_from_json_len(fields.prompt_len(operation));

    Ok(ParsedRequest {
        operation,
        body,
        model,
        stream,
        client_wants_usage,
        max_tokens,
        choices,
        json_content,
        prompt_tokens_estimate,
        model_span,
        stream_options,
    })
}

impl ParsedRequest {
    /// The gateway adds `include_usage` upstream so it can meter the stream, and strips the
    /// extra usage chunk before the client sees it.
    pub fn injects_usage(&self) -> bool {
        self.stream
            && !self.client_wants_usage
            && matches!(self.operation, Operation::Chat | Operation::Completion)
    }

    /// The body for one upstream attempt: `model` set to `upstream_model`, plus
    /// `include_usage` when [`Self::injects_usage`].
    pub fn upstream_body(&self, upstream_model: &str) -> Bytes {
        let model_json = serde_json::Value::from(upstream_model).to_string();
        let mut edits: Vec<(Range<usize>, String)> = vec![(self.model_span.clone(), model_json)];
        if self.injects_usage() {
            match &self.stream_options {
                Some((span, map)) => {
                    let mut m = map.clone().unwrap_or_default();
                    m.insert("include_usage".into(), serde_json::Value::Bool(true));
                    edits.push((span.clone(), serde_json::Value::Object(m).to_string()));
                }
                None => {
                    let open = self.body.iter().position(|&b| b == b'{').unwrap_or(0) + 1;
                    edits.push((
                        open..open,
                        "\"stream_options\":{\"include_usage\":true},".to_string(),
                    ));
                }
            }
        }
        edits.sort_by_key(|(r, _)| r.start);
        let extra: usize = edits.iter().map(|(_, s)| s.len()).sum();
        let mut out = Vec::with_capacity(self.body.len() + extra);
        let mut at = 0;
        for (range, text) in edits {
            out.extend_from_slice(&self.body[at..range.start]);
            out.extend_from_slice(text.as_bytes());
            at = range.end;
        }
        out.extend_from_slice(&self.body[at..]);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests;
