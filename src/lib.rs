//! Tollgate: an AI gateway on Pingora.
//!
//! One OpenAI-compatible door to every model service: client keys, virtual models with
//! weighted or priority routing and failover, backend credentials injected per target, and
//! token metering of streaming and JSON responses. The request flow and which module owns each
//! stage is written once, in [`proxy`]'s module doc.

pub mod access_log;
pub mod admin;
pub mod analytics;
pub mod attempt;
pub mod auth;
pub mod capture;
pub mod clock;
pub mod config;
pub mod counter;
pub mod ctx;
pub mod dialect;
pub mod edge;
pub mod error;
pub mod exchange;
pub mod feedback;
pub mod forward;
pub mod guard;
pub mod https;
pub mod intake;
pub mod json_spans;
pub mod key_digest;
pub mod keys;
pub mod limits;
pub mod mcp;
pub mod meter;
pub mod metrics;
pub mod mock;
pub mod moderation;
pub mod protocol;
pub mod proxy;
pub mod proxy_protocol;
pub mod query;
pub mod recovery;
pub mod refusal;
pub mod reload;
pub mod report;
pub mod respond;
pub mod routing;
pub mod runtime;
pub mod screen;
pub mod server;
pub mod services;
pub mod sse;
pub mod tokens;
pub mod trace;
pub mod translate;
pub mod upstream;

/// The quick-start config, compiled in so the binary runs anywhere without `-c`.
pub const EMBEDDED_CONFIG: &str = include_str!("../conf/tollgate.toml");
