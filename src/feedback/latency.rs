//! Latency tracking for the `least_latency` strategy: an exponentially weighted moving average
//! of time to first token (time to the whole answer for non-streamed requests) per target,
//! process-wide so it survives config reloads.

use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::sync::Mutex;

/// Weight of the newest sample.
const ALPHA: f64 = 0.3;
/// Share of requests ordered by weight instead, so slower targets keep being measured.
pub const EXPLORE: f64 = 0.1;

/// Provider name → upstream model → average seconds (nested so lookups borrow, not allocate).
#[derive(Default)]
pub struct LatencyTable {
    ewma: Mutex<HashMap<String, HashMap<String, f64>>>,
}

pub static LATENCY: Lazy<LatencyTable> = Lazy::new(LatencyTable::default);

impl LatencyTable {
    pub fn record(&self, provider: &str, model: &str, seconds: f64) {
        let mut map = self.ewma.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(provider).and_then(|m| m.get_mut(model)) {
            Some(e) => *e = ALPHA * seconds + (1.0 - ALPHA) * *e,
            None => {
                map.entry(provider.to_string())
                    .or_default()
                    .insert(model.to_string(), seconds);
            }
        }
    }

    /// The average, or `None` before the first sample (such targets are tried first).
    pub fn get(&self, provider: &str, model: &str) -> Option<f64> {
        let map = self.ewma.lock().unwrap_or_else(|p| p.into_inner());
        map.get(provider)?.get(model).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_follows_new_samples() {
        let t = LatencyTable::default();
        assert_eq!(t.get("p", "m"), None);
        t.record("p", "m", 1.0);
        assert_eq!(t.get("p", "m"), Some(1.0));
        for _ in 0..20 {
            t.record("p", "m", 0.1);
        }
        assert!((t.get("p", "m").unwrap() - 0.1).abs() < 0.01);
    }
}
