//! Passive health (outlier detection): consecutive failures eject a provider for a back-off
//! that doubles with every ejection, at most [`MAX_DOUBLINGS`] times and never past
//! `max_ejection`; when it expires, one request probes it (half-open); a success brings it
//! back, a failure ejects it again for longer. The multiplier decays after healthy periods
//! (one step per `base_ejection` of health, as Envoy's outlier detection does), and a
//! background recovery probe ([`crate::server::services::health_checks`]) can bring an ejected
//! provider back before its back-off runs out.
//!
//! State is per provider name, and per deployment (provider and upstream model), and
//! process-wide, so it survives config reloads. Transport failures (connects, timeouts,
//! resets) count against the provider; 5xx answers and first-frame errors against the
//! deployment only, so one broken model does not eject the provider's healthy ones. Routing moves
//! ejected providers to the end of a plan instead of dropping them, and never lets ejections
//! take more than `max_ejection_percent` of a model's candidates out of the front, so a pool
//! is never emptied by ejections (Envoy's panic threshold).

use crate::metrics::METRICS;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
    /// The back-off multiplier's exponent + 1 (decays while healthy).
    ejections: u32,
    ejected_until: Option<Instant>,
    /// When the half-open probe in flight was handed out.
    probing: Option<Instant>,
    /// When the provider last came back from an ejection.
    healthy_since: Option<Instant>,
}

/// A failed half-open probe doubles the back-off at most this many times (×8).
pub const MAX_DOUBLINGS: u32 = 3;

impl State {
    /// Back in rotation: the counters start again, the multiplier is remembered.
    fn back(&mut self, now: Instant) {
        if self.ejected_until.take().is_some() {
            self.healthy_since = Some(now);
        }
        self.consecutive = 0;
        self.probing = None;
    }
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
    /// The upstream model of a deployment's health (`""`: the provider's).
    model: String,
    state: Mutex<State>,
    /// Mirrors `state.ejected_until.is_some()`.
    ejected: AtomicBool,
    /// Mirrors `state.consecutive > 0`.
    failing: AtomicBool,
    /// The deployment's average time to first token, for `least_latency`.
    pub latency: super::latency::Latency,
}

impl ProviderHealth {
    pub fn new(name: &str) -> ProviderHealth {
        Self::of_deployment(name, "")
    }

    /// The health of one deployment: `model` on provider `name`.
    pub fn of_deployment(name: &str, model: &str) -> ProviderHealth {
        ProviderHealth {
            name: name.to_string(),
            model: model.to_string(),
            state: Mutex::new(State::default()),
            ejected: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            latency: super::latency::Latency::default(),
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
            .with_label_values(&[self.name.as_str(), self.model.as_str()])
            .set(i64::from(healthy));
    }

    /// Is the provider ejected (without claiming a probe)?
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// Whether the provider may take a request now; claims the half-open probe when one is due.
    pub fn claim(&self, now: Instant) -> Standing {
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
                s.back(now);
                return true;
            }
            s.consecutive += 1;
            let due = s.ejected_until.is_some() || s.consecutive >= settings.consecutive_failures;
            if due {
                if let Some(since) = s.healthy_since.take() {
                    let base = settings.base_ejection.as_millis().max(1);
                    let periods = now.saturating_duration_since(since).as_millis() / base;
                    s.ejections = s
                        .ejections
                        .saturating_sub(u32::try_from(periods).unwrap_or(u32::MAX));
                }
                s.ejections = (s.ejections + 1).min(MAX_DOUBLINGS + 1);
                let factor = 1u32 << (s.ejections - 1);
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
                s.back(now);
            } else {
                s.ejected_until = Some(now + until_next);
                s.probing = None;
            }
        });
        self.publish(up);
    }
}

impl ProviderHealth {
    /// An ejected deployment's provider answers again: its back-off ends now, so the next
    /// request is its half-open probe (a real request decides whether the model is back).
    pub fn half_open(&self, now: Instant) {
        if !self.is_ejected() {
            return;
        }
        self.with(|s| {
            if s.ejected_until.is_some_and(|until| until > now) {
                s.ejected_until = Some(now);
            }
        });
    }
}

