//! The MCP bridge: HTTP APIs described by OpenAPI documents served as MCP servers, at
//! `/mcp/{server}` (one server) and `/mcp` (every server, tools named `{server}__{tool}`).
//!
//! Callers authenticate with their gateway key, as on the LLM path, and are held to the same
//! consumer limits (each tool call is a request) plus the server's calls per minute per tool;
//! every request gets an access-log line and tool calls their metrics ([`report`]).
//!
//! | module | owns |
//! |---|---|
//! | [`wire`] | protocol versions, JSON-RPC messages and codes, the 2026-07-28 envelope checks |
//! | [`seal`] | session ids as sealed tokens any instance can open |
//! | [`catalog`] | what one caller sees at one path; results that need no I/O |
//! | [`streamable`] | the Streamable HTTP transport, both eras |
//! | `legacy` | the legacy HTTP+SSE transport (2024-11-05 clients) |
//! | [`relay`] | legacy streams' answers across instances (Redis pub/sub) |
//! | [`call`] | a tool call as an HTTP request to the API |
//! | [`remote`] | remote MCP servers: the bridge as their client |
//! | `passthrough` | a remote alone at its path, proxied session for session |
//! | `combined` | remotes' resources and prompts where the bridge answers itself (`/mcp`, legacy) |
//! | [`report`] | the access-log line and metrics |
//! | `answer` | what the transport answers, written to the client |
//!
//! Served by `request_filter` before the LLM admission (see [`crate::server::proxy`]).
//!
//! The protocol is written here, not taken from `rmcp` (the official Rust SDK, 3.11 when
//! this was decided): a proxied remote's messages are relayed as bytes, reading only `id`,
//! `method` and a tool's name, so typed messages would mean parsing and re-writing every
//! message (and dropping fields of revisions newer than the crate); the bridge's own answers
//! are a handful of methods built from config; and its sessions are sealed tokens any instance
//! opens, which an SDK's session objects do not model. Taking it for the types alone would add
//! 72 crates to the build (`rmcp` with `client` and `server`: 2 min 5 s of release build on
//! this 2-core machine) to replace about 300 lines of `wire`.

mod answer;
mod call;
mod catalog;
mod combined;
mod legacy;
mod passthrough;
pub mod relay;
mod remote;
pub mod report;
mod seal;
mod streamable;
pub mod wire;

use crate::auth::keys::KeyGrant;
use crate::config::mcp::{McpServer, McpSettings};
use crate::config::Consumer;
use crate::error::GatewayError;
use crate::limits::KeyScope;
use crate::request::ctx::{McpExchange, McpOutcome, RequestCtx};
use crate::runtime::Runtime;
use answer::{write, Answer};
use bytes::Bytes;
use catalog::View;
use pingora::connectors::http::Connector;
use pingora::proxy::Session;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use wire::{Code, Routing, RpcError};

/// State the bridge keeps across requests on this instance.
#[derive(Default)]
pub struct Bridge {
    /// Sessions ended by DELETE here, until they expire.
    ended: Mutex<HashMap<String, u64>>,
    /// The legacy SSE streams held here, and the way to other instances'.
    pub relay: relay::Relay,
    /// The links to remote MCP servers.
    remotes: remote::Remotes,
}

impl Bridge {
    pub fn new(redis: Option<&crate::config::RedisSettings>) -> Bridge {
        Bridge {
            ended: Mutex::default(),
            relay: relay::Relay::new(redis),
            remotes: remote::Remotes::default(),
        }
    }

    fn ended(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Unix seconds, for session expiry.
fn now_s() -> u64 {
    u64::try_from(crate::feedback::budget::now_s()).unwrap_or(0)
}

/// Whether a path is the bridge's.
pub fn owns(path: &str) -> bool {
    path == "/mcp" || path.starts_with("/mcp/")
}

/// Who is calling at which path, and what they may reach. Owns what it took from the
/// request, so the session can be written to while a call is still in hand.
pub struct Caller<'a> {
    runtime: &'a Runtime,
    connector: &'a Connector,
    bridge: &'a Bridge,
    settings: &'a McpSettings,
    view: View<'a>,
    consumer: &'a Consumer,
    key: Option<KeyGrant>,
    key_label: String,
    server: Option<&'a str>,
    headers: http::HeaderMap,
    request_id: String,
}

impl Caller<'_> {
    /// The remote server this path proxies, if it names one alone.
    fn proxied(&self) -> Option<&McpServer> {
        let server = self.settings.server(self.server?)?;
        (server.kind == crate::config::mcp::ServerKind::Remote).then_some(server)
    }

    /// The server path a session is bound to (`""`: the combined view).
    fn path_server(&self) -> &str {
        self.server.unwrap_or("")
    }

    fn seal_session(&self, version: &str, stream: Option<&str>) -> Option<String> {
        self.seal_with_remote(version, stream, "")
    }

