//! The limiter's hot path (reserve at admission + settle at the end) against a naive
//! baseline: one global `Mutex<HashMap>` of per-consumer sliding logs, as a first version of a
//! gateway limiter often looks.
//!
//!   cargo bench --bench limits
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::let_underscore_must_use,
    clippy::disallowed_methods,
    reason = "test and benchmark code: a failed step is a failed run, and the gateway's rules for clocks, tasks and results are the gateway's"
)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tollgate::config::parse_with_env;
use tollgate::limits::clock::SystemClock;
use tollgate::limits::{Ask, LimitPlan, Limiter};

const CONSUMERS: usize = 64;

fn config() -> tollgate::config::Config {
    let mut text = String::from(
        "[[providers]]\nname = \"m\"\nkind = \"mock\"\n[[models]]\nname = \"chat\"\n\
         targets = [{ provider = \"m\", model = \"x\" }]\nprice = { input_per_mtok = 0.15, output_per_mtok = 0.6 }\n",
    );
    for i in 0..CONSUMERS {
        text.push_str(&format!(
            "[[consumers]]\nname = \"c{i}\"\nkeys = [\"sha256:{}\"]\n\
             limits = {{ rpm = 1000000000, tpm = 1000000000000, concurrency = 1000000, tokens_per_day = 1000000000000, usd_per_month = 1000000.0 }}\n",
            hex::encode(tollgate::auth::digest(&format!("k{i}")))
        ));
    }
    parse_with_env(&text, &|_| None).expect("bench config")
}

/// The naive limiter: every request's time and tokens kept in a log per consumer (with a
/// running token sum, to be fair), under one global lock, pruned to the last minute on each
/// check; consumers looked up by an owned `String`.
#[derive(Default)]
struct NaiveLimiter {
    logs: Mutex<HashMap<String, Log>>,
    inflight: Mutex<HashMap<String, u64>>,
}

#[derive(Default)]
struct Log {
    entries: VecDeque<(Instant, u64)>,
    tokens: u64,
}

impl NaiveLimiter {
    fn reserve(&self, consumer: &str, tokens: u64, rpm: usize, tpm: u64, conc: u64) -> bool {
        let now = Instant::now();
        let mut logs = self.logs.lock().unwrap();
        let log = logs.entry(consumer.to_string()).or_default();
        while let Some(&(t, n)) = log.entries.front() {
            if now.duration_since(t).as_secs() < 60 {
                break;
            }
            log.entries.pop_front();
            log.tokens -= n;
        }
        let mut inflight = self.inflight.lock().unwrap();
        let slots = inflight.entry(consumer.to_string()).or_default();
        if log.entries.len() >= rpm || log.tokens + tokens > tpm || *slots >= conc {
            return false;
        }
        *slots += 1;
        log.entries.push_back((now, tokens));
        log.tokens += tokens;
        true
    }

    fn settle(&self, consumer: &str, reserved: u64, actual: u64) {
        if let Some(log) = self.logs.lock().unwrap().get_mut(consumer) {
            if let Some(last) = log.entries.back_mut() {
                last.1 = actual;
                log.tokens = log.tokens + actual - reserved;
            }
        }
        if let Some(s) = self.inflight.lock().unwrap().get_mut(consumer) {
            *s -= 1;
        }
    }
}

fn bench(c: &mut Criterion) {
    let config = config();
    let plan = LimitPlan::new(Arc::new(Limiter::new(Arc::new(SystemClock), None)), &config);
    let model = config.model("chat").expect("model");
    let mut g = c.benchmark_group("limiter reserve+settle");
    let mut i = 0usize;
    g.bench_function("tollgate", |b| {
        b.iter(|| {
            let consumer = &config.consumers[i % CONSUMERS];
            i += 1;
            let (headers, r) = plan.reserve(
                consumer,
                model,
                None,
                Ask {
                    prompt_tokens: black_box(40),
                    max_tokens: Some(256),
                    choices: 1,
                },
            );
            black_box(headers);
            r.expect("admitted").settle(120, 30);
        })
    });
    let naive = NaiveLimiter::default();
    let names: Vec<String> = (0..CONSUMERS).map(|i| format!("c{i}")).collect();
    let mut i = 0usize;
    g.bench_function("naive Mutex<HashMap> sliding log", |b| {
        b.iter(|| {
            let consumer = &names[i % CONSUMERS];
            i += 1;
            assert!(naive.reserve(consumer, black_box(296), usize::MAX, u64::MAX, u64::MAX));
            naive.settle(consumer, 296, 120);
        })
    });
    // Two threads at once (this machine has two cores): per-scope locks against one global lock.
    g.bench_function("tollgate, 2 threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2 {
                    let (plan, config) = (&plan, &config);
                    s.spawn(move || {
                        for k in 0..iters / 2 {
                            let consumer = &config.consumers[(2 * k as usize + t) % CONSUMERS];
                            let (_, r) = plan.reserve(
                                consumer,
                                model,
                                None,
                                Ask {
                                    prompt_tokens: 40,
                                    max_tokens: Some(256),
                                    choices: 1,
                                },
                            );
                            r.expect("admitted").settle(120, 30);
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    g.bench_function("naive, 2 threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2 {
                    let (naive, names) = (&naive, &names);
                    s.spawn(move || {
                        for k in 0..iters / 2 {
                            let consumer = &names[(2 * k as usize + t) % CONSUMERS];
                            assert!(naive.reserve(consumer, 296, usize::MAX, u64::MAX, u64::MAX));
                            naive.settle(consumer, 296, 120);
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
