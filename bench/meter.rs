//! SSE metering per stream: the incremental meter (pass-through and stripping) against a naive
//! baseline that buffers the whole stream and parses every event with serde_json.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::let_underscore_must_use,
    clippy::disallowed_methods,
    reason = "test and benchmark code: a failed step is a failed run, and the gateway's rules for clocks, tasks and results are the gateway's"
)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tollgate::mock::openai;
use tollgate::wire::meter::SseMeter;

fn stream(tokens: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..tokens {
        let delta = serde_json::json!({"content": openai::token(i)});
        let v = openai::chunk(
            "chatcmpl-1",
            "gpt-4o-mini",
            true,
            Some(delta),
            None,
            None,
            true,
        );
        out.extend_from_slice(format!("data: {v}\n\n").as_bytes());
    }
    let u = openai::usage_chunk(
        "chatcmpl-1",
        "gpt-4o-mini",
        true,
        openai::usage(120, tokens),
    );
    out.extend_from_slice(format!("data: {u}\n\ndata: [DONE]\n\n").as_bytes());
    out
}

/// The obvious implementation: collect everything, split on blank lines, parse each event.
fn naive(chunks: &[&[u8]]) -> (u64, u64) {
    let all: Vec<u8> = chunks.concat();
    let text = String::from_utf8_lossy(&all);
    let mut usage = (0, 0);
    for event in text.split("\n\n") {
        let Some(data) = event.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            usage = (
                u["prompt_tokens"].as_u64().unwrap_or(0),
                u["completion_tokens"].as_u64().unwrap_or(0),
            );
        }
    }
    usage
}

fn bench(c: &mut Criterion) {
    let body = stream(256);
    // Upstreams write whole events, sometimes split; cut every 97 bytes to exercise framing.
    let chunks: Vec<&[u8]> = body.chunks(97).collect();
    let mut g = c.benchmark_group("sse_meter_256_tokens");
    g.throughput(Throughput::Bytes(body.len() as u64));
    for strip in [false, true] {
        g.bench_function(
            if strip {
                "tollgate_strip"
            } else {
                "tollgate_pass"
            },
            |b| {
                b.iter(|| {
                    let mut m = SseMeter::new(strip);
                    for c in &chunks {
                        black_box(m.feed(c));
                    }
                    black_box(m.finish());
                    m.usage
                })
            },
        );
    }
    g.bench_function("naive_serde_json", |b| b.iter(|| naive(black_box(&chunks))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