    /// Seal a session; `remote`: the remote server's own session id for this client.
    fn seal_with_remote(
        &self,
        version: &str,
        stream: Option<&str>,
        remote: &str,
    ) -> Option<String> {
        let exp = now_s() + self.settings.session_ttl.as_secs();
        seal::seal(
            &self.settings.keys,
            &seal::Session {
                v: version.to_string(),
                s: self.path_server().to_string(),
                c: self.consumer.name.clone(),
                k: self.key_label.clone(),
                exp,
                l: stream.unwrap_or_default().to_string(),
                r: remote.to_string(),
            },
        )
    }

    /// `tools/list`: the OpenAPI servers' tools and what the remote ones list now. Alone at
    /// its path, a remote server that does not answer is an error; combined, it is left out.
    async fn list(&self, modern: bool) -> Result<Value, RpcError> {
        let mut listed = Vec::new();
        for server in self.view.remotes() {
            match remote::tools(self, server).await {
                Ok(tools) => listed.extend(tools.into_iter().filter_map(|mut t| {
                    let name = t.get("name")?.as_str()?.to_string();
                    if !self.consumer.may_use_tool(&server.name, &name) {
                        return None;
                    }
                    t["name"] = self.view.exposed_name(server, &name).into();
                    Some(t)
                })),
                Err(why) if self.view.combined() => {
                    log::warn!(
                        "mcp: remote server `{}` left out of tools/list: {why}",
                        server.name
                    );
                }
                Err(why) => {
                    return Err(RpcError::gateway(
                        502,
                        format!(
                            "Bad Gateway: the MCP server `{}` did not answer ({why})",
                            server.name
                        ),
                    ))
                }
            }
        }
        Ok(self.view.list(modern, listed))
    }

    /// `tools/call`: find the tool, charge the limits, call the API (or the remote server).
    async fn call(&self, params: &Value, ex: &mut McpExchange) -> Result<Value, RpcError> {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::new(Code::InvalidParams, "params.name must be a string"))?;
        let unknown = || RpcError::new(Code::InvalidParams, format!("Unknown tool: {name}"));
        let arguments = params.get("arguments").unwrap_or(&Value::Null);
        if let Some((server, tool)) = self.view.find_remote(name) {
            if !remote::offers(self, server, &tool).await {
                return Err(unknown());
            }
            ex.server = Some(server.name.clone());
            ex.tool = Some(tool.clone());
            let _reservation = self.reserve(server, &tool, ex)?;
            let (outcome, result) = remote::call(self, server, &tool, arguments).await;
            ex.outcome = outcome;
            return result;
        }
        let (server, tool) = self.view.find(name).ok_or_else(unknown)?;
        ex.server = Some(server.name.clone());
        ex.tool = Some(tool.name.clone());
        let _reservation = self.reserve(server, &tool.name, ex)?;
        let called = call::call(
            self.runtime,
            self.connector,
            server,
            tool,
            arguments,
            &self.headers,
            &self.request_id,
        )
        .await;
        ex.outcome = called.outcome;
        Ok(called.result)
    }

    /// Charge one call of `server`'s `tool`; held to the end of the call (dropping it frees
    /// the concurrency slot).
    fn reserve(
        &self,
        server: &McpServer,
        tool: &str,
        ex: &mut McpExchange,
    ) -> Result<crate::limits::Reservation, RpcError> {
        let key = self.key.as_ref().map(|k| KeyScope {
            id: &k.record.id,
            limits: &k.limits,
        });
        let scope = format!("{}/{tool}", server.name);
        let (_, reserved) = self.runtime.limits.reserve_tool_call(
            self.consumer,
            key,
            &scope,
            server.tool_calls_per_minute,
        );
        reserved.map_err(|e| {
            ex.outcome = McpOutcome::RateLimited;
            RpcError {
                retry_after_ms: e.retry_after_ms(),
                ..RpcError::gateway(e.status(), e.to_string())
            }
        })
    }
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Serve one request below `/mcp`, answering on every path.
pub async fn serve(
    session: &mut Session,
    ctx: &mut RequestCtx,
    runtime: &Runtime,
    connector: &Connector,
    bridge: &Bridge,
) {
    let mut ex = McpExchange::default();
    let answer = answer(session, ctx, runtime, connector, bridge, &mut ex).await;
    let failed = match &answer {
        Answer::Json { status, .. } | Answer::Empty { status } => *status >= 400,
        Answer::Refused(_) | Answer::MethodNotAllowed { .. } | Answer::NotAcceptable => true,
        Answer::Raw { status, .. } => *status >= 400,
        Answer::Relay(_)
        | Answer::Accepted
        | Answer::Stream { .. }
        | Answer::LegacyStream { .. }
        | Answer::Written => false,
    };
    if failed && ex.outcome == McpOutcome::Ok {
        ex.outcome = McpOutcome::Refused;
    }
    let sse_only = {
        let accept = header(&session.req_header().headers, "accept").unwrap_or("");
        accept.contains("text/event-stream") && !accepts_json(accept)
    };
    ctx.mcp = Some(ex);
    write(session, ctx, bridge, answer, sse_only).await;
}

