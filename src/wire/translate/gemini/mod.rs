//! Google's Gemini API as a backend (`kind = "gemini"`): requests from Chat Completions
//! ([`request`]), answers and streams into Chat Completions ([`response`], [`stream`]).
//!
//! Chat Completions is the hub: an Anthropic client's request is first a chat request, and a
//! Gemini stream becomes chat chunks, then Anthropic events, so each dialect pair is written
//! once. Gemini's finish reasons and usage metadata map here, once for both paths.

pub mod request;
pub mod response;
pub mod stream;

#[cfg(test)]
mod tests;

use serde_json::{json, Value};

/// Gemini's `finishReason` → OpenAI's `finish_reason` (`tool_calls` when the turn called one).
pub fn finish_reason(reason: &str, called_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => "content_filter",
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

/// Gemini's `usageMetadata` → OpenAI usage (thinking counts as completion tokens, as
/// OpenAI counts reasoning).
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let prompt = n("promptTokenCount") + n("toolUsePromptTokenCount");
    let thoughts = n("thoughtsTokenCount");
    let completion = n("candidatesTokenCount") + thoughts;
    let mut usage = json!({"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion});
    let cached = n("cachedContentTokenCount");
    if cached > 0 {
        usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    if thoughts > 0 {
        usage["completion_tokens_details"] = json!({"reasoning_tokens": thoughts});
    }
    usage
}

/// The chat id for a Gemini `responseId`.
pub fn chat_id(v: &Value) -> String {
    format!("chatcmpl-{}", v["responseId"].as_str().unwrap_or("gemini"))
}
