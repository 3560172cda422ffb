//! Stream translation per stream of 500 tokens, fed as the network delivers it (512-byte
//! chunks): OpenAI chunks → Anthropic events and back, beside the same-dialect meter alone
//! (what a pass-through stream costs), so the ratio is the price of translating.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::let_underscore_must_use,
    clippy::disallowed_methods,
    reason = "test and benchmark code: a failed step is a failed run, and the gateway's rules for clocks, tasks and results are the gateway's"
)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tollgate::mock::{anthropic, openai};
use tollgate::wire::meter::SseMeter;
use tollgate::wire::translate::stream::{ChunksToEvents, EventsToChunks};

const TOKENS: u64 = 500;

fn openai_stream() -> Vec<u8> {
    let usage = Some(openai::usage(120, TOKENS));
    openai::stream("chatcmpl-1", "gpt", true, 0..TOKENS, None, true, usage)
        .iter()
        .flat_map(|v| format!("data: {v}\n\n").into_bytes())
        .chain(b"data: [DONE]\n\n".iter().copied())
        .collect()
}

fn anthropic_stream() -> Vec<u8> {
    anthropic::events("msg_1", "claude", 0, TOKENS, None, 120)
        .iter()
        .flat_map(|(name, v)| format!("event: {}\ndata: {v}\n\n", name.unwrap_or("")).into_bytes())
        .collect()
}

fn bench(c: &mut Criterion) {
    let oa = openai_stream();
    let an = anthropic_stream();
    let mut g = c.benchmark_group("stream_500_tokens");
    g.throughput(Throughput::Bytes(oa.len() as u64));
    g.bench_function("openai_meter_only", |b| {
        b.iter(|| {
            let mut m = SseMeter::new(false);
            for chunk in oa.chunks(512) {
                black_box(m.feed(chunk));
            }
            black_box(m.finish());
            m.usage
        })
    });
    g.bench_function("openai_to_anthropic_and_meter", |b| {
        b.iter(|| {
            let mut t = ChunksToEvents::new();
            let mut m = SseMeter::new(false);
            for chunk in oa.chunks(512) {
                let out = t.feed(chunk);
                black_box(m.feed(&out));
            }
            m.feed(&t.finish());
            m.usage
        })
    });
    g.bench_function("anthropic_meter_only", |b| {
        b.iter(|| {
            let mut m = SseMeter::new(false);
            for chunk in an.chunks(512) {
                black_box(m.feed(chunk));
            }
            m.usage
        })
    });
    g.bench_function("anthropic_to_openai_and_meter", |b| {
        b.iter(|| {
            let mut t = EventsToChunks::new();
            let mut m = SseMeter::new(true);
            for chunk in an.chunks(512) {
                let out = t.feed(chunk);
                black_box(m.feed(&out));
            }
            m.feed(&t.finish());
            m.usage
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
