//! A remote MCP server alone at its path (`/mcp/{server}`, `kind = "remote"`), proxied
//! session for session, in the handshake-era revisions (2025-03-26 and later).
//!
//! The client's `initialize` goes to the remote as the client sent it, so the remote sees the
//! client's own capabilities (sampling, elicitation, roots) and opens a session of its own for
//! this client; that session's id travels sealed inside the client's session id
//! ([`super::seal`]), so any instance with the session key forwards any later message, with no
//! store. Every later message — requests, notifications, the client's answers to the
//! server's requests, batches — goes to the remote in that session as the client sent it, and
//! the answer comes back as the remote sent it, event by event: progress, log messages and the
//! server's own requests (`sampling/createMessage`, `elicitation/create`, `roots/list`)
//! reach the client while its request is still open, and the client's answers, posted to any
//! instance, reach the remote. The GET stream and DELETE are the remote's too. Ids need no
//! remapping: the remote session serves one client, so none can collide.
//!
//! What the gateway still decides: who calls (key, address), which tools exist for this
//! consumer (the server's `include`/`exclude` and the consumer's `mcp_tools`: left out of
//! `tools/list`, and a `tools/call` naming another is "Unknown tool" without reaching the
//! remote), and the consumer's limits on each call, held until its answer ends.
//!
//! Written by hand rather than on an MCP SDK: nothing here reads a message beyond its `id`,
//! `method` and a tool's name — the remote's answers go out as bytes.

mod answers;

use super::answer::Answer;
use super::call::{self, Built, Opened};
use super::streamable::{batch_session, open_session, Posted};
use super::wire::{self, Code, Message, RpcError};
use super::Caller;
use crate::config::mcp::McpServer;
use crate::limits::Reservation;
use crate::request::ctx::{McpExchange, McpOutcome};
use answers::{answer_in, read_whole, Edit, ToolFilter};
use bytes::Bytes;
use serde_json::{json, Value};

pub use answers::{relay, Relay};

/// The longest remote session id carried (it travels sealed inside the client's).
const MAX_REMOTE_SESSION: usize = 512;

/// Answer one POST at a proxied remote's path.
pub async fn post(
    caller: &Caller<'_>,
    server: &McpServer,
    posted: Posted<'_>,
    ex: &mut McpExchange,
) -> Answer {
    let value: Value = match serde_json::from_slice(posted.body) {
        Ok(v) => v,
        Err(_) => return Answer::error(&Value::Null, RpcError::new(Code::Parse, "Parse error")),
    };
    if let Value::Array(_) = &value {
        return forward_batch(caller, server, &posted, ex).await;
    }
    let message = match wire::parse_value(value) {
        Ok(m) => m,
        Err((id, e)) => return Answer::error(&id, e),
    };
    if let Message::Request { id, method, params } = &message {
        if method == "initialize" {
            ex.method = Some(method.clone());
            return initialize(caller, server, &posted, id, params, ex).await;
        }
    }
    // The stateless revision has no session: each message goes alone, to any instance.
    let modern = posted.version.filter(|v| wire::MODERN_VERSIONS.contains(v));
    let (version, remote_session) = match modern {
        Some(v) => (v.to_string(), String::new()),
        None => match open_session(caller, posted.session, false) {
            Ok(s) => (posted.version.unwrap_or(&s.v).to_string(), s.r),
            Err(e) => {
                ex.outcome = McpOutcome::Refused;
                let id = match &message {
                    Message::Request { id, .. } => id.clone(),
                    Message::Notification { .. } | Message::Response => Value::Null,
                };
                return Answer::error(&id, e);
            }
        },
    };
    ex.version = Some(version.clone());
    let (edit, reservation) = match &message {
        Message::Notification { method } => {
            ex.method = Some(method.clone());
            (Edit::Nothing, None)
        }
        Message::Response => (Edit::Nothing, None),
        Message::Request { id, method, params } => {
            ex.method = Some(method.clone());
            match admit(caller, server, id, method, params, ex).await {
                Ok(admitted) => admitted,
                Err(answer) => return answer,
            }
        }
    };
    let built = forwarded(
        http::Method::POST,
        posted.body,
        &caller.headers,
        &remote_session,
        &version,
    );
    match open(caller, server, built).await {
        Ok(opened) => Answer::Relay(Box::new(Relay {
            opened,
            edit,
            timeout: server.timeout,
            _reservation: reservation,
        })),
        Err(why) => unreachable_remote(server, &why, ex),
    }
}