fn accepts_json(accept: &str) -> bool {
    accept.contains("application/json") || accept.contains("*/*")
}

/// Which endpoint below `/mcp` a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// Streamable HTTP: `/mcp/{server}`, `/mcp`.
    Streamable,
    /// Legacy HTTP+SSE: the stream (`…/sse`) and where its messages are posted (`…/messages`).
    Sse,
    Messages,
}

/// `(server, endpoint)` of a path below `/mcp`; `None` if it names nothing.
fn route(path: &str) -> Option<(Option<&str>, Endpoint)> {
    let rest = path.trim_end_matches('/').strip_prefix("/mcp")?;
    let mut parts = rest.split('/').skip(1);
    let (first, second, more) = (parts.next(), parts.next(), parts.next());
    let endpoint = |e: &str| match e {
        "sse" => Some(Endpoint::Sse),
        "messages" => Some(Endpoint::Messages),
        _ => None,
    };
    match (first, second, more) {
        (None, None, None) => Some((None, Endpoint::Streamable)),
        (Some(e), None, None) if endpoint(e).is_some() => Some((None, endpoint(e)?)),
        (Some(s), None, None) => Some((Some(s), Endpoint::Streamable)),
        (Some(s), Some(e), None) => Some((Some(s), endpoint(e)?)),
        _ => None,
    }
}

async fn answer(
    session: &mut Session,
    ctx: &mut RequestCtx,
    runtime: &Runtime,
    connector: &Connector,
    bridge: &Bridge,
    ex: &mut McpExchange,
) -> Answer {
    let settings = &runtime.config.mcp;
    let path = session.req_header().uri.path().to_string();
    let Some((server, endpoint)) = route(&path) else {
        return not_found(&path);
    };
    ex.server = server.map(str::to_string);
    let unknown = server.is_some_and(|s| settings.server(s).is_none());
    if unknown || settings.servers.is_empty() {
        return not_found(&path);
    }
    let headers = session.req_header().headers.clone();
    if let Some(origin) = header(&headers, "origin") {
        let local =
            is_loopback_origin(origin) && header(&headers, "host").is_some_and(is_loopback_host);
        if !local && !settings.allowed_origins.iter().any(|o| o == origin) {
            return Answer::error(
                &Value::Null,
                RpcError::gateway(403, "Forbidden: Origin not allowed"),
            );
        }
    }
    let consumer = match crate::request::intake::authenticate(session, ctx, runtime) {
        Ok(c) => c,
        Err(e) => return refusal(e),
    };
    // A consumer confined to `[[routes]]`, or a key narrowed to some models, is held to
    // them here too: MCP tools are in neither.
    let narrowed_key = ctx
        .admission
        .key
        .as_ref()
        .is_some_and(|k| k.record.models.is_some());
    if consumer.routes.is_some() || narrowed_key {
        return refusal(GatewayError::RouteForbidden("/mcp".into()));
    }
    let method = session.req_header().method.clone();
    let body = if method == http::Method::POST {
        let accept = header(&headers, "accept").unwrap_or("*/*");
        if !accepts_json(accept) && !accept.contains("text/event-stream") {
            return Answer::NotAcceptable;
        }
        match crate::request::intake::read_body(session, settings.max_body_bytes).await {
            Ok(b) => b,
            Err(e) => return refusal(e),
        }
    } else {
        Bytes::new()
    };
    let Some(view) = View::at(settings, server, &consumer) else {
        return not_found(&path);
    };
    let caller = Caller {
        runtime,
        connector,
        bridge,
        settings,
        view,
        consumer: &consumer,
        key: ctx.admission.key.clone(),
        key_label: ctx.admission.key_label.as_deref().unwrap_or("").to_string(),
        server,
        headers,
        request_id: ctx.request_id.clone(),
    };
    match endpoint {
        Endpoint::Streamable => streamable_http(&caller, &method, &body, ex).await,
        Endpoint::Sse if method == http::Method::GET => legacy::open(&caller, &path, ex),
        Endpoint::Sse => Answer::MethodNotAllowed { allow: "GET" },
        Endpoint::Messages if method == http::Method::POST => {
            let query = session.req_header().uri.query().unwrap_or("").to_string();
            legacy::post(&caller, session, ctx, &query, &body, ex).await
        }
        Endpoint::Messages => Answer::MethodNotAllowed { allow: "POST" },
    }
}

