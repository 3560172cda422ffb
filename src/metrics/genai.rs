//! The OpenTelemetry GenAI semantic-convention histograms, under their Prometheus names and
//! with the buckets the convention advises (`docs/gen-ai/gen-ai-metrics.md`).
//!
//! Labels: `gen_ai_operation_name` (`chat`, `text_completion`, `embeddings`),
//! `gen_ai_provider_name` (the provider kind: `openai`, `mock`...), `gen_ai_request_model`
//! (the virtual model the client asked for) and, on token usage, `gen_ai_token_type`.

use super::{histogram_vec, reg};
use prometheus::{HistogramOpts, HistogramVec, Registry};

pub struct GenAi {
    pub token_usage: HistogramVec,
    pub operation_duration: HistogramVec,
    pub time_to_first_token: HistogramVec,
    pub time_per_output_token: HistogramVec,
}

const LABELS: [&str; 3] = [
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
];

/// 1, 4, 16, ... 67108864 tokens.
fn token_buckets() -> Vec<f64> {
    (0..14).map(|i| 4f64.powi(i)).collect()
}

/// 0.01 s, doubling, to 81.92 s.
fn duration_buckets() -> Vec<f64> {
    (0..14).map(|i| 0.01 * 2f64.powi(i)).collect()
}

const TTFT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const TPOT_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];

impl GenAi {
    pub fn register(r: &Registry) -> prometheus::Result<GenAi> {
        let token_labels = [
            "gen_ai_operation_name",
            "gen_ai_provider_name",
            "gen_ai_request_model",
            "gen_ai_token_type",
        ];
        Ok(GenAi {
            token_usage: reg(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gen_ai_client_token_usage",
                        "Tokens used per request (GenAI semantic conventions), by token type.",
                    )
                    .buckets(token_buckets()),
                    &token_labels,
                )?,
            )?,
            operation_duration: histogram_vec(
                r,
                "gen_ai_client_operation_duration_seconds",
                "Duration of GenAI operations as the client sees it.",
                &duration_buckets(),
                &LABELS,
            )?,
            time_to_first_token: histogram_vec(
                r,
                "gen_ai_server_time_to_first_token_seconds",
                "Time to the first output token of a streamed response.",
                &TTFT_BUCKETS,
                &LABELS,
            )?,
            time_per_output_token: histogram_vec(
                r,
                "gen_ai_server_time_per_output_token_seconds",
                "Time per output token after the first: (duration - TTFT) / (output tokens - 1).",
                &TPOT_BUCKETS,
                &LABELS,
            )?,
        })
    }
}
