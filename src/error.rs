//! Every error the gateway itself makes, and how each becomes a response.
//!
//! One enum; each variant decides its HTTP status, its body in the client's dialect, whether
//! the client should retry, and its outcome label for metrics and the access log. Responses
//! built here carry `x-tollgate-error: true` so clients can tell our errors from a provider's.

use crate::guard::{BlockReason, Blocked, Flow};
use crate::types::counter::Counter;
use crate::types::dialect::Dialect;
pub use crate::types::refusal::{Rejection, Shed};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use serde_json::json;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("You didn't provide an API key. Provide it as `Authorization: Bearer <key>` or `x-api-key: <key>`.")]
    MissingKey,
    #[error("Incorrect API key provided.")]
    InvalidKey,
    #[error("Requests from this address are not allowed.")]
    PermissionDenied,
    /// The consumer may not call under this path prefix (a `[[routes]]` prefix, or `/`).
    #[error("This API key may not be used under `{0}`.")]
    RouteForbidden(String),
    #[error("Unknown request URL: {method} {path}.")]
    UnknownRoute { method: String, path: String },
    #[error("Method {method} is not allowed on {path}.")]
    MethodNotAllowed { method: String, path: String },
    #[error("We could not parse the JSON body of your request: {0}")]
    InvalidJson(String),
    #[error("{message}")]
    InvalidField {
        param: &'static str,
        message: String,
    },
    /// A field of the client's request has no counterpart in the backend's dialect.
    #[error("{message} (field `{param}`).")]
    Untranslatable { param: String, message: String },
    #[error("Request body is larger than the limit of {limit} bytes.")]
    BodyTooLarge { limit: usize },
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// A stored Responses answer that does not exist, expired, or is another consumer's.
    #[error("Response with id '{0}' not found.")]
    ResponseNotFound(String),
    #[error("No upstream is available for model `{0}`.")]
    NoCandidate(String),
    #[error("The upstream service could not be reached.")]
    UpstreamConnect,
    /// What did not come in time.
    #[error("The upstream service did not answer in time: {0}.")]
    UpstreamTimeout(String),
    #[error("The upstream service failed: {0}.")]
    UpstreamBroken(String),
    #[error("{message}")]
    RateLimited {
        /// Which limit: requests, tokens or concurrency.
        limit: Counter,
        message: String,
        retry_after_ms: u64,
    },
    /// More tokens than a whole TPM window: retrying cannot help.
    #[error("{message}")]
    RequestTooLarge { message: String },
    #[error("{message}")]
    QuotaExceeded {
        /// Which budget, e.g. tokens per day.
        limit: Counter,
        message: String,
        retry_after_ms: u64,
    },
    #[error("This model's maximum context length is {largest_window} tokens. However, your request needs about {tokens} tokens (prompt and max_tokens). Please reduce the length of the messages or max_tokens.")]
    ContextTooLong { tokens: u64, largest_window: u64 },
    #[error("Rate limits cannot be checked right now (the shared limit store is unreachable). Please retry shortly.")]
    LimiterUnavailable,
    #[error("Internal gateway error.")]
    Internal,
    /// The edge refused the request head.
    #[error("{}", .0.message())]
    MalformedHead(Rejection),
    #[error("The request headers did not arrive in time.")]
    HeaderTimeout,
    /// The request body stopped arriving for longer than the body timeout.
    #[error("The request body stopped arriving.")]
    BodyTimeout,
    /// A cap of the edge shed the request.
    #[error("{}", .0.message())]
    Overloaded(Shed),
    /// A guardrail refused the request or the answer (the policy and rule, never the text).
    #[error("{}", content_message(.0, *.1))]
    ContentBlocked(Blocked, Flow),
}

