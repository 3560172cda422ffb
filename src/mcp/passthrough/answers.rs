//! The way back from a proxied remote: its answers relayed to the client — a JSON body whole,
//! an event stream event by event — and the gateway's few edits on them (a tool list filtered
//! for the consumer, a tool call's outcome read for the metrics).

use super::super::answer::{PING, STREAM_LIFETIME};
use super::super::call::Opened;
use super::super::wire::RpcError;
use super::super::Caller;
use crate::attempt::ClientLeft;
use crate::config::mcp::McpServer;
use crate::limits::Reservation;
use crate::request::ctx::{McpExchange, McpOutcome, RequestCtx};
use crate::wire::sse::{Framer, Piece};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::Value;
use std::time::Duration;

/// The most of a JSON answer (or an `initialize` answer) read before it is relayed.
const MAX_JSON_ANSWER: usize = 8 * 1024 * 1024;

/// A remote's answer on its way to the client.
pub struct Relay {
    pub(super) opened: Opened,
    pub(super) edit: Edit,
    /// How long a JSON answer's body may take.
    pub(super) timeout: Duration,
    /// The limits charged for a tool call, freed when its answer ends.
    pub(super) _reservation: Option<Reservation>,
}

/// What the gateway does to the answer to the client's request `id`.
pub(super) enum Edit {
    Nothing,
    /// `tools/list`: leave out the tools this consumer may not see.
    Tools {
        id: Value,
        seen: ToolFilter,
    },
    /// `tools/call`: read the result for the call's outcome.
    Outcome {
        id: Value,
    },
}

/// Which of a remote's tools one consumer sees.
pub(super) struct ToolFilter {
    server: String,
    include: Vec<String>,
    exclude: Vec<String>,
    patterns: Vec<String>,
}

impl ToolFilter {
    pub(super) fn of(caller: &Caller<'_>, server: &McpServer) -> ToolFilter {
        ToolFilter {
            server: server.name.clone(),
            include: server.include.clone(),
            exclude: server.exclude.clone(),
            patterns: caller.consumer.mcp_tools.clone(),
        }
    }

    pub(super) fn keeps(&self, tool: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|i| i == tool))
            && !self.exclude.iter().any(|x| x == tool)
            && crate::config::tool_allowed(&self.patterns, &self.server, tool)
    }
}

pub(super) async fn read_whole(mut opened: Opened, timeout: Duration) -> Result<Bytes, String> {
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = opened
            .upstream
            .read_response_body()
            .await
            .map_err(|e| e.etype().as_str().to_string())?
        {
            if body.len() + chunk.len() > MAX_JSON_ANSWER {
                return Err(format!("its answer is larger than {MAX_JSON_ANSWER} bytes"));
            }
            body.extend_from_slice(&chunk);
            // An SSE answer to one request may stay open after it: stop at the answer.
            if is_sse(opened.content_type.as_deref()) && sse_holds_answer(&body) {
                break;
            }
        }
        Ok(Bytes::from(body))
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Whether an SSE body so far holds a JSON-RPC answer (a message with `result` or `error`).
fn sse_holds_answer(body: &[u8]) -> bool {
    let mut framer = Framer::default();
    let mut found = false;
    framer.feed(body, |piece| {
        if let Piece::Event(e) = piece {
            let answer = e
                .data()
                .and_then(|d| serde_json::from_slice::<Value>(&d).ok())
                .is_some_and(|v| v.get("result").is_some() || v.get("error").is_some());
            found |= answer;
        }
    });
    found
}

fn is_sse(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| t.starts_with("text/event-stream"))
}

/// The JSON-RPC answer to `id` in a JSON body or an SSE stream.
pub(super) fn answer_in(body: &[u8], content_type: Option<&str>, id: &Value) -> Option<Value> {
    let ours = |v: &Value| {
        v.get("id") == Some(id) && (v.get("result").is_some() || v.get("error").is_some())
    };
    if !is_sse(content_type) {
        return serde_json::from_slice::<Value>(body).ok().filter(ours);
    }
    let mut found = None;
    let mut framer = Framer::default();
    let mut look = |piece: Piece<'_>| {
        if let Piece::Event(e) = piece {
            if let Some(v) = e
                .data()
                .and_then(|d| serde_json::from_slice::<Value>(&d).ok())
            {
                if found.is_none() && ours(&v) {
                    found = Some(v);
                }
            }
        }
    };
    framer.feed(body, &mut look);
    framer.finish(&mut look);
    found
}

