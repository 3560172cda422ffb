//! Routing: a virtual model becomes an ordered list of upstream candidates.
//!
//! Pure and synchronous. `weighted` orders the targets by a weighted draw without replacement
//! (so the first candidate follows the weights and failover goes to the others);
//! `priority` keeps the file order. Fallbacks follow, in order. The list is cut to the model's
//! `max_attempts`.

use crate::config::{Model, Strategy, Target};
use rand::Rng;
use std::sync::Arc;

/// The candidates one request will try, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub model: Arc<Model>,
    /// Indices into `model.targets` then `model.fallbacks` (fallback i is `targets.len() + i`).
    order: Vec<usize>,
}

impl Plan {
    pub fn new(model: Arc<Model>, rng: &mut impl Rng) -> Plan {
        let mut order: Vec<usize> = match model.strategy {
            Strategy::Priority => (0..model.targets.len()).collect(),
            Strategy::Weighted => weighted_order(&model.targets, rng),
        };
        order.extend((0..model.fallbacks.len()).map(|i| model.targets.len() + i));
        order.truncate(model.max_attempts);
        Plan { model, order }
    }

    /// The candidate for attempt `n` (0-based), if the plan has one.
    pub fn candidate(&self, n: usize) -> Option<&Target> {
        let i = *self.order.get(n)?;
        let t = &self.model.targets;
        t.get(i).or_else(|| self.model.fallbacks.get(i - t.len()))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Whether `status` from attempt `n` may be retried on a next candidate.
    pub fn retries_status(&self, status: u16, n: usize) -> bool {
        n + 1 < self.order.len() && self.model.retry_on_status.contains(&status)
    }

    /// Whether a failed attempt `n` has a next candidate.
    pub fn has_next(&self, n: usize) -> bool {
        n + 1 < self.order.len()
    }
}

fn weighted_order(targets: &[Target], rng: &mut impl Rng) -> Vec<usize> {
    let mut left: Vec<usize> = (0..targets.len()).collect();
    let mut out = Vec::with_capacity(targets.len());
    while !left.is_empty() {
        let total: u64 = left.iter().map(|&i| u64::from(targets[i].weight)).sum();
        let mut r = rng.random_range(0..total.max(1));
        let pos = left
            .iter()
            .position(|&i| {
                let w = u64::from(targets[i].weight);
                if r < w {
                    true
                } else {
                    r -= w;
                    false
                }
            })
            .unwrap_or(0);
        out.push(left.remove(pos));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Provider, ProviderKind, Upstream};
    use rand::SeedableRng;
    use std::time::Duration;

    fn target(provider: &Arc<Provider>, model: &str, weight: u32) -> Target {
        Target {
            provider: Arc::clone(provider),
            model: model.into(),
            weight,
        }
    }

    fn model(
        strategy: Strategy,
        weights: &[u32],
        fallbacks: usize,
        max_attempts: usize,
    ) -> Arc<Model> {
        let p = Arc::new(Provider {
            name: "p".into(),
            kind: ProviderKind::Mock,
            upstream: Upstream::BuiltinMock,
            api_key: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            headers: vec![],
        });
        Arc::new(Model {
            name: "m".into(),
            strategy,
            targets: weights
                .iter()
                .enumerate()
                .map(|(i, w)| target(&p, &format!("t{i}"), *w))
                .collect(),
            fallbacks: (0..fallbacks)
                .map(|i| target(&p, &format!("f{i}"), 1))
                .collect(),
            max_attempts,
            retry_on_status: vec![503],
            price: None,
            log_payloads: false,
        })
    }

    fn names(plan: &Plan) -> Vec<String> {
        (0..plan.len())
            .map(|i| plan.candidate(i).unwrap().model.clone())
            .collect()
    }

    #[test]
    fn priority_keeps_order_then_fallbacks_within_budget() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let plan = Plan::new(model(Strategy::Priority, &[1, 1], 2, 3), &mut rng);
        assert_eq!(names(&plan), ["t0", "t1", "f0"]);
        assert!(plan.retries_status(503, 1));
        assert!(!plan.retries_status(503, 2));
        assert!(!plan.retries_status(400, 0));
        assert!(plan.candidate(3).is_none());
    }

    #[test]
    fn weighted_first_pick_follows_weights_and_never_repeats() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let m = model(Strategy::Weighted, &[3, 1], 1, 5);
        let mut first_t0 = 0;
        for _ in 0..4000 {
            let plan = Plan::new(Arc::clone(&m), &mut rng);
            let n = names(&plan);
            assert_eq!(n.len(), 3);
            assert_eq!(n[2], "f0");
            assert_ne!(n[0], n[1]);
            first_t0 += usize::from(n[0] == "t0");
        }
        let share = first_t0 as f64 / 4000.0;
        assert!((0.72..0.78).contains(&share), "share {share}");
    }
}