fn content_message(b: &Blocked, flow: Flow) -> String {
    let what = match flow {
        Flow::Request => "request",
        Flow::Response => "response",
    };
    match b.reason {
        BlockReason::Matched => format!(
            "This {what} was blocked by content policy `{}` (rule `{}`).",
            b.policy, b.rule
        ),
        BlockReason::Flagged => format!(
            "This {what} was flagged by the moderation check `{}` of content policy `{}`.",
            b.rule, b.policy
        ),
        BlockReason::ModerationUnavailable => format!(
            "The moderation check `{}` of content policy `{}` could not be completed, and the policy blocks when it cannot.",
            b.rule, b.policy
        ),
    }
}

impl From<crate::wire::WireError> for GatewayError {
    fn from(e: crate::wire::WireError) -> Self {
        use crate::wire::WireError;
        match e {
            WireError::InvalidJson(m) => GatewayError::InvalidJson(m),
            WireError::InvalidField { param, message } => {
                GatewayError::InvalidField { param, message }
            }
            WireError::Untranslatable { param, message } => {
                GatewayError::Untranslatable { param, message }
            }
            WireError::NoTranslation => GatewayError::Internal,
        }
    }
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        use GatewayError::*;
        match self {
            MissingKey | InvalidKey => 401,
            PermissionDenied | RouteForbidden(_) => 403,
            UnknownRoute { .. } | ModelNotFound(_) | ResponseNotFound(_) => 404,
            MethodNotAllowed { .. } => 405,
            InvalidJson(_)
            | InvalidField { .. }
            | Untranslatable { .. }
            | ContextTooLong { .. }
            | ContentBlocked(..) => 400,
            BodyTooLarge { .. } => 413,
            NoCandidate(_) => 503,
            UpstreamConnect | UpstreamBroken(_) => 502,
            UpstreamTimeout(_) => 504,
            RateLimited { .. } | RequestTooLarge { .. } | QuotaExceeded { .. } => 429,
            LimiterUnavailable => 503,
            Internal => 500,
            MalformedHead(r) => r.status(),
            HeaderTimeout | BodyTimeout => 408,
            Overloaded(_) => 503,
        }
    }

    /// The limit that refused the request (the `limit` label of rejection metrics).
    pub fn limit_label(&self) -> Option<&'static str> {
        match self {
            GatewayError::RateLimited { limit, .. } | GatewayError::QuotaExceeded { limit, .. } => {
                Some(limit.label())
            }
            GatewayError::RequestTooLarge { .. } => Some("tokens"),
            GatewayError::LimiterUnavailable => Some("store_unavailable"),
            GatewayError::MissingKey
            | GatewayError::InvalidKey
            | GatewayError::PermissionDenied
            | GatewayError::RouteForbidden(_)
            | GatewayError::UnknownRoute { .. }
            | GatewayError::MethodNotAllowed { .. }
            | GatewayError::InvalidJson(_)
            | GatewayError::InvalidField { .. }
            | GatewayError::Untranslatable { .. }
            | GatewayError::BodyTooLarge { .. }
            | GatewayError::ModelNotFound(_)
            | GatewayError::ResponseNotFound(_)
            | GatewayError::NoCandidate(_)
            | GatewayError::UpstreamConnect
            | GatewayError::UpstreamTimeout(_)
            | GatewayError::UpstreamBroken(_)
            | GatewayError::ContextTooLong { .. }
            | GatewayError::Internal
            | GatewayError::MalformedHead(_)
            | GatewayError::HeaderTimeout
            | GatewayError::BodyTimeout
            | GatewayError::Overloaded(_)
            | GatewayError::ContentBlocked(..) => None,
        }
    }

    /// How long the client should wait before retrying, when the gateway knows.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            GatewayError::RateLimited { retry_after_ms, .. }
            | GatewayError::QuotaExceeded { retry_after_ms, .. } => Some(*retry_after_ms),
            // Every 503 the gateway makes: an overload-like refusal, try again shortly.
            e => (e.status() == 503).then_some(1_000),
        }
    }

    /// OpenAI's `error.type`.
    fn openai_type(&self) -> &'static str {
        use GatewayError::*;
        match self {
            MissingKey | InvalidKey | UnknownRoute { .. } | MethodNotAllowed { .. } => {
                "invalid_request_error"
            }
            PermissionDenied | RouteForbidden(_) => "invalid_request_error",
            InvalidJson(_) | InvalidField { .. } | BodyTooLarge { .. } | ModelNotFound(_) => {
                "invalid_request_error"
            }
            ResponseNotFound(_) => "invalid_request_error",
            Untranslatable { .. } => "invalid_request_error",
            ContextTooLong { .. } => "invalid_request_error",
            NoCandidate(_) | UpstreamConnect | UpstreamTimeout(_) | UpstreamBroken(_) => {
                "upstream_error"
            }
            RateLimited {
                limit: Counter::Tokens,
                ..
            } => "tokens",
            RateLimited { .. } => "requests",
            RequestTooLarge { .. } => "tokens",
            QuotaExceeded { .. } => "insufficient_quota",
            LimiterUnavailable | Internal | Overloaded(_) => "server_error",
            MalformedHead(_) | HeaderTimeout | BodyTimeout | ContentBlocked(..) => {
                "invalid_request_error"
            }
        }
    }

    /// Anthropic's `error.type`.
    fn anthropic_type(&self) -> &'static str {
        use GatewayError::*;
        match self {
            MissingKey | InvalidKey => "authentication_error",
            PermissionDenied | RouteForbidden(_) => "permission_error",
            UnknownRoute { .. } | ModelNotFound(_) | ResponseNotFound(_) => "not_found_error",
            MethodNotAllowed { .. }
            | InvalidJson(_)
            | InvalidField { .. }
            | Untranslatable { .. }
            | ContextTooLong { .. } => "invalid_request_error",
            BodyTooLarge { .. } => "request_too_large",
            NoCandidate(_) => "overloaded_error",
            RateLimited { .. } | RequestTooLarge { .. } | QuotaExceeded { .. } => {
                "rate_limit_error"
            }
            UpstreamConnect | UpstreamTimeout(_) | UpstreamBroken(_) | LimiterUnavailable
            | Internal => "api_error",
            MalformedHead(_) | HeaderTimeout | BodyTimeout | ContentBlocked(..) => {
                "invalid_request_error"
            }
            Overloaded(_) => "overloaded_error",
        }
    }

    /// OpenAI's `error.code`.
    pub fn code(&self) -> Option<&'static str> {
        use GatewayError::*;
        match self {
            MissingKey => None,
            InvalidKey => Some("invalid_api_key"),
            PermissionDenied | RouteForbidden(_) => Some("permission_denied"),
            UnknownRoute { .. } => Some("unknown_url"),
            MethodNotAllowed { .. } => Some("method_not_allowed"),
            InvalidJson(_) => Some("invalid_json"),
            InvalidField { .. } => Some("invalid_value"),
            Untranslatable { .. } => Some("untranslatable_field"),
            ContextTooLong { .. } => Some("context_length_exceeded"),
            BodyTooLarge { .. } => Some("request_too_large"),
            ModelNotFound(_) => Some("model_not_found"),
            ResponseNotFound(_) => Some("response_not_found"),
            NoCandidate(_) => Some("no_upstream_available"),
            UpstreamConnect => Some("upstream_connect_error"),
            UpstreamTimeout(_) => Some("upstream_timeout"),
            UpstreamBroken(_) => Some("upstream_error"),
            RateLimited { .. } | RequestTooLarge { .. } => Some("rate_limit_exceeded"),
            QuotaExceeded { .. } => Some("insufficient_quota"),
            LimiterUnavailable => Some("rate_limit_store_unavailable"),
            Internal => Some("internal_error"),
            MalformedHead(r) => Some(r.label()),
            HeaderTimeout | BodyTimeout => Some("request_timeout"),
            Overloaded(_) => Some("overloaded"),
            ContentBlocked(..) => Some("content_policy_violation"),
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            GatewayError::InvalidField { param, .. } => Some(param),
            GatewayError::Untranslatable { param, .. } => Some(param),
            GatewayError::ModelNotFound(_) => Some("model"),
            GatewayError::ContextTooLong { .. } => Some("messages"),
            GatewayError::MissingKey
            | GatewayError::InvalidKey
            | GatewayError::PermissionDenied
            | GatewayError::RouteForbidden(_)
            | GatewayError::UnknownRoute { .. }
            | GatewayError::MethodNotAllowed { .. }
            | GatewayError::InvalidJson(_)
            | GatewayError::BodyTooLarge { .. }
            | GatewayError::ResponseNotFound(_)
            | GatewayError::NoCandidate(_)
            | GatewayError::UpstreamConnect
            | GatewayError::UpstreamTimeout(_)
            | GatewayError::UpstreamBroken(_)
            | GatewayError::RateLimited { .. }
            | GatewayError::RequestTooLarge { .. }
            | GatewayError::QuotaExceeded { .. }
            | GatewayError::LimiterUnavailable
            | GatewayError::Internal
            | GatewayError::MalformedHead(_)
            | GatewayError::HeaderTimeout
            | GatewayError::BodyTimeout
            | GatewayError::Overloaded(_)
            | GatewayError::ContentBlocked(..) => None,
        }
    }

    /// Whether a client retry may succeed; sent as `x-should-retry`.
    pub fn should_retry(&self) -> bool {
        use GatewayError::*;
        match self {
            NoCandidate(_) | UpstreamConnect | UpstreamTimeout(_) | UpstreamBroken(_)
            | Internal => true,
            RateLimited { .. } | LimiterUnavailable => true,
            RequestTooLarge { .. } | QuotaExceeded { .. } => false,
            MissingKey | InvalidKey | UnknownRoute { .. } | MethodNotAllowed { .. } => false,
            PermissionDenied | RouteForbidden(_) => false,
            InvalidJson(_) | InvalidField { .. } | BodyTooLarge { .. } | ModelNotFound(_) => false,
            ResponseNotFound(_) => false,
            Untranslatable { .. } | ContextTooLong { .. } => false,
            MalformedHead(_) | HeaderTimeout | BodyTimeout => false,
            Overloaded(_) => true,
            ContentBlocked(..) => false,
        }
    }

    /// The access-log `outcome` and metric label.
    pub fn outcome(&self) -> &'static str {
        use GatewayError::*;
        match self {
            MissingKey | InvalidKey => "unauthorized",
            PermissionDenied => "ip_denied",
            RouteForbidden(_) => "route_forbidden",
            UnknownRoute { .. } | MethodNotAllowed { .. } => "bad_route",
            InvalidJson(_) | InvalidField { .. } | Untranslatable { .. } => "bad_request",
            ContextTooLong { .. } => "context_too_long",
            BodyTooLarge { .. } => "body_too_large",
            ModelNotFound(_) => "model_not_found",
            ResponseNotFound(_) => "response_not_found",
            NoCandidate(_) => "no_upstream",
            UpstreamConnect => "upstream_connect_error",
            UpstreamTimeout(_) => "upstream_timeout",
            UpstreamBroken(_) => "upstream_error",
            RateLimited { .. } | RequestTooLarge { .. } => "rate_limited",
            QuotaExceeded { .. } => "budget_exceeded",
            LimiterUnavailable => "limiter_unavailable",
            Internal => "internal_error",
            MalformedHead(_) => "malformed_request",
            HeaderTimeout => "header_timeout",
            BodyTimeout => "body_timeout",
            Overloaded(_) => "overloaded",
            ContentBlocked(..) => "content_blocked",
        }
    }

    /// The JSON body in the client's dialect.
    pub fn body(&self, dialect: Dialect) -> Bytes {
        let message = self.to_string();
        let value = match dialect {
            Dialect::OpenAi => json!({"error": {
                "message": message,
                "type": self.openai_type(),
                "param": self.param(),
                "code": self.code(),
            }}),
            Dialect::Anthropic => json!({"type": "error", "error": {
                "type": self.anthropic_type(),
                "message": message,
            }}),
        };
        Bytes::from(value.to_string())
    }

    /// The in-stream form sent after a 200 stream has started: the SDKs raise on it.
    pub fn sse_event(&self, dialect: Dialect) -> Bytes {
        let body = self.body(dialect);
        let mut out = Vec::with_capacity(body.len() + 24);
        if dialect == Dialect::Anthropic {
            out.extend_from_slice(b"event: error\n");
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }

    /// A complete response header for this error; the body is [`Self::body`].
    pub fn response_header(&self, body_len: usize) -> pingora::Result<ResponseHeader> {
        let mut h = ResponseHeader::build(self.status(), Some(6))?;
        h.insert_header("content-type", "application/json")?;
        h.insert_header("content-length", body_len.to_string())?;
        h.insert_header("x-tollgate-error", "true")?;
        h.insert_header(
            "x-should-retry",
            if self.should_retry() { "true" } else { "false" },
        )?;
        if let Some(ms) = self.retry_after_ms() {
            h.insert_header("retry-after", ms.div_ceil(1000).max(1).to_string())?;
            h.insert_header("retry-after-ms", ms.to_string())?;
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: Bytes) -> serde_json::Value {
        serde_json::from_slice(&b).unwrap()
    }

    #[test]
    fn openai_shape_has_all_four_fields() {
        let e = GatewayError::ModelNotFound("gpt-x".into());
        let v = parse(e.body(Dialect::OpenAi));
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["message"].as_str().unwrap().contains("`gpt-x`"));
        let v = parse(GatewayError::MissingKey.body(Dialect::OpenAi));
        assert!(v["error"]["code"].is_null());
        assert!(v["error"]["param"].is_null());
    }

    #[test]
    fn anthropic_shape_uses_anthropic_types() {
        let v = parse(GatewayError::InvalidKey.body(Dialect::Anthropic));
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        let ev = GatewayError::UpstreamTimeout("x".into()).sse_event(Dialect::Anthropic);
        assert!(ev.starts_with(b"event: error\ndata: {"));
    }

    #[test]
    fn messages_escape_client_text() {
        let e = GatewayError::ModelNotFound("a\"b\n".into());
        let v = parse(e.body(Dialect::OpenAi));
        assert!(v["error"]["message"].as_str().unwrap().contains("a\"b\n"));
    }

    #[test]
    fn header_marks_gateway_errors() {
        let e = GatewayError::NoCandidate("m".into());
        let h = e.response_header(10).unwrap();
        assert_eq!(h.status.as_u16(), 503);
        assert_eq!(h.headers["x-tollgate-error"], "true");
        assert_eq!(h.headers["retry-after"], "1");
        assert_eq!(h.headers["x-should-retry"], "true");
    }

    #[test]
    fn limit_errors_speak_openai_rate_limit_shapes() {
        let e = GatewayError::RateLimited {
            limit: Counter::Tokens,
            message: "Rate limit reached".into(),
            retry_after_ms: 1_500,
        };
        let v = parse(e.body(Dialect::OpenAi));
        assert_eq!(v["error"]["type"], "tokens");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        let h = e.response_header(1).unwrap();
        assert_eq!(h.status.as_u16(), 429);
        assert_eq!(h.headers["retry-after"], "2");
        assert_eq!(h.headers["retry-after-ms"], "1500");
        assert_eq!(h.headers["x-should-retry"], "true");
        let big = GatewayError::RequestTooLarge {
            message: "Request too large".into(),
        };
        assert_eq!(
            big.response_header(1).unwrap().headers["x-should-retry"],
            "false"
        );
        let quota = GatewayError::QuotaExceeded {
            limit: Counter::UsdDay,
            message: "budget".into(),
            retry_after_ms: 3_600_000,
        };
        let v = parse(quota.body(Dialect::OpenAi));
        assert_eq!(v["error"]["type"], "insufficient_quota");
        assert_eq!(v["error"]["code"], "insufficient_quota");
        let v = parse(quota.body(Dialect::Anthropic));
        assert_eq!(v["error"]["type"], "rate_limit_error");
    }
}
