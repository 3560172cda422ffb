//! Metering responses as they pass: token usage from SSE streams and JSON bodies.
//!
//! Both meters are synchronous, incremental and bounded in memory: they run inside Pingora's
//! `response_body_filter` on every chunk. The provider's own usage figures are preferred; when
//! none arrive (a cut stream), the caller estimates and marks the usage as estimated.

mod json;
mod scan;
mod sse;
mod transcript;

pub use json::JsonMeter;
pub use sse::SseMeter;
pub use transcript::Transcript;

/// Token usage as a provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
}

/// Where a request's usage figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageSource {
    Provider,
    Estimated,
}

impl UsageSource {
    pub fn label(self) -> &'static str {
        match self {
            UsageSource::Provider => "provider",
            UsageSource::Estimated => "estimated",
        }
    }
}

/// Read OpenAI-style usage (`prompt_tokens`/`completion_tokens`, or Anthropic-style
/// `input_tokens`/`output_tokens`) from a parsed `usage` object.
fn usage_from(v: &simd_json::BorrowedValue) -> Option<Usage> {
    use simd_json::prelude::*;
    if !v.is_object() {
        return None;
    }
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64());
    // Anthropic counts cached input apart; all of it is input.
    let anthropic_input = n("input_tokens").map(|i| {
        i.saturating_add(n("cache_creation_input_tokens").unwrap_or(0))
            .saturating_add(n("cache_read_input_tokens").unwrap_or(0))
    });
    let input = n("prompt_tokens").or(anthropic_input);
    let output = n("completion_tokens").or_else(|| n("output_tokens"));
    match (input, output) {
        (None, None) => None,
        (i, o) => Some(Usage {
            input: i.unwrap_or(0),
            output: o.unwrap_or(0),
        }),
    }
}
