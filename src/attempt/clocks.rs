//! One timeout model for both I/O paths: per attempt, the first-byte clock runs from the
//! request sent to the response header, the idle clock between two body reads, and the total
//! clock from the start of the request's first attempt to the end of the body.
//!
//! Pingora's proxy phases can apply only one timeout, per read, to the header and every body
//! read alike. So [`Clocks::single_read_timeout`] says when the phases can honour the clocks
//! exactly (first byte equal to idle, no total); every other request is carried by the
//! forwarder, which applies each clock as it is.

use crate::attempt::Clock;
use crate::config::Provider;
use std::time::{Duration, Instant};

/// A provider's clocks for one request.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    pub first_byte: Duration,
    pub idle: Duration,
    /// When the whole exchange must be over.
    pub deadline: Option<Instant>,
    /// Streams: when this attempt's first content event must have arrived.
    pub first_token_by: Option<Instant>,
}

impl Clocks {
    /// `started`: when the request's first attempt began; `now`: when this attempt's
    /// request goes out; `stream`: the first-token clock applies (streams only).
    pub fn of(p: &Provider, started: Instant, now: Instant, stream: bool) -> Clocks {
        Clocks {
            first_byte: p.first_byte_timeout,
            idle: p.idle_timeout,
            deadline: p.total_timeout.map(|t| started + t),
            first_token_by: p.first_token_timeout.filter(|_| stream).map(|t| now + t),
        }
    }

    /// The one per-read timeout that means the same as these clocks, if there is one.
    pub fn single_read_timeout(p: &Provider) -> Option<Duration> {
        (p.first_byte_timeout == p.idle_timeout
            && p.total_timeout.is_none()
            && p.first_token_timeout.is_none())
        .then_some(p.first_byte_timeout)
    }

    /// How long the next wait on `clock` may last from `now`, and the clock that then runs
    /// out (the total one when its deadline comes first; the first-token one when it comes
    /// before the response header).
    pub fn wait(&self, clock: Clock, now: Instant) -> (Duration, Clock) {
        let first_token_left = self
            .first_token_by
            .map(|d| d.saturating_duration_since(now));
        let (limit, clock) = match (clock, first_token_left) {
            (Clock::FirstByte, Some(left)) if left < self.first_byte => (left, Clock::FirstToken),
            (clock, _) => (self.limit(clock, now), clock),
        };
        match self.deadline.map(|d| d.saturating_duration_since(now)) {
            Some(left) if left <= limit => (left, Clock::Total),
            _ => (limit, clock),
        }
    }

    fn limit(&self, clock: Clock, now: Instant) -> Duration {
        match clock {
            Clock::FirstByte => self.first_byte,
            Clock::Idle => self.idle,
            Clock::FirstToken => self
                .first_token_by
                .map_or(Duration::MAX, |d| d.saturating_duration_since(now)),
            Clock::Total => Duration::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_deadline_caps_every_wait() {
        let now = Instant::now();
        let c = Clocks {
            first_byte: Duration::from_millis(300),
            idle: Duration::from_millis(100),
            deadline: Some(now + Duration::from_millis(250)),
            first_token_by: None,
        };
        assert_eq!(
            c.wait(Clock::FirstByte, now),
            (Duration::from_millis(250), Clock::Total)
        );
        assert_eq!(
            c.wait(Clock::Idle, now),
            (Duration::from_millis(100), Clock::Idle)
        );
        let open = Clocks {
            deadline: None,
            ..c
        };
        assert_eq!(
            open.wait(Clock::FirstByte, now),
            (Duration::from_millis(300), Clock::FirstByte)
        );
    }
}
