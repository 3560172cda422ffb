//! The attempt engine: the failover policy of one request, with no I/O.
//!
//! Both I/O paths (Pingora's proxy phases and the forwarder) drive the same [`Attempts`]:
//! they [`begin`](Attempts::begin) an attempt, do the I/O, and report what happened as a typed
//! event; the engine answers with a typed decision.
//!
//! | the I/O reports | the engine decides |
//! |---|---|
//! | [`failed`](Attempts::failed) (connect, timeout, reset, ...) | [`Retry::Same`] (once for a stale pooled connection, or a same-target retry after a back-off), [`Retry::Next`] candidate, or [`Retry::GiveUp`] with the client's error |
//! | [`answered`](Attempts::answered) with a status | [`Answer::RetrySame`] (after the back-off or `Retry-After`), [`Answer::FailOver`] (retryable status), [`Answer::ReadFirstEvent`] (a stream that can still fail over or has a first-token deadline), [`Answer::ReadErrorBody`] (a 400 that may be a context overflow), or [`Answer::Commit`] |
//! | [`first_event`](Attempts::first_event) / [`error_body`](Attempts::error_body) | [`Verdict::FailOver`] or [`Verdict::Commit`] |
//! | [`resume`](Attempts::resume) after the commit (stream recovery) | the next candidate continues the stream, or `None` |
//! | [`cut`](Attempts::cut) after the commit | the error event the client gets |
//!
//! Order: a same-target retry (the model's `retries`) comes first, then failover to the next
//! candidate (`retry_on_status`, connect failures, timeouts, first-frame errors, context
//! overflow towards a larger window); every retry and failover spends the retry budget and
//! counts against `max_attempts`.
//!
//! The engine owns the plan cursor, the attempt log, the model's retry budget and the passive
//! health feedback, so nothing is counted twice. Time comes in as [`Now`], so tests need no
//! clock.

pub mod recovery;

mod clocks;
mod decision;
mod outcome;
pub mod overflow;
mod policy;
pub mod retry;
#[cfg(test)]
mod tests;

use crate::config::Target;
use crate::error::GatewayError;
use crate::metrics::METRICS;
use crate::routing::Plan;
pub use clocks::Clocks;
pub use decision::{Answer, AttemptEntry, Now, Retry, Verdict};
pub use outcome::{
    observe, AttemptOutcome, Blame, ClientLeft, Clock, ExchangeOutcome, Failure, Observed,
};
use std::time::Duration;

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
    /// Same-target retries spent on the current candidate.
    retries_here: u32,
    /// Same-target retries spent on every candidate: they do not count against
    /// `max_attempts`, which bounds the candidates tried.
    retries_spent: usize,
    /// The wait before the next try.
    pending_wait: Option<Duration>,
    /// A failover was refused by the model's retry budget.
    budget_refused: bool,
    /// A continuation's prefill was refused once (its candidate then restarts).
    prefill_refusal_seen: bool,
    /// Unreachable replicas of a pooled provider already passed over in place.
    repicks: u32,
}

/// How many unreachable replicas one request passes over in place before failing over.
const MAX_REPICKS: u32 = 2;

impl Attempts {
    pub fn new(plan: Plan) -> Attempts {
        Attempts {
            plan,
            cursor: 0,
            phase: Phase::Between,
            log: Vec::new(),
            stale_retry_used: false,
            retries_here: 0,
            retries_spent: 0,
            pending_wait: None,
            budget_refused: false,
            prefill_refusal_seen: false,
            repicks: 0,
        }
    }

    /// The attempt's replica of a pooled provider could not be reached and the pool has
    /// others up: the same candidate goes again, to another replica, before any failover (at
    /// most [`MAX_REPICKS`] times a request). `None`: decide as for any failure.
    pub fn unreachable_replica(&mut self, failure: Failure, now: Now) -> Option<Retry> {
        if self.repicks >= MAX_REPICKS {
            return None;
        }
        self.repicks += 1;
        self.end(AttemptOutcome::Failed(failure), None, now);
        Some(Retry::Same {
            after: Duration::ZERO,
        })
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
        !self.budget_refused && self.plan.has_next(self.cursor) && self.tries_left()
    }

    /// The wait the I/O owes before beginning the next attempt.
    pub fn pending_wait(&self) -> Option<Duration> {
        self.pending_wait
    }

