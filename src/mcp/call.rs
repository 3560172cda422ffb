//! `tools/call` on an OpenAPI server: the arguments become the operation's HTTP request (path
//! and query parameters percent-encoded, header parameters, the JSON `body`), sent over the
//! gateway's pooled connector within the server's timeout, and the answer becomes the tool's
//! result: text content, plus `structuredContent` for JSON; a non-2xx answer is an `isError`
//! result with the status and an excerpt of the body.
//!
//! The client's own credentials never go upstream: only the server's stored credential and
//! the headers it names in `forward_headers`.

use crate::config::mcp::{BodyParam, BodyShape, Credential, Location, McpServer, Tool};
use crate::request::ctx::McpOutcome;
use crate::runtime::Runtime;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use pingora::connectors::http::Connector;
use serde_json::{json, Value};
use std::time::Duration;

/// Everything but RFC 3986's unreserved characters is encoded, in paths and queries alike.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// A path parameter is one segment: `.` is encoded too, so `.` and `..` cannot walk out of
/// the operation's path (and `/`, `?`, `#` are encoded as everything outside unreserved is).
const SEGMENT: &AsciiSet = &COMPONENT.add(b'.');
/// The most of an API's answer that is read.
const MAX_ANSWER: usize = 8 * 1024 * 1024;
/// How much of a failed answer the error result quotes.
const EXCERPT: usize = 2000;
const POOL_IDLE: Duration = Duration::from_secs(60);

/// A finished call.
pub struct Called {
    pub outcome: McpOutcome,
    /// The `CallToolResult`.
    pub result: Value,
}

/// The HTTP request a call becomes.
pub(super) struct Built {
    pub method: http::Method,
    pub path_and_query: String,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The body and its content type.
    pub body: Option<(Bytes, String)>,
}

/// What came back.
pub(super) struct Exchanged {
    pub status: u16,
    pub content_type: Option<String>,
    pub session: Option<String>,
    pub body: Vec<u8>,
}

pub async fn call(
    runtime: &Runtime,
    connector: &Connector,
    server: &McpServer,
    tool: &Tool,
    arguments: &Value,
    client: &http::HeaderMap,
    request_id: &str,
) -> Called {
    let built = match build(server, tool, arguments) {
        Ok(b) => b,
        Err(why) => return error_result(McpOutcome::InvalidArguments, why),
    };
    let sent = send(runtime, connector, server, built, client, request_id);
    match tokio::time::timeout(server.timeout, sent).await {
        Ok(Ok(x)) => answer(tool, x.status, &x.body),
        Ok(Err(why)) => error_result(
            McpOutcome::Unreachable,
            format!("the API did not answer: {why}"),
        ),
        Err(_) => error_result(
            McpOutcome::Unreachable,
            format!(
                "the API did not answer within {} ms",
                server.timeout.as_millis()
            ),
        ),
    }
}

fn error_result(outcome: McpOutcome, text: String) -> Called {
    Called {
        outcome,
        result: json!({"content": [{"type": "text", "text": text}], "isError": true}),
    }
}

/// A parameter value as text: strings as they are, anything else as JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The request body from the arguments: the `body` argument, or an object of the body's
/// properties given as arguments of their own. `None`: no body (an optional one not given).
fn body_of(b: &BodyParam, args: &serde_json::Map<String, Value>) -> Result<Option<Value>, String> {
    let given = |name: &str| args.get(name).filter(|v| !v.is_null());
    let fields = match &b.shape {
        BodyShape::Whole => {
            return match given("body") {
                Some(v) => Ok(Some(v.clone())),
                None if b.required => Err("missing required argument `body`".into()),
                None => Ok(None),
            }
        }
        BodyShape::Flat(fields) => fields,
    };
    let mut body = serde_json::Map::new();
    for f in fields {
        match given(&f.argument) {
            Some(v) => {
                body.insert(f.property.clone(), v.clone());
            }
            None if f.required => {
                return Err(format!("missing required argument `{}`", f.argument))
            }
            None => {}
        }
    }
    Ok((b.required || !body.is_empty()).then_some(Value::Object(body)))
}

