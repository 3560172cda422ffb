//! MCP's wire: protocol versions, JSON-RPC messages and error codes, and the checks the
//! 2026-07-28 revision asks of every request (its `_meta` envelope and routing headers).

use serde_json::{json, Value};

/// Revisions served with the `initialize` handshake and `Mcp-Session-Id` (Streamable HTTP);
/// `2024-11-05` only on the legacy HTTP+SSE transport.
pub const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// Revisions served statelessly, one self-contained POST per request.
pub const MODERN_VERSIONS: [&str; 1] = ["2026-07-28"];
pub const LATEST_HANDSHAKE: &str = "2025-11-25";

pub const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
pub const CLIENT_CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";
pub const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

/// JSON-RPC and MCP error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Parse,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    Internal,
    /// A routing header disagrees with the body (2026-07-28).
    HeaderMismatch,
    UnsupportedVersion,
    /// The gateway refused: authentication, session, limits, size.
    Gateway,
    /// A remote MCP server's own error code, passed on.
    Remote(i64),
}

impl Code {
    pub fn number(self) -> i64 {
        match self {
            Code::Parse => -32700,
            Code::InvalidRequest => -32600,
            Code::MethodNotFound => -32601,
            Code::InvalidParams => -32602,
            Code::Internal => -32603,
            Code::HeaderMismatch => -32020,
            Code::UnsupportedVersion => -32022,
            Code::Gateway => -32000,
            Code::Remote(n) => n,
        }
    }

    /// The HTTP status an error with this code is sent with (the spec's table).
    pub fn status(self) -> u16 {
        match self {
            Code::Parse
            | Code::InvalidRequest
            | Code::InvalidParams
            | Code::HeaderMismatch
            | Code::UnsupportedVersion => 400,
            Code::MethodNotFound => 404,
            Code::Internal | Code::Gateway => 200,
            Code::Remote(n) => match n {
                -32700 | -32600 | -32602 | -32020 | -32021 | -32022 => 400,
                -32601 => 404,
                _ => 200,
            },
        }
    }
}

/// An error answer: its JSON-RPC error and the HTTP status it goes with.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: Code,
    pub message: String,
    pub data: Option<Box<Value>>,
    pub status: u16,
    /// Sent as `Retry-After` (a limit's refusal).
    pub retry_after_ms: Option<u64>,
}

impl RpcError {
    pub fn new(code: Code, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
            status: code.status(),
            retry_after_ms: None,
        }
    }

    /// A gateway refusal with its own HTTP status (401, 403, 404, 413, 429...).
    pub fn gateway(status: u16, message: impl Into<String>) -> RpcError {
        RpcError {
            status,
            ..RpcError::new(Code::Gateway, message)
        }
    }

    pub fn unsupported_version(requested: &str, supported: &[&str]) -> RpcError {
        RpcError {
            data: Some(Box::new(
                json!({"supported": supported, "requested": requested}),
            )),
            ..RpcError::new(Code::UnsupportedVersion, "Unsupported protocol version")
        }
    }

    pub fn body(&self, id: &Value) -> Value {
        let mut error = json!({"code": self.code.number(), "message": self.message});
        if let Some(d) = &self.data {
            error["data"] = (**d).clone();
        }
        json!({"jsonrpc": "2.0", "id": id, "error": error})
    }
}

pub fn result_body(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// One message a client posted.
#[derive(Debug)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        /// An object, or `Null` when absent.
        params: Value,
    },
    Notification {
        method: String,
    },
    /// A client's answer to a server request (the gateway sends none; accepted and dropped).
    Response,
}

/// Read one posted body. Batches are refused (removed from the protocol in 2025-06-18).
pub fn parse(body: &[u8]) -> Result<Message, (Value, RpcError)> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| (Value::Null, RpcError::new(Code::Parse, "Parse error")))?;
    parse_value(value)
}

/// One JSON-RPC message (a batch's element, or a whole body).
pub fn parse_value(value: Value) -> Result<Message, (Value, RpcError)> {
    let invalid = |id: Value, why: &str| Err((id, RpcError::new(Code::InvalidRequest, why)));
    let Value::Object(mut obj) = value else {
        return invalid(
            Value::Null,
            "the body must be one JSON-RPC request or notification object",
        );
    };
    let id = obj.remove("id");
    let id_ok = |id: &Value| id.is_string() || id.is_i64() || id.is_u64();
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(
            id.filter(id_ok).unwrap_or(Value::Null),
            "jsonrpc must be \"2.0\"",
        );
    }
    let Some(method) = obj.get("method") else {
        if id.is_some() && (obj.contains_key("result") || obj.contains_key("error")) {
            return Ok(Message::Response);
        }
        return invalid(id.filter(id_ok).unwrap_or(Value::Null), "no method");
    };
    let Some(method) = method.as_str().map(str::to_string) else {
        return invalid(
            id.filter(id_ok).unwrap_or(Value::Null),
            "method must be a string",
        );
    };
    let params = obj.remove("params").unwrap_or(Value::Null);
    match id {
        None => Ok(Message::Notification { method }),
        Some(id) if !id_ok(&id) => invalid(Value::Null, "id must be a string or an integer"),
        Some(id) if !(params.is_object() || params.is_null()) => Err((
            id,
            RpcError::new(Code::InvalidParams, "params must be an object"),
        )),
        Some(id) => Ok(Message::Request { id, method, params }),
    }
}

