//! Properties of the limiter over generated sequences of reserve, settle and drop, with
//! hostile demands (0, 1, 2^31, 2^53, 2^63, 2^64−1 and everything between): no counter goes
//! below zero, none passes its limit through an admission, a refusal changes nothing, the
//! concurrency slots match the live reservations, and every reservation counts at least
//! its prompt plus `n` × its output cap (up to [`MAX_DEMAND`]).
//!
//! The documented bound: admission never lets a counter pass its limit; only a settlement
//! whose real usage exceeds what was reserved can (by that excess, itself at most
//! [`MAX_DEMAND`]), and then every later request with a demand is refused until the window
//! turns.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed step is a failed run"
)]

use super::clock::ManualClock;
use super::tests::setup;
use super::*;
use crate::config::Config;
use proptest::prelude::*;

const LIMITS: &str = "limits = { tpm = 1000000, tokens_per_day = 3000000, \
                      usd_per_day = 5.0, concurrency = 6, rpm = 1000 }";
const TPM: u64 = 1_000_000;
const TOKENS_PER_DAY: u64 = 3_000_000;
const CONCURRENCY: i64 = 6;

/// A hostile count: the edges an attacker picks, or anything.
fn hostile() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(1 << 31),
        Just(1 << 53),
        Just(1 << 63),
        Just(u64::MAX),
        Just(MAX_DEMAND),
        0u64..5_000,
        any::<u64>(),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        prompt: u64,
        max: Option<u64>,
        choices: u64,
    },
    /// Settle the i-th live reservation (modulo their number) with this usage.
    Settle { i: usize, tokens: u64, usd: u64 },
    /// Drop the i-th live reservation (a request that ended on an error path).
    Drop { i: usize },
    /// Let time pass (within the same day: the clock starts at 06:00).
    Advance { ms: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (hostile(), prop::option::of(hostile()), hostile())
            .prop_map(|(prompt, max, choices)| Op::Reserve { prompt, max, choices }),
        2 => (any::<usize>(), hostile(), hostile())
            .prop_map(|(i, tokens, usd)| Op::Settle { i, tokens, usd }),
        1 => any::<usize>().prop_map(|i| Op::Drop { i }),
        1 => (0i64..90_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// What the consumer's scope holds now.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Snapshot {
    tokens_minute: f64,
    tokens_day: i64,
    usd_day: i64,
    inflight: i64,
}

fn snapshot(plan: &LimitPlan, clock: &ManualClock) -> Snapshot {
    let now = clock.now_ms();
    let cal = super::clock::calendar(&jiff::tz::TimeZone::UTC, now);
    let scope = plan.limiter().scope("consumer:team");
    let c = scope.lock();
    Snapshot {
        tokens_minute: c.tokens.count(now),
        tokens_day: c.tokens_day.used(cal.day),
        usd_day: c.usd_day.used(cal.day),
        inflight: c.inflight.mine,
    }
}

fn check_bounds(s: &Snapshot) {
    assert!(s.tokens_minute >= 0.0, "{s:?}");
    assert!(s.tokens_day >= 0 && s.usd_day >= 0, "{s:?}");
    assert!((0..=CONCURRENCY).contains(&s.inflight), "{s:?}");
}

fn run(config: &Config, plan: &LimitPlan, clock: &ManualClock, ops: Vec<Op>) {
    let consumer = &config.consumers[0];
    let model = config.model("chat").unwrap();
    let mut live: Vec<Reservation> = Vec::new();
    // Usage settled above what was reserved: the only way past a limit.
    let mut overage: u64 = 0;
    for op in ops {
        let before = snapshot(plan, clock);
        match op {
            Op::Reserve {
                prompt,
                max,
                choices,
            } => {
                let ask = Ask {
                    prompt_tokens: prompt,
                    max_tokens: max,
                    choices,
                };
                let (_, result) = plan.reserve(consumer, model, None, ask);
                let after = snapshot(plan, clock);
                match result {
                    Ok(r) => {
                        let reserved = r.reserved_tokens();
                        assert!(reserved <= MAX_DEMAND);
                        let output = max.unwrap_or(1024).saturating_mul(choices.max(1));
                        let floor = prompt.saturating_add(output).min(MAX_DEMAND);
                        assert_eq!(reserved, floor, "prompt + n × cap, bounded");
                        assert!(
                            reserved <= TOKENS_PER_DAY.saturating_sub(before.tokens_day as u64),
                            "admitted past the daily budget: {before:?} + {reserved}"
                        );
                        assert!(before.tokens_minute + reserved as f64 <= TPM as f64);
                        assert_eq!(after.tokens_day, before.tokens_day + reserved as i64);
                        assert_eq!(after.inflight, before.inflight + 1);
                        live.push(r);
                    }
                    Err(_) => assert_eq!(after, before, "a refusal changes nothing"),
                }
            }
            Op::Settle { i, tokens, usd } if !live.is_empty() => {
                let r = live.swap_remove(i % live.len());
                let reserved = r.reserved_tokens();
                overage = overage.saturating_add(tokens.min(MAX_DEMAND).saturating_sub(reserved));
                r.settle(tokens, usd);
                let after = snapshot(plan, clock);
                assert_eq!(after.inflight, before.inflight - 1);
            }
            Op::Drop { i } if !live.is_empty() => {
                drop(live.swap_remove(i % live.len()));
                assert_eq!(snapshot(plan, clock).inflight, before.inflight - 1);
            }
            Op::Settle { .. } | Op::Drop { .. } => {}
            Op::Advance { ms } => clock.advance(ms),
        }
        let now = snapshot(plan, clock);
        check_bounds(&now);
        assert_eq!(
            now.inflight,
            live.len() as i64,
            "a slot per live reservation"
        );
        assert!(
            now.tokens_day as u64 <= TOKENS_PER_DAY.saturating_add(overage),
            "{now:?} past the budget by more than the settled overage {overage}"
        );
    }
    drop(live);
    assert_eq!(snapshot(plan, clock).inflight, 0, "every slot came back");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hostile_sequences_keep_every_counter_in_bounds(ops in prop::collection::vec(op(), 1..40)) {
        let (config, plan, clock) = setup(LIMITS, None);
        run(&config, &plan, &clock, ops);
    }
}

/// Threads reserving and settling hostile demands at once: every admission fits, every
/// slot comes back, and the day's count is exactly what was settled.
#[test]
fn concurrent_interleavings_settle_to_the_exact_sum() {
    let (config, plan, clock) = setup(LIMITS, None);
    let settled = std::sync::atomic::AtomicU64::new(0);
    let demands = [0, 1, 1 << 31, 1 << 53, 1 << 63, u64::MAX, 50, 700];
    std::thread::scope(|s| {
        for t in 0..4usize {
            let (config, plan, settled) = (&config, &plan, &settled);
            s.spawn(move || {
                let model = config.model("chat").unwrap();
                for i in 0..200usize {
                    let d = demands[(i + t) % demands.len()];
                    let ask = Ask {
                        prompt_tokens: d % 1000,
                        max_tokens: Some(d),
                        choices: 1 + (i as u64 % 3),
                    };
                    if let (_, Ok(r)) = plan.reserve(&config.consumers[0], model, None, ask) {
                        let used = (d % 997).min(r.reserved_tokens());
                        r.settle(used, 0);
                        settled.fetch_add(used, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let end = snapshot(&plan, &clock);
    check_bounds(&end);
    assert_eq!(end.inflight, 0);
    assert_eq!(
        end.tokens_day as u64,
        settled.load(std::sync::atomic::Ordering::Relaxed)
    );
}
