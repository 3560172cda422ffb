//! The retry budget of a virtual model (Envoy's `retry_budget`, tower's `Budget`): failover
//! attempts may be at most `percent` of the requests of the last 10 seconds, plus a floor of
//! `min_per_second`. During an outage the budget runs out and failures are answered instead of
//! multiplying the load on the remaining backends.

use std::sync::Mutex;

const WINDOW_S: usize = 10;

/// The clock the budget's windows are counted on: Unix seconds.
pub fn now_s() -> i64 {
    i64::try_from(crate::types::clock::unix_seconds()).unwrap_or(i64::MAX)
}

#[derive(Debug)]
pub struct RetryBudget {
    pub percent: f64,
    pub min_per_second: f64,
    /// Per second of the window: (unix second, requests, retries).
    ring: Mutex<[(i64, u64, u64); WINDOW_S]>,
}

impl RetryBudget {
    pub fn new(percent: f64, min_per_second: f64) -> RetryBudget {
        RetryBudget {
            percent,
            min_per_second,
            ring: Mutex::new([(i64::MIN, 0, 0); WINDOW_S]),
        }
    }

    fn with_slot<T>(
        &self,
        now_s: i64,
        f: impl FnOnce(&mut [(i64, u64, u64); WINDOW_S], usize) -> T,
    ) -> T {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let i = now_s.rem_euclid(WINDOW_S as i64) as usize;
        if ring[i].0 != now_s {
            ring[i] = (now_s, 0, 0);
        }
        f(&mut ring, i)
    }

    /// A request arrived (its first attempt).
    pub fn deposit(&self, now_s: i64) {
        self.with_slot(now_s, |ring, i| ring[i].1 += 1);
    }

    /// May a failed attempt be retried now? Counts the retry if so.
    pub fn try_withdraw(&self, now_s: i64) -> bool {
        self.try_withdraw_leaving(0, now_s)
    }

    /// Like [`RetryBudget::try_withdraw`], but only if `leave` more retries would still fit
    /// after this one.
    pub fn try_withdraw_leaving(&self, leave: u64, now_s: i64) -> bool {
        self.with_slot(now_s, |ring, i| {
            let live = ring
                .iter()
                .filter(|(s, _, _)| *s > now_s - WINDOW_S as i64 && *s <= now_s);
            let (requests, retries) = live.fold((0u64, 0u64), |(a, b), (_, r, t)| (a + r, b + t));
            let allowed =
                self.min_per_second * WINDOW_S as f64 + self.percent / 100.0 * requests as f64;
            if retries.saturating_add(1).saturating_add(leave) as f64 <= allowed {
                ring[i].2 += 1;
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_a_share_of_requests_plus_a_floor() {
        let b = RetryBudget::new(20.0, 0.1); // floor: 1 retry per 10 s
        let t = 1_000;
        for _ in 0..10 {
            b.deposit(t);
        }
        // 1 (floor) + 20% of 10 = 3 retries.
        assert!(b.try_withdraw(t));
        assert!(b.try_withdraw(t + 1));
        assert!(b.try_withdraw(t + 2));
        assert!(!b.try_withdraw(t + 3));
        // Ten seconds on, the old requests and retries have left the window.
        assert!(b.try_withdraw(t + 12), "the floor again");
        assert!(!b.try_withdraw(t + 12));
    }
}
