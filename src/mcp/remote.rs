//! Remote MCP servers (`kind = "remote"`): the bridge is their client. On first use it asks
//! the server for `server/discover` (2026-07-28, then one self-contained POST per request);
//! a server that does not speak it gets the `initialize` handshake, and the session it grants
//! is kept per instance (a 404 on it opens a new one, once). Answers may be JSON or SSE.
//!
//! The client's own session with the bridge is never the remote's: the bridge holds one link
//! per remote server, and every caller's request goes over it with the server's credential.

use super::call::{send, Built, Exchanged};
use super::wire::{self, Code, RpcError, LATEST_HANDSHAKE, MODERN_VERSIONS};
use super::Caller;
use crate::config::mcp::McpServer;
use crate::request::ctx::McpOutcome;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How the bridge talks to one remote server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    /// Stateless, at this revision.
    Modern(&'static str),
    /// A handshake session (`None`: the server issued no id).
    Session { id: Option<String>, version: String },
}

/// The links, by server name, and the tool names each server last listed.
#[derive(Default)]
pub struct Remotes {
    links: Mutex<HashMap<String, Link>>,
    names: Mutex<HashMap<String, (Instant, HashSet<String>)>>,
}

/// How old a server's tool names may be before a call naming an unknown one asks again.
const NAMES_FRESH: Duration = Duration::from_secs(10);

impl Remotes {
    fn remember(&self, server: &str, names: HashSet<String>) {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(server.to_string(), (Instant::now(), names));
    }

    /// `Some(known)` while the names are fresh enough to say.
    fn known(&self, server: &str, tool: &str, fresh: bool) -> Option<bool> {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let (at, set) = names.get(server)?;
        if set.contains(tool) {
            return Some(true);
        }
        (!fresh || at.elapsed() < NAMES_FRESH).then_some(false)
    }

    fn get(&self, server: &str) -> Option<Link> {
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(server)
            .cloned()
    }

    fn set(&self, server: &str, link: Option<Link>) {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        match link {
            Some(l) => links.insert(server.to_string(), l),
            None => links.remove(server),
        };
    }
}

/// Why a request to a remote server failed.
enum Failed {
    /// The server said no (a JSON-RPC error): passed on to the client.
    Rpc(RpcError),
    /// The session the bridge held is gone (404).
    SessionGone,
    /// No usable answer.
    Unreachable(String),
}

/// `tools/list` of one remote server: its tools that pass its filter.
pub async fn tools(caller: &Caller<'_>, server: &McpServer) -> Result<Vec<Value>, String> {
    let result = request(caller, server, "tools/list", json!({}))
        .await
        .map_err(|f| match f {
            Failed::Rpc(e) => e.message,
            Failed::SessionGone => "the server's session ended".into(),
            Failed::Unreachable(why) => why,
        })?;
    let listed = result
        .get("tools")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let offered: Vec<Value> = listed
        .into_iter()
        .filter(|t| {
            t.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| server.offers(n))
        })
        .collect();
    let names = offered
        .iter()
        .filter_map(|t| t.get("name")?.as_str().map(str::to_string))
        .collect();
    caller.bridge.remotes.remember(&server.name, names);
    Ok(offered)
}

/// Whether the server offers `tool`, by the names it last listed (listed again when they are
/// stale and do not name it). Calls name only these, so limits and metrics see no others.
pub async fn offers(caller: &Caller<'_>, server: &McpServer, tool: &str) -> bool {
    let remotes = &caller.bridge.remotes;
    if let Some(known) = remotes.known(&server.name, tool, true) {
        return known;
    }
    let _listed = tools(caller, server).await;
    remotes.known(&server.name, tool, false).unwrap_or(false)
}

