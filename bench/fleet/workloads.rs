//! The workloads, as the routers that published numbers define them. A prompt is a chain of
//! 16-token block ids: equal ids at a position mean equal prefixes up to it.

use crate::policies::mix;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone)]
pub struct Req {
    pub arrival: f64,
    pub blocks: Vec<u64>,
    pub out_tokens: u32,
    pub session: Option<u64>,
}

impl Req {
    pub fn tokens(&self) -> u32 {
        self.blocks.len() as u32 * crate::sim::BLOCK_TOKENS
    }
}

/// A change to the fleet during a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    Kill(usize),
    Join(usize),
}

/// `n` block ids of stream `key` from position `from`.
fn run_of(key: u64, from: usize, n: usize) -> impl Iterator<Item = u64> {
    (from..from + n).map(move |p| mix(mix(key) ^ p as u64))
}

fn poisson(rng: &mut StdRng, rate: f64, t: &mut f64) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    *t += -u.ln() / rate;
    *t
}

/// SGLang's generated shared prefix: `groups` × `per_group` prompts, a 2,048-token prefix per
/// group, a 128-token question each, 256 tokens out; shuffled, Poisson at `rate`.
pub fn sglang_shared_prefix(rate: f64, groups: usize, per_group: usize, seed: u64) -> Vec<Req> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<(usize, usize)> = (0..groups)
        .flat_map(|g| (0..per_group).map(move |i| (g, i)))
        .collect();
    order.shuffle(&mut rng);
    let mut t = 0.0;
    order
        .into_iter()
        .map(|(g, i)| {
            let mut blocks: Vec<u64> = run_of(1_000 + g as u64, 0, 128).collect();
            blocks.extend(run_of(mix(g as u64) ^ i as u64 ^ 0xA5A5, 128, 8));
            Req {
                arrival: poisson(&mut rng, rate, &mut t),
                blocks,
                out_tokens: 256,
                session: None,
            }
        })
        .collect()
}

/// llm-d's shared prefix: 150 groups × 5 users, a 6,000-token prefix per group, a 1,200-token
/// question per request, 1,000 tokens out; Poisson at `rate` for `n` requests.
pub fn llmd_shared_prefix(rate: f64, n: usize, seed: u64) -> Vec<Req> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = 0.0;
    (0..n)
        .map(|i| {
            let g = rng.random_range(0..150u64);
            let mut blocks: Vec<u64> = run_of(50_000 + g, 0, 375).collect();
            blocks.extend(run_of(0xB0B0_0000 + i as u64, 375, 75));
            Req {
                arrival: poisson(&mut rng, rate, &mut t),
                blocks,
                out_tokens: 1_000,
                session: None,
            }
        })
        .collect()
}

/// Multi-turn chat: conversations start at `rate`; each has 8 turns 15 s apart; a turn's
/// prompt is a shared 1,024-token system prompt, the history so far (128 tokens asked, 256
/// answered per turn) and its question; the conversation is the session key.
pub fn multi_turn(rate: f64, conversations: usize, seed: u64) -> Vec<Req> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = 0.0;
    let mut out = Vec::new();
    for c in 0..conversations as u64 {
        let start = poisson(&mut rng, rate, &mut t);
        for turn in 0..8usize {
            let mut blocks: Vec<u64> = run_of(7, 0, 64).collect();
            blocks.extend(run_of(900_000 + c, 64, turn * 24 + 8));
            out.push(Req {
                arrival: start + turn as f64 * 15.0,
                blocks,
                out_tokens: 256,
                session: Some(c),
            });
        }
    }
    out.sort_by(|a, b| a.arrival.total_cmp(&b.arrival));
    out
}

/// No reuse, bursty: unique prompts of 1,024–4,096 tokens, 256 out, arriving at twice `rate`
/// for 5 s then not at all for 5 s.
pub fn no_reuse(rate: f64, n: usize, seed: u64) -> Vec<Req> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = 0.0;
    (0..n)
        .map(|i| {
            let mut at = poisson(&mut rng, 2.0 * rate, &mut t);
            if (at / 5.0) as u64 % 2 == 1 {
                t += 5.0;
                at = t;
            }
            let len = rng.random_range(64..=256usize);
            let blocks = run_of(0xC0C0_0000 + i as u64, 0, len).collect();
            Req {
                arrival: at,
                blocks,
                out_tokens: 256,
                session: None,
            }
        })
        .collect()
}

/// One hot prefix: every prompt a shared 4,096-token prefix and a 128-token question.
pub fn hot_prefix(rate: f64, n: usize, seed: u64) -> Vec<Req> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = 0.0;
    (0..n)
        .map(|i| {
            let mut blocks: Vec<u64> = run_of(42, 0, 256).collect();
            blocks.extend(run_of(0xD0D0_0000 + i as u64, 256, 8));
            Req {
                arrival: poisson(&mut rng, rate, &mut t),
                blocks,
                out_tokens: 256,
                session: None,
            }
        })
        .collect()
}
