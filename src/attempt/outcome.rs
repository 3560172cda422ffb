//! The typed vocabulary of upstream attempts: which clock ran out ([`Clock`]), why an attempt
//! failed ([`Failure`]), how a logged attempt ended ([`AttemptOutcome`]) and how a whole
//! exchange ended ([`ExchangeOutcome`]). Each has `label()`, the one word metrics and the
//! access log use; nothing compares those words.

use crate::error::GatewayError;
use once_cell::sync::Lazy;
use pingora::{Error, ErrorType};
use std::time::Duration;

/// The clocks an upstream exchange runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// From the request sent to the response header.
    FirstByte,
    /// Streams: from the request sent to the first content event.
    FirstToken,
    /// Between two reads of the response body.
    Idle,
    /// From the start of the first attempt to the end of the body.
    Total,
}

impl Clock {
    /// What a client was not sent in time.
    fn missed(self) -> &'static str {
        match self {
            Clock::FirstByte => "no response header within first_byte_timeout_ms",
            Clock::FirstToken => "no first token within first_token_timeout_ms",
            Clock::Idle => "the response stalled longer than idle_timeout_ms",
            Clock::Total => "the exchange took longer than total_timeout_ms",
        }
    }
}

/// Why an attempt did not give the client its answer, or why a committed one broke off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The provider has no address (its name does not resolve).
    Unresolved,
    ConnectTimeout,
    ConnectRefused,
    ConnectNoRoute,
    Tls,
    Connect,
    TimedOut(Clock),
    /// The connection was reset or closed.
    Reset,
    /// The upstream broke HTTP framing.
    Protocol,
    /// A retryable status answered before anything reached the client.
    Status(u16),
    /// A 200 stream whose first event is an error.
    FirstFrameError,
    /// A 400 saying the prompt does not fit the model's context window.
    ContextOverflow,
    /// A pooled connection had gone stale; the same candidate is tried on a fresh one.
    StaleConnection,
    Other,
}

/// Which passive health a failure counts against ([`Failure::blame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The provider: every model it serves is ejected with it.
    Provider,
    /// The deployment: this upstream model on this provider only.
    Deployment,
}

/// What one attempt says about its target's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Ok,
    Failed(Blame),
}

/// Record an observation in the passive health it concerns: a success in both the
/// provider's and the deployment's, a failure in the one it is blamed on.
pub fn observe(target: &crate::config::Target, o: Observed, at: std::time::Instant) {
    let p = &target.provider;
    match o {
        Observed::Ok => {
            p.health.record(true, &p.outlier, at);
            target.health.record(true, &p.outlier, at);
        }
        Observed::Failed(Blame::Provider) => p.health.record(false, &p.outlier, at),
        Observed::Failed(Blame::Deployment) => target.health.record(false, &p.outlier, at),
    }
}

/// `status_100` .. `status_599`, made once so a status label never allocates.
static STATUS_LABELS: Lazy<Vec<&'static str>> = Lazy::new(|| {
    (100..600u16)
        .map(|s| &*Box::leak(format!("status_{s}").into_boxed_str()))
        .collect()
});

impl Failure {
    /// Classify a Pingora error. `committed`: the response had already started, so a read
    /// that timed out was waiting between body chunks.
    pub fn of(e: &Error, committed: bool) -> Failure {
        use ErrorType::*;
        match e.etype() {
            ConnectTimedout => Failure::ConnectTimeout,
            ConnectRefused => Failure::ConnectRefused,
            ConnectNoRoute => Failure::ConnectNoRoute,
            TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError
            | TLSWantX509Lookup => Failure::Tls,
            ConnectError | BindError | SocketError | ConnectProxyFailure | AcceptError => {
                Failure::Connect
            }
            ReadTimedout | WriteTimedout if committed => Failure::TimedOut(Clock::Idle),
            ReadTimedout | WriteTimedout => Failure::TimedOut(Clock::FirstByte),
            ReadError | WriteError | ConnectionClosed => Failure::Reset,
            InvalidHTTPHeader | H1Error | H2Error | H2Downgrade | InvalidH2 => Failure::Protocol,
            HTTPStatus(s) => Failure::Status(*s),
            _ => Failure::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Failure::Unresolved => "unresolved",
            Failure::ConnectTimeout => "connect_timeout",
            Failure::ConnectRefused => "connect_refused",
            Failure::ConnectNoRoute => "connect_no_route",
            Failure::Tls => "tls_error",
            Failure::Connect => "connect_error",
            Failure::TimedOut(Clock::FirstByte | Clock::Idle) => "timeout",
            Failure::TimedOut(Clock::FirstToken) => "first_token_timeout",
            Failure::TimedOut(Clock::Total) => "total_timeout",
            Failure::Reset => "connection_reset",
            Failure::Protocol => "protocol_error",
            Failure::Status(s @ 100..600) => STATUS_LABELS[usize::from(s - 100)],
            Failure::Status(_) => "status_other",
            Failure::FirstFrameError => "first_frame_error",
            Failure::ContextOverflow => "context_length_exceeded",
            Failure::StaleConnection => "stale_connection",
            Failure::Other => "error",
        }
    }

