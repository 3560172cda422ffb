//! The picker's cost per decision (`tollgate::routing::pick`): 16 endpoints, 8k-token prompts
//! (512 blocks), the index warm with 64 prompt families, against a naive baseline that scans
//! every endpoint's remembered blocks for the longest match.
//!
//!   cargo bench --bench pick
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a benchmark: a failed step is a failed run"
)]

use criterion::{criterion_group, criterion_main, Criterion};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashSet;
use std::hint::black_box;
use tollgate::routing::pick::{blocks, Ask, Pool, Settings, Strategy, BLOCK_BYTES, BLOCK_TOKENS};

const ENDPOINTS: usize = 16;
const PROMPT_BLOCKS: usize = 512;

fn prompt(family: u8, variant: u8) -> Vec<u64> {
    let mut text = vec![family; PROMPT_BLOCKS * BLOCK_BYTES];
    let tail = text.len() - 8 * BLOCK_BYTES;
    text[tail..].fill(variant);
    blocks(&text, 1)
}

fn bench(c: &mut Criterion) {
    let pool = Pool::new(ENDPOINTS, Strategy::PrefixAffinity, Settings::default());
    let mut rng = StdRng::seed_from_u64(1);
    let prompts: Vec<Vec<u64>> = (0..64u8)
        .flat_map(|f| (0..4u8).map(move |v| prompt(f, v)))
        .collect();
    for (i, p) in prompts.iter().enumerate() {
        let ask = Ask {
            chain: p,
            prompt_tokens: PROMPT_BLOCKS as u32 * BLOCK_TOKENS,
            session: None,
        };
        let t = pool.pick(&ask, i as f64, &mut rng).unwrap();
        pool.done(t);
    }
    let mut i = 0;
    c.bench_function("pick/prefix_affinity/16x8k", |b| {
        b.iter(|| {
            i = (i + 1) % prompts.len();
            let ask = Ask {
                chain: &prompts[i],
                prompt_tokens: PROMPT_BLOCKS as u32 * BLOCK_TOKENS,
                session: None,
            };
            let t = pool.pick(black_box(&ask), 0.0, &mut rng).unwrap();
            pool.done(t);
        })
    });
    // Naive: each endpoint keeps a set of the blocks it was sent; a pick checks every endpoint.
    let sets: Vec<HashSet<u64>> = (0..ENDPOINTS)
        .map(|e| {
            prompts
                .iter()
                .skip(e)
                .step_by(ENDPOINTS)
                .flatten()
                .copied()
                .collect()
        })
        .collect();
    c.bench_function("pick/naive_scan/16x8k", |b| {
        b.iter(|| {
            i = (i + 1) % prompts.len();
            let p = &prompts[i];
            let best = (0..ENDPOINTS)
                .max_by_key(|e| p.iter().take_while(|h| sets[*e].contains(h)).count());
            black_box(best)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