/// `tools/call` on a remote server: its result, or its error, as it gave them.
pub async fn call(
    caller: &Caller<'_>,
    server: &McpServer,
    tool: &str,
    arguments: &Value,
) -> (McpOutcome, Result<Value, RpcError>) {
    // A call without arguments reaches the server without the field, not as `null`.
    let mut params = json!({"name": tool});
    if !arguments.is_null() {
        params["arguments"] = arguments.clone();
    }
    match request(caller, server, "tools/call", params).await {
        Ok(mut r) => {
            let outcome = if r.get("isError") == Some(&Value::Bool(true)) {
                McpOutcome::ToolError
            } else {
                McpOutcome::Ok
            };
            if let Some(o) = r.as_object_mut() {
                o.remove("_meta");
                o.remove("resultType");
            }
            (outcome, Ok(r))
        }
        Err(Failed::Rpc(e)) => (McpOutcome::ToolError, Err(e)),
        Err(Failed::SessionGone) | Err(Failed::Unreachable(_)) => {
            let text = format!("the MCP server `{}` did not answer", server.name);
            let r = json!({"content": [{"type": "text", "text": text}], "isError": true});
            (McpOutcome::Unreachable, Ok(r))
        }
    }
}

/// `method` on the server over the bridge's link: its result, or its error as an answer.
pub async fn ask(
    caller: &Caller<'_>,
    server: &McpServer,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    request(caller, server, method, params)
        .await
        .map_err(|f| match f {
            Failed::Rpc(e) => e,
            Failed::SessionGone | Failed::Unreachable(_) => RpcError::gateway(
                502,
                format!(
                    "Bad Gateway: the MCP server `{}` did not answer",
                    server.name
                ),
            ),
        })
}

/// One request over the server's link, opening (or reopening, once) the link as needed.
async fn request(
    caller: &Caller<'_>,
    server: &McpServer,
    method: &str,
    params: Value,
) -> Result<Value, Failed> {
    let remotes = &caller.bridge.remotes;
    for _ in 0..2 {
        let link = match remotes.get(&server.name) {
            Some(l) => l,
            None => {
                let l = connect(caller, server).await?;
                remotes.set(&server.name, Some(l.clone()));
                l
            }
        };
        match post(caller, server, &link, method, params.clone()).await {
            Err(Failed::SessionGone) => remotes.set(&server.name, None),
            other => return other,
        }
    }
    Err(Failed::Unreachable(
        "the server keeps ending its sessions".into(),
    ))
}

/// Find out how to talk to the server: discover, else the handshake.
async fn connect(caller: &Caller<'_>, server: &McpServer) -> Result<Link, Failed> {
    let modern = Link::Modern(MODERN_VERSIONS[0]);
    if let Ok(r) = post(caller, server, &modern, "server/discover", json!({})).await {
        let speaks = r
            .get("supportedVersions")
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().any(|x| x.as_str() == Some(MODERN_VERSIONS[0])));
        if speaks {
            return Ok(modern);
        }
    }
    let init = json!({
        "protocolVersion": LATEST_HANDSHAKE,
        "capabilities": {},
        "clientInfo": {"name": "tollgate", "version": env!("CARGO_PKG_VERSION")},
    });
    let fresh = Link::Session {
        id: None,
        version: LATEST_HANDSHAKE.into(),
    };
    let (x, reply) = exchange(caller, server, &fresh, "initialize", Some(init)).await?;
    let result = result_of(reply)?;
    let version = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or(LATEST_HANDSHAKE)
        .to_string();
    let link = Link::Session {
        id: x.session,
        version,
    };
    // The notification's answer (202) says nothing more.
    let _ack = exchange(caller, server, &link, "notifications/initialized", None).await;
    Ok(link)
}

async fn post(
    caller: &Caller<'_>,
    server: &McpServer,
    link: &Link,
    method: &str,
    params: Value,
) -> Result<Value, Failed> {
    let (_, reply) = exchange(caller, server, link, method, Some(params)).await?;
    result_of(reply)
}

fn result_of(reply: Option<Value>) -> Result<Value, Failed> {
    let reply = reply.ok_or_else(|| Failed::Unreachable("no answer".into()))?;
    if let Some(e) = reply.get("error") {
        let code = e.get("code").and_then(Value::as_i64).unwrap_or(-32603);
        let message = e.get("message").and_then(Value::as_str).unwrap_or("error");
        return Err(Failed::Rpc(RpcError {
            data: e.get("data").cloned().map(Box::new),
            ..RpcError::new(Code::Remote(code), message)
        }));
    }
    reply
        .get("result")
        .cloned()
        .ok_or_else(|| Failed::Unreachable("an answer with no result".into()))
}

