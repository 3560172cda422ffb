//! The fleet simulator: every workload through every policy, in virtual time, one JSON object
//! per line (workload, policy, rate and what was measured). The same picker code the gateway
//! runs (`tollgate::routing::pick`) is one of the policies.
//!
//!   bash bench/fleet/run.sh            # the full run (minutes)
//!   cargo bench --bench fleet          # the same
//!   cargo test --bench fleet           # the short form CI runs: smaller workloads, checked
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::disallowed_methods,
    reason = "a benchmark: a failed step is a failed run"
)]

mod policies;
mod sim;
mod workloads;

use policies::{Counted, Policy, Tollgate};
use sim::Engine;
use workloads::{Event, Req};

const POLICIES: [&str; 9] = [
    "round_robin",
    "random",
    "least_request",
    "p2c",
    "chwbl",
    "sglang_tree",
    "tollgate",
    // Two gateway instances, each with its own index and counters, taking requests in turn.
    "tollgate_2",
    "oracle",
];

/// A replica serving a ~30B model on one GPU: prefill 5k tokens/s, 20 ms per output token.
const ENGINE: Engine = Engine {
    prefill_tok_s: 5_000.0,
    prefill_fixed_s: 0.02,
    tpot_s: 0.02,
    tpot_per_batch_s: 0.0004,
    cache_blocks: 8_192,
};

struct Case {
    workload: &'static str,
    rate: f64,
    reqs: Vec<Req>,
    engine: Engine,
    replicas: usize,
    up: usize,
    plans: Vec<(f64, Event)>,
}

fn cases(full: bool) -> Vec<Case> {
    let k = if full { 1 } else { 4 };
    let mut out = Vec::new();
    let fleet = |workload, rate, reqs: Vec<Req>, engine| Case {
        workload,
        rate,
        reqs,
        engine,
        replicas: 8,
        up: 8,
        plans: Vec::new(),
    };
    // SGLang's run: a cache of 32k tokens a replica, where round robin's hit rate is the ~20%
    // SGLang published for it (the fleet holds every group's prefix; one replica an eighth).
    let small = Engine {
        cache_blocks: 2_048,
        ..ENGINE
    };
    for rate in [8.0, 16.0, 1_000.0] {
        let reqs = workloads::sglang_shared_prefix(rate, 64 / k, 16, 1);
        out.push(fleet("sglang_shared_prefix", rate, reqs, small));
    }
    // llm-d's tight cache: one replica holds a seventh of the groups' prefixes, the fleet all
    // of them — what prefix-aware routing can use and round robin thrashes.
    let tight = ENGINE;
    let ladder: &[f64] = if full {
        &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    } else {
        &[2.0, 6.0]
    };
    for &rate in ladder {
        let reqs = workloads::llmd_shared_prefix(rate, 1_500 / k, 2);
        out.push(fleet("llmd_shared_prefix", rate, reqs, tight));
    }
    for rate in [0.5, 1.0, 2.0, 4.0] {
        let reqs = workloads::multi_turn(rate, 300 / k, 3);
        out.push(fleet("multi_turn", rate, reqs, ENGINE));
    }
    for rate in [4.0, 8.0, 16.0] {
        out.push(fleet(
            "no_reuse",
            rate,
            workloads::no_reuse(rate, 600 / k, 4),
            ENGINE,
        ));
    }
    for rate in [8.0, 16.0, 32.0] {
        out.push(fleet(
            "hot_prefix",
            rate,
            workloads::hot_prefix(rate, 600 / k, 5),
            ENGINE,
        ));
    }
    let reqs = workloads::sglang_shared_prefix(12.0, 64 / k, 16, 6);
    let span = reqs.iter().map(|r| r.arrival).fold(0.0, f64::max);
    out.push(Case {
        workload: "churn",
        rate: 12.0,
        reqs,
        engine: ENGINE,
        replicas: 10,
        up: 8,
        plans: vec![
            (span * 0.3, Event::Kill(0)),
            (span * 0.5, Event::Join(8)),
            (span * 0.5, Event::Join(9)),
        ],
    });
    out
}

/// Every index sized like the replicas' KV cache, as an operator configures a pool
/// (`kv_cache_tokens`).
fn policy(name: &'static str, replicas: usize, engine: Engine) -> Box<dyn Policy> {
    if name.starts_with("tollgate") {
        let settings = tollgate::routing::pick::Settings {
            index_blocks: engine.cache_blocks,
            ..Default::default()
        };
        let instances = if name == "tollgate_2" { 2 } else { 1 };
        Box::new(Tollgate::new(replicas, 11, settings, instances))
    } else {
        Box::new(Counted::new(name, replicas, 11, engine.cache_blocks))
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench" || a == "--full");
    let only: Option<String> = std::env::args().skip_while(|a| a != "--workload").nth(1);
    for case in cases(full) {
        if only.as_deref().is_some_and(|w| w != case.workload) {
            continue;
        }
        let mut seen: Vec<(&str, f64, f64, f64)> = Vec::new();
        for name in POLICIES {
            let mut p = policy(name, case.replicas, case.engine);
            let o = sim::run(
                case.engine,
                case.replicas,
                case.up,
                &case.reqs,
                &case.plans,
                p.as_mut(),
            );
            let mut ttft = o.ttft.clone();
            ttft.sort_by(f64::total_cmp);
            let mean = ttft.iter().sum::<f64>() / ttft.len().max(1) as f64;
            println!(
                "{}",
                serde_json::json!({
                    "workload": case.workload, "policy": name, "rate": case.rate,
                    "requests": case.reqs.len(),
                    "hit_rate": round(o.hit_rate), "ttft_mean_s": round(mean),
                    "ttft_p50_s": round(percentile(&ttft, 0.5)),
                    "ttft_p90_s": round(percentile(&ttft, 0.9)),
                    "ttft_p99_s": round(percentile(&ttft, 0.99)),
                    "throughput_tok_s": round(o.throughput_tok_s),
                    "success_rate": round(o.success_rate),
                    "inflight_cov": round(o.inflight_cov),
                    "max_share_1s": round(o.max_share_1s),
                    "max_share_vs_fair": round(o.max_share_vs_fair),
                })
            );
            assert!(
                o.success_rate > 0.999,
                "{} {name}: requests lost",
                case.workload
            );
            seen.push((
                name,
                o.hit_rate,
                percentile(&ttft, 0.99),
                o.throughput_tok_s,
            ));
        }
        check(&case, &seen);
    }
}

/// What holds at every size of run (the short form checks it in CI): Tollgate's picker never
/// caches less than round robin, its p99 is never more than 10% over two-choice
/// least-loaded's, and at SGLang's saturation it beats round robin's throughput by half.
fn check(case: &Case, seen: &[(&str, f64, f64, f64)]) {
    let of = |p: &str| seen.iter().find(|s| s.0 == p).copied().unwrap();
    let (t, rr, p2c) = (of("tollgate"), of("round_robin"), of("p2c"));
    let at = format!("{} at {}/s", case.workload, case.rate);
    assert!(
        t.1 >= rr.1 - 0.01,
        "{at}: hit rate {} < round robin's {}",
        t.1,
        rr.1
    );
    assert!(
        t.2 <= p2c.2 * 1.1,
        "{at}: p99 {} > two-choice's {}",
        t.2,
        p2c.2
    );
    if case.workload == "sglang_shared_prefix" && case.rate >= 1_000.0 {
        assert!(t.1 >= 0.7, "{at}: hit rate {}", t.1);
        assert!(t.3 >= 1.3 * rr.3, "{at}: throughput {} vs {}", t.3, rr.3);
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
