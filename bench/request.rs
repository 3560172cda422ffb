//! Request parse + per-attempt rewrite: span splicing against a naive serde_json::Value
//! round trip, for a small chat request and a 1 MiB agent history. Also the bounded prompt
//! token count used by context-length routing, against tiktoken on the whole text.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::let_underscore_must_use,
    clippy::disallowed_methods,
    reason = "test and benchmark code: a failed step is a failed run, and the gateway's rules for clocks, tasks and results are the gateway's"
)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tollgate::wire::protocol::{parse, Operation};

fn body(content_bytes: usize) -> Bytes {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(content_bytes / 45 + 1);
    let v = serde_json::json!({
        "messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": text}],
        "model": "chat", "stream": true, "max_tokens": 256, "temperature": 0.2,
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn naive(body: &[u8]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["model"] = "gpt-4o-mini".into();
    v["stream_options"] = serde_json::json!({"include_usage": true});
    serde_json::to_vec(&v).unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    for (name, size) in [("small_200B", 200), ("history_1MiB", 1024 * 1024)] {
        let b = body(size);
        let mut g = c.benchmark_group(format!("parse_rewrite_{name}"));
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function("tollgate_splice", |bench| {
            bench.iter(|| {
                let p = parse(Operation::Chat, black_box(b.clone()))
                    .map_err(|_| ())
                    .unwrap_or_else(|_| panic!());
                black_box(p.upstream_body("gpt-4o-mini"))
            })
        });
        g.bench_function("naive_value_roundtrip", |bench| {
            bench.iter(|| naive(black_box(&b)))
        });
        g.finish();
    }
}

fn count(c: &mut Criterion) {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let mut g = c.benchmark_group("prompt_tokens");
    g.sample_size(10);
    let prose = "The quick brown fox jumps over the lazy dog. ".repeat(1024 * 1024 / 45);
    let blob = "a".repeat(64 * 1024);
    g.bench_function("bounded_1MiB_prose", |b| {
        b.iter(|| tollgate::wire::tokens::count_text(black_box(&prose)))
    });
    g.bench_function("tiktoken_whole_1MiB_prose", |b| {
        b.iter(|| bpe.encode_ordinary(black_box(&prose)).len())
    });
    g.bench_function("bounded_64KiB_no_whitespace", |b| {
        b.iter(|| tollgate::wire::tokens::count_text(black_box(&blob)))
    });
    g.bench_function("tiktoken_whole_64KiB_no_whitespace", |b| {
        b.iter(|| bpe.encode_ordinary(black_box(&blob)).len())
    });
    g.finish();
}

criterion_group!(benches, bench, count);
criterion_main!(benches);
