//! Client requests: which operation, what the body says, and the body each upstream attempt sends.
//!
//! Parsing validates the whole JSON body once and remembers where the fields the gateway
//! rewrites sit in the original bytes. Rewriting for an attempt (the upstream model name, and
//! `stream_options.include_usage` for metering) is then a splice of those spans, so a 1 MiB
//! agent history is copied once per attempt, never re-serialised.

use crate::dialect::{Dialect, Wire};
use crate::error::GatewayError;
use crate::tokens;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::Range;

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
    /// OpenAI `POST /v1/responses` (stateless: passed through, or translated via Chat).
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

/// The fields the gateway reads, kept raw (a JSON `null` stays `Some("null")`, so its span
/// is known and a rewrite replaces it instead of adding a duplicate key).
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default, deserialize_with = "raw")]
    model: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    system: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    tools: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    prompt: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    input: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    instructions: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    max_output_tokens: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    n: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    best_of: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    thinking: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    functions: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    response_format: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    text: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    suffix: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    output_config: Option<&'a RawValue>,
}

/// The largest output-token cap a request may ask for (`max_tokens`, `max_completion_tokens`,
/// `max_output_tokens`, `thinking.budget_tokens`): 2^24, far above any model's output limit,
/// and small enough that every reservation and price computed from it stays exact.
pub const MAX_OUTPUT_TOKENS: u64 = 1 << 24;

/// The most completions one request may ask for (`n`, `best_of`): OpenAI's own ceiling.
pub const MAX_CHOICES: u64 = 128;

/// A client-supplied count: absent or `null` is `None`; otherwise an integer in
/// `min..=max`, or a 400 naming `param`.
fn bounded(
    raw: Option<&RawValue>,
    param: &'static str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, GatewayError> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(None);
    };
    match serde_json::from_str::<u64>(raw.get()) {
        Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
        _ => Err(invalid(
            param,
            format!("{param} must be an integer from {min} to {max}"),
        )),
    }
}

/// An object's `format` (Responses `text`, Anthropic `output_config`).
#[derive(Deserialize)]
struct FormatOf<'a> {
    #[serde(borrow, default, deserialize_with = "raw")]
    format: Option<&'a RawValue>,
}

/// A `response_format` or `text.format` asking for JSON.
fn format_is_json(raw: Option<&RawValue>) -> bool {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<&'a str>,
    }
    raw.and_then(|r| serde_json::from_str::<Kind>(r.get()).ok())
        .is_some_and(|k| matches!(k.kind, Some("json_object" | "json_schema")))
}

#[derive(Deserialize)]
struct Thinking<'a> {
    #[serde(borrow, default, deserialize_with = "raw")]
    budget_tokens: Option<&'a RawValue>,
}

/// `thinking.budget_tokens`, bounded like the output caps (the thinking object itself is the
/// backend's to validate).
fn thinking_budget(raw: Option<&RawValue>) -> Result<(), GatewayError> {
    let Some(raw) = raw else { return Ok(()) };
    let Ok(thinking) = serde_json::from_str::<Thinking>(raw.get()) else {
        return Ok(());
    };
    bounded(
        thinking.budget_tokens,
        "thinking.budget_tokens",
        0,
        MAX_OUTPUT_TOKENS,
    )
    .map(drop)
}

fn raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Deepest nesting accepted (as serde_json's own limit for the values it builds).
const MAX_DEPTH: usize = 128;

/// Reject bodies nested deeper than [`MAX_DEPTH`]; fields the gateway skips are otherwise
/// never depth-checked, and later stages (translators, upstreams) should not see them.
fn check_depth(body: &[u8]) -> Result<(), GatewayError> {
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
                    return Err(GatewayError::InvalidJson(format!(
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

fn invalid(param: &'static str, message: impl Into<String>) -> GatewayError {
    GatewayError::InvalidField {
        param,
        message: message.into(),
    }
}

/// Validate and read a request body for `operation`.
pub fn parse(operation: Operation, body: Bytes) -> Result<ParsedRequest, GatewayError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(GatewayError::InvalidJson(
            "the body must be a JSON object".into(),
        ));
    }
    check_depth(&body)?;
    // serde_json checks UTF-8 only in the strings it decodes, not in those it skips, and the
    // body goes upstream nearly as it came: JSON text must be UTF-8 (RFC 8259 §8.1).
    if std::str::from_utf8(&body).is_err() {
        return Err(GatewayError::InvalidJson(
            "the body is not valid UTF-8".into(),
        ));
    }
    let fields: Fields =
        serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;

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

    // Every output cap a client sends is bounded, whichever the operation honours.
    let cap = |raw, param| bounded(raw, param, 0, MAX_OUTPUT_TOKENS);
    let max_completion_tokens = cap(fields.max_completion_tokens, "max_completion_tokens")?;
    let max_tokens = cap(fields.max_tokens, "max_tokens")?;
    let max_output_tokens = cap(fields.max_output_tokens, "max_output_tokens")?;
    thinking_budget(fields.thinking)?;
    let max_tokens = match operation {
        Operation::Chat => max_completion_tokens.or(max_tokens),
        Operation::Completion | Operation::Messages | Operation::CountTokens => max_tokens,
        Operation::Responses => max_output_tokens,
        Operation::Embeddings => None,
    };
    if operation == Operation::Messages && max_tokens.is_none() {
        return Err(invalid("max_tokens", "max_tokens: Field required"));
    }
    let n = bounded(fields.n, "n", 1, MAX_CHOICES)?.unwrap_or(1);
    let best_of = bounded(fields.best_of, "best_of", 1, MAX_CHOICES)?.unwrap_or(1);
    let choices = match operation {
        Operation::Chat => n,
        Operation::Completion => n.max(best_of),
        Operation::Embeddings
        | Operation::Messages
        | Operation::CountTokens
        | Operation::Responses => 1,
    };

    // Everything the model reads counts: tools, schemas and system text too.
    let prompt_parts = match operation {
        Operation::Chat => [
            fields.messages,
            fields.tools,
            fields.functions,
            fields.response_format,
        ],
        Operation::Completion => [fields.prompt, fields.suffix, None, None],
        Operation::Embeddings => [fields.input, None, None, None],
        Operation::Responses => [fields.input, fields.instructions, fields.tools, fields.text],
        Operation::Messages | Operation::CountTokens => {
            [fields.messages, fields.system, fields.tools, None]
        }
    };
    let prompt_len = prompt_parts.iter().flatten().map(|r| r.get().len()).sum();
    let json_content = match operation {
        Operation::Chat => format_is_json(fields.response_format),
        Operation::Responses => fields
            .text
            .and_then(|t| serde_json::from_str::<FormatOf>(t.get()).ok())
            .is_some_and(|t| format_is_json(t.format)),
        Operation::Messages => fields
            .output_config
            .and_then(|c| serde_json::from_str::<FormatOf>(c.get()).ok())
            .is_some_and(|c| c.format.is_some_and(|f| f.get() != "null")),
        Operation::Completion | Operation::Embeddings | Operation::CountTokens => false,
    };
    let prompt_tokens_estimate = tokens::estimate_from_json_len(prompt_len);

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
