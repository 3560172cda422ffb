//! Protocol adaptation between the [`Wire`] formats: clients speak Chat Completions, Messages
//! or Responses ([`responses`]); backends speak Chat Completions, Messages, Responses or
//! Gemini's API ([`gemini`]).
//!
//! Chat Completions is the hub: a request is translated into chat (unless it is one), then
//! from chat into the backend's format (unless that is chat); an answer the other way round.
//! So each format is written once against chat, and every pair works.
//!
//! Requests are translated per attempt ([`attempt_body`]), since a plan's targets may speak
//! different formats. Responses go through a [`ResponseTranslator`] chosen when the answer is
//! committed: event streams are translated event by event as they pass, JSON bodies (answers
//! and errors) once complete. Same-format traffic is never parsed here.

mod gemini;
pub mod request;
mod response;
pub mod responses;
mod shape;
pub mod stream;
pub mod text_delta;

#[cfg(test)]
mod tests;

use crate::types::dialect::{Dialect, Wire};
use crate::wire::protocol::{Operation, ParsedRequest};
use crate::wire::WireError;
use bytes::Bytes;
use gemini::stream::GeminiToChunks;
use responses::stream::ChunksToResponses;
use serde_json::Value;
pub use shape::Shape;
use shape::ShapeChunks;
use stream::{ChunksToEvents, EventsToChunks};

pub type JsonObject = serde_json::Map<String, Value>;

/// Largest JSON response body translated; a larger one is answered with an error.
const MAX_JSON_BODY: usize = 32 * 1024 * 1024;

pub fn untranslatable(param: impl Into<String>, message: impl Into<String>) -> WireError {
    WireError::Untranslatable {
        param: param.into(),
        message: message.into(),
    }
}

/// Seconds since the epoch, for `created` fields.
pub fn now() -> u64 {
    crate::types::clock::unix_seconds()
}

/// The body one attempt sends to a backend speaking `upstream`, with `model` set, and the
/// shape its answer needs on the way back ([`Shape`]).
pub fn attempt_body(
    request: &ParsedRequest,
    upstream: Wire,
    model: &str,
) -> Result<(Bytes, Shape), WireError> {
    let client = request.operation.wire();
    if upstream == client {
        return Ok((request.upstream_body(model), Shape::default()));
    }
    if upstream == Wire::Gemini
        && !matches!(
            request.operation,
            Operation::Chat | Operation::Messages | Operation::Responses
        )
    {
        return Err(untranslatable(
            "model",
            "this model's Gemini backend serves chat (Chat Completions, Messages, Responses) only",
        ));
    }
    let body: JsonObject =
        serde_json::from_slice(&request.body).map_err(|e| WireError::InvalidJson(e.to_string()))?;
    // Into the hub...
    let chat = match client {
        Wire::OpenAi => None,
        Wire::Anthropic => Some(request::messages_to_chat(&body, model)?),
        Wire::Responses => Some(responses::request::responses_to_chat(&body, model)?),
        Wire::Gemini => return Err(WireError::NoTranslation),
    };
    let chat_object = match &chat {
        Some(Value::Object(o)) => o,
        Some(_) => return Err(WireError::NoTranslation),
        None => &body,
    };
    let shape = Shape::of(chat_object, upstream);
    // ...and out of it.
    let translated = match upstream {
        Wire::OpenAi => match chat {
            Some(c) => c,
            None => return Err(WireError::NoTranslation),
        },
        Wire::Anthropic => request::chat_to_messages(chat_object, model)?,
        Wire::Gemini => gemini::request::chat_to_gemini(chat_object)?,
        // Only a Responses client is sent to a backend serving Responses (same format).
        Wire::Responses => return Err(WireError::NoTranslation),
    };
    Ok((Bytes::from(translated.to_string()), shape))
}

/// A stream's way into chat chunks (from the backend's format).
#[derive(Debug)]
pub enum ToChat {
    Anthropic(Box<EventsToChunks>),
    Gemini(Box<GeminiToChunks>),
}

/// A stream's way out of chat chunks (into the client's format).
#[derive(Debug)]
pub enum FromChat {
    Anthropic(Box<ChunksToEvents>),
    Responses(Box<ChunksToResponses>),
}

impl ToChat {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        match self {
            ToChat::Anthropic(t) => t.feed(chunk),
            ToChat::Gemini(t) => t.feed(chunk),
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        match self {
            ToChat::Anthropic(t) => t.finish(),
            ToChat::Gemini(t) => t.finish(),
        }
    }
}

impl FromChat {
    fn feed(&mut self, chat: &[u8]) -> Vec<u8> {
        match self {
            FromChat::Anthropic(t) => t.feed(chat),
            FromChat::Responses(t) => t.feed(chat),
        }
    }

    /// The last chat bytes, and the end of the stream.
    fn finish(&mut self, chat: &[u8]) -> Vec<u8> {
        let mut out = self.feed(chat);
        out.extend(match self {
            FromChat::Anthropic(t) => t.finish(),
            FromChat::Responses(t) => t.finish(),
        });
        out
    }
}

/// Rewrites a committed response into the client's format.
#[derive(Debug)]
pub enum ResponseTranslator {
    /// An event stream, through chat chunks: either stage may be absent (chat on that side).
    Stream {
        to_chat: Option<ToChat>,
        /// The answer's shape, when the gateway emulates an option ([`shape`]).
        shape: Option<Box<ShapeChunks>>,
        from_chat: Option<FromChat>,
    },
    /// A whole JSON body, translated at its end.
    Json {
        client: Wire,
        dialect: Dialect,
        upstream: Wire,
        status: u16,
        shape: Shape,
        body: Vec<u8>,
        /// A Responses client's answer, once translated.
        response: Option<Value>,
    },
}

