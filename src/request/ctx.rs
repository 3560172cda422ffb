//! `RequestCtx`: everything one request carries through the stages, a section per stage.
//!
//! | section | owned by |
//! |---|---|
//! | identity (`started`, `request_id`, `dialect`, `runtime`) | `request_filter`, at the start |
//! | [`Admission`] | [`crate::request::intake::admit`] |
//! | `attempts` ([`Attempts`], the failover engine) | the I/O path driving it |
//! | [`UpstreamIo`] (the attempt's body, upstream time) | the I/O path |
//! | `response` ([`Committed`], the body meter) | [`crate::request::exchange`] |
//! | [`End`] (how the request ended) | whoever ends it; read by [`crate::request::report`] |
//!
//! No field is kept twice: the candidate and the attempt log live in the engine, the
//! client's dialect here only.

use crate::attempt::recovery::splice::Splice;
use crate::attempt::recovery::Resume;
use crate::attempt::{Attempts, ClientLeft, Failure};
use crate::auth::keys::KeyGrant;
use crate::config::{Consumer, Target};
use crate::error::GatewayError;
use crate::limits::{RateHeaders, Reservation};
use crate::metrics::{GaugeGuard, METRICS};
use crate::runtime::Runtime;
use crate::telemetry::capture::Capture;
use crate::types::dialect::Dialect;
use crate::wire::meter::{JsonMeter, SseMeter};
use crate::wire::protocol::ParsedRequest;
use crate::wire::translate::ResponseTranslator;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What admission decided about the caller and the request.
#[derive(Default)]
pub struct Admission {
    /// The client's address (the peer, or what a trusted proxy says).
    pub client_ip: Option<std::net::IpAddr>,
    pub consumer: Option<Arc<Consumer>>,
    pub request: Option<ParsedRequest>,
    /// What the limits charged at admission; settled in `logging`, and dropping it frees the
    /// concurrency slot on any other path.
    pub reservation: Option<Reservation>,
    /// The consumer's quotas, sent as `x-ratelimit-*` on the response.
    pub rate_headers: RateHeaders,
    /// Bodies kept for the access log (`log_payloads`).
    pub capture: Option<Capture>,
    /// The API-created key that authenticated the request, if one did.
    pub key: Option<KeyGrant>,
    /// The key's name in usage analytics: an API key's id, or `config:<consumer>:<index>`.
    pub key_label: Option<Arc<str>>,
    /// The guardrail policies that apply to this request.
    pub guard: Option<crate::guard::Selected>,
    /// The `[[routes]]` prefix the request came under.
    pub route: Option<Arc<crate::config::routes::Route>>,
}

impl Admission {
    /// The virtual model a client's model name means: under a route, its map's; else itself.
    pub fn virtual_model<'a>(&'a self, requested: &'a str) -> Option<&'a str> {
        match &self.route {
            Some(r) => r.models.get(requested).map(String::as_str),
            None => Some(requested),
        }
    }

    /// Whether the consumer, and the key when it narrows the consumer's models, may use `model`.
    pub fn may_use(&self, model: &str) -> bool {
        self.consumer.as_ref().is_some_and(|c| c.may_use(model))
            && self
                .key
                .as_ref()
                .and_then(|k| k.record.models.as_ref())
                .is_none_or(|models| models.iter().any(|m| m == model))
    }
}

/// The I/O state of the attempt in progress, and the time spent waiting on upstreams.
#[derive(Default)]
pub struct UpstreamIo {
    /// The body the current attempt sends, and whether it was handed to Pingora yet.
    pub body: Bytes,
    pub body_sent: bool,
    /// The shape the current attempt's answer needs on its way back (an option the gateway
    /// emulates on this backend).
    pub shape: crate::wire::translate::Shape,
    /// Time spent waiting on upstreams (connects, first bytes, bodies), for the overhead metric.
    pub waited: Duration,
    /// The replica picked from a pooled provider for this attempt; dropping it (another
    /// attempt, the request's end) frees the replica's counters.
    pub picked: Option<crate::upstream::pool::Picked>,
    since: Option<Instant>,
}