/// Headers a 2026-07-28 request routes by.
pub struct Routing<'a> {
    pub version: Option<&'a str>,
    pub method: Option<&'a str>,
    pub name: Option<&'a str>,
    /// One of them was sent twice.
    pub duplicated: Option<&'static str>,
}

/// The body field `Mcp-Name` mirrors, by method.
fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// The 2026-07-28 checks, in the spec's order: the `_meta` envelope, the routing headers
/// against the body, then the version. Returns the version.
pub fn check_modern<'a>(
    method: &str,
    params: &'a Value,
    headers: &Routing<'_>,
) -> Result<&'a str, RpcError> {
    if let Some(h) = headers.duplicated {
        return Err(RpcError::new(
            Code::HeaderMismatch,
            format!("{h} header appears more than once"),
        ));
    }
    let meta = params
        .get("_meta")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            RpcError::new(
                Code::InvalidParams,
                format!(
                    "params._meta must be an object carrying {PROTOCOL_VERSION_META} and {CLIENT_CAPABILITIES_META}"
                ),
            )
        })?;
    let missing: Vec<&str> = [PROTOCOL_VERSION_META, CLIENT_CAPABILITIES_META]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(RpcError::new(
            Code::InvalidParams,
            format!("params._meta is missing {}", missing.join(", ")),
        ));
    }
    let version = &meta[PROTOCOL_VERSION_META];
    if headers.version.is_none() || headers.version != version.as_str() {
        return Err(RpcError::new(
            Code::HeaderMismatch,
            "mcp-protocol-version header does not match the request envelope's protocol version",
        ));
    }
    if headers.method != Some(method) {
        return Err(RpcError::new(
            Code::HeaderMismatch,
            "mcp-method header does not match the request body's method",
        ));
    }
    if let Some(field) = name_field(method) {
        if let Some(body_value) = params.get(field).filter(|v| !v.is_null()) {
            let header = headers.name.and_then(decode_header_value);
            if header.as_deref() != body_value.as_str() {
                return Err(RpcError::new(
                    Code::HeaderMismatch,
                    format!(
                        "mcp-name header does not match the request body's {field:?} parameter"
                    ),
                ));
            }
        }
    }
    let version = version.as_str().ok_or_else(|| {
        RpcError::new(Code::InvalidParams, "the protocol version must be a string")
    })?;
    if !MODERN_VERSIONS.contains(&version) {
        return Err(RpcError::unsupported_version(version, &MODERN_VERSIONS));
    }
    Ok(version)
}

/// A header value as sent: verbatim, or `=?base64?…?=` for values a header cannot carry.
pub fn decode_header_value(v: &str) -> Option<String> {
    use base64::Engine;
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        None => Some(v.to_string()),
        Some(payload) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing<'a>(v: &'a str, m: &'a str, n: Option<&'a str>) -> Routing<'a> {
        Routing {
            version: Some(v),
            method: Some(m),
            name: n,
            duplicated: None,
        }
    }

    #[test]
    fn messages_are_classified_and_bad_ones_named() {
        let req = parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#).unwrap();
        assert!(matches!(req, Message::Request { id, params: Value::Null, .. } if id == 7));
        let note = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(note, Message::Notification { .. }));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap(),
            Message::Response
        ));
        let code = |b: &[u8]| parse(b).unwrap_err().1.code;
        assert_eq!(code(b"{nope"), Code::Parse);
        assert_eq!(code(b"[]"), Code::InvalidRequest);
        assert_eq!(code(br#"{"id":1,"method":"x"}"#), Code::InvalidRequest);
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":{},"method":"x"}"#),
            Code::InvalidRequest
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#),
            Code::InvalidParams
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"1.0","id":3,"method":"x"}"#)
                .unwrap_err()
                .0,
            3
        );
    }

    #[test]
    fn modern_requests_need_their_envelope_and_matching_headers() {
        let params = json!({"name": "add", "_meta": {
            PROTOCOL_VERSION_META: "2026-07-28", CLIENT_CAPABILITIES_META: {}}});
        let ok = routing("2026-07-28", "tools/call", Some("add"));
        assert_eq!(
            check_modern("tools/call", &params, &ok).unwrap(),
            "2026-07-28"
        );
        let b64 = routing("2026-07-28", "tools/call", Some("=?base64?YWRk?="));
        assert!(check_modern("tools/call", &params, &b64).is_ok());
        let code = |r: &Routing, p: &Value| check_modern("tools/call", p, r).unwrap_err().code;
        assert_eq!(
            code(&routing("2026-07-28", "tools/call", Some("sub")), &params),
            Code::HeaderMismatch
        );
        assert_eq!(
            code(&routing("2026-07-28", "tools/list", Some("add")), &params),
            Code::HeaderMismatch
        );
        assert_eq!(
            code(&routing("2025-11-25", "tools/call", Some("add")), &params),
            Code::HeaderMismatch
        );
        assert_eq!(code(&ok, &json!({"name": "add"})), Code::InvalidParams);
        let old = json!({"name": "add", "_meta": {
            PROTOCOL_VERSION_META: "2099-01-01", CLIENT_CAPABILITIES_META: {}}});
        let e = check_modern(
            "tools/call",
            &old,
            &routing("2099-01-01", "tools/call", Some("add")),
        )
        .unwrap_err();
        assert_eq!(e.code, Code::UnsupportedVersion);
        assert_eq!(e.status, 400);
        assert_eq!(e.data.unwrap()["supported"], json!(["2026-07-28"]));
    }
}