/// What a request needs before it goes: a tool call names a tool this consumer sees and is
/// charged; a tool list is filtered on its way back.
async fn admit(
    caller: &Caller<'_>,
    server: &McpServer,
    id: &Value,
    method: &str,
    params: &Value,
    ex: &mut McpExchange,
) -> Result<(Edit, Option<Reservation>), Answer> {
    match method {
        "tools/list" => Ok((
            Edit::Tools {
                id: id.clone(),
                seen: ToolFilter::of(caller, server),
            },
            None,
        )),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            let known = ToolFilter::of(caller, server).keeps(name)
                && super::remote::offers(caller, server, name).await;
            if !known {
                let e = RpcError::new(Code::InvalidParams, format!("Unknown tool: {name}"));
                return Err(Answer::error(id, RpcError { status: 200, ..e }));
            }
            ex.tool = Some(name.to_string());
            match caller.reserve(server, name, ex) {
                Ok(r) => Ok((Edit::Outcome { id: id.clone() }, Some(r))),
                Err(e) => Err(Answer::error(id, e)),
            }
        }
        "resources/list"
        | "resources/templates/list"
        | "prompts/list"
        | "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe"
        | "prompts/get"
        | "completion/complete"
            if !caller.consumer.may_see_whole(&server.name) =>
        {
            // Prompts and resources are seen by consumers granted the whole server.
            let answer = match method {
                "resources/list" => Answer::of(id, Ok(json!({"resources": []}))),
                "resources/templates/list" => Answer::of(id, Ok(json!({"resourceTemplates": []}))),
                "prompts/list" => Answer::of(id, Ok(json!({"prompts": []}))),
                _ => {
                    let e = RpcError::new(Code::InvalidParams, "Unknown prompt or resource");
                    Answer::error(id, RpcError { status: 200, ..e })
                }
            };
            Err(answer)
        }
        _ => Ok((Edit::Nothing, None)),
    }
}

/// `initialize`: the remote opens its session for this client; the client gets the remote's
/// answer with a session id of the gateway's, the remote's sealed inside.
async fn initialize(
    caller: &Caller<'_>,
    server: &McpServer,
    posted: &Posted<'_>,
    id: &Value,
    params: &Value,
    ex: &mut McpExchange,
) -> Answer {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let built = forwarded(
        http::Method::POST,
        posted.body,
        &caller.headers,
        "",
        asked.unwrap_or(wire::LATEST_HANDSHAKE),
    );
    let opened = match open(caller, server, built).await {
        Ok(o) => o,
        Err(why) => return unreachable_remote(server, &why, ex),
    };
    let (status, content_type) = (opened.status, opened.content_type.clone());
    let remote_session = opened.session.clone().unwrap_or_default();
    let body = match read_whole(opened, server.timeout).await {
        Ok(b) => b,
        Err(why) => return unreachable_remote(server, &why, ex),
    };
    let result =
        answer_in(&body, content_type.as_deref(), id).and_then(|a| a.get("result").cloned());
    let Some(version) = result
        .as_ref()
        .and_then(|r| r.get("protocolVersion")?.as_str().map(str::to_string))
    else {
        // A refusal (or something else): the client reads it as the remote wrote it.
        return Answer::Raw {
            status,
            content_type,
            body,
            session: None,
        };
    };
    ex.version = Some(version.clone());
    if remote_session.len() > MAX_REMOTE_SESSION {
        return unreachable_remote(server, "its session id is too long", ex);
    }
    let Some(token) = caller.seal_with_remote(&version, None, &remote_session) else {
        return Answer::error(id, RpcError::new(Code::Internal, "cannot open a session"));
    };
    Answer::Raw {
        status,
        content_type,
        body,
        session: Some(token),
    }
}