fn build(server: &McpServer, tool: &Tool, arguments: &Value) -> Result<Built, String> {
    let empty = serde_json::Map::new();
    let args = match arguments {
        Value::Object(o) => o,
        Value::Null => &empty,
        _ => return Err("arguments must be an object".into()),
    };
    let op = &tool.operation;
    let mut path = op.path.clone();
    let mut query: Vec<String> = Vec::new();
    let mut headers = Vec::new();
    for p in &op.params {
        let Some(v) = args.get(&p.argument).filter(|v| !v.is_null()) else {
            if p.required {
                return Err(format!("missing required argument `{}`", p.argument));
            }
            continue;
        };
        match p.location {
            Location::Path => {
                let value = scalar(v);
                if value.is_empty() {
                    return Err(format!("argument `{}` must not be empty", p.argument));
                }
                let encoded = utf8_percent_encode(&value, SEGMENT).to_string();
                path = path.replace(&format!("{{{}}}", p.name), &encoded);
            }
            Location::Query => {
                let key = utf8_percent_encode(&p.name, COMPONENT).to_string();
                let values = match v {
                    Value::Array(items) => items.iter().map(scalar).collect(),
                    other => vec![scalar(other)],
                };
                for value in values {
                    query.push(format!("{key}={}", utf8_percent_encode(&value, COMPONENT)));
                }
            }
            Location::Header => {
                let name = http::HeaderName::from_bytes(p.name.as_bytes())
                    .map_err(|_| format!("`{}` is not a header name", p.name))?;
                let value = http::HeaderValue::from_str(&scalar(v))
                    .map_err(|_| format!("argument `{}` cannot be sent as a header", p.argument))?;
                headers.push((name, value));
            }
        }
    }
    if let Some(Credential::Query(name, value)) = &server.credential {
        query.push(format!(
            "{}={}",
            utf8_percent_encode(name, COMPONENT),
            utf8_percent_encode(value.expose(), COMPONENT)
        ));
    }
    let body = match &op.body {
        Some(b) => body_of(b, args)?.map(|v| {
            let bytes = Bytes::from(v.to_string());
            (bytes, b.content_type.clone())
        }),
        None => None,
    };
    let path_and_query = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    Ok(Built {
        method: op.method.clone(),
        path_and_query,
        headers,
        body,
    })
}

/// Send one request to a server's upstream (with its credential and forwarded headers) and
/// read the whole answer.
pub(super) async fn send(
    runtime: &Runtime,
    connector: &Connector,
    server: &McpServer,
    built: Built,
    client: &http::HeaderMap,
    request_id: &str,
) -> Result<Exchanged, String> {
    let mut opened = open(runtime, connector, server, built, client, request_id, true).await?;
    let io = |e: Box<pingora::Error>| e.etype().as_str().to_string();
    let mut answer = Vec::new();
    while let Some(chunk) = opened.upstream.read_response_body().await.map_err(io)? {
        if answer.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("its answer is larger than {MAX_ANSWER} bytes"));
        }
        answer.extend_from_slice(&chunk);
    }
    connector
        .release_http_session(opened.upstream, &*opened.peer, Some(POOL_IDLE))
        .await;
    Ok(Exchanged {
        status: opened.status,
        content_type: opened.content_type,
        session: opened.session,
        body: answer,
    })
}

/// An exchange whose answer's header has been read; its body is still to come.
pub(super) struct Opened {
    pub upstream: pingora::protocols::http::client::HttpSession,
    pub peer: Box<pingora::upstreams::peer::HttpPeer>,
    pub status: u16,
    pub content_type: Option<String>,
    /// `Mcp-Session-Id`, when the server sent one.
    pub session: Option<String>,
    /// `Allow` (a 405 names what the server takes).
    pub allow: Option<String>,
}