impl UpstreamIo {
    /// Start the upstream clock.
    pub fn start_wait(&mut self) {
        self.since = Some(Instant::now());
    }

    /// Stop the upstream clock (an attempt or a response body ended).
    pub fn stop_wait(&mut self) {
        if let Some(since) = self.since.take() {
            self.waited += since.elapsed();
        }
    }
}

/// The attempt failed with `failure`: its replica pick is released, and a replica that could
/// not be reached is ejected from its pool for a while. Returns whether the same candidate
/// should go again to another replica of the pool ([`Attempts::unreachable_replica`] decides).
pub fn release_pick(ctx: &mut RequestCtx, failure: Failure) -> bool {
    let Some(picked) = ctx.upstream.picked.take() else {
        return false;
    };
    match failure {
        Failure::ConnectRefused
        | Failure::ConnectTimeout
        | Failure::ConnectNoRoute
        | Failure::Connect => picked.unreachable(),
        Failure::Unresolved
        | Failure::Tls
        | Failure::TimedOut(_)
        | Failure::Reset
        | Failure::Protocol
        | Failure::Status(_)
        | Failure::FirstFrameError
        | Failure::ContextOverflow
        | Failure::StaleConnection
        | Failure::Other => {
            drop(picked);
            false
        }
    }
}

/// How the response body is metered.
#[derive(Debug)]
pub enum BodyMeter {
    Sse(SseMeter),
    Json(JsonMeter),
}

/// The response the client is receiving (set once an upstream answer is committed).
#[derive(Debug)]
pub struct Committed {
    pub status: u16,
    pub meter: BodyMeter,
    /// Rewrites the body into the client's dialect (the backend speaks the other one).
    pub translator: Option<ResponseTranslator>,
    /// The body is rewritten on its way to the client, so its length changes.
    pub rewrites: bool,
    /// A resumed stream: the continuation is spliced into what the client already has.
    pub splice: Option<Splice>,
    /// The guardrails screening the answer.
    pub guard: Option<crate::guard::answer::ResponseGuard>,
    /// An error answer: configured secrets (the backend key it may echo) are redacted.
    pub redactor: Option<crate::upstream::redact::Redactor>,
    pub first_token_at: Option<Duration>,
    /// Counts the stream in `tollgate_inflight_streams` while it is relayed.
    pub(crate) _stream: Option<GaugeGuard>,
}

/// How the request ended, beyond its status.
#[derive(Debug, Default)]
pub struct End {
    /// The error response the gateway itself sent (or is about to send), if any.
    pub error: Option<GatewayError>,
    /// The upstream failed after the response started.
    pub upstream_cut: Option<Failure>,
    /// The client went away (or stopped reading) before the response finished.
    pub client_left: Option<ClientLeft>,
    /// The stream broke off and was finished on another candidate.
    pub resumed: Option<Resume>,
    /// `policy/rule` of every guardrail that fired on the request (the answer's are read
    /// from its guard at the end).
    pub guardrails: Vec<String>,
}

pub struct RequestCtx {
    /// The request's trace, when `[tracing]` is on.
    pub trace: Option<crate::telemetry::trace::RequestTrace>,
    pub started: Instant,
    pub request_id: String,
    pub dialect: Dialect,
    /// The config snapshot this request runs on, start to finish.
    pub runtime: Option<Arc<Runtime>>,
    pub admission: Admission,
    /// The failover engine, once a plan was made.
    pub attempts: Option<Attempts>,
    pub upstream: UpstreamIo,
    pub response: Option<Committed>,
    pub end: End,
    /// Set when the request was an MCP exchange ([`crate::mcp`]); read by its report.
    pub mcp: Option<McpExchange>,
    _inflight: GaugeGuard,
    /// An HTTP/2 request's in-flight slot at the edge (HTTP/1's is held by the edge itself).
    pub edge_slot: Option<crate::edge::RequestSlot>,
}

