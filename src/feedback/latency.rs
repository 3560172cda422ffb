//! Latency for the `least_latency` strategy: an exponentially weighted moving average of time
//! to first token (time to the whole answer for non-streamed requests), one per deployment.
//!
//! It lives in the deployment's [`ProviderHealth`](super::health::ProviderHealth), so it is
//! bound with the health table in `Runtime::new`, survives reloads, and is read lock-free on
//! the routing path (an `f64` in an `AtomicU64`; no map lookup, no lock).

use std::sync::atomic::{AtomicU64, Ordering};

/// Weight of the newest sample.
const ALPHA: f64 = 0.3;
/// Share of requests ordered by weight instead, so slower targets keep being measured.
pub const EXPLORE: f64 = 0.1;

/// Bits that mean "no sample yet" (a NaN no average can produce).
const EMPTY: u64 = u64::MAX;

/// One deployment's average seconds.
#[derive(Debug)]
pub struct Latency(AtomicU64);

impl Default for Latency {
    fn default() -> Self {
        Latency(AtomicU64::new(EMPTY))
    }
}

impl Latency {
    /// Fold one sample in (a sample that is not a finite, non-negative number is ignored).
    pub fn record(&self, seconds: f64) {
        if !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        let fold = |bits: u64| {
            let next = if bits == EMPTY {
                seconds
            } else {
                ALPHA * seconds + (1.0 - ALPHA) * f64::from_bits(bits)
            };
            Some(next.to_bits())
        };
        // The closure always answers Some, so the update is never refused.
        if self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, fold)
            .is_err()
        {
            log::debug!("latency sample dropped");
        }
    }

    /// The average, or `None` before the first sample (such targets are tried first).
    pub fn get(&self) -> Option<f64> {
        let bits = self.0.load(Ordering::Relaxed);
        (bits != EMPTY).then(|| f64::from_bits(bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_follows_new_samples() {
        let t = Latency::default();
        assert_eq!(t.get(), None);
        t.record(f64::NAN);
        t.record(-1.0);
        assert_eq!(t.get(), None);
        t.record(1.0);
        assert_eq!(t.get(), Some(1.0));
        for _ in 0..20 {
            t.record(0.1);
        }
        assert!((t.get().unwrap() - 0.1).abs() < 0.01);
    }
}
