//! The Streamable HTTP transport at `/mcp/{server}` and `/mcp`, in both eras.
//!
//! - **2026-07-28** (`MCP-Protocol-Version: 2026-07-28`): every request is one self-contained
//!   POST, checked by [`wire::check_modern`]; no session; GET and DELETE are 405.
//! - **2025-03-26, 2025-06-18, 2025-11-25**: `initialize` opens a session whose id is a sealed
//!   token ([`super::seal`]); every later request carries it (`Mcp-Session-Id`) and the
//!   negotiated version; GET opens the server-to-client stream (keep-alive comments only: the
//!   gateway sends no requests of its own); DELETE ends the session.
//!
//! Answers are JSON (`application/json`), or one SSE event when the client accepts only
//! `text/event-stream`. Notifications and client responses get 202.

use super::seal::{self, Session as Sealed};
use super::wire::{self, Code, Message, Routing, RpcError, HANDSHAKE_VERSIONS, LATEST_HANDSHAKE};
use super::{Answer, Bridge, Caller};
use crate::request::ctx::{McpExchange, McpOutcome};
use serde_json::{json, Value};

/// What a POST carries after the transport checks: the body and the headers that matter.
pub struct Posted<'a> {
    pub body: &'a [u8],
    pub version: Option<&'a str>,
    pub routing: Routing<'a>,
    pub session: Option<&'a str>,
}

/// Answer one POST.
pub async fn post(caller: &Caller<'_>, posted: Posted<'_>, ex: &mut McpExchange) -> Answer {
    match posted.version {
        Some(v) if wire::MODERN_VERSIONS.contains(&v) => modern(caller, posted, ex).await,
        Some(v) if !HANDSHAKE_VERSIONS.contains(&v) => {
            let mut all = HANDSHAKE_VERSIONS.to_vec();
            all.extend(wire::MODERN_VERSIONS);
            Answer::error(&Value::Null, RpcError::unsupported_version(v, &all))
        }
        _ => handshake(caller, posted, ex).await,
    }
}

async fn modern(caller: &Caller<'_>, posted: Posted<'_>, ex: &mut McpExchange) -> Answer {
    let (id, method, params) = match wire::parse(posted.body) {
        Err((id, e)) => return Answer::error(&id, e),
        Ok(Message::Notification { method }) => {
            ex.method = Some(method);
            return Answer::Accepted;
        }
        Ok(Message::Response) => return Answer::Accepted,
        Ok(Message::Request { id, method, params }) => (id, method, params),
    };
    ex.method = Some(method.clone());
    let version = match wire::check_modern(&method, &params, &posted.routing) {
        Ok(v) => v,
        Err(e) => return Answer::error(&id, e),
    };
    ex.version = Some(version.to_string());
    let view = &caller.view;
    let result = match method.as_str() {
        "server/discover" => Ok(view.discover()),
        "tools/list" => caller.list(true).await,
        "tools/call" => caller.call(&params, ex).await.map(|r| view.modern(r)),
        other => match super::combined::Method::of(other).filter(|_| view.has_remotes()) {
            Some(m) => super::combined::serve(caller, m, &params)
                .await
                .map(|r| view.modern(r)),
            None => Err(RpcError::new(
                Code::MethodNotFound,
                format!("Method not found: {other}"),
            )),
        },
    };
    Answer::of(&id, result)
}

async fn handshake(caller: &Caller<'_>, posted: Posted<'_>, ex: &mut McpExchange) -> Answer {
    if let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(posted.body) {
        return batch(caller, &posted, items, ex).await;
    }
    let message = match wire::parse(posted.body) {
        Err((id, e)) => return Answer::error(&id, e),
        Ok(m) => m,
    };
    if let Message::Request { id, method, params } = &message {
        if method == "initialize" {
            ex.method = Some(method.clone());
            return initialize(caller, id, params, ex);
        }
    }
    let session = match open_session(caller, posted.session, false) {
        Ok(s) => s,
        Err(e) => {
            ex.outcome = McpOutcome::Refused;
            let id = match &message {
                Message::Request { id, .. } => id.clone(),
                Message::Notification { .. } | Message::Response => Value::Null,
            };
            return Answer::error(&id, e);
        }
    };
    ex.version = Some(session.v.clone());
    let (id, method, params) = match message {
        Message::Notification { method } => {
            ex.method = Some(method);
            return Answer::Accepted;
        }
        Message::Response => return Answer::Accepted,
        Message::Request { id, method, params } => (id, method, params),
    };
    ex.method = Some(method.clone());
    let result = session_method(caller, &method, &params, ex).await;
    Answer::of(&id, result.map_err(within_session))
}

/// In a session, a JSON-RPC error is an answer, sent with HTTP 200 (a 404 would tell the
/// client its session ended); the gateway's own refusals (limits, sizes) keep their status.
fn within_session(e: RpcError) -> RpcError {
    match e.code {
        Code::Gateway => e,
        Code::Parse
        | Code::InvalidRequest
        | Code::MethodNotFound
        | Code::InvalidParams
        | Code::Internal
        | Code::HeaderMismatch
        | Code::UnsupportedVersion
        | Code::Remote(_) => RpcError { status: 200, ..e },
    }
}

