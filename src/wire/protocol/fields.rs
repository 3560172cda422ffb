//! The fields of a request body the gateway reads, and what it concludes from them: the
//! output cap the backend honours (every client number bounded, a 400 naming the field past
//! its ceiling), how many completions run, how much the model reads, whether the answer is
//! JSON.

use super::{invalid, Operation};
use crate::wire::WireError;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The fields the gateway reads, kept raw (a JSON `null` stays `Some("null")`, so its span
/// is known and a rewrite replaces it instead of adding a duplicate key).
#[derive(Deserialize)]
pub(super) struct Fields<'a> {
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) model: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) stream: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) stream_options: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) messages: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) system: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) tools: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) prompt: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) input: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) instructions: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) max_output_tokens: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) n: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) best_of: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) thinking: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) functions: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) response_format: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) text: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) suffix: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) output_config: Option<&'a RawValue>,
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
) -> Result<Option<u64>, WireError> {
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
    pub(super) format: Option<&'a RawValue>,
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
    pub(super) budget_tokens: Option<&'a RawValue>,
}

/// `thinking.budget_tokens`, bounded like the output caps (the thinking object itself is the
/// backend's to validate).
fn thinking_budget(raw: Option<&RawValue>) -> Result<(), WireError> {
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

impl Fields<'_> {
    /// The output cap the backend honours for `operation` (chat: `max_completion_tokens`,
    /// else `max_tokens`; completions and Messages: `max_tokens`; Responses:
    /// `max_output_tokens`). Every cap the client sent is bounded, honoured or not.
    pub(super) fn output_cap(&self, operation: Operation) -> Result<Option<u64>, WireError> {
        let cap = |raw, param| bounded(raw, param, 0, MAX_OUTPUT_TOKENS);
        let max_completion_tokens = cap(self.max_completion_tokens, "max_completion_tokens")?;
        let max_tokens = cap(self.max_tokens, "max_tokens")?;
        let max_output_tokens = cap(self.max_output_tokens, "max_output_tokens")?;
        thinking_budget(self.thinking)?;
        let honoured = match operation {
            Operation::Chat => max_completion_tokens.or(max_tokens),
            Operation::Completion | Operation::Messages | Operation::CountTokens => max_tokens,
            Operation::Responses => max_output_tokens,
            Operation::Embeddings => None,
        };
        if operation == Operation::Messages && honoured.is_none() {
            return Err(invalid("max_tokens", "max_tokens: Field required"));
        }
        Ok(honoured)
    }

    /// Completions generated (`n`, or `best_of` when larger), each up to the output cap.
    pub(super) fn choices(&self, operation: Operation) -> Result<u64, WireError> {
        let n = bounded(self.n, "n", 1, MAX_CHOICES)?.unwrap_or(1);
        let best_of = bounded(self.best_of, "best_of", 1, MAX_CHOICES)?.unwrap_or(1);
        Ok(match operation {
            Operation::Chat => n,
            Operation::Completion => n.max(best_of),
            Operation::Embeddings
            | Operation::Messages
            | Operation::CountTokens
            | Operation::Responses => 1,
        })
    }

    /// The JSON bytes the model reads: messages or input, and the tools, schemas and system
    /// text that go with them.
    pub(super) fn prompt_len(&self, operation: Operation) -> usize {
        let parts = match operation {
            Operation::Chat => [
                self.messages,
                self.tools,
                self.functions,
                self.response_format,
            ],
            Operation::Completion => [self.prompt, self.suffix, None, None],
            Operation::Embeddings => [self.input, None, None, None],
            Operation::Responses => [self.input, self.instructions, self.tools, self.text],
            Operation::Messages | Operation::CountTokens => {
                [self.messages, self.system, self.tools, None]
            }
        };
        parts.iter().flatten().map(|r| r.get().len()).sum()
    }

    /// The answer's content is JSON (JSON mode or structured output).
    pub(super) fn json_content(&self, operation: Operation) -> bool {
        match operation {
            Operation::Chat => format_is_json(self.response_format),
            Operation::Responses => self
                .text
                .and_then(|t| serde_json::from_str::<FormatOf>(t.get()).ok())
                .is_some_and(|t| format_is_json(t.format)),
            Operation::Messages => self
                .output_config
                .and_then(|c| serde_json::from_str::<FormatOf>(c.get()).ok())
                .is_some_and(|c| c.format.is_some_and(|f| f.get() != "null")),
            Operation::Completion | Operation::Embeddings | Operation::CountTokens => false,
        }
    }
}