async fn streamable_http(
    caller: &Caller<'_>,
    method: &http::Method,
    body: &[u8],
    ex: &mut McpExchange,
) -> Answer {
    let headers = &caller.headers;
    let version = header(headers, "mcp-protocol-version");
    let token = header(headers, "mcp-session-id");
    let modern = version.is_some_and(|v| wire::MODERN_VERSIONS.contains(&v));
    if let Some(server) = caller.proxied() {
        return proxied(caller, server, method, body, ex).await;
    }
    match method.as_str() {
        "POST" => streamable::post(caller, posted(headers, body), ex).await,
        "GET" | "DELETE" if modern => Answer::MethodNotAllowed { allow: "POST" },
        "GET" => {
            let accept = header(headers, "accept").unwrap_or("");
            if !accept.contains("text/event-stream") {
                return Answer::NotAcceptable;
            }
            match streamable::open_session(caller, token, false) {
                Ok(s) => {
                    ex.version = Some(s.v);
                    Answer::Stream {
                        session: token.unwrap_or("").to_string(),
                    }
                }
                Err(e) => Answer::error(&Value::Null, e),
            }
        }
        "DELETE" => streamable::delete(caller, token),
        _ => Answer::MethodNotAllowed {
            allow: "GET, POST, DELETE",
        },
    }
}

/// A remote server alone at its path, proxied session for session ([`passthrough`]).
async fn proxied(
    caller: &Caller<'_>,
    server: &McpServer,
    method: &http::Method,
    body: &[u8],
    ex: &mut McpExchange,
) -> Answer {
    let headers = &caller.headers;
    let version = header(headers, "mcp-protocol-version");
    let token = header(headers, "mcp-session-id");
    let known =
        |v: &&str| wire::HANDSHAKE_VERSIONS.contains(v) || wire::MODERN_VERSIONS.contains(v);
    if let Some(v) = version.filter(|v| !known(v)) {
        let mut all = wire::HANDSHAKE_VERSIONS.to_vec();
        all.extend(wire::MODERN_VERSIONS);
        return Answer::error(&Value::Null, RpcError::unsupported_version(v, &all));
    }
    match method.as_str() {
        "POST" => passthrough::post(caller, server, posted(headers, body), ex).await,
        "GET" => {
            let accept = header(headers, "accept").unwrap_or("");
            if !accept.contains("text/event-stream") {
                return Answer::NotAcceptable;
            }
            passthrough::get(caller, server, token, ex).await
        }
        "DELETE" => passthrough::delete(caller, server, token).await,
        _ => Answer::MethodNotAllowed {
            allow: "GET, POST, DELETE",
        },
    }
}

/// A POST's body and the transport headers that matter.
fn posted<'a>(headers: &'a http::HeaderMap, body: &'a [u8]) -> streamable::Posted<'a> {
    let version = header(headers, "mcp-protocol-version");
    streamable::Posted {
        body,
        version,
        routing: routing(headers, version),
        session: header(headers, "mcp-session-id"),
    }
}

fn routing<'a>(headers: &'a http::HeaderMap, version: Option<&'a str>) -> Routing<'a> {
    let duplicated = ["mcp-protocol-version", "mcp-method", "mcp-name"]
        .into_iter()
        .find(|h| headers.get_all(*h).iter().count() > 1);
    Routing {
        version,
        method: header(headers, "mcp-method"),
        name: header(headers, "mcp-name"),
        duplicated,
    }
}

/// `http(s)://` a loopback host (`localhost`, `127.x`, `[::1]`), any port: a page served from
/// this machine, which a DNS-rebinding page cannot be.
fn is_loopback_origin(origin: &str) -> bool {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(is_loopback_host)
}

/// A `Host` (or an origin's authority) naming a loopback host, with or without a port.
fn is_loopback_host(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(h, _)| h),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn not_found(path: &str) -> Answer {
    Answer::error(
        &Value::Null,
        RpcError::gateway(404, format!("Not Found: no MCP server at {path}")),
    )
}

/// A gateway refusal (key, address, size) as a JSON-RPC error with its HTTP status.
fn refusal(e: GatewayError) -> Answer {
    Answer::error(
        &Value::Null,
        RpcError {
            retry_after_ms: e.retry_after_ms(),
            ..RpcError::gateway(e.status(), e.to_string())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_origins_and_hosts_are_local() {
        for o in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "https://[::1]:8443",
        ] {
            assert!(is_loopback_origin(o), "{o}");
        }
        for o in [
            "http://evil.com",
            "http://127.0.0.1.evil.com",
            "null",
            "file://",
            "http://[::2]",
        ] {
            assert!(!is_loopback_origin(o), "{o}");
        }
        assert!(is_loopback_host("127.0.0.1:8080") && is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("evil.com:80") && !is_loopback_host("10.0.0.1"));
    }
}
