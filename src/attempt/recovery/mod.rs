//! Streams that finish on a fallback (`stream_recovery` on a model): when a committed stream
//! is cut or stalls, the next candidate gets the same request — with the text already sent
//! appended as a partial assistant turn (`continue`, where the backend can prefill), or as it
//! was (`restart`) — and only the continuation reaches the client, in the same stream
//! ([`splice::Splice`]: same ids, one finish, usage of both attempts).
//!
//! Tool-call streams, several choices and reasoning streams are not resumed: the client gets
//! the honest error event instead.

pub mod splice;

use crate::error::GatewayError;
use crate::types::dialect::Wire;
use crate::wire::meter::Usage;
use crate::wire::protocol::{self, ParsedRequest};
use crate::wire::translate;
use bytes::Bytes;
use serde_json::{json, Value};

/// How a broken stream is resumed on the next candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// The text sent so far goes as a partial assistant turn; the backend continues it.
    Continue,
    /// The backend regenerates; the text already sent is skipped if the new one starts with
    /// it exactly.
    Restart,
}

impl Resume {
    pub fn label(self) -> &'static str {
        match self {
            Resume::Continue => "continue",
            Resume::Restart => "restart",
        }
    }
}

/// The continuation's upstream body, and the text the splice must skip.
pub struct Continuation {
    pub body: Bytes,
    pub skip: String,
}

/// The request the next candidate gets: `sent` is the assistant text the client already has.
pub fn continuation(
    request: &ParsedRequest,
    resume: Resume,
    sent: &str,
    upstream: Wire,
    model: &str,
) -> Result<Continuation, GatewayError> {
    // Anthropic refuses a prefill ending in white space: send it trimmed, skip the rest.
    let prefill = sent.trim_end();
    if resume == Resume::Restart || prefill.is_empty() {
        let (body, _) = translate::attempt_body(request, upstream, model)?;
        return Ok(Continuation {
            body,
            skip: sent.to_string(),
        });
    }
    let mut body: Value = serde_json::from_slice(&request.body)
        .map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return Err(GatewayError::Internal);
    };
    messages.push(json!({"role": "assistant", "content": prefill}));
    let prefilled = protocol::parse(request.operation, Bytes::from(body.to_string()))?;
    let (mut body, _) = translate::attempt_body(&prefilled, upstream, model)?;
    if upstream == Wire::OpenAi {
        // vLLM's (and SGLang's) switch for continuing the last assistant message.
        let mut v: Value =
            serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
        v["continue_final_message"] = Value::Bool(true);
        v["add_generation_prompt"] = Value::Bool(false);
        body = Bytes::from(v.to_string());
    }
    Ok(Continuation {
        body,
        skip: sent[prefill.len()..].to_string(),
    })
}

/// The first attempt's share of the usage: what the provider reported of the input, else the
/// estimate, and the output estimated from what was sent.
pub fn first_share(
    reported: Option<Usage>,
    prompt_estimate: u64,
    deltas: u64,
    text_bytes: u64,
) -> Usage {
    Usage {
        input: reported
            .map(|u| u.input)
            .filter(|i| *i > 0)
            .unwrap_or(prompt_estimate),
        output: crate::wire::tokens::estimate_output(deltas, text_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::Operation;

    fn chat() -> ParsedRequest {
        let body =
            r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"Tell a story"}]}"#;
        protocol::parse(Operation::Chat, Bytes::from(body)).unwrap()
    }

    #[test]
    fn continue_prefills_the_sent_text_and_restart_sends_the_request_as_it_was() {
        let c = continuation(&chat(), Resume::Continue, "Once upon ", Wire::OpenAi, "up").unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(v["model"], "up");
        assert_eq!(
            v["messages"][1],
            json!({"role": "assistant", "content": "Once upon"})
        );
        assert_eq!(v["continue_final_message"], true);
        assert_eq!(v["add_generation_prompt"], false);
        assert_eq!(
            c.skip, " ",
            "the trimmed white space is skipped if repeated"
        );

        let c = continuation(&chat(), Resume::Continue, "Once", Wire::Anthropic, "claude").unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(
            v["messages"].as_array().unwrap().last().unwrap()["role"],
            "assistant"
        );
        assert!(v.get("continue_final_message").is_none());

        let c = continuation(&chat(), Resume::Restart, "Once upon", Wire::OpenAi, "up").unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(v["messages"].as_array().unwrap().len(), 1);
        assert_eq!(c.skip, "Once upon");
    }
}