/// A batch (2025-03-26): each message forwarded on its own, in order, checked as alone; the
/// answers to its requests come back as one array.
async fn forward_batch(
    caller: &Caller<'_>,
    server: &McpServer,
    posted: &Posted<'_>,
    ex: &mut McpExchange,
) -> Answer {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(posted.body) else {
        return Answer::error(&Value::Null, RpcError::new(Code::Parse, "Parse error"));
    };
    let sealed = match batch_session(caller, posted, items.is_empty(), ex) {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let version = posted.version.unwrap_or(&sealed.v);
    let mut answers = Vec::new();
    for item in items {
        let (id, edit) = match wire::parse_value(item.clone()) {
            Err((id, e)) => {
                answers.push(e.body(&id));
                continue;
            }
            Ok(Message::Request { id, method, .. }) if method == "initialize" => {
                let e = RpcError::new(Code::InvalidRequest, "initialize cannot be batched");
                answers.push(e.body(&id));
                continue;
            }
            Ok(Message::Request { id, method, params }) => {
                ex.method = Some(method.clone());
                match admit(caller, server, &id, &method, &params, ex).await {
                    Ok((edit, _charged)) => (Some(id), edit),
                    Err(_) => {
                        let e = RpcError::new(Code::InvalidParams, "Unknown tool or limit reached");
                        answers.push(e.body(&id));
                        continue;
                    }
                }
            }
            Ok(Message::Notification { .. } | Message::Response) => (None, Edit::Nothing),
        };
        let body = item.to_string();
        let built = forwarded(
            http::Method::POST,
            body.as_bytes(),
            &caller.headers,
            &sealed.r,
            version,
        );
        let Some(id) = id else {
            let _ack = open(caller, server, built).await;
            continue;
        };
        let answer = match open(caller, server, built).await {
            Ok(o) => {
                let ctype = o.content_type.clone();
                read_whole(o, server.timeout)
                    .await
                    .ok()
                    .and_then(|b| answer_in(&b, ctype.as_deref(), &id))
            }
            Err(_) => None,
        };
        let mut answer = answer
            .unwrap_or_else(|| RpcError::gateway(502, "the MCP server did not answer").body(&id));
        edit.apply(&mut answer, ex);
        answers.push(answer);
    }
    if answers.is_empty() {
        return Answer::Accepted;
    }
    Answer::Json {
        status: 200,
        body: Value::Array(answers),
        session: None,
    }
}

/// GET: the remote's stream for this session, relayed as it comes.
pub async fn get(
    caller: &Caller<'_>,
    server: &McpServer,
    token: Option<&str>,
    ex: &mut McpExchange,
) -> Answer {
    let sealed = match open_session(caller, token, false) {
        Ok(s) => s,
        Err(e) => return Answer::error(&Value::Null, e),
    };
    let version = super::header(&caller.headers, "mcp-protocol-version").unwrap_or(&sealed.v);
    let built = forwarded(http::Method::GET, b"", &caller.headers, &sealed.r, version);
    match open(caller, server, built).await {
        Ok(opened) => Answer::Relay(Box::new(Relay {
            opened,
            edit: Edit::Nothing,
            timeout: server.timeout,
            _reservation: None,
        })),
        Err(why) => unreachable_remote(server, &why, ex),
    }
}

/// DELETE: the remote's session ends, and the client's with it.
pub async fn delete(caller: &Caller<'_>, server: &McpServer, token: Option<&str>) -> Answer {
    let sealed = match open_session(caller, token, false) {
        Ok(s) => s,
        Err(e) => return Answer::error(&Value::Null, e),
    };
    if let Some(t) = token {
        caller.bridge.end(t, sealed.exp);
    }
    let built = forwarded(
        http::Method::DELETE,
        b"",
        &caller.headers,
        &sealed.r,
        &sealed.v,
    );
    match open(caller, server, built).await {
        Ok(o) => Answer::Empty {
            status: if o.status == 405 { 200 } else { o.status },
        },
        Err(_) => Answer::Empty { status: 200 },
    }
}

/// The request to the remote: the client's body and the headers of the transport; the
/// server's credential and forwarded headers are added by [`call::open`].
fn forwarded(
    method: http::Method,
    body: &[u8],
    client: &http::HeaderMap,
    remote_session: &str,
    version: &str,
) -> Built {
    let hv = |v: &str| http::HeaderValue::from_str(v).ok();
    let accept = super::header(client, "accept")
        .filter(|a| a.contains("text/event-stream") || a.contains("json"))
        .unwrap_or("application/json, text/event-stream");
    let mut headers = Vec::new();
    headers.extend(hv(accept).map(|v| (http::header::ACCEPT, v)));
    headers.extend(hv(version).map(|v| (http::HeaderName::from_static("mcp-protocol-version"), v)));
    if !remote_session.is_empty() {
        headers.extend(
            hv(remote_session).map(|v| (http::HeaderName::from_static("mcp-session-id"), v)),
        );
    }
    if let Some(last) = super::header(client, "last-event-id").and_then(hv) {
        headers.push((http::HeaderName::from_static("last-event-id"), last));
    }
    let body = (method == http::Method::POST)
        .then(|| (Bytes::copy_from_slice(body), "application/json".to_string()));
    Built {
        method,
        path_and_query: String::new(),
        headers,
        body,
    }
}

async fn open(caller: &Caller<'_>, server: &McpServer, built: Built) -> Result<Opened, String> {
    call::open(
        caller.runtime,
        caller.connector,
        server,
        built,
        &caller.headers,
        &caller.request_id,
        false,
    )
    .await
}

fn unreachable_remote(server: &McpServer, why: &str, ex: &mut McpExchange) -> Answer {
    ex.outcome = McpOutcome::Unreachable;
    Answer::error(
        &Value::Null,
        RpcError::gateway(
            502,
            format!(
                "Bad Gateway: the MCP server `{}` did not answer ({why})",
                server.name
            ),
        ),
    )
}