/// Send `built` with the server's credential and the client headers it forwards, and read
/// the answer's header. `timed`: reads wait at most the server's `timeout_ms` (off for a
/// stream that may be quiet for long).
pub(super) async fn open(
    runtime: &Runtime,
    connector: &Connector,
    server: &McpServer,
    built: Built,
    client: &http::HeaderMap,
    request_id: &str,
    timed: bool,
) -> Result<Opened, String> {
    let method = &built.method;
    let (mut peer, mut req) = runtime
        .upstreams
        .mcp_request(server, method, &built.path_and_query)
        .map_err(|_| "no address for the API".to_string())?;
    if !timed {
        peer.options.read_timeout = None;
    }
    let set = |req: &mut pingora::http::RequestHeader, k: http::HeaderName, v: &str| {
        req.insert_header(k, v).map_err(|e| e.to_string())
    };
    if !built.headers.iter().any(|(k, _)| k == http::header::ACCEPT) {
        set(&mut req, http::header::ACCEPT, "application/json")?;
    }
    set(&mut req, http::header::USER_AGENT, "tollgate-mcp")?;
    set(
        &mut req,
        http::HeaderName::from_static("x-request-id"),
        request_id,
    )?;
    for name in &server.forward_headers {
        for v in client.get_all(name) {
            req.append_header(name.clone(), v.clone())
                .map_err(|e| e.to_string())?;
        }
    }
    for (k, v) in built.headers {
        req.insert_header(k, v).map_err(|e| e.to_string())?;
    }
    match &server.credential {
        Some(Credential::Bearer(v)) => set(
            &mut req,
            http::header::AUTHORIZATION,
            &format!("Bearer {}", v.expose()),
        )?,
        Some(Credential::Header(k, v)) => set(&mut req, k.clone(), v.expose())?,
        Some(Credential::Query(..)) | None => {}
    }
    let body = built.body;
    let len = body.as_ref().map_or(0, |(b, _)| b.len());
    if let Some((_, ctype)) = &body {
        set(&mut req, http::header::CONTENT_TYPE, ctype)?;
    }
    if body.is_some()
        || matches!(
            *method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        )
    {
        set(&mut req, http::header::CONTENT_LENGTH, &len.to_string())?;
    }
    let (mut s, _) = connector
        .get_http_session(&*peer)
        .await
        .map_err(|e| format!("cannot connect ({})", e.etype().as_str()))?;
    let io = |e: Box<pingora::Error>| e.etype().as_str().to_string();
    s.write_request_header(Box::new(req)).await.map_err(io)?;
    if let Some((b, _)) = body {
        s.write_request_body(b, true).await.map_err(io)?;
    }
    s.finish_request_body().await.map_err(io)?;
    let read = s.read_response_header();
    match tokio::time::timeout(server.timeout, read).await {
        Ok(r) => r.map_err(io)?,
        Err(_) => return Err("timed out".into()),
    }
    let status = s.response_header().map_or(0, |h| h.status.as_u16());
    let text = |name: &str| {
        s.response_header()
            .and_then(|h| h.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, session, allow) =
        (text("content-type"), text("mcp-session-id"), text("allow"));
    Ok(Opened {
        upstream: s,
        peer,
        status,
        content_type,
        session,
        allow,
    })
}

fn answer(tool: &Tool, status: u16, body: &[u8]) -> Called {
    let text = String::from_utf8_lossy(body);
    if !(200..300).contains(&status) {
        let mut cut = text.len().min(EXCERPT);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let more = if cut < text.len() { "…" } else { "" };
        return error_result(
            McpOutcome::ToolError,
            format!("HTTP {status}: {}{more}", &text[..cut]),
        );
    }
    let mut result = json!({"content": [{"type": "text", "text": text}], "isError": false});
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if tool.wraps_output {
            result["structuredContent"] = json!({"result": v});
        } else if v.is_object() {
            result["structuredContent"] = v;
        }
    }
    Called {
        outcome: McpOutcome::Ok,
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> McpServer {
        let doc = r#"{"openapi": "3.1.0", "paths": {"/items/{id}": {"get": {"operationId": "get",
            "parameters": [{"name": "id", "in": "path", "required": true},
                           {"name": "tag", "in": "query"}, {"name": "X-Trace", "in": "header"}],
            "requestBody": {"content": {"application/json": {}}}}}}}"#;
        McpServer {
            name: "s".into(),
            upstream: crate::config::Upstream::BuiltinMock,
            kind: crate::config::mcp::ServerKind::Openapi,
            tools: crate::config::openapi_tools_for_tests(doc),
            include: vec![],
            exclude: vec![],
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            tool_calls_per_minute: None,
            forward_headers: vec![],
            credential: None,
            instructions: None,
        }
    }

    #[test]
    fn arguments_become_an_encoded_request() {
        let s = server();
        let t = &s.tools[0];
        let b = build(
            &s,
            t,
            &json!({"id": "a b/c", "tag": ["x", "y&z"], "X-Trace": 7}),
        )
        .unwrap();
        assert_eq!(b.path_and_query, "/items/a%20b%2Fc?tag=x&tag=y%26z");
        // A path parameter stays one segment, whatever it holds.
        for (id, want) in [
            ("..", "/items/%2E%2E"),
            (".", "/items/%2E"),
            ("../../admin", "/items/%2E%2E%2F%2E%2E%2Fadmin"),
            ("a%2Fb", "/items/a%252Fb"),
            ("x?y#z", "/items/x%3Fy%23z"),
            ("a\r\nHost: evil", "/items/a%0D%0AHost%3A%20evil"),
        ] {
            let b = build(&s, t, &json!({"id": id})).unwrap();
            assert_eq!(b.path_and_query, want, "{id}");
        }
        assert!(build(&s, t, &json!({"id": ""})).is_err());
        let crlf = json!({"id": "1", "X-Trace": "a\r\nSet-Cookie: x"});
        assert!(build(&s, t, &crlf).is_err(), "no header splitting");
        assert_eq!(b.headers[0].1, "7");
        assert!(b.body.is_none());
        let e = build(&s, t, &json!({"tag": "x"})).err().unwrap();
        assert!(e.contains("`id`"), "{e}");
        assert!(build(&s, t, &json!([1])).is_err());
        let b = build(&s, t, &json!({"id": 1, "body": {"k": 1}})).unwrap();
        assert_eq!(&b.body.unwrap().0[..], br#"{"k":1}"#);
    }

    #[test]
    fn answers_become_results() {
        let s = server();
        let ok = answer(&s.tools[0], 200, br#"{"a":1}"#);
        assert_eq!(ok.result["structuredContent"], json!({"a": 1}));
        assert_eq!(ok.result["isError"], false);
        let bad = answer(&s.tools[0], 404, "x".repeat(5000).as_bytes());
        assert_eq!(bad.outcome, McpOutcome::ToolError);
        let text = bad.result["content"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("HTTP 404: xxx") && text.len() < 2100);
    }
}