    /// Whether `max_attempts` allows another candidate: it counts the candidates tried, so
    /// same-target retries (the model's `retries`) and the stale-connection retry never use up
    /// the fallbacks.
    fn tries_left(&self) -> bool {
        let stale = AttemptOutcome::Failed(Failure::StaleConnection);
        let tried = self.log.iter().filter(|a| a.outcome != stale).count();
        tried.saturating_sub(self.retries_spent) < self.plan.model.max_attempts
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
            waited_ms: self
                .pending_wait
                .take()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            began: std::time::Instant::now(),
            ended: None,
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
            return Retry::Same {
                after: Duration::ZERO,
            };
        }
        self.end(AttemptOutcome::Failed(failure), None, now);
        if let Some(after) = self.retry_same(failure, None, now) {
            return Retry::Same { after };
        }
        if failure.retryable(&self.plan.model.retry_on_status)
            && self.try_next_candidate(failure, now)
        {
            return Retry::Next;
        }
        self.phase = Phase::GaveUp;
        Retry::GiveUp(failure.client_error_with(self.limit_of(failure)))
    }

    /// The upstream answered `status`. `held`: the I/O can hold the body back (a 200 event
    /// stream until its first content event, a 400's error body). `retry_after`: the wait the
    /// provider asked for.
    pub fn answered(
        &mut self,
        status: u16,
        held: bool,
        retry_after: Option<Duration>,
        now: Now,
    ) -> Answer {
        let failure = Failure::Status(status);
        if let Some(after) = self.retry_same(failure, retry_after, now) {
            self.end(AttemptOutcome::Failed(failure), Some(status), now);
            return Answer::RetrySame { after };
        }
        if failure.retryable(&self.plan.model.retry_on_status) && self.can_fail_over() {
            if self.withdraw(now) {
                self.end(AttemptOutcome::Failed(failure), Some(status), now);
                self.next_candidate(failure, self.cursor + 1);
                return Answer::FailOver;
            }
        } else if held && status == 400 && self.overflow_candidate().is_some() {
            return Answer::ReadErrorBody;
        } else if held && status == 200 && (self.can_fail_over() || self.first_token_deadline()) {
            return Answer::ReadFirstEvent;
        }
        self.commit(status, now);
        Answer::Commit
    }

    /// The first content event of a 200 stream was read (after [`Answer::ReadFirstEvent`]),
    /// or an error event came first.
    pub fn first_event(&mut self, is_error: bool, now: Now) -> Verdict {
        if is_error && self.can_fail_over() && self.withdraw(now) {
            let failure = Failure::FirstFrameError;
            self.end(AttemptOutcome::Failed(failure), Some(200), now);
            self.next_candidate(failure, self.cursor + 1);
            return Verdict::FailOver;
        }
        self.commit(200, now);
        Verdict::Commit
    }

    /// A 400's body was read (after [`Answer::ReadErrorBody`]): a context overflow moves on to
    /// a candidate with a larger window; any other 400 goes to the client.
    pub fn error_body(&mut self, context_overflow: bool, now: Now) -> Verdict {
        if let Some(next) = self.overflow_candidate().filter(|_| context_overflow) {
            if self.withdraw(now) {
                let failure = Failure::ContextOverflow;
                self.end(AttemptOutcome::Failed(failure), Some(400), now);
                self.next_candidate(failure, next);
                return Verdict::FailOver;
            }
        }
        self.commit(400, now);
        Verdict::Commit
    }

    /// A committed response broke off after `events` events: it counts against the provider,
    /// and the client's stream ends with this error.
    pub fn cut(&mut self, failure: Failure, events: u64, now: Now) -> GatewayError {
        if let Some(t) = self.target() {
            observe(t, Observed::Failed(failure.blame()), now.at);
        }
        let idle = matches!(failure, Failure::TimedOut(_))
            .then(|| self.target().map(|t| t.provider.idle_timeout))
            .flatten();
        failure.cut_error(events, idle)
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
        let observed = match outcome {
            AttemptOutcome::Ok => Some(Observed::Ok),
            AttemptOutcome::Pending => None,
            AttemptOutcome::Status if status.is_some_and(|s| s < 500) => Some(Observed::Ok),
            AttemptOutcome::Status => Some(Observed::Failed(Blame::Deployment)),
            AttemptOutcome::Failed(f) if f.counts_against_health() => {
                Some(Observed::Failed(f.blame()))
            }
            AttemptOutcome::Failed(_) => None,
        };
        if let (Some(o), Some(t)) = (observed, self.plan.candidate(self.cursor)) {
            observe(t, o, now.at);
        }
        if let Some(a) = self.log.last_mut() {
            METRICS
                .upstream_attempts
                .with_label_values(&[a.provider.as_str(), outcome.label()])
                .inc();
            a.outcome = outcome;
            a.status = status;
            a.ended.get_or_insert(now.at);
        }
        self.phase = Phase::Between;
    }

    /// Move to the next candidate if there is one and the budget allows.
    fn try_next_candidate(&mut self, reason: Failure, now: Now) -> bool {
        if !self.can_fail_over() || !self.withdraw(now) {
            return false;
        }
        self.next_candidate(reason, self.cursor + 1);
        true
    }

    /// Fail over to candidate `index`.
    fn next_candidate(&mut self, reason: Failure, index: usize) {
        self.cursor = index;
        self.retries_here = 0;
        self.phase = Phase::Between;
        METRICS.failovers.with_label_values(&[reason.label()]).inc();
    }

    /// Spend one retry from the model's budget; remembers a refusal.
    fn withdraw(&mut self, now: Now) -> bool {
        self.withdraw_leaving(0, now)
    }

    /// Spend one retry from the model's budget if `leave` more would still fit after it (a
    /// same-target retry leaves room for the failover after it); remembers a refusal of a
    /// failover (`leave == 0`) only.
    fn withdraw_leaving(&mut self, leave: u64, now: Now) -> bool {
        if self.budget_refused {
            return false;
        }
        let model = &self.plan.model;
        if model.retry_budget.try_withdraw_leaving(leave, now.unix_s) {
            return true;
        }
        if leave > 0 {
            return false;
        }
        METRICS
            .retry_budget_exhausted
            .with_label_values(&[model.name.as_str()])
            .inc();
        self.budget_refused = true;
        false
    }
}
