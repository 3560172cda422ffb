//! Routing: a virtual model becomes an ordered list of upstream candidates.
//!
//! Pure and synchronous. The model's rules are tried in order ([`facts::Facts`] is what they
//! read); the first match supplies the target set, else the model's own `targets` do.
//! `weighted` orders that set by a weighted draw without replacement (the first candidate
//! follows the weights; failover goes to the others); `priority` keeps the file order.
//! Fallbacks follow, in order. Targets whose `context_window` is smaller than the request are
//! skipped, and the list is cut to the model's `max_attempts`.

pub mod facts;
pub mod pick;

use crate::config::{Condition, Model, Rule, Strategy, Target};
use crate::feedback::health::Standing;
use crate::feedback::latency;
use facts::Facts;
use rand::Rng;
use std::sync::Arc;

/// The candidates one request will try, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub model: Arc<Model>,
    /// The rule that chose the targets (`None`: the model's own targets).
    pub rule: Option<String>,
    /// Targets left out because their context window is too small (`provider/model`).
    pub skipped: Vec<String>,
    candidates: Vec<Target>,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextTooLong {
    pub tokens: u64,
    pub largest_window: u64,
}

fn holds(c: &Condition, f: &Facts, rng: &mut impl Rng) -> bool {
    match c {
        Condition::MinPromptTokens(n) => f.prompt_tokens >= *n,
        Condition::Header { name, equals } => match (f.headers.get(name), equals) {
            (Some(v), Some(want)) => v.as_bytes() == want.as_bytes(),
            (Some(_), None) => true,
            (None, _) => false,
        },
        Condition::LastUserContains(words) => words.iter().any(|w| f.last_user.contains(w)),
        Condition::Field { name, equals } => match (f.field(name), equals) {
            (Some(v), Some(want)) => &v == want,
            (Some(_), None) => true,
            (None, _) => false,
        },
        Condition::Percent(p) => rng.random_range(0.0..100.0) < *p,
    }
}

fn matches(rule: &Rule, f: &Facts, rng: &mut impl Rng) -> bool {
    rule.conditions.iter().all(|c| holds(c, f, rng))
}

/// The request's expected tokens, for `least_cost`: the prompt estimate, and `max_tokens`
/// (else [`EXPECTED_OUTPUT`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostBasis {
    pub input: u64,
    pub output: u64,
}

/// Output tokens `least_cost` expects of a request that sets no `max_tokens`.
pub const EXPECTED_OUTPUT: u64 = 256;

impl CostBasis {
    pub fn new(prompt_estimate: u64, max_tokens: Option<u64>) -> CostBasis {
        CostBasis {
            input: prompt_estimate,
            output: max_tokens.unwrap_or(EXPECTED_OUTPUT),
        }
    }
}

impl Plan {
    /// The model's own targets, no rules (used where no request facts exist).
    pub fn new(model: Arc<Model>, basis: CostBasis, rng: &mut impl Rng) -> Plan {
        let candidates = ordered(&model, &model.targets, basis, rng);
        let mut plan = Plan {
            model,
            rule: None,
            skipped: Vec::new(),
            candidates,
        };
        plan.candidates.truncate(plan.model.max_attempts);
        plan
    }

    /// Route by the model's rules and the request's facts.
    pub fn route(
        model: Arc<Model>,
        f: &Facts,
        basis: CostBasis,
        rng: &mut impl Rng,
    ) -> Result<Plan, ContextTooLong> {
        let rule = model.rules.iter().find(|r| matches(r, f, rng));
        let targets = rule.map_or(&model.targets, |r| &r.targets);
        let mut candidates = ordered(&model, targets, basis, rng);
        let mut skipped = Vec::new();
        let mut largest_window = 0;
        if f.prompt_tokens > 0 {
            candidates.retain(|t| match t.context_window {
                Some(w) if w < f.prompt_tokens => {
                    largest_window = largest_window.max(w);
                    skipped.push(format!("{}/{}", t.provider.name, t.model));
                    false
                }
                _ => true,
            });
        }
        if candidates.is_empty() && !skipped.is_empty() {
            return Err(ContextTooLong {
                tokens: f.prompt_tokens,
                largest_window,
            });
        }
        candidates.truncate(model.max_attempts);
        Ok(Plan {
            rule: rule.map(|r| r.name.clone()),
            model,
            skipped,
            candidates,
        })
    }

    /// The candidate for attempt `n` (0-based), if the plan has one.
    pub fn candidate(&self, n: usize) -> Option<&Target> {
        self.candidates.get(n)
    }

    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Whether a failed attempt `n` has a next candidate.
    pub fn has_next(&self, n: usize) -> bool {
        n + 1 < self.candidates.len()
    }
}

/// `targets` in strategy order, then the model's fallbacks; ejected providers moved to the end.
fn ordered(model: &Model, targets: &[Target], basis: CostBasis, rng: &mut impl Rng) -> Vec<Target> {
    let order: Vec<usize> = match model.strategy {
        Strategy::Priority => (0..targets.len()).collect(),
        Strategy::Weighted => weighted_order(targets, rng),
        Strategy::LeastLatency if rng.random_bool(latency::EXPLORE) => weighted_order(targets, rng),
        Strategy::LeastLatency => {
            let mut order: Vec<usize> = (0..targets.len()).collect();
            let key = |i: &usize| targets[*i].health.latency.get().unwrap_or(0.0);
            order.sort_by(|a, b| key(a).total_cmp(&key(b)));
            order
        }
        Strategy::LeastCost => {
            let mut order: Vec<usize> = (0..targets.len()).collect();
            let cost = |i: &usize| {
                let t = &targets[*i];
                let micros = model.price_of(t).map_or(f64::INFINITY, |p| {
                    basis.input as f64 * p.input_per_mtok + basis.output as f64 * p.output_per_mtok
                });
                (micros, std::cmp::Reverse(t.weight))
            };
            order.sort_by(|a, b| {
                let (ca, wa) = cost(a);
                let (cb, wb) = cost(b);
                ca.total_cmp(&cb).then(wa.cmp(&wb))
            });
            order
        }
    };
    let all: Vec<Target> = order
        .into_iter()
        .map(|i| targets[i].clone())
        .chain(model.fallbacks.iter().cloned())
        .collect();
    demote_ejected(all, model.max_ejection_percent)
}