    /// Whether another candidate may be tried after this failure. A status only when the
    /// model lists it in `retry_on_status`; a stale connection is retried on the same one.
    pub fn retryable(self, retry_on_status: &[u16]) -> bool {
        match self {
            Failure::Status(s) => retry_on_status.contains(&s),
            // Only towards a larger window: the engine picks the candidate.
            Failure::ContextOverflow => true,
            Failure::StaleConnection => false,
            Failure::Unresolved
            | Failure::ConnectTimeout
            | Failure::ConnectRefused
            | Failure::ConnectNoRoute
            | Failure::Tls
            | Failure::Connect
            | Failure::TimedOut(_)
            | Failure::Reset
            | Failure::Protocol
            | Failure::FirstFrameError
            | Failure::Other => true,
        }
    }

    /// Whether the failure counts against the provider's passive health: everything but a
    /// stale pooled connection and a status below 500 (a 429 is the provider pacing us).
    pub fn counts_against_health(self) -> bool {
        match self {
            Failure::Status(s) => s >= 500,
            Failure::StaleConnection | Failure::ContextOverflow => false,
            Failure::Unresolved
            | Failure::ConnectTimeout
            | Failure::ConnectRefused
            | Failure::ConnectNoRoute
            | Failure::Tls
            | Failure::Connect
            | Failure::TimedOut(_)
            | Failure::Reset
            | Failure::Protocol
            | Failure::FirstFrameError
            | Failure::Other => true,
        }
    }

    /// Whose health a failure counts against: an answer that came back wrong (a 5xx, an
    /// error as the first event) is the deployment's; anything that kept an answer from
    /// coming back at all is the provider's.
    pub fn blame(self) -> Blame {
        match self {
            Failure::Status(_) | Failure::FirstFrameError | Failure::ContextOverflow => {
                Blame::Deployment
            }
            Failure::Unresolved
            | Failure::ConnectTimeout
            | Failure::ConnectRefused
            | Failure::ConnectNoRoute
            | Failure::Tls
            | Failure::Connect
            | Failure::TimedOut(_)
            | Failure::Reset
            | Failure::Protocol
            | Failure::StaleConnection
            | Failure::Other => Blame::Provider,
        }
    }

    /// Whether a pooled connection that failed this way may simply have gone stale (the
    /// upstream closed it while idle): worth one more try on a fresh connection.
    pub fn may_be_stale(self) -> bool {
        matches!(self, Failure::Reset | Failure::Protocol | Failure::Other)
    }

    /// The error the client gets when the last attempt failed this way before a response.
    pub fn client_error(self) -> GatewayError {
        self.client_error_with(None)
    }

    /// [`Self::client_error`], naming the clock's limit when it is known.
    pub fn client_error_with(self, limit: Option<Duration>) -> GatewayError {
        match self {
            Failure::TimedOut(clock) => GatewayError::UpstreamTimeout(match limit {
                Some(l) => format!("{} ({} ms)", clock.missed(), l.as_millis()),
                None => clock.missed().into(),
            }),
            Failure::Unresolved
            | Failure::ConnectTimeout
            | Failure::ConnectRefused
            | Failure::ConnectNoRoute
            | Failure::Tls
            | Failure::Connect => GatewayError::UpstreamConnect,
            Failure::Reset
            | Failure::Protocol
            | Failure::Status(_)
            | Failure::FirstFrameError
            | Failure::ContextOverflow
            | Failure::StaleConnection
            | Failure::Other => {
                GatewayError::UpstreamBroken("the connection failed before a response".into())
            }
        }
    }

