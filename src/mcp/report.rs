//! An MCP request's last stage: its access-log line (every request) and, for tool calls,
//! `tollgate_mcp_calls_total{server,tool,outcome}` and `tollgate_mcp_call_duration_seconds`.
//! Labels are configured names only: a call naming an unknown tool is logged, not labelled.

use crate::metrics::METRICS;
use crate::request::ctx::{McpExchange, RequestCtx};
use crate::telemetry::access_log::{now_rfc3339, AccessLog};
use serde::Serialize;

#[derive(Serialize)]
struct McpAccessRecord<'a> {
    ts: String,
    request_id: &'a str,
    kind: &'static str,
    method: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<String>,
    consumer: Option<&'a str>,
    mcp_server: Option<&'a str>,
    mcp_method: Option<&'a str>,
    mcp_tool: Option<&'a str>,
    mcp_version: Option<&'a str>,
    status: u16,
    outcome: &'static str,
    duration_ms: f64,
}

pub fn record(
    ctx: &RequestCtx,
    ex: &McpExchange,
    log: &AccessLog,
    method: &str,
    path: &str,
    status: u16,
) {
    let elapsed = ctx.started.elapsed();
    if let (Some("tools/call"), Some(server), Some(tool)) = (
        ex.method.as_deref(),
        ex.server.as_deref(),
        ex.tool.as_deref(),
    ) {
        METRICS
            .mcp_calls
            .with_label_values(&[server, tool, ex.outcome.label()])
            .inc();
        METRICS
            .mcp_call_duration
            .with_label_values(&[server, tool])
            .observe(elapsed.as_secs_f64());
    }
    log.emit(&McpAccessRecord {
        ts: now_rfc3339(),
        request_id: &ctx.request_id,
        kind: "mcp",
        method,
        path,
        client_ip: ctx.admission.client_ip.map(|ip| ip.to_string()),
        consumer: ctx.admission.consumer.as_ref().map(|c| c.name.as_str()),
        mcp_server: ex.server.as_deref(),
        mcp_method: ex.method.as_deref(),
        mcp_tool: ex.tool.as_deref(),
        mcp_version: ex.version.as_deref(),
        status,
        outcome: ex.outcome.label(),
        duration_ms: elapsed.as_secs_f64() * 1000.0,
    });
}
