//! End-to-end tests: the real binary over real sockets against the in-process mock upstream.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::let_underscore_must_use,
    clippy::disallowed_methods,
    reason = "test and benchmark code: a failed step is a failed run, and the gateway's rules for clocks, tasks and results are the gateway's"
)]

#[path = "e2e/harness.rs"]
mod harness;

#[path = "e2e/admin_auth.rs"]
mod admin_auth;
#[path = "e2e/admission.rs"]
mod admission;
#[path = "e2e/anthropic.rs"]
mod anthropic;
#[path = "e2e/clients.rs"]
mod clients;
#[path = "e2e/configs.rs"]
mod configs;
#[path = "e2e/connections.rs"]
mod connections;
#[path = "e2e/daemon.rs"]
mod daemon;
#[path = "e2e/edge.rs"]
mod edge;
#[path = "e2e/fleet.rs"]
mod fleet;
#[path = "e2e/fleet_load.rs"]
mod fleet_load;
#[path = "e2e/fleet_pool.rs"]
mod fleet_pool;
#[path = "e2e/fleet_store.rs"]
mod fleet_store;
#[path = "e2e/gemini.rs"]
mod gemini;
#[path = "e2e/guardrails.rs"]
mod guardrails;
#[path = "e2e/hostile.rs"]
mod hostile;
#[path = "e2e/hostile_limits.rs"]
mod hostile_limits;
#[path = "e2e/https.rs"]
mod https;
#[path = "e2e/ip_rules.rs"]
mod ip_rules;
#[path = "e2e/keys.rs"]
mod keys;
#[path = "e2e/keys_redis.rs"]
mod keys_redis;
#[path = "e2e/limits.rs"]
mod limits;
#[path = "e2e/limits_redis.rs"]
mod limits_redis;
#[path = "e2e/load_runner.rs"]
mod load_runner;
#[path = "e2e/mcp.rs"]
mod mcp;
#[path = "e2e/mcp_remote.rs"]
mod mcp_remote;
#[path = "e2e/observability.rs"]
mod observability;
#[path = "e2e/operations.rs"]
mod operations;
#[path = "e2e/overload.rs"]
mod overload;
#[path = "e2e/proxy_protocol.rs"]
mod proxy_protocol;
#[path = "e2e/recovery.rs"]
mod recovery;
#[path = "e2e/redis_cluster.rs"]
mod redis_cluster;
#[path = "e2e/redis_sentinel.rs"]
mod redis_sentinel;
#[path = "e2e/redis_server.rs"]
mod redis_server;
#[path = "e2e/resilience.rs"]
mod resilience;
#[path = "e2e/responses.rs"]
mod responses;
#[path = "e2e/responses_store.rs"]
mod responses_store;
#[path = "e2e/retries.rs"]
mod retries;
#[path = "e2e/route_prefixes.rs"]
mod route_prefixes;
#[path = "e2e/routing.rs"]
mod routing;
#[path = "e2e/rules.rs"]
mod rules;
#[path = "e2e/scoped_limits.rs"]
mod scoped_limits;
#[path = "e2e/sdk.rs"]
mod sdk;
#[path = "e2e/slow_clients.rs"]
mod slow_clients;
#[path = "e2e/streaming.rs"]
mod streaming;
#[path = "e2e/tls_edge.rs"]
mod tls_edge;
#[path = "e2e/tracing.rs"]
mod tracing;
#[path = "e2e/upstream_servers.rs"]
mod upstream_servers;
#[path = "e2e/usage.rs"]
mod usage;