/// One POST (`params: None`: a notification); the reply with our id, if one came.
async fn exchange(
    caller: &Caller<'_>,
    server: &McpServer,
    link: &Link,
    method: &str,
    params: Option<Value>,
) -> Result<(Exchanged, Option<Value>), Failed> {
    let hv = |v: &str| http::HeaderValue::from_str(v).ok();
    let mut headers = vec![(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json, text/event-stream"),
    )];
    let mut body = json!({"jsonrpc": "2.0", "method": method});
    match (link, params) {
        (Link::Modern(v), Some(mut p)) => {
            p["_meta"] = json!({
                wire::PROTOCOL_VERSION_META: v,
                wire::CLIENT_CAPABILITIES_META: {},
            });
            headers
                .extend(hv(v).map(|x| (http::HeaderName::from_static("mcp-protocol-version"), x)));
            headers.extend(hv(method).map(|x| (http::HeaderName::from_static("mcp-method"), x)));
            if let Some(name) = p.get("name").and_then(Value::as_str).and_then(hv) {
                headers.push((http::HeaderName::from_static("mcp-name"), name));
            }
            body["params"] = p;
            body["id"] = "tollgate".into();
        }
        (Link::Modern(_), None) => {}
        (Link::Session { id, version }, params) => {
            if method != "initialize" {
                headers.extend(
                    hv(version).map(|x| (http::HeaderName::from_static("mcp-protocol-version"), x)),
                );
            }
            if let Some(sid) = id.as_deref().and_then(hv) {
                headers.push((http::HeaderName::from_static("mcp-session-id"), sid));
            }
            if let Some(p) = params {
                body["params"] = p;
                body["id"] = "tollgate".into();
            }
        }
    }
    let built = Built {
        method: http::Method::POST,
        path_and_query: String::new(),
        headers,
        body: Some((Bytes::from(body.to_string()), "application/json".into())),
    };
    let sent = send(
        caller.runtime,
        caller.connector,
        server,
        built,
        &caller.headers,
        &caller.request_id,
    );
    let x = match tokio::time::timeout(server.timeout, sent).await {
        Ok(Ok(x)) => x,
        Ok(Err(why)) => return Err(Failed::Unreachable(why)),
        Err(_) => return Err(Failed::Unreachable("timed out".into())),
    };
    if x.status == 404 && matches!(link, Link::Session { id: Some(_), .. }) {
        return Err(Failed::SessionGone);
    }
    let reply = reply_in(&x);
    if reply.is_none() && body.get("id").is_some() {
        return Err(Failed::Unreachable(format!(
            "HTTP {} with no JSON-RPC answer",
            x.status
        )));
    }
    Ok((x, reply))
}

/// The JSON-RPC answer to our request in a JSON body or an SSE stream.
fn reply_in(x: &Exchanged) -> Option<Value> {
    let sse = x
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let ours = |v: &Value| v.get("id") == Some(&Value::from("tollgate"));
    if !sse {
        return serde_json::from_slice::<Value>(&x.body).ok().filter(ours);
    }
    let text = String::from_utf8_lossy(&x.body);
    text.split("\n\n")
        .flat_map(|e| e.split("\r\n\r\n"))
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            serde_json::from_str::<Value>(&data.join("\n")).ok()
        })
        .find(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchanged(ctype: &str, body: &str) -> Exchanged {
        Exchanged {
            status: 200,
            content_type: Some(ctype.into()),
            session: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn answers_are_found_in_json_and_in_sse() {
        let json = exchanged(
            "application/json",
            r#"{"jsonrpc":"2.0","id":"tollgate","result":{}}"#,
        );
        assert!(reply_in(&json).is_some());
        let sse = exchanged(
            "text/event-stream",
            "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n\
             event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"tollgate\",\"result\":{\"x\":1}}\r\n\r\n",
        );
        assert_eq!(reply_in(&sse).unwrap()["result"]["x"], 1);
        let other = exchanged(
            "application/json",
            r#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
        );
        assert!(reply_in(&other).is_none());
    }
}
