//! The legacy HTTP+SSE transport (revision 2024-11-05, still spoken by older clients):
//! `GET …/sse` opens the stream, whose first event (`endpoint`) names where to post messages
//! (`…/messages?sessionId=<sealed id>`); each posted message gets 202 and its answer goes out
//! on the stream, through [`super::relay`] when the stream is held by another instance.

use super::answer::{write, Answer, PING, STREAM_LIFETIME};
use super::relay::{Relay, Route};
use super::streamable::{negotiate, open_session, session_method};
use super::wire::{self, Code, Message, RpcError};
use super::Caller;
use crate::attempt::ClientLeft;
use crate::request::ctx::{McpExchange, RequestCtx};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::Value;

/// `GET …/sse`: a new stream and the session bound to it.
pub fn open(caller: &Caller<'_>, path: &str, ex: &mut McpExchange) -> Answer {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let Some(token) = caller.seal_session("", Some(&id)) else {
        return Answer::error(
            &Value::Null,
            RpcError::new(Code::Internal, "cannot open a session"),
        );
    };
    let base = path
        .trim_end_matches('/')
        .strip_suffix("/sse")
        .unwrap_or("/mcp");
    ex.version = Some("2024-11-05".into());
    Answer::LegacyStream {
        id,
        endpoint: format!("{base}/messages?sessionId={token}"),
    }
}

fn session_id(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "sessionId" || k == "session_id").then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// `POST …/messages?sessionId=`: accept the message (202), then answer it on its stream.
pub async fn post(
    caller: &Caller<'_>,
    session: &mut Session,
    ctx: &mut RequestCtx,
    query: &str,
    body: &[u8],
    ex: &mut McpExchange,
) -> Answer {
    let token = session_id(query);
    let sealed = match open_session(caller, token.as_deref(), true) {
        Ok(s) => s,
        Err(e) => return Answer::error(&Value::Null, e),
    };
    let not_held =
        |msg: &str, status: u16| Answer::error(&Value::Null, RpcError::gateway(status, msg));
    match caller.bridge.relay.route(&sealed.l).await {
        Route::Local | Route::Remote => {}
        Route::Nowhere => return not_held("Session not found: its stream is not open", 404),
        Route::StoreDown => {
            return not_held(
                "Service Unavailable: the session's stream is on another instance and Redis does not answer",
                503,
            )
        }
    }
    let message = match wire::parse(body) {
        Ok(m) => m,
        Err((id, e)) => return Answer::error(&id, e),
    };
    write(session, ctx, caller.bridge, Answer::Accepted, false).await;
    let (id, method, params) = match message {
        Message::Notification { method } => {
            ex.method = Some(method);
            return Answer::Written;
        }
        Message::Response => return Answer::Written,
        Message::Request { id, method, params } => (id, method, params),
    };
    ex.method = Some(method.clone());
    let result = match method.as_str() {
        "initialize" => {
            let requested = params.get("protocolVersion").and_then(Value::as_str);
            let version = negotiate(requested, true);
            ex.version = Some(version.to_string());
            Ok(caller.view.initialize(version))
        }
        other => session_method(caller, other, &params, ex).await,
    };
    let reply = match result {
        Ok(r) => wire::result_body(&id, r),
        Err(e) => e.body(&id),
    };
    let event = Bytes::from(format!("event: message\ndata: {reply}\n\n"));
    if let Err(e) = caller.bridge.relay.deliver(&sealed.l, event).await {
        log::warn!("mcp: an answer for a legacy SSE stream was not delivered: {e}");
    }
    Answer::Written
}

/// A legacy stream: the `endpoint` event, then answers and keep-alive comments until the
/// client leaves or the lifetime ends.
pub async fn stream(
    session: &mut Session,
    ctx: &mut RequestCtx,
    relay: &Relay,
    id: String,
    endpoint: String,
) {
    let (_registered, mut events) = relay.register(&id);
    relay.mark(&id).await;
    let ran = async {
        let mut h = ResponseHeader::build(200, Some(3))?;
        h.insert_header("content-type", "text/event-stream")?;
        h.insert_header("cache-control", "no-store")?;
        h.insert_header("x-request-id", &ctx.request_id)?;
        session.write_response_header(Box::new(h), false).await?;
        let first = format!("event: endpoint\ndata: {endpoint}\n\n");
        session
            .write_response_body(Some(Bytes::from(first)), false)
            .await?;
        let deadline = tokio::time::Instant::now() + STREAM_LIFETIME;
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                _ = tokio::time::sleep(PING) => {
                    relay.mark(&id).await;
                    Some(Bytes::from_static(b": ping\n\n"))
                }
                _ = tokio::time::sleep_until(deadline) => None,
            };
            match event {
                Some(e) => session.write_response_body(Some(e), false).await?,
                None => break,
            }
        }
        session.write_response_body(None, true).await
    };
    if let Err(e) = ran.await {
        ctx.end.client_left = Some(ClientLeft::of(&e));
    }
    relay.unmark(&id).await;
}
