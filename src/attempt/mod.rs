//! The attempt engine: the failover policy of one request, with no I/O.
//!
//! Both I/O paths (Pingora's proxy phases and the forwarder) drive the same [`Attempts`]:
//! they [`begin`](Attempts::begin) an attempt, do the I/O, and report what happened as a typed
//! event; the engine answers with a typed decision.
//!
//! | the I/O reports | the engine decides |
//! |---|---|
//! | [`failed`](Attempts::failed) (connect, timeout, reset, ...) | [`Retry::Same`] once for a stale pooled connection, [`Retry::Next`] candidate, or [`Retry::GiveUp`] with the client's error |
//! | [`answered`](Attempts::answered) with a status | [`Answer::FailOver`] (retryable status), [`Answer::ReadFirstEvent`] (a stream that can still fail over), or [`Answer::Commit`] |
//! | [`first_event`](Attempts::first_event) ok or error | [`FirstEvent::FailOver`] or [`FirstEvent::Commit`] |
//! | [`cut`](Attempts::cut) after the commit | the error event the client gets |
//!
//! The engine owns the plan cursor, the attempt log, the model's retry budget and the passive
//! health feedback, so nothing is counted twice. Time comes in as [`Now`], so tests need no
//! clock.

pub mod clocks;
pub mod outcome;
#[cfg(test)]
mod tests;

use crate::config::Target;
use crate::error::GatewayError;
use crate::metrics::METRICS;
use crate::routing::Plan;
pub use clocks::Clocks;
pub use outcome::{AttemptOutcome, Clock, ExchangeOutcome, Failure};
use serde::Serialize;
use std::time::Instant;

/// The two clocks the engine reads: passive health runs on `Instant`, the retry budget on
/// Unix seconds (its windows are aligned across instances).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix_s: i64,
}

impl Now {
    pub fn real() -> Now {
        Now {
            at: Instant::now(),
            unix_s: crate::feedback::budget::now_s(),
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
}

/// After a failure: what to do next.
#[derive(Debug, Clone)]
pub enum Retry {
    /// The same candidate again, on a fresh connection.
    Same,
    /// The next candidate of the plan.
    Next,
    /// Nothing left to try: the client gets this error.
    GiveUp(GatewayError),
}

/// After a response header: what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A retryable status: drop it and try the next candidate.
    FailOver,
    /// A 200 event stream with a candidate left: read its first event before committing.
    ReadFirstEvent,
    /// It goes to the client (the attempt is logged as ended).
    Commit,
}

/// After the first event of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstEvent {
    FailOver,
    /// The stream goes to the client, error event or not.
    Commit,
}

/// Where a request's plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No attempt in progress; `begin` starts the one at the cursor.
    Between,
    /// An attempt is in progress.
    Trying,
    /// An answer went to the client.
    Committed,
    /// Nothing was left to try.
    GaveUp,
}

/// The failover state machine of one request.
#[derive(Debug)]
pub struct Attempts {
    plan: Plan,
    cursor: usize,
    phase: Phase,
    log: Vec<AttemptEntry>,
    stale_retry_used: bool,
    /// A failover was refused by the model's retry budget.
    budget_refused: bool,
}

