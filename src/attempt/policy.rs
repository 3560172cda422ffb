//! The engine's policy questions, apart from its state machine: stream recovery, same-target
//! retries, which candidate can take an overflowing prompt, and which clock's limit ran out.

use super::{observe, retry, AttemptOutcome, Attempts, Clock, Failure, Now, Observed};
use crate::attempt::recovery::Resume;
use crate::config::{StreamRecovery, Target};
use std::time::Duration;

impl Attempts {
    /// A committed stream broke off with `failure`. With the model's `stream_recovery` on, a
    /// `resumable` stream (text only, one choice), a candidate left and the budget's leave,
    /// the broken attempt is logged as failed and the cursor moves on: the I/O begins the
    /// next attempt as a continuation. `None`: end the stream with [`Attempts::cut`].
    pub fn resume(&mut self, failure: Failure, resumable: bool, now: Now) -> Option<Resume> {
        let mode = self.plan.model.stream_recovery;
        let total_spent = failure == Failure::TimedOut(Clock::Total);
        if mode == StreamRecovery::Off || !resumable || total_spent || !self.committed() {
            return None;
        }
        if !self.can_fail_over() || !self.withdraw(now) {
            return None;
        }
        if let Some(t) = self.target() {
            observe(t, Observed::Failed(failure.blame()), now.at);
        }
        if let Some(a) = self.log.last_mut() {
            a.outcome = AttemptOutcome::Failed(failure);
            a.ended.get_or_insert(now.at);
        }
        self.next_candidate(failure, self.cursor + 1);
        let prefill = self.target().is_some_and(|t| t.provider.prefill);
        Some(match mode {
            StreamRecovery::Continue if prefill => Resume::Continue,
            StreamRecovery::Continue | StreamRecovery::Restart | StreamRecovery::Off => {
                Resume::Restart
            }
        })
    }

    /// The continuation's candidate answered 400 to the prefilled turn: the attempt is logged
    /// as failed and the same candidate may be begun again (as a restart). Once per request.
    pub fn prefill_refused(&mut self, now: Now) -> bool {
        if self.prefill_refusal_seen {
            return false;
        }
        self.prefill_refusal_seen = true;
        self.end(AttemptOutcome::Failed(Failure::Status(400)), Some(400), now);
        true
    }

    /// A same-target retry, if the model's `retries` cover `failure`, any are left, the
    /// provider's `Retry-After` is within the cap, and the budget allows. Returns the wait.
    pub(super) fn retry_same(
        &mut self,
        failure: Failure,
        retry_after: Option<Duration>,
        now: Now,
    ) -> Option<Duration> {
        let r = &self.plan.model.retries;
        if self.retries_here >= r.attempts || !retry::covers(r, failure) {
            return None;
        }
        // A deployment that was ejected before this attempt was its half-open probe: a failed
        // probe is not retried (an outage would multiply the probes).
        let ejected = |t: &Target| t.health.is_ejected() || t.provider.health.is_ejected();
        if self.target().is_some_and(ejected) {
            return None;
        }
        let wait = match retry_after {
            Some(asked) if asked > r.max_retry_after => return None,
            Some(asked) => asked,
            None => retry::backoff(r, self.retries_here + 1, now.jitter),
        };
        // The retry leaves room in the budget for the failover after it.
        let leave = u64::from(self.plan.has_next(self.cursor));
        if !self.withdraw_leaving(leave, now) {
            return None;
        }
        self.retries_here += 1;
        self.retries_spent += 1;
        self.pending_wait = Some(wait);
        Some(wait)
    }

    /// The first later candidate that can take a prompt the current one found too long: one
    /// with a larger declared `context_window`, or a fallback.
    pub(super) fn overflow_candidate(&self) -> Option<usize> {
        if self.budget_refused || !self.tries_left() {
            return None;
        }
        let window = |t: &Target| t.context_window.unwrap_or(0);
        let current = window(self.target()?);
        let model = &self.plan.model;
        (self.cursor + 1..self.plan.len()).find(|&i| {
            self.plan.candidate(i).is_some_and(|t| {
                window(t) > current
                    || model
                        .fallbacks
                        .iter()
                        .any(|f| f.provider.name == t.provider.name && f.model == t.model)
            })
        })
    }

    /// The limit of the clock that ran out, from the current candidate's provider.
    pub(super) fn limit_of(&self, failure: Failure) -> Option<Duration> {
        let Failure::TimedOut(clock) = failure else {
            return None;
        };
        let p = &self.target()?.provider;
        match clock {
            Clock::FirstByte => Some(p.first_byte_timeout),
            Clock::Idle => Some(p.idle_timeout),
            Clock::FirstToken => p.first_token_timeout,
            Clock::Total => p.total_timeout,
        }
    }

    /// Whether the current candidate's provider has a first-token deadline.
    pub(super) fn first_token_deadline(&self) -> bool {
        self.target()
            .is_some_and(|t| t.provider.first_token_timeout.is_some())
    }
}
