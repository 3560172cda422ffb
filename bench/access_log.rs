//! The access log's cost to the request path: `AccessLog::emit` (serialise into the
//! worker's buffer, append to the shared batch) against the first version's design, a
//! bounded channel send per line to a writer thread that wakes for each one. Both write to
//! /dev/null, so this is the worker's share: serialising plus the hand-off. Two emitting
//! threads, as with `threads = 2`.
//!
//! And payload capture's share of a captured stream's line: `Capture::render` merging a
//! 256-token stream into one answer and redacting it.
//!
//!   cargo bench --bench access_log
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "test and benchmark code: a failed step is a failed run, and the gateway's rules for clocks, tasks and results are the gateway's"
)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::io::Write;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tollgate::config::AccessLogTarget;
use tollgate::telemetry::access_log::{AccessLog, AccessRecord};

fn record() -> AccessRecord<'static> {
    AccessRecord {
        ts: "2026-12-02T15:00:00.000000Z".into(),
        request_id: "req_0123456789abcdef01234567",
        method: "POST",
        path: "/v1/chat/completions",
        client_ip: Some("10.1.2.3".into()),
        consumer: Some("team-a"),
        route: None,
        model: Some("chat"),
        provider: Some("openai"),
        upstream_model: Some("gpt-4o-mini"),
        client_dialect: "openai",
        upstream_dialect: Some("openai"),
        rule: None,
        skipped_targets: &[],
        status: 200,
        stream: true,
        attempts: 1,
        attempt_log: &[],
        input_tokens: 42,
        output_tokens: 128,
        usage_source: Some("provider"),
        cost_usd: Some(0.000083),
        ttft_ms: Some(212.5),
        tpot_ms: Some(11.25),
        overhead_ms: 0.21,
        payload: None,
        duration_ms: 1650.2,
        outcome: "success",
        guardrails: &[],
        stream_recovery: None,
    }
}

/// Run `per_thread` emits on each of two threads at once; the time per emit.
fn two_threads(iters: u64, emit: Arc<dyn Fn() + Send + Sync>) -> Duration {
    let barrier = Arc::new(Barrier::new(2));
    let started = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (emit, barrier) = (Arc::clone(&emit), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..iters {
                    emit();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    started.elapsed() / 2
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("access_log_emit");
    let log = Arc::new(AccessLog::open(&AccessLogTarget::File("/dev/null".into())).unwrap());
    g.bench_function("tollgate_batch", |b| {
        b.iter_custom(|iters| {
            let log = Arc::clone(&log);
            two_threads(iters, Arc::new(move || log.emit(&record())))
        })
    });

    let (tx, rx) = sync_channel::<String>(16 * 1024);
    std::thread::spawn(move || {
        let mut out = std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/null")
            .unwrap();
        while let Ok(line) = rx.recv() {
            out.write_all(line.as_bytes()).unwrap();
            out.write_all(b"\n").unwrap();
        }
    });
    g.bench_function("baseline_channel_per_line", |b| {
        let tx = tx.clone();
        b.iter_custom(|iters| {
            let tx = tx.clone();
            two_threads(
                iters,
                Arc::new(move || {
                    let line = serde_json::to_string(&record()).unwrap();
                    tx.send(line).unwrap();
                }),
            )
        })
    });
    g.finish();
}

/// A 256-token OpenAI stream as the client received it (role, deltas, finish, usage).
fn captured_stream() -> Vec<u8> {
    use tollgate::mock::openai;
    let usage = Some(openai::usage(120, 256));
    let mut out = Vec::new();
    for v in openai::stream("chatcmpl-1", "gpt-4o-mini", true, 0..256, None, true, usage) {
        out.extend_from_slice(format!("data: {v}\n\n").as_bytes());
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

fn capture(c: &mut Criterion) {
    let cap = tollgate::telemetry::capture::Capture {
        request: bytes::Bytes::from_static(
            br#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}"#,
        ),
        response: captured_stream(),
        response_truncated: false,
        secrets: vec!["sk-bench-client".into(), "sk-upstream-secret-key".into()],
    };
    c.bench_function("capture_render_256_token_stream", |b| {
        b.iter(|| cap.render(true, 16 * 1024))
    });
}

criterion_group!(benches, bench, capture);
criterion_main!(benches);