impl Edit {
    fn id(&self) -> Option<&Value> {
        match self {
            Edit::Nothing => None,
            Edit::Tools { id, .. } | Edit::Outcome { id } => Some(id),
        }
    }

    /// Apply to `message` if it answers the request; whether it changed.
    pub(super) fn apply(&self, message: &mut Value, ex: &mut McpExchange) -> bool {
        if self.id().is_none_or(|id| message.get("id") != Some(id)) {
            return false;
        }
        match self {
            Edit::Nothing => false,
            Edit::Tools { seen, .. } => {
                let Some(tools) = message
                    .pointer_mut("/result/tools")
                    .and_then(Value::as_array_mut)
                else {
                    return false;
                };
                let before = tools.len();
                tools.retain(|t| {
                    t.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| seen.keeps(n))
                });
                tools.len() != before
            }
            Edit::Outcome { .. } => {
                let failed = message.get("error").is_some()
                    || message.pointer("/result/isError") == Some(&Value::Bool(true));
                if failed {
                    ex.outcome = McpOutcome::ToolError;
                }
                false
            }
        }
    }
}

/// Relay the remote's answer to the client: a JSON body whole (edited when it answers a
/// request the gateway edits), an event stream event by event, with keep-alive comments while
/// it is quiet (so a client that left is noticed), for at most the stream lifetime.
pub async fn relay(session: &mut Session, ctx: &mut RequestCtx, relay: Relay) {
    let Relay {
        opened,
        edit,
        timeout,
        _reservation,
    } = relay;
    let mut ex = ctx.mcp.take().unwrap_or_default();
    let result = if is_sse(opened.content_type.as_deref()) {
        relay_stream(session, &ctx.request_id, opened, &edit, &mut ex).await
    } else {
        relay_json(session, &ctx.request_id, opened, &edit, &mut ex, timeout).await
    };
    if let Err(left) = result {
        ctx.end.client_left = Some(left);
    }
    ctx.mcp = Some(ex);
}

fn header(status: u16, request_id: &str, fields: &[(&str, &str)]) -> Option<ResponseHeader> {
    let mut h = ResponseHeader::build(status, Some(fields.len() + 1)).ok()?;
    h.insert_header("x-request-id", request_id).ok()?;
    for (k, v) in fields {
        h.insert_header(k.to_string(), v.to_string()).ok()?;
    }
    Some(h)
}

async fn relay_json(
    session: &mut Session,
    request_id: &str,
    opened: Opened,
    edit: &Edit,
    ex: &mut McpExchange,
    timeout: Duration,
) -> Result<(), ClientLeft> {
    let (status, ctype, allow) = (
        opened.status,
        opened.content_type.clone(),
        opened.allow.clone(),
    );
    let mut body = match read_whole(opened, timeout).await {
        Ok(b) => b,
        Err(why) => {
            ex.outcome = McpOutcome::Unreachable;
            let e = RpcError::gateway(
                502,
                format!("Bad Gateway: the MCP server did not answer ({why})"),
            );
            Bytes::from(e.body(&Value::Null).to_string())
        }
    };
    if let Ok(mut v) = serde_json::from_slice::<Value>(&body) {
        if edit.apply(&mut v, ex) {
            body = Bytes::from(v.to_string());
        }
    }
    let len = body.len().to_string();
    let mut fields = vec![("content-length", len.as_str())];
    if let Some(t) = ctype.as_deref() {
        fields.push(("content-type", t));
    }
    if let Some(a) = allow.as_deref() {
        fields.push(("allow", a));
    }
    let Some(h) = header(status, request_id, &fields) else {
        return Err(ClientLeft::Disconnected);
    };
    let sent = async {
        session.write_response_header(Box::new(h), false).await?;
        session.write_response_body(Some(body), true).await
    };
    sent.await.map_err(|e| ClientLeft::of(&e))
}