    /// The error event a client gets when a started stream broke off this way, after
    /// `events` events had been relayed (`limit`: the clock's, when known).
    pub fn cut_error(self, events: u64, limit: Option<Duration>) -> GatewayError {
        match self {
            Failure::TimedOut(Clock::Idle | Clock::FirstByte | Clock::FirstToken) => {
                GatewayError::UpstreamTimeout(match limit {
                    Some(l) => format!(
                        "the stream stalled for {} ms after {events} events (idle_timeout_ms)",
                        l.as_millis()
                    ),
                    None => format!("the stream stalled after {events} events (idle_timeout_ms)"),
                })
            }
            Failure::TimedOut(Clock::Total) => GatewayError::UpstreamTimeout(format!(
                "the stream was still going after total_timeout_ms ({events} events sent)"
            )),
            Failure::Unresolved
            | Failure::ConnectTimeout
            | Failure::ConnectRefused
            | Failure::ConnectNoRoute
            | Failure::Tls
            | Failure::Connect
            | Failure::Reset
            | Failure::Protocol
            | Failure::Status(_)
            | Failure::FirstFrameError
            | Failure::ContextOverflow
            | Failure::StaleConnection
            | Failure::Other => GatewayError::UpstreamBroken(format!(
                "the upstream connection broke off after {events} events"
            )),
        }
    }
}

/// How one logged attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Begun, not ended yet.
    Pending,
    /// Committed with a success status.
    Ok,
    /// Committed with an error status (it went to the client as it was).
    Status,
    /// Abandoned.
    Failed(Failure),
}

impl AttemptOutcome {
    pub fn label(self) -> &'static str {
        match self {
            AttemptOutcome::Pending => "pending",
            AttemptOutcome::Ok => "ok",
            AttemptOutcome::Status => "status",
            AttemptOutcome::Failed(f) => f.label(),
        }
    }
}

impl serde::Serialize for AttemptOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// Why the client's side of an exchange ended before the response did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientLeft {
    /// It closed or reset the connection.
    Disconnected,
    /// It stopped reading: a response write made no progress for the write timeout.
    TooSlow,
}

impl ClientLeft {
    /// Which, by the downstream error that showed it.
    pub fn of(e: &pingora::Error) -> ClientLeft {
        // Pingora's own write deadline, or the edge's (an I/O time-out under a write error).
        let io_timed_out = e
            .root_cause()
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        match e.etype() {
            pingora::ErrorType::WriteTimedout => ClientLeft::TooSlow,
            _ if io_timed_out => ClientLeft::TooSlow,
            _ => ClientLeft::Disconnected,
        }
    }
}

/// How a whole exchange ended, as `tollgate_requests_total{outcome}` and the access log say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeOutcome {
    Success,
    /// The upstream's own error status reached the client.
    UpstreamStatus,
    /// The response had started; the upstream then failed it.
    UpstreamCut(Failure),
    /// The client's side ended first.
    ClientLeft(ClientLeft),
    /// The gateway answered with an error of its own (its outcome label).
    Refused(&'static str),
}

impl ExchangeOutcome {
    pub fn label(self) -> &'static str {
        match self {
            ExchangeOutcome::Success => "success",
            ExchangeOutcome::UpstreamStatus => "upstream_status",
            ExchangeOutcome::UpstreamCut(Failure::TimedOut(Clock::Total)) => {
                "upstream_total_timeout"
            }
            ExchangeOutcome::UpstreamCut(Failure::TimedOut(
                Clock::FirstByte | Clock::Idle | Clock::FirstToken,
            )) => "upstream_idle_timeout",
            ExchangeOutcome::UpstreamCut(_) => "upstream_cut",
            ExchangeOutcome::ClientLeft(ClientLeft::Disconnected) => "client_disconnect",
            ExchangeOutcome::ClientLeft(ClientLeft::TooSlow) => "client_too_slow",
            ExchangeOutcome::Refused(label) => label,
        }
    }

    pub fn is_success(self) -> bool {
        matches!(self, ExchangeOutcome::Success)
    }
}
