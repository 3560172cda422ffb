//! What the bridge answers, and writing it: JSON-RPC bodies with the right status and
//! headers (`Mcp-Session-Id`, `Allow`, `WWW-Authenticate`, `Retry-After`), 202s, and a
//! session's GET stream.

use super::wire::{self, RpcError};
use super::Bridge;
use crate::attempt::ClientLeft;
use crate::request::ctx::RequestCtx;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::Value;
use std::time::Duration;

/// A GET stream's keep-alive comment interval.
pub(super) const PING: Duration = Duration::from_secs(15);
/// A GET stream ends after this long (the client opens another).
pub(super) const STREAM_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// What the transport answers.
pub enum Answer {
    Json {
        status: u16,
        body: Value,
        /// A session just opened (`Mcp-Session-Id`).
        session: Option<String>,
    },
    /// 202, no body.
    Accepted,
    Empty {
        status: u16,
    },
    MethodNotAllowed {
        allow: &'static str,
    },
    NotAcceptable,
    /// A GET stream was asked for and allowed.
    Stream {
        session: String,
    },
    /// A legacy SSE stream (`id`), whose first event names `endpoint`.
    LegacyStream {
        id: String,
        endpoint: String,
    },
    /// Already written (a legacy message's 202, sent before its answer was made).
    Written,
    /// A remote server's answer as it wrote it (a proxied `initialize`, with the gateway's
    /// session id).
    Raw {
        status: u16,
        content_type: Option<String>,
        body: Bytes,
        session: Option<String>,
    },
    /// A proxied remote's answer, relayed as it comes.
    Relay(Box<super::passthrough::Relay>),
    /// A refusal with extra headers (401's `WWW-Authenticate`, 429's `Retry-After`).
    Refused(RpcError),
}

impl Answer {
    pub fn error(id: &Value, e: RpcError) -> Answer {
        if e.retry_after_ms.is_some() || e.status == 401 {
            return Answer::Refused(e);
        }
        Answer::Json {
            status: e.status,
            body: e.body(id),
            session: None,
        }
    }

    pub fn of(id: &Value, result: Result<Value, RpcError>) -> Answer {
        match result {
            Ok(r) => Answer::Json {
                status: 200,
                body: wire::result_body(id, r),
                session: None,
            },
            Err(e) => Answer::error(id, e),
        }
    }
}

/// Write the answer (`sse_only`: the client accepts no JSON, so a result is one SSE event).
pub async fn write(
    session: &mut Session,
    ctx: &mut RequestCtx,
    bridge: &Bridge,
    answer: Answer,
    sse_only: bool,
) {
    let (status, body, extra): (u16, Option<Value>, Vec<(&str, String)>) = match answer {
        Answer::Json {
            status,
            body,
            session: sid,
        } => {
            let extra = sid.map(|s| ("mcp-session-id", s)).into_iter().collect();
            (status, Some(body), extra)
        }
        Answer::Refused(e) => {
            let mut extra = Vec::new();
            if e.status == 401 {
                extra.push(("www-authenticate", "Bearer".to_string()));
            }
            if let Some(ms) = e.retry_after_ms {
                extra.push(("retry-after", ms.div_ceil(1000).max(1).to_string()));
            }
            (e.status, Some(e.body(&Value::Null)), extra)
        }
        Answer::Accepted => (202, None, Vec::new()),
        Answer::Empty { status } => (status, None, Vec::new()),
        Answer::MethodNotAllowed { allow } => (405, None, vec![("allow", allow.to_string())]),
        Answer::NotAcceptable => (406, None, Vec::new()),
        Answer::Stream { session: sid } => return stream(session, ctx, sid).await,
        Answer::LegacyStream { id, endpoint } => {
            return super::legacy::stream(session, ctx, &bridge.relay, id, endpoint).await
        }
        Answer::Written => return,
        Answer::Relay(r) => return super::passthrough::relay(session, ctx, *r).await,
        Answer::Raw {
            status,
            content_type,
            body,
            session: sid,
        } => {
            let mut fields: Vec<(&str, String)> =
                sid.map(|s| ("mcp-session-id", s)).into_iter().collect();
            fields.extend(content_type.map(|t| ("content-type", t)));
            fields.push(("content-length", body.len().to_string()));
            let Some(h) = response_header(status, &ctx.request_id, fields) else {
                return;
            };
            let sent = async {
                session.write_response_header(Box::new(h), false).await?;
                session.write_response_body(Some(body), true).await
            };
            if let Err(e) = sent.await {
                ctx.end.client_left = Some(ClientLeft::of(&e));
            }
            return;
        }
    };
    let (ctype, payload) = match &body {
        Some(b) if sse_only && status == 200 => (
            Some("text/event-stream"),
            Bytes::from(format!("event: message\ndata: {b}\n\n")),
        ),
        Some(b) => (Some("application/json"), Bytes::from(b.to_string())),
        None => (None, Bytes::new()),
    };
    let mut fields = extra;
    if let Some(t) = ctype {
        fields.push(("content-type", t.to_string()));
    }
    fields.push(("content-length", payload.len().to_string()));
    let Some(h) = response_header(status, &ctx.request_id, fields) else {
        return;
    };
    let sent = async {
        session.write_response_header(Box::new(h), false).await?;
        session.write_response_body(Some(payload), true).await
    };
    if let Err(e) = sent.await {
        ctx.end.client_left = Some(ClientLeft::of(&e));
    }
}

fn response_header(
    status: u16,
    request_id: &str,
    fields: Vec<(&str, String)>,
) -> Option<ResponseHeader> {
    let mut h = ResponseHeader::build(status, Some(fields.len() + 1)).ok()?;
    h.insert_header("x-request-id", request_id).ok()?;
    for (k, v) in fields {
        h.insert_header(k.to_string(), v).ok()?;
    }
    Some(h)
}

/// A session's GET stream: keep-alive comments until the client leaves or the lifetime ends.
async fn stream(session: &mut Session, ctx: &mut RequestCtx, sid: String) {
    let fields = vec![
        ("content-type", "text/event-stream".to_string()),
        ("cache-control", "no-cache, no-transform".to_string()),
        ("mcp-session-id", sid),
    ];
    let Some(h) = response_header(200, &ctx.request_id, fields) else {
        return;
    };
    let ran = async {
        session.write_response_header(Box::new(h), false).await?;
        let deadline = tokio::time::Instant::now() + STREAM_LIFETIME;
        while tokio::time::Instant::now() + PING < deadline {
            tokio::time::sleep(PING).await;
            let ping = Bytes::from_static(b": ping\n\n");
            session.write_response_body(Some(ping), false).await?;
        }
        session.write_response_body(None, true).await
    };
    if let Err(e) = ran.await {
        ctx.end.client_left = Some(ClientLeft::of(&e));
    }
}
