//! Recognising a context-window overflow in an upstream's 400 body, by error code or by the
//! messages providers use: OpenAI's `context_length_exceeded`, Anthropic's "prompt is too
//! long", vLLM's and TGI's "maximum context length" and token-limit wordings, Gemini's
//! "exceeds the maximum number of tokens". Other 400s are the client's and never fail over.

/// Lower-case phrases that mean "the prompt does not fit".
const PHRASES: [&str; 8] = [
    "context_length_exceeded",
    "prompt is too long",
    "maximum context length",
    "context length exceeded",
    "exceeds the context window",
    "context window exceeded",
    "exceeds the maximum number of tokens",
    "input is too long",
];

/// Whether a 400 body says the context window was exceeded.
pub fn is_context_overflow(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_lowercase();
    let tgi = text.contains("max_new_tokens") && text.contains("must be <= ");
    PHRASES.iter().any(|p| text.contains(p)) || tgi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_wordings_are_recognised_and_other_400s_are_not() {
        for body in [
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
            r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens","type":"BadRequestError","code":400}"#,
            r#"{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`","error_type":"validation"}"#,
        ] {
            assert!(is_context_overflow(body.as_bytes()), "{body}");
        }
        for body in [
            r#"{"error":{"message":"Invalid value for 'temperature'","code":"invalid_value"}}"#,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}"#,
        ] {
            assert!(!is_context_overflow(body.as_bytes()), "{body}");
        }
    }
}
