//! Tollgate: an AI gateway on Pingora.
//!
//! One door to every model service, in the OpenAI, Anthropic and Responses dialects: client
//! keys, limits and budgets, guardrails, virtual models routed and failed over across OpenAI,
//! Anthropic, Gemini, Azure and self-hosted backends, token metering of streams as they pass,
//! an MCP gateway, and metrics, traces, logs and analytics. The request flow and which module
//! owns each stage is written once, in [`server::proxy`]'s module doc.
//!
//! ## Layers
//!
//! A module may use the modules on its own layer and the layers above it in this list, never
//! one below; `tests/module_graph.rs` reads this list and fails on an import against it or on a
//! cycle.
//!
//! 1. `types` — the shared leaves: clock, what a limit counts, dialects, key digests, refusals.
//! 2. `metrics` — the Prometheus registry and every series.
//! 3. `wire` — SSE, JSON spans, tokens, request parsing, translation, metering; no Pingora.
//! 4. `guard` — the guardrails: rules, matchers, the request and answer scanners.
//! 5. `error` — every error the gateway makes and how it becomes a response.
//! 6. `feedback` — health, latency and the retry budget, learnt from traffic.
//! 7. `config` — the config file, parsed and checked, each error naming its field.
//! 8. `mock` — the built-in LLM upstream that speaks the real wire formats.
//! 9. `store` — where the shared Redis is (one server or a Sentinel group), its primary now.
//! 10. `auth`, `limits`, `routing`, `upstream` — keys, limits, candidate plans, backend calls.
//! 11. `attempt` — the failover policy (and stream recovery), with no I/O.
//! 12. `runtime` — the snapshot a request runs on, and reloading it.
//! 13. `telemetry` — access log, usage analytics, payload capture, traces.
//! 14. `edge` — connections: PROXY protocol, TLS, heads, HTTP/2, caps.
//! 15. `request` — one request's life on both I/O paths.
//! 16. `mcp` — the MCP gateway.
//! 17. `admin` — the admin API.
//! 18. `server` — the Pingora phases, the wiring and the background services.

pub mod admin;
pub mod attempt;
pub mod auth;
pub mod config;
pub mod edge;
pub mod error;
pub mod feedback;
pub mod guard;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod mock;
pub mod request;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod types;
pub mod upstream;
pub mod wire;

/// The quick-start config, compiled in so the binary runs anywhere without `-c`.
pub const EMBEDDED_CONFIG: &str = include_str!("../conf/tollgate.toml");
