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
use std::sync::Mutex;
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

#[derive(Default)]
pub struct HealthTable {
    states: Mutex<HashMap<String, State>>,
}

/// The process's table.
pub static HEALTH: Lazy<HealthTable> = Lazy::new(HealthTable::default);

impl HealthTable {
    fn with<T>(&self, provider: &str, f: impl FnOnce(&mut State) -> T) -> T {
        let mut map = self.states.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(provider.to_string()).or_default())
    }

    /// Whether `provider` may take a request now (claims the probe when one is due).
    pub fn standing(&self, provider: &str, now: Instant) -> Standing {
        self.with(provider, |s| match s.ejected_until {
            None => Standing::Healthy,
            Some(until) if now >= until && s.probing.is_none_or(|p| now >= p + PROBE_TIMEOUT) => {
                s.probing = Some(now);
                Standing::Probe
            }
            Some(_) => Standing::Ejected,
        })
    }

    /// Is `provider` ejected (without claiming a probe)?
    pub fn is_ejected(&self, provider: &str) -> bool {
        self.with(provider, |s| s.ejected_until.is_some())
    }

    /// An active check's verdict: up puts the provider back in rotation; down ejects it until
    /// at least the next check.
    pub fn mark(&self, provider: &str, up: bool, until_next: Duration, now: Instant) {
        self.with(provider, |s| {
            if up {
                *s = State::default();
            } else {
                s.ejected_until = Some(now + until_next);
                s.probing = None;
            }
        });
        METRICS
            .upstream_healthy
            .with_label_values(&[provider])
            .set(i64::from(up));
    }

    pub fn record(&self, provider: &str, ok: bool, settings: &OutlierSettings, now: Instant) {
        let healthy = self.with(provider, |s| {
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
        METRICS
            .upstream_healthy
            .with_label_values(&[provider])
            .set(i64::from(healthy));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eject_probe_and_recover_with_growing_backoff() {
        let t = HealthTable::default();
        let cfg = OutlierSettings {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
        };
        let now = Instant::now();
        for _ in 0..2 {
            t.record("p", false, &cfg, now);
        }
        assert_eq!(t.standing("p", now), Standing::Healthy);
        t.record("p", false, &cfg, now);
        assert_eq!(t.standing("p", now), Standing::Ejected);
        // After 10 s one probe is let through, the others still wait.
        let later = now + Duration::from_secs(10);
        assert_eq!(t.standing("p", later), Standing::Probe);
        assert_eq!(t.standing("p", later), Standing::Ejected);
        // The probe fails: ejected again for twice as long (20 s), then capped at 25 s.
        t.record("p", false, &cfg, later);
        assert_eq!(
            t.standing("p", later + Duration::from_secs(19)),
            Standing::Ejected
        );
        assert_eq!(
            t.standing("p", later + Duration::from_secs(20)),
            Standing::Probe
        );
        let l2 = later + Duration::from_secs(20);
        t.record("p", false, &cfg, l2);
        assert_eq!(
            t.standing("p", l2 + Duration::from_secs(24)),
            Standing::Ejected
        );
        assert_eq!(
            t.standing("p", l2 + Duration::from_secs(25)),
            Standing::Probe
        );
        // A successful probe: healthy, counters reset.
        t.record("p", true, &cfg, l2 + Duration::from_secs(25));
        assert_eq!(
            t.standing("p", l2 + Duration::from_secs(25)),
            Standing::Healthy
        );
        assert!(!t.is_ejected("p"));
    }
}
