//! What flows in and out of the attempt engine: the time it is given ([`Now`]), the decisions
//! it returns ([`Retry`], [`Answer`], [`Verdict`]) and the attempt log it keeps
//! ([`AttemptEntry`]).

use super::AttemptOutcome;
use crate::error::GatewayError;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What the engine reads from outside: passive health runs on `Instant`, the retry budget on
/// Unix seconds (its windows are aligned across instances), and back-off jitter is a random
/// number in [0, 1).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix_s: i64,
    pub jitter: f64,
}

impl Now {
    pub fn real() -> Now {
        Now {
            at: Instant::now(),
            unix_s: crate::feedback::budget::now_s(),
            jitter: rand::random::<f64>(),
        }
    }
}

/// One upstream attempt within a request, as the access log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptEntry {
    pub provider: String,
    pub upstream_model: String,
    pub outcome: AttemptOutcome,
    pub status: Option<u16>,
    /// How long the gateway waited before this try (a same-target retry's back-off or the
    /// provider's `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
    /// When the attempt began and when its outcome was known (for its trace span).
    #[serde(skip)]
    pub began: std::time::Instant,
    #[serde(skip)]
    pub ended: Option<std::time::Instant>,
}

/// After a failure: what to do next.
#[derive(Debug, Clone)]
pub enum Retry {
    /// The same candidate again (on a fresh connection), after this wait.
    Same { after: Duration },
    /// The next candidate of the plan.
    Next,
    /// Nothing left to try: the client gets this error.
    GiveUp(GatewayError),
}

/// After a response header: what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Covered by the model's `retries`: the same candidate again after this wait.
    RetrySame { after: Duration },
    /// A retryable status: drop it and try the next candidate.
    FailOver,
    /// A 200 event stream that can still fail over (or has a first-token deadline): read
    /// until its first content event before committing, then call [`Attempts::first_event`].
    ReadFirstEvent,
    /// A 400 with a larger-window candidate left: read the error body, then call
    /// [`Attempts::error_body`].
    ReadErrorBody,
    /// It goes to the client (the attempt is logged as ended).
    Commit,
}

/// After a held first event or error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    FailOver,
    /// What was held goes to the client, error or not.
    Commit,
}