impl Attempts {
    pub fn new(plan: Plan) -> Attempts {
        Attempts {
            plan,
            cursor: 0,
            phase: Phase::Between,
            log: Vec::new(),
            stale_retry_used: false,
            budget_refused: false,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Every attempt begun, in order.
    pub fn log(&self) -> &[AttemptEntry] {
        &self.log
    }

    pub fn budget_refused(&self) -> bool {
        self.budget_refused
    }

    /// The candidate of the attempt in progress (or the one committed, or the last tried).
    pub fn target(&self) -> Option<&Target> {
        self.plan.candidate(self.cursor)
    }

    /// Whether an answer went to the client.
    pub fn committed(&self) -> bool {
        self.phase == Phase::Committed
    }

    /// Whether the last decision asked for another attempt that has not begun yet.
    pub fn awaiting_next(&self) -> bool {
        self.phase == Phase::Between && !self.log.is_empty()
    }

    /// Whether a failure now could still fail over (the budget is not consulted yet).
    pub fn can_fail_over(&self) -> bool {
        !self.budget_refused && self.plan.has_next(self.cursor)
    }

    /// Start the attempt at the cursor.
    pub fn begin(&mut self) -> Result<Target, GatewayError> {
        let target = self
            .target()
            .cloned()
            .ok_or_else(|| GatewayError::NoCandidate(self.plan.model.name.clone()))?;
        self.log.push(AttemptEntry {
            provider: target.provider.name.clone(),
            upstream_model: target.model.clone(),
            outcome: AttemptOutcome::Pending,
            status: None,
        });
        self.phase = Phase::Trying;
        Ok(target)
    }

    /// The attempt failed before anything reached the client. `reused_connection`: it ran on
    /// a pooled connection, which may have gone stale.
    pub fn failed(&mut self, failure: Failure, reused_connection: bool, now: Now) -> Retry {
        if reused_connection && failure.may_be_stale() && !self.stale_retry_used {
            self.stale_retry_used = true;
            self.end(AttemptOutcome::Failed(Failure::StaleConnection), None, now);
            self.phase = Phase::Between;
            return Retry::Same;
        }
        self.end(AttemptOutcome::Failed(failure), None, now);
        if failure.retryable(&self.plan.model.retry_on_status) && self.advance(failure, now) {
            return Retry::Next;
        }
        self.phase = Phase::GaveUp;
        Retry::GiveUp(failure.client_error())
    }

    /// The upstream answered `status`. `event_stream`: the I/O can hold a 200 event stream
    /// until its first event is read.
    pub fn answered(&mut self, status: u16, event_stream: bool, now: Now) -> Answer {
        let failure = Failure::Status(status);
        if failure.retryable(&self.plan.model.retry_on_status) && self.can_fail_over() {
            if self.withdraw(now) {
                self.end(AttemptOutcome::Failed(failure), Some(status), now);
                self.move_on(failure);
                return Answer::FailOver;
            }
        } else if status == 200 && event_stream && self.can_fail_over() {
            return Answer::ReadFirstEvent;
        }
        self.commit(status, now);
        Answer::Commit
    }

    /// The first event of a 200 stream was read (after [`Answer::ReadFirstEvent`]).
    pub fn first_event(&mut self, is_error: bool, now: Now) -> FirstEvent {
        if is_error && self.can_fail_over() && self.withdraw(now) {
            let failure = Failure::FirstFrameError;
            self.end(AttemptOutcome::Failed(failure), Some(200), now);
            self.move_on(failure);
            return FirstEvent::FailOver;
        }
        self.commit(200, now);
        FirstEvent::Commit
    }

    /// A committed response broke off: it counts against the provider, and the client's
    /// stream ends with this error.
    pub fn cut(&mut self, failure: Failure, now: Now) -> GatewayError {
        if let Some(t) = self.target() {
            let p = &t.provider;
            p.health.record(false, &p.outlier, now.at);
        }
        failure.client_error()
    }

    fn commit(&mut self, status: u16, now: Now) {
        let outcome = if status < 400 {
            AttemptOutcome::Ok
        } else {
            AttemptOutcome::Status
        };
        self.end(outcome, Some(status), now);
        self.phase = Phase::Committed;
    }

    /// Record how the attempt in progress ended: its log entry, metrics and passive health.
    fn end(&mut self, outcome: AttemptOutcome, status: Option<u16>, now: Now) {
        let healthy = match outcome {
            AttemptOutcome::Ok => Some(true),
            AttemptOutcome::Pending => None,
            AttemptOutcome::Status => Some(status.is_some_and(|s| s < 500)),
            AttemptOutcome::Failed(f) if f.counts_against_health() => Some(false),
            AttemptOutcome::Failed(_) => None,
        };
        if let (Some(ok), Some(t)) = (healthy, self.plan.candidate(self.cursor)) {
            let p = &t.provider;
            p.health.record(ok, &p.outlier, now.at);
        }
        if let Some(a) = self.log.last_mut() {
            METRICS
                .upstream_attempts
                .with_label_values(&[a.provider.as_str(), outcome.label()])
                .inc();
            a.outcome = outcome;
            a.status = status;
        }
        self.phase = Phase::Between;
    }

    /// Move to the next candidate if there is one and the budget allows.
    fn advance(&mut self, reason: Failure, now: Now) -> bool {
        if !self.can_fail_over() || !self.withdraw(now) {
            return false;
        }
        self.move_on(reason);
        true
    }

    fn move_on(&mut self, reason: Failure) {
        self.cursor += 1;
        self.phase = Phase::Between;
        METRICS.failovers.with_label_values(&[reason.label()]).inc();
    }

    /// Spend one retry from the model's budget; remembers a refusal.
    fn withdraw(&mut self, now: Now) -> bool {
        if self.budget_refused {
            return false;
        }
        let model = &self.plan.model;
        if model.retry_budget.try_withdraw(now.unix_s) {
            return true;
        }
        METRICS
            .retry_budget_exhausted
            .with_label_values(&[model.name.as_str()])
            .inc();
        self.budget_refused = true;
        false
    }
}