/// Move candidates whose provider or deployment is ejected to the end, at most `max_percent`
/// of them (the rest stay where they are: a pool is never emptied by ejections). One whose
/// back-off ran out stays in place as the half-open probe.
fn demote_ejected(candidates: Vec<Target>, max_percent: u32) -> Vec<Target> {
    let ejected = |t: &Target| t.provider.health.is_ejected() || t.health.is_ejected();
    if !candidates.iter().any(ejected) {
        return candidates;
    }
    let now = std::time::Instant::now();
    let mut budget = candidates.len() * max_percent as usize / 100;
    let (mut front, mut back) = (Vec::new(), Vec::new());
    for t in candidates {
        // The deployment first: a probe of the provider is not claimed for a broken model.
        let standing = match t.health.claim(now) {
            Standing::Ejected => Standing::Ejected,
            mine => match t.provider.health.claim(now) {
                Standing::Healthy => mine,
                theirs => theirs,
            },
        };
        if standing == Standing::Ejected && budget > 0 {
            budget -= 1;
            back.push(t);
        } else {
            front.push(t);
        }
    }
    front.extend(back);
    front
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
    use crate::config::{Provider, ProviderKind};
    use rand::SeedableRng;

    fn target(provider: &Arc<Provider>, model: &str, weight: u32) -> Target {
        Target {
            provider: Arc::clone(provider),
            model: model.into(),
            health: crate::feedback::health::HealthSlot::deployment(&provider.name, ""),
            weight,
            context_window: None,
            price: None,
        }
    }

    fn model(
        strategy: Strategy,
        weights: &[u32],
        fallbacks: usize,
        max_attempts: usize,
    ) -> Arc<Model> {
        let p = Arc::new(Provider {
            kind: ProviderKind::Mock,
            ..Provider::for_tests("p")
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
            rules: vec![],
            retry_budget: Arc::new(crate::feedback::budget::RetryBudget::new(100.0, 1000.0)),
            max_ejection_percent: 50,
            retries: Default::default(),
            stream_recovery: Default::default(),
        })
    }

    fn names(plan: &Plan) -> Vec<String> {
        (0..plan.len())
            .map(|i| plan.candidate(i).unwrap().model.clone())
            .collect()
    }

    #[test]
    fn least_cost_orders_by_this_requests_estimated_cost() {
        use crate::config::Price;
        let price = |i, o| {
            Some(Price {
                input_per_mtok: i,
                output_per_mtok: o,
            })
        };
        let base = model(Strategy::LeastCost, &[1, 1, 1, 5], 1, 5);
        let mut m = Model {
            name: base.name.clone(),
            strategy: Strategy::LeastCost,
            targets: base.targets.clone(),
            fallbacks: base.fallbacks.clone(),
            max_attempts: 5,
            retry_on_status: vec![],
            price: price(10.0, 10.0),
            log_payloads: false,
            rules: vec![],
            retry_budget: Arc::clone(&base.retry_budget),
            max_ejection_percent: 50,
            retries: Default::default(),
            stream_recovery: Default::default(),
        };
        // t0 is cheap to read and dear to write, t1 the other way round; t2 has the model's
        // price; t3 the same as t2 but a larger weight.
        m.targets[0].price = price(0.1, 20.0);
        m.targets[1].price = price(20.0, 0.1);
        let m = Arc::new(m);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let long_prompt = CostBasis::new(10_000, Some(10));
        let plan = Plan::new(Arc::clone(&m), long_prompt, &mut rng);
        assert_eq!(names(&plan), ["t0", "t3", "t2", "t1", "f0"]);
        let long_answer = CostBasis::new(10, Some(10_000));
        let plan = Plan::new(Arc::clone(&m), long_answer, &mut rng);
        assert_eq!(names(&plan), ["t1", "t3", "t2", "t0", "f0"]);
        // Without any price, weight decides.
        let unpriced = model(Strategy::LeastCost, &[1, 3], 0, 2);
        let plan = Plan::new(unpriced, long_prompt, &mut rng);
        assert_eq!(names(&plan), ["t1", "t0"]);
        assert_eq!(m.price_of(&m.targets[0]), price(0.1, 20.0));
        assert_eq!(m.price_of(&m.targets[2]), price(10.0, 10.0));
    }

    #[test]
    fn priority_keeps_order_then_fallbacks_within_budget() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let plan = Plan::new(
            model(Strategy::Priority, &[1, 1], 2, 3),
            CostBasis::default(),
            &mut rng,
        );
        assert_eq!(names(&plan), ["t0", "t1", "f0"]);
        // Which statuses fail over is the attempt engine's (its tests); the plan says what is left.
        assert!(plan.has_next(1));
        assert!(!plan.has_next(2));
        assert!(plan.candidate(3).is_none());
    }

    #[test]
    fn weighted_first_pick_follows_weights_and_never_repeats() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let m = model(Strategy::Weighted, &[3, 1], 1, 5);
        let mut first_t0 = 0;
        for _ in 0..4000 {
            let plan = Plan::new(Arc::clone(&m), CostBasis::default(), &mut rng);
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