/// What an MCP request was and how it ended, for its access-log line and metrics.
#[derive(Debug, Default)]
pub struct McpExchange {
    /// The server path (`None`: the combined `/mcp`).
    pub server: Option<String>,
    /// The JSON-RPC method, when the body was read that far.
    pub method: Option<String>,
    /// The tool called (`tools/call`), as the client named it.
    pub tool: Option<String>,
    /// The protocol revision the request was served under.
    pub version: Option<String>,
    pub outcome: McpOutcome,
}

/// How an MCP request ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum McpOutcome {
    /// Answered (a result, a 202, a stream that ran its course).
    #[default]
    Ok,
    /// The API answered a tool call with a non-2xx status (an `isError` result).
    ToolError,
    /// The API did not answer a tool call in time, or at all (an `isError` result).
    Unreachable,
    /// A tool call's arguments did not fit its operation; nothing was sent.
    InvalidArguments,
    /// A limit refused the call.
    RateLimited,
    /// The gateway refused the request: key, origin, session, size, protocol.
    Refused,
}

impl McpOutcome {
    pub fn label(self) -> &'static str {
        match self {
            McpOutcome::Ok => "ok",
            McpOutcome::ToolError => "tool_error",
            McpOutcome::Unreachable => "unreachable",
            McpOutcome::InvalidArguments => "invalid_arguments",
            McpOutcome::RateLimited => "rate_limited",
            McpOutcome::Refused => "refused",
        }
    }
}

impl RequestCtx {
    pub fn new() -> Self {
        RequestCtx {
            started: Instant::now(),
            trace: None,
            request_id: new_request_id(),
            dialect: Dialect::OpenAi,
            runtime: None,
            admission: Admission::default(),
            attempts: None,
            upstream: UpstreamIo::default(),
            response: None,
            end: End::default(),
            mcp: None,
            _inflight: GaugeGuard::acquire(&METRICS.inflight),
            edge_slot: None,
        }
    }

    /// The candidate of the attempt in progress (or committed, or last tried).
    pub fn target(&self) -> Option<&Target> {
        self.attempts.as_ref()?.target()
    }

    /// Whether the committed response is an event stream.
    pub fn is_sse(&self) -> bool {
        matches!(
            self.response.as_ref().map(|c| &c.meter),
            Some(BodyMeter::Sse(_))
        )
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

fn new_request_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    format!("req_{}", hex::encode(b))
}

/// The meter in the answer's chain: an SSE meter may hold back or strip bytes (the usage chunk
/// the client did not ask for); a JSON meter only reads.
impl crate::wire::BodyStage for BodyMeter {
    fn feed(&mut self, input: &[u8]) -> Option<Bytes> {
        match self {
            BodyMeter::Sse(m) => m.feed(input),
            BodyMeter::Json(m) => {
                m.feed(input);
                None
            }
        }
    }

    fn finish(&mut self, input: &[u8]) -> Bytes {
        let mut out = Vec::new();
        if !input.is_empty() {
            match self.feed(input) {
                Some(kept) => out.extend_from_slice(&kept),
                None => out.extend_from_slice(input),
            }
        }
        if let BodyMeter::Sse(m) = self {
            if let Some(kept) = m.finish() {
                out.extend_from_slice(&kept);
            }
        }
        Bytes::from(out)
    }
}

impl Committed {
    /// The answer's stages in the order its bytes pass them.
    pub fn stages(&mut self) -> [Option<&mut dyn crate::wire::BodyStage>; 5] {
        [
            self.translator
                .as_mut()
                .map(|t| t as &mut dyn crate::wire::BodyStage),
            self.splice
                .as_mut()
                .map(|s| s as &mut dyn crate::wire::BodyStage),
            Some(&mut self.meter),
            self.guard
                .as_mut()
                .map(|g| g as &mut dyn crate::wire::BodyStage),
            self.redactor
                .as_mut()
                .map(|r| r as &mut dyn crate::wire::BodyStage),
        ]
    }
}