async fn relay_stream(
    session: &mut Session,
    request_id: &str,
    mut opened: Opened,
    edit: &Edit,
    ex: &mut McpExchange,
) -> Result<(), ClientLeft> {
    let mut fields = vec![
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache, no-transform"),
    ];
    if !session.is_http2() {
        fields.push(("transfer-encoding", "chunked"));
    }
    let Some(h) = header(opened.status, request_id, &fields) else {
        return Err(ClientLeft::Disconnected);
    };
    let left = |e: Box<pingora::Error>| ClientLeft::of(&e);
    session
        .write_response_header(Box::new(h), false)
        .await
        .map_err(left)?;
    let deadline = tokio::time::Instant::now() + STREAM_LIFETIME;
    let mut framer = Framer::default();
    loop {
        let read = tokio::time::timeout(PING, opened.upstream.read_response_body());
        let chunk = tokio::select! {
            r = read => r,
            () = tokio::time::sleep_until(deadline) => break,
        };
        match chunk {
            Err(_quiet) => {
                let ping = Bytes::from_static(b": ping\n\n");
                session
                    .write_response_body(Some(ping), false)
                    .await
                    .map_err(left)?;
            }
            Ok(Ok(Some(chunk))) => {
                let out = edited(&mut framer, &chunk, edit, ex);
                if !out.is_empty() {
                    session
                        .write_response_body(Some(out), false)
                        .await
                        .map_err(left)?;
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => break,
        }
    }
    let mut tail = Vec::new();
    framer.finish(|piece| match piece {
        Piece::Event(e) => tail.extend_from_slice(e.raw),
        Piece::Oversized(b) => tail.extend_from_slice(b),
    });
    let tail = (!tail.is_empty()).then(|| Bytes::from(tail));
    session.write_response_body(tail, true).await.map_err(left)
}

/// The complete events of `chunk`, the one answering an edited request rewritten.
fn edited(framer: &mut Framer, chunk: &[u8], edit: &Edit, ex: &mut McpExchange) -> Bytes {
    let mut out = Vec::with_capacity(chunk.len());
    framer.feed(chunk, |piece| match piece {
        Piece::Oversized(b) => out.extend_from_slice(b),
        Piece::Event(e) => {
            let changed = match (edit, e.data()) {
                (Edit::Nothing, _) | (_, None) => None,
                (_, Some(data)) => serde_json::from_slice::<Value>(&data)
                    .ok()
                    .and_then(|mut v| edit.apply(&mut v, ex).then_some(v)),
            };
            match changed {
                Some(v) => {
                    for line in e.lines().filter(|l| !l.starts_with(b"data:")) {
                        out.extend_from_slice(line);
                        out.push(b'\n');
                    }
                    out.extend_from_slice(format!("data: {v}\n\n").as_bytes());
                }
                None => out.extend_from_slice(e.raw),
            }
        }
    });
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_to_a_request_is_found_in_json_and_in_sse() {
        let id = Value::from(7);
        let json = br#"{"jsonrpc":"2.0","id":7,"result":{"x":1}}"#;
        assert_eq!(
            answer_in(json, Some("application/json"), &id).unwrap()["result"]["x"],
            1
        );
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
                    event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"x\":2}}\n\n";
        assert_eq!(
            answer_in(sse, Some("text/event-stream"), &id).unwrap()["result"]["x"],
            2
        );
        assert!(answer_in(sse, Some("text/event-stream"), &Value::from(8)).is_none());
    }

    #[test]
    fn a_tool_list_is_filtered_in_its_event_and_other_events_pass_unchanged() {
        let edit = Edit::Tools {
            id: Value::from(1),
            seen: ToolFilter {
                server: "s".into(),
                include: vec![],
                exclude: vec!["hidden".into()],
                patterns: vec!["*".into()],
            },
        };
        let mut ex = McpExchange::default();
        let mut framer = Framer::default();
        let progress = "event: message\nid: 9\ndata: {\"method\":\"notifications/message\"}\n\n";
        let list = "event: message\nid: 10\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"shown\"},{\"name\":\"hidden\"}]}}\n\n";
        let whole = format!("{progress}{list}");
        let (a, b) = whole.as_bytes().split_at(progress.len() + 20);
        let mut out = edited(&mut framer, a, &edit, &mut ex).to_vec();
        out.extend_from_slice(&edited(&mut framer, b, &edit, &mut ex));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(progress), "{text}");
        assert!(text.contains("id: 10\n") && text.contains("shown") && !text.contains("hidden"));
    }
}