/// A JSON-RPC batch in a session negotiated at 2025-03-26, the one revision that has them:
/// each request answered in order, notifications and responses accepted, `initialize`
/// refused (it cannot be batched).
async fn batch(
    caller: &Caller<'_>,
    posted: &Posted<'_>,
    items: Vec<Value>,
    ex: &mut McpExchange,
) -> Answer {
    if let Err(refused) = batch_session(caller, posted, items.is_empty(), ex) {
        return refused;
    }
    let mut answers = Vec::new();
    for item in items {
        match wire::parse_value(item) {
            Err((id, e)) => answers.push(e.body(&id)),
            Ok(Message::Notification { method }) => ex.method = Some(method),
            Ok(Message::Response) => {}
            Ok(Message::Request { id, method, .. }) if method == "initialize" => {
                let e = RpcError::new(Code::InvalidRequest, "initialize cannot be batched");
                answers.push(e.body(&id));
            }
            Ok(Message::Request { id, method, params }) => {
                ex.method = Some(method.clone());
                answers.push(match session_method(caller, &method, &params, ex).await {
                    Ok(r) => wire::result_body(&id, r),
                    Err(e) => e.body(&id),
                });
            }
        }
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

/// The session a batch is posted in, if a batch is allowed there: a valid session negotiated
/// at [`BATCH_VERSION`], and a batch that is not empty. Shared with the proxied remotes.
pub fn batch_session(
    caller: &Caller<'_>,
    posted: &Posted<'_>,
    empty: bool,
    ex: &mut McpExchange,
) -> Result<Sealed, Answer> {
    let session = open_session(caller, posted.session, false).map_err(|e| {
        ex.outcome = McpOutcome::Refused;
        Answer::error(&Value::Null, e)
    })?;
    ex.version = Some(session.v.clone());
    if session.v != BATCH_VERSION || empty {
        let why =
            format!("batches are part of protocol version {BATCH_VERSION} only, and not empty");
        return Err(Answer::error(
            &Value::Null,
            RpcError::new(Code::InvalidRequest, why),
        ));
    }
    Ok(session)
}

/// The one revision whose Streamable HTTP transport takes JSON-RPC batches.
const BATCH_VERSION: &str = "2025-03-26";

/// A request within a session (either transport), `initialize` aside.
pub async fn session_method(
    caller: &Caller<'_>,
    method: &str,
    params: &Value,
    ex: &mut McpExchange,
) -> Result<Value, RpcError> {
    match method {
        "ping" => Ok(json!({})),
        "tools/list" => caller.list(false).await,
        "tools/call" => caller.call(params, ex).await,
        other => match super::combined::Method::of(other).filter(|_| caller.view.has_remotes()) {
            Some(m) => super::combined::serve(caller, m, params).await,
            None => Err(RpcError::new(
                Code::MethodNotFound,
                format!("Method not found: {other}"),
            )),
        },
    }
}

/// The version a client asked for, if it is one served here with a session; else the latest.
pub fn negotiate(requested: Option<&str>, legacy_sse: bool) -> &'static str {
    HANDSHAKE_VERSIONS
        .iter()
        .find(|v| Some(**v) == requested && (legacy_sse || **v != "2024-11-05"))
        .copied()
        .unwrap_or(LATEST_HANDSHAKE)
}

fn initialize(caller: &Caller<'_>, id: &Value, params: &Value, ex: &mut McpExchange) -> Answer {
    let requested = params.get("protocolVersion").and_then(Value::as_str);
    let version = negotiate(requested, false);
    ex.version = Some(version.to_string());
    let Some(token) = caller.seal_session(version, None) else {
        return Answer::error(id, RpcError::new(Code::Internal, "cannot open a session"));
    };
    Answer::Json {
        status: 200,
        body: wire::result_body(id, caller.view.initialize(version)),
        session: Some(token),
    }
}

/// The session a request names, if it is valid here: sealed by us, not expired or ended,
/// opened at this path by this consumer's key, on this transport (`legacy`: HTTP+SSE).
pub fn open_session(
    caller: &Caller<'_>,
    token: Option<&str>,
    legacy: bool,
) -> Result<Sealed, RpcError> {
    let token = token
        .ok_or_else(|| RpcError::gateway(400, "Bad Request: Mcp-Session-Id header is required"))?;
    let not_found = || RpcError::gateway(404, "Session not found");
    let now = super::now_s();
    let session = seal::open(&caller.settings.keys, token, now).map_err(|_| not_found())?;
    if caller.bridge.is_ended(token)
        || session.s != caller.path_server()
        || session.c != caller.consumer.name
        || session.k != caller.key_label
        || session.l.is_empty() == legacy
    {
        return Err(not_found());
    }
    // A version this transport serves but not the negotiated one is accepted, as the spec
    // asks (400 is for invalid or unsupported versions, checked before a session is read).
    Ok(session)
}

/// `DELETE`: end the session.
pub fn delete(caller: &Caller<'_>, token: Option<&str>) -> Answer {
    match open_session(caller, token, false) {
        Ok(s) => {
            if let Some(t) = token {
                caller.bridge.end(t, s.exp);
            }
            Answer::Empty { status: 200 }
        }
        Err(e) => Answer::error(&Value::Null, e),
    }
}

impl Bridge {
    /// Whether the session was ended (DELETE) on this instance.
    pub fn is_ended(&self, token: &str) -> bool {
        self.ended().contains_key(token)
    }

    /// Remember an ended session until it would have expired anyway.
    pub fn end(&self, token: &str, exp: u64) {
        let now = super::now_s();
        let mut ended = self.ended();
        ended.retain(|_, e| *e > now);
        ended.insert(token.to_string(), exp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_negotiated_down_to_what_is_served() {
        assert_eq!(negotiate(Some("2025-03-26"), false), "2025-03-26");
        assert_eq!(negotiate(Some("2025-06-18"), false), "2025-06-18");
        assert_eq!(negotiate(Some("2024-11-05"), false), LATEST_HANDSHAKE);
        assert_eq!(negotiate(Some("2024-11-05"), true), "2024-11-05");
        assert_eq!(negotiate(Some("1999-01-01"), false), LATEST_HANDSHAKE);
        assert_eq!(negotiate(None, false), LATEST_HANDSHAKE);
    }
}
