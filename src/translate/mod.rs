//! Protocol adaptation: a client speaking one dialect (OpenAI Chat Completions or Anthropic
//! Messages) served by a backend speaking the other, or Gemini's API ([`gemini`], through
//! Chat Completions).
//!
//! Requests are translated per attempt ([`attempt_body`]), since a plan's targets may speak
//! different dialects. Responses go through a [`ResponseTranslator`] chosen when the answer is
//! committed: event streams are translated event by event as they pass, JSON bodies (answers
//! and errors) once complete. Same-dialect traffic is never parsed here.

pub mod gemini;
pub mod request;
pub mod response;
pub mod stream;

#[cfg(test)]
mod tests;

use crate::dialect::{Dialect, Wire};
use crate::error::GatewayError;
use crate::protocol::{Operation, ParsedRequest};
use bytes::Bytes;
use gemini::stream::GeminiToChunks;
use serde_json::Value;
use stream::{ChunksToEvents, EventsToChunks};

pub type JsonObject = serde_json::Map<String, Value>;

/// Largest JSON response body translated; a larger one is answered with an error.
const MAX_JSON_BODY: usize = 32 * 1024 * 1024;

pub fn untranslatable(param: impl Into<String>, message: impl Into<String>) -> GatewayError {
    GatewayError::Untranslatable {
        param: param.into(),
        message: message.into(),
    }
}

/// Seconds since the epoch, for `created` fields.
pub fn now() -> u64 {
    crate::clock::unix_seconds()
}

/// The body one attempt sends to a backend speaking `upstream`, with `model` set.
pub fn attempt_body(
    request: &ParsedRequest,
    upstream: Wire,
    model: &str,
) -> Result<Bytes, GatewayError> {
    let client = request.operation.dialect();
    if upstream.speaks(client) {
        return Ok(request.upstream_body(model));
    }
    let body: JsonObject = serde_json::from_slice(&request.body)
        .map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let translated = match (upstream, client) {
        (Wire::OpenAi, _) => request::messages_to_chat(&body, model)?,
        (Wire::Anthropic, _) => request::chat_to_messages(&body, model)?,
        (Wire::Gemini, _)
            if !matches!(request.operation, Operation::Chat | Operation::Messages) =>
        {
            return Err(untranslatable(
                "model",
                "this model's Gemini backend serves chat (Chat Completions and Messages) only",
            ))
        }
        (Wire::Gemini, Dialect::OpenAi) => gemini::request::chat_to_gemini(&body)?,
        (Wire::Gemini, Dialect::Anthropic) => match request::messages_to_chat(&body, model)? {
            Value::Object(chat) => gemini::request::chat_to_gemini(&chat)?,
            _ => return Err(GatewayError::Internal),
        },
    };
    Ok(Bytes::from(translated.to_string()))
}

/// Rewrites a committed response into the client's dialect.
#[derive(Debug)]
pub enum ResponseTranslator {
    ChunksToEvents(Box<ChunksToEvents>),
    EventsToChunks(Box<EventsToChunks>),
    /// A Gemini stream as chat chunks, and those as Anthropic events for Anthropic clients.
    FromGemini(Box<GeminiToChunks>, Option<Box<ChunksToEvents>>),
    /// A whole JSON body, translated at its end.
    Json {
        client: Dialect,
        upstream: Wire,
        status: u16,
        body: Vec<u8>,
    },
}

impl ResponseTranslator {
    /// The translator for a response from `upstream` to `client`, or `None` when both speak
    /// the same dialect.
    pub fn new(client: Dialect, upstream: Wire, status: u16, sse: bool) -> Option<Self> {
        if upstream.speaks(client) {
            return None;
        }
        if !sse || status >= 400 {
            return Some(ResponseTranslator::Json {
                client,
                upstream,
                status,
                body: Vec::new(),
            });
        }
        Some(match (upstream, client) {
            (Wire::OpenAi, _) => ResponseTranslator::ChunksToEvents(Box::default()),
            (Wire::Anthropic, _) => ResponseTranslator::EventsToChunks(Box::default()),
            (Wire::Gemini, client) => ResponseTranslator::FromGemini(
                Box::new(GeminiToChunks::new()),
                (client == Dialect::Anthropic).then(Box::default),
            ),
        })
    }

    /// Translate one upstream chunk; what the client gets now (possibly nothing).
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        match self {
            ResponseTranslator::ChunksToEvents(t) => Bytes::from(t.feed(chunk)),
            ResponseTranslator::EventsToChunks(t) => Bytes::from(t.feed(chunk)),
            ResponseTranslator::FromGemini(chunks, events) => {
                let chat = chunks.feed(chunk);
                Bytes::from(match events {
                    Some(e) => e.feed(&chat),
                    None => chat,
                })
            }
            ResponseTranslator::Json { body, .. } => {
                if body.len() <= MAX_JSON_BODY {
                    body.extend_from_slice(chunk);
                }
                Bytes::new()
            }
        }
    }

    /// The end of the upstream body: the rest of the client's body.
    pub fn finish(&mut self) -> Bytes {
        match self {
            ResponseTranslator::ChunksToEvents(t) => Bytes::from(t.finish()),
            ResponseTranslator::EventsToChunks(t) => Bytes::from(t.finish()),
            ResponseTranslator::FromGemini(chunks, events) => {
                let chat = chunks.finish();
                Bytes::from(match events {
                    Some(e) => {
                        let mut out = e.feed(&chat);
                        out.extend(e.finish());
                        out
                    }
                    None => chat,
                })
            }
            ResponseTranslator::Json {
                client,
                upstream,
                status,
                body,
            } => Bytes::from(translate_json(*client, *upstream, *status, body).to_string()),
        }
    }
}

fn translate_json(client: Dialect, upstream: Wire, status: u16, body: &[u8]) -> Value {
    let parsed: Option<Value> = (body.len() <= MAX_JSON_BODY)
        .then(|| serde_json::from_slice(body).ok())
        .flatten();
    // Gemini's answer goes through Chat Completions, the hub.
    let parsed = match upstream {
        Wire::Gemini if status < 400 => parsed.map(|v| gemini::response::to_completion(&v)),
        Wire::Gemini | Wire::OpenAi | Wire::Anthropic => parsed,
    };
    match (client, status < 400, parsed) {
        (Dialect::Anthropic, true, Some(v)) => match upstream {
            Wire::OpenAi | Wire::Gemini => response::completion_to_message(&v),
            Wire::Anthropic => v,
        },
        (Dialect::OpenAi, true, Some(v)) => match upstream {
            Wire::Anthropic => response::message_to_completion(&v),
            Wire::OpenAi | Wire::Gemini => v,
        },
        (Dialect::Anthropic, true, None) => response::error_to_anthropic(
            502,
            b"the upstream answer could not be translated (not JSON, or too large)",
        ),
        (Dialect::OpenAi, true, None) => response::error_to_openai(
            502,
            b"the upstream answer could not be translated (not JSON, or too large)",
        ),
        (Dialect::Anthropic, false, _) => response::error_to_anthropic(status, body),
        (Dialect::OpenAi, false, _) => response::error_to_openai(status, body),
    }
}