/// Every provider's and deployment's health by name, for the process (made in `server`, passed
/// to every [`crate::runtime::Runtime`]), so it survives config reloads.
#[derive(Default)]
pub struct HealthTable {
    providers: Mutex<HashMap<String, Arc<ProviderHealth>>>,
    deployments: Mutex<HashMap<(String, String), Arc<ProviderHealth>>>,
}

/// A provider's or a deployment's health as a config names it. [`Runtime::new`] binds it to
/// the process's [`HealthTable`] (so it outlives reloads and is shared by every config that
/// names it); unbound (a config only checked, as `tollgate -t` does, or a test's) it is a
/// health of its own, and parsing a config touches nothing process-wide.
///
/// [`Runtime::new`]: crate::runtime::Runtime::new
#[derive(Clone)]
pub struct HealthSlot(Arc<Slot>);

struct Slot {
    bound: OnceLock<Arc<ProviderHealth>>,
    own: ProviderHealth,
}

impl HealthSlot {
    pub fn provider(name: &str) -> HealthSlot {
        Self::of(ProviderHealth::new(name))
    }

    pub fn deployment(provider: &str, model: &str) -> HealthSlot {
        Self::of(ProviderHealth::of_deployment(provider, model))
    }

    fn of(own: ProviderHealth) -> HealthSlot {
        HealthSlot(Arc::new(Slot {
            bound: OnceLock::new(),
            own,
        }))
    }

    /// Share `health` from now on (a second binding is ignored: a config is bound once).
    pub fn bind(&self, health: Arc<ProviderHealth>) {
        if self.0.bound.set(health).is_err() {
            log::debug!("health bound twice; the first binding stays");
        }
    }
}

impl std::ops::Deref for HealthSlot {
    type Target = ProviderHealth;
    fn deref(&self) -> &ProviderHealth {
        self.0.bound.get().map_or(&self.0.own, |shared| shared)
    }
}

impl std::fmt::Debug for HealthSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bound = self.0.bound.get().is_some();
        write!(
            f,
            "HealthSlot({}/{}, bound: {bound})",
            self.name, self.model
        )
    }
}

impl HealthTable {
    /// The health of deployment `model` on provider `provider` (created on first use): 5xx
    /// answers and first-frame errors of that model count here, not against the provider.
    pub fn deployment(&self, provider: &str, model: &str) -> Arc<ProviderHealth> {
        let mut map = self.deployments.lock().unwrap_or_else(|p| p.into_inner());
        let key = (provider.to_string(), model.to_string());
        Arc::clone(map.entry(key).or_insert_with(|| {
            let health = ProviderHealth::of_deployment(provider, model);
            // Configured deployments show from the start (a bounded set of series).
            health.publish(true);
            Arc::new(health)
        }))
    }

    /// The health of the provider named `name` (created on first use).
    pub fn provider(&self, name: &str) -> Arc<ProviderHealth> {
        self.provider_checked(name, None)
    }

