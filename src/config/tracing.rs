//! `[tracing]`: OpenTelemetry traces over OTLP/HTTP (protobuf) — where to send them, how many
//! requests to sample, and the exporter's batching. Absent: no spans are made.

use super::providers::parse_base_url;
use super::Upstream;
use serde::Deserialize;
use std::time::Duration;

/// `[tracing]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSection {
    /// The collector's OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub otlp_endpoint: String,
    /// Share of requests traced when the client sent no `traceparent` (its flag wins).
    #[serde(default = "one")]
    pub sample_ratio: f64,
    #[serde(default = "service")]
    pub service_name: String,
    /// Most spans sent in one export.
    #[serde(default = "batch")]
    pub batch_spans: usize,
    /// How long a span may wait for its batch to fill.
    #[serde(default = "flush")]
    pub flush_interval_ms: u64,
    /// One export's deadline; a failed export's spans are dropped (and counted).
    #[serde(default = "timeout")]
    pub timeout_ms: u64,
}

fn one() -> f64 {
    1.0
}
fn service() -> String {
    "tollgate".into()
}
fn batch() -> usize {
    512
}
fn flush() -> u64 {
    1000
}
fn timeout() -> u64 {
    2000
}

/// A validated `[tracing]`.
#[derive(Debug, Clone)]
pub struct TracingSettings {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub sample_ratio: f64,
    pub service_name: String,
    pub batch_spans: usize,
    pub flush_interval: Duration,
    pub timeout: Duration,
}

pub(super) fn build(t: &TracingSection, errs: &mut Vec<String>) -> Option<TracingSettings> {
    let endpoint = match parse_base_url(&t.otlp_endpoint) {
        Ok(Upstream::Url {
            tls,
            host,
            port,
            base_path,
        }) => Some((tls, host, port, base_path)),
        Ok(Upstream::BuiltinMock) => None,
        Err(why) => {
            errs.push(format!("tracing.otlp_endpoint {why}"));
            None
        }
    };
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        errs.push("tracing.sample_ratio must be in [0, 1]".into());
    }
    if t.service_name.is_empty() {
        errs.push("tracing.service_name must not be empty".into());
    }
    if t.batch_spans == 0 {
        errs.push("tracing.batch_spans must be > 0".into());
    }
    if t.flush_interval_ms == 0 || t.timeout_ms == 0 {
        errs.push("tracing.flush_interval_ms and tracing.timeout_ms must be > 0".into());
    }
    let (tls, host, port, path) = endpoint?;
    Some(TracingSettings {
        tls,
        host,
        port,
        path: if path.is_empty() {
            "/v1/traces".into()
        } else {
            path
        },
        sample_ratio: t.sample_ratio,
        service_name: t.service_name.clone(),
        batch_spans: t.batch_spans.max(1),
        flush_interval: Duration::from_millis(t.flush_interval_ms.max(1)),
        timeout: Duration::from_millis(t.timeout_ms.max(1)),
    })
}
