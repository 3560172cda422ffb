//! Passive health (outlier detection): consecutive failures eject a provider for a back-off
//! that doubles with every ejection (capped); when it expires, one request probes it
//! (half-open); a success brings it back, a failure ejects it again for longer.
//!
//! State is per provider name and process-wide, so it survives config reloads. Routing moves
//! ejected providers to the end of a plan instead of dropping them, and never lets ejections
//! take more than `max_ejection_percent` of a model's candidates out of the front, so a pool
//! is never emptied by ejections (Envoy's panic threshold).

use crate::metrics::METRICS;
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a provider counts as failing, and for how long it is ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierSettings {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        // Envoy: consecutive_5xx = 5, base_ejection_time = 30 s; capped at 5 minutes.
        OutlierSettings {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
    /// When the half-open probe in flight was handed out.
    probing: Option<Instant>,
}

/// A probe that never reported (its plan did not reach it) is handed out again after this.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a provider may be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Healthy,
    /// Ejected, and its back-off has run out: this request is the one probe.
    Probe,
    Ejected,
}

/// One provider's health. Configs hold an `Arc` to it (looked up once per config load), so
/// the request path reads two atomics and takes the lock only while a provider is failing.
#[derive(Debug)]
pub struct ProviderHealth {
    name: String,
    state: Mutex<State>,
    /// Mirrors `state.ejected_until.is_some()`.
    ejected: AtomicBool,
    /// Mirrors `state.consecutive > 0`.
    failing: AtomicBool,
}

impl ProviderHealth {
    pub fn new(name: &str) -> ProviderHealth {
        ProviderHealth {
            name: name.to_string(),
            state: Mutex::new(State::default()),
            ejected: AtomicBool::new(false),
            failing: AtomicBool::new(false),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut s);
        self.ejected
            .store(s.ejected_until.is_some(), Ordering::Relaxed);
        self.failing.store(s.consecutive > 0, Ordering::Relaxed);
        out
    }

    fn publish(&self, healthy: bool) {
        METRICS
            .upstream_healthy
            .with_label_values(&[self.name.as_str()])
            .set(i64::from(healthy));
    }

    /// Is the provider ejected (without claiming a probe)?
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// Whether the provider may take a request now (claims the probe when one is due).
    pub fn standing(&self, now: Instant) -> Standing {
        if !self.is_ejected() {
            return Standing::Healthy;
        }
        self.with(|s| match s.ejected_until {
            None => Standing::Healthy,
            Some(until) if now >= until && s.probing.is_none_or(|p| now >= p + PROBE_TIMEOUT) => {
                s.probing = Some(now);
                Standing::Probe
            }
            Some(_) => Standing::Ejected,
        })
    }

    /// A passive observation: an attempt succeeded or failed.
    pub fn record(&self, ok: bool, settings: &OutlierSettings, now: Instant) {
        if ok && !self.is_ejected() && !self.failing.load(Ordering::Relaxed) {
            return; // healthy and staying so: nothing to change
        }
        let healthy = self.with(|s| {
            s.probing = None;
            if ok {
                *s = State::default();
                return true;
            }
            s.consecutive += 1;
            let due = s.ejected_until.is_some() || s.consecutive >= settings.consecutive_failures;
            if due {
                s.ejections += 1;
                let factor = 1u32 << (s.ejections - 1).min(16);
                let backoff = (settings.base_ejection * factor).min(settings.max_ejection);
                s.ejected_until = Some(now + backoff);
                s.consecutive = 0;
            }
            s.ejected_until.is_none()
        });
        self.publish(healthy);
    }

    /// An active check's verdict: up puts the provider back in rotation; down ejects it until
    /// at least the next check.
    pub fn mark(&self, up: bool, until_next: Duration, now: Instant) {
        self.with(|s| {
            if up {
                *s = State::default();
            } else {
                s.ejected_until = Some(now + until_next);
                s.probing = None;
            }
        });
        self.publish(up);
    }
}

/// Every provider's health by name, process-wide, so it survives config reloads.
#[derive(Default)]
pub struct HealthTable {
    providers: Mutex<HashMap<String, Arc<ProviderHealth>>>,
}

/// The process's table.
pub static HEALTH: Lazy<HealthTable> = Lazy::new(HealthTable::default);

impl HealthTable {
    /// The health of the provider named `name` (created on first use).
    pub fn provider(&self, name: &str) -> Arc<ProviderHealth> {
        let mut map = self.providers.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            map.entry(name.to_string())
                .or_insert_with(|| Arc::new(ProviderHealth::new(name))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eject_probe_and_recover_with_growing_backoff() {
        let t = ProviderHealth::new("p");
        let cfg = OutlierSettings {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
        };
        let now = Instant::now();
        for _ in 0..2 {
            t.record(false, &cfg, now);
        }
        assert_eq!(t.standing(now), Standing::Healthy);
        t.record(false, &cfg, now);
        assert_eq!(t.standing(now), Standing::Ejected);
        // After 10 s one probe is let through, the others still wait.
        let later = now + Duration::from_secs(10);
        assert_eq!(t.standing(later), Standing::Probe);
        assert_eq!(t.standing(later), Standing::Ejected);
        // The probe fails: ejected again for twice as long (20 s), then capped at 25 s.
        t.record(false, &cfg, later);
        assert_eq!(
            t.standing(later + Duration::from_secs(19)),
            Standing::Ejected
        );
        assert_eq!(t.standing(later + Duration::from_secs(20)), Standing::Probe);
        let l2 = later + Duration::from_secs(20);
        t.record(false, &cfg, l2);
        assert_eq!(t.standing(l2 + Duration::from_secs(24)), Standing::Ejected);
        assert_eq!(t.standing(l2 + Duration::from_secs(25)), Standing::Probe);
        // A successful probe: healthy, counters reset.
        t.record(true, &cfg, l2 + Duration::from_secs(25));
        assert_eq!(t.standing(l2 + Duration::from_secs(25)), Standing::Healthy);
        assert!(!t.is_ejected());
    }
}