    /// The health of `name`; a provider first seen here with an active check
    /// (`first_verdict`: how long the first one may take) starts out of rotation until that
    /// check passes, as Envoy treats new actively checked hosts, so no request reaches a
    /// backend the check would have refused.
    pub fn provider_checked(
        &self,
        name: &str,
        first_verdict: Option<Duration>,
    ) -> Arc<ProviderHealth> {
        let mut map = self.providers.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(name.to_string()).or_insert_with(|| {
            let health = ProviderHealth::new(name);
            if let Some(wait) = first_verdict {
                health.with(|s| s.ejected_until = Some(Instant::now() + wait));
            }
            Arc::new(health)
        }))
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
        assert_eq!(t.claim(now), Standing::Healthy);
        t.record(false, &cfg, now);
        assert_eq!(t.claim(now), Standing::Ejected);
        // After 10 s one probe is let through, the others still wait.
        let later = now + Duration::from_secs(10);
        assert_eq!(t.claim(later), Standing::Probe);
        assert_eq!(t.claim(later), Standing::Ejected);
        // The probe fails: ejected again for twice as long (20 s), then capped at 25 s.
        t.record(false, &cfg, later);
        assert_eq!(t.claim(later + Duration::from_secs(19)), Standing::Ejected);
        assert_eq!(t.claim(later + Duration::from_secs(20)), Standing::Probe);
        let l2 = later + Duration::from_secs(20);
        t.record(false, &cfg, l2);
        assert_eq!(t.claim(l2 + Duration::from_secs(24)), Standing::Ejected);
        assert_eq!(t.claim(l2 + Duration::from_secs(25)), Standing::Probe);
        // A successful probe: healthy, counters reset.
        t.record(true, &cfg, l2 + Duration::from_secs(25));
        assert_eq!(t.claim(l2 + Duration::from_secs(25)), Standing::Healthy);
        assert!(!t.is_ejected());
    }

    #[test]
    fn a_deployment_goes_half_open_when_its_provider_answers_again() {
        let table = HealthTable::default();
        let d = table.deployment("p-half", "m");
        let cfg = OutlierSettings {
            consecutive_failures: 1,
            base_ejection: Duration::from_secs(60),
            max_ejection: Duration::from_secs(60),
        };
        let now = Instant::now();
        d.record(false, &cfg, now);
        assert_eq!(d.claim(now), Standing::Ejected);
        d.half_open(now + Duration::from_secs(3));
        // One real request decides; the others wait for its verdict.
        assert_eq!(d.claim(now + Duration::from_secs(3)), Standing::Probe);
        assert_eq!(d.claim(now + Duration::from_secs(3)), Standing::Ejected);
        d.record(true, &cfg, now + Duration::from_secs(3));
        assert_eq!(d.claim(now + Duration::from_secs(3)), Standing::Healthy);
        // A deployment's health is its own, apart from its provider's.
        assert!(!Arc::ptr_eq(&d, &table.provider("p-half")));
    }

    #[test]
    fn a_slot_is_its_own_until_bound_then_shares_the_table() {
        let table = HealthTable::default();
        let slot = HealthSlot::provider("p-slot");
        let copy = slot.clone();
        let cfg = OutlierSettings {
            consecutive_failures: 1,
            base_ejection: Duration::from_secs(60),
            max_ejection: Duration::from_secs(60),
        };
        slot.record(false, &cfg, Instant::now());
        assert!(copy.is_ejected(), "clones share the slot");
        assert!(
            !table.provider("p-slot").is_ejected(),
            "unbound: the table is untouched"
        );
        slot.bind(table.provider("p-slot"));
        assert!(!copy.is_ejected(), "bound: the table's health");
        table.provider("p-slot").record(false, &cfg, Instant::now());
        assert!(copy.is_ejected());
    }

    /// Seconds after `at` until the half-open probe is handed out.
    fn ejected_for(t: &ProviderHealth, at: Instant) -> u64 {
        (1..10_000)
            .find(|s| t.claim(at + Duration::from_secs(*s)) == Standing::Probe)
            .unwrap()
    }

    #[test]
    fn doubling_is_capped_decays_while_healthy_and_recovery_returns_at_once() {
        let t = ProviderHealth::new("q");
        let cfg = OutlierSettings {
            consecutive_failures: 1,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(1_000),
        };
        let mut at = Instant::now();
        t.record(false, &cfg, at);
        let mut lengths = Vec::new();
        for _ in 0..6 {
            let d = ejected_for(&t, at);
            lengths.push(d);
            at += Duration::from_secs(d);
            t.record(false, &cfg, at); // the half-open probe fails
        }
        assert_eq!(lengths, [10, 20, 40, 80, 80, 80], "at most three doublings");
        // A recovery probe ends the back-off early: the next request is the half-open probe,
        // and its success brings the provider back.
        let soon = at + Duration::from_secs(1);
        t.half_open(soon);
        assert_eq!(t.claim(soon), Standing::Probe);
        assert_eq!(t.claim(soon), Standing::Ejected, "one probe at a time");
        t.record(true, &cfg, soon);
        assert_eq!(t.claim(soon), Standing::Healthy);
        // Healthy for 30 s (three base periods): the multiplier steps down from x8 to x1.
        let later = at + Duration::from_secs(31);
        t.record(false, &cfg, later);
        assert_eq!(
            ejected_for(&t, later),
            20,
            "x8 decayed to x1, then one ejection: x2"
        );
    }
}