impl ResponseTranslator {
    /// The translator for a response from `upstream` to a client speaking `client` (errors in
    /// `dialect`), or `None` when both speak the same format.
    pub fn new(
        client: Wire,
        dialect: Dialect,
        upstream: Wire,
        status: u16,
        sse: bool,
    ) -> Option<Self> {
        if upstream == client {
            return None;
        }
        if !sse || status >= 400 {
            return Some(ResponseTranslator::Json {
                client,
                dialect,
                upstream,
                status,
                shape: Shape::default(),
                body: Vec::new(),
                response: None,
            });
        }
        let to_chat = match upstream {
            Wire::OpenAi | Wire::Responses => None,
            Wire::Anthropic => Some(ToChat::Anthropic(Box::default())),
            Wire::Gemini => Some(ToChat::Gemini(Box::new(GeminiToChunks::new()))),
        };
        let from_chat = match client {
            Wire::OpenAi | Wire::Gemini => None,
            Wire::Anthropic => Some(FromChat::Anthropic(Box::default())),
            Wire::Responses => Some(FromChat::Responses(Box::new(ChunksToResponses::new()))),
        };
        Some(ResponseTranslator::Stream {
            to_chat,
            shape: None,
            from_chat,
        })
    }

    /// The answer in `shape` (what [`attempt_body`] said its request needs).
    pub fn with_shape(mut self, wanted: Shape) -> Self {
        if wanted.is_plain() {
            return self;
        }
        match &mut self {
            ResponseTranslator::Stream { shape, .. } => {
                *shape = Some(Box::new(ShapeChunks::new(wanted)));
            }
            ResponseTranslator::Json { shape, .. } => *shape = wanted,
        }
        self
    }

    /// The prompt's estimated tokens, for a stream translated into Anthropic's events
    /// (`message_start` reports input usage before the backend's count is known).
    pub fn with_prompt_estimate(mut self, tokens: u64) -> Self {
        if let ResponseTranslator::Stream {
            from_chat: Some(FromChat::Anthropic(t)),
            ..
        } = &mut self
        {
            t.input_estimate = tokens;
        }
        self
    }

    /// The Responses object the client got, once the answer is through (a Responses client's
    /// translated answer only): what the conversation store keeps.
    pub fn completed_response(&self) -> Option<&Value> {
        match self {
            ResponseTranslator::Stream {
                from_chat: Some(FromChat::Responses(t)),
                ..
            } => t.completed.as_ref(),
            ResponseTranslator::Json { response, .. } => response.as_ref(),
            ResponseTranslator::Stream { .. } => None,
        }
    }

    /// Translate one upstream chunk; what the client gets now (possibly nothing).
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        match self {
            ResponseTranslator::Stream {
                to_chat,
                shape,
                from_chat,
            } => {
                // Chat bytes pass between the stages unchanged when a side speaks chat.
                let chat = match to_chat {
                    Some(t) => std::borrow::Cow::Owned(t.feed(chunk)),
                    None => std::borrow::Cow::Borrowed(chunk),
                };
                let chat = match shape {
                    Some(s) => std::borrow::Cow::Owned(s.feed(&chat)),
                    None => chat,
                };
                Bytes::from(match from_chat {
                    Some(t) => t.feed(&chat),
                    None => chat.into_owned(),
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
            ResponseTranslator::Stream {
                to_chat,
                shape,
                from_chat,
            } => {
                let chat = to_chat.as_mut().map(ToChat::finish).unwrap_or_default();
                let chat = match shape {
                    Some(s) => s.finish(&chat),
                    None => chat,
                };
                Bytes::from(match from_chat {
                    Some(t) => t.finish(&chat),
                    None => chat,
                })
            }
            ResponseTranslator::Json {
                client,
                dialect,
                upstream,
                status,
                shape,
                body,
                response,
            } => {
                let formats = (*client, *dialect, *upstream);
                let answer = translate_json(formats, *status, *shape, body);
                let out = Bytes::from(answer.to_string());
                if *client == Wire::Responses && *status < 400 && answer["object"] == "response" {
                    *response = Some(answer);
                }
                out
            }
        }
    }
}

fn translate_json(
    (client, dialect, upstream): (Wire, Dialect, Wire),
    status: u16,
    shape: Shape,
    body: &[u8],
) -> Value {
    const UNTRANSLATABLE: &[u8] =
        b"the upstream answer could not be translated (not JSON, or too large)";
    let parsed: Option<Value> = (body.len() <= MAX_JSON_BODY)
        .then(|| serde_json::from_slice(body).ok())
        .flatten();
    let answer = parsed.filter(|_| status < 400).map(|v| {
        // Into the hub...
        let mut chat = match upstream {
            Wire::OpenAi | Wire::Responses => v,
            Wire::Anthropic => response::message_to_completion(&v),
            Wire::Gemini => gemini::response::to_completion(&v),
        };
        shape.apply_to_completion(&mut chat);
        // ...and out of it.
        match client {
            Wire::OpenAi | Wire::Gemini => chat,
            Wire::Anthropic => response::completion_to_message(&chat),
            Wire::Responses => {
                let mut r = responses::response::completion_to_response(&chat);
                responses::response::make_ids_unique(&mut r);
                r
            }
        }
    });
    match (answer, status < 400, dialect) {
        (Some(v), _, _) => v,
        (None, true, Dialect::Anthropic) => response::error_to_anthropic(502, UNTRANSLATABLE),
        (None, true, Dialect::OpenAi) => response::error_to_openai(502, UNTRANSLATABLE),
        (None, false, Dialect::Anthropic) => response::error_to_anthropic(status, body),
        (None, false, Dialect::OpenAi) => response::error_to_openai(status, body),
    }
}
