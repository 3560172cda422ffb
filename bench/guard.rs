//! Guardrails on a live stream: the metered stream alone against the same stream through the
//! stream filter with 1,000 sensitive words and every PII detector (mask), 500 tokens, in
//! chunks cut at odd places. The difference per token is what a guarded stream costs; the
//! first-chunk group is what it adds to time to first token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::let_underscore_must_use,
    clippy::disallowed_methods,
    reason = "test and benchmark code: a failed step is a failed run, and the gateway's rules for clocks, tasks and results are the gateway's"
)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tollgate::guard::stream::StreamGuard;
use tollgate::guard::Scanner;
use tollgate::mock::openai;
use tollgate::types::dialect::Dialect;
use tollgate::wire::meter::SseMeter;

const TOKENS: u64 = 500;

/// A policy of 1,000 generated words (whole-word, masked) and all eight detectors (masked).
fn scanner() -> Scanner {
    let words: Vec<String> = (0..1000).map(|i| format!("\"codename{i:04}\"")).collect();
    let toml = format!(
        r#"
[[providers]]
name = "mock"
kind = "mock"
[[models]]
name = "chat"
targets = [{{ provider = "mock", model = "m" }}]
[[guardrails]]
name = "bench"
direction = "response"
[[guardrails.rules]]
name = "words"
kind = "words"
words = [{}]
whole_word = true
action = "mask"
[[guardrails.rules]]
name = "pii"
kind = "pii"
detectors = ["email", "phone", "payment_card", "iban", "cn_resident_id", "ipv4", "ipv6", "secret"]
action = "mask"
"#,
        words.join(",")
    );
    let config = tollgate::config::parse(&toml).unwrap();
    config
        .guardrails
        .select("c", None, "chat")
        .unwrap()
        .response
}

/// 500 tokens of ordinary text with an email address, a card number and a listed word in it.
fn stream() -> Vec<u8> {
    stream_of(
        openai::token,
        [
            " alice.smith@example.com",
            " codename0421",
            " 4111 1111 1111 1111",
        ],
    )
}

/// The same in Chinese, the address and card written full-width: every text is non-ASCII, so
/// every scan goes through the folded view.
fn cjk_stream() -> Vec<u8> {
    const WORDS: [&str; 4] = ["你好", "世界", "今天", "天气"];
    stream_of(
        |i| WORDS[i as usize % WORDS.len()],
        [
            "ａｌｉｃｅ．ｓｍｉｔｈ＠ｅｘａｍｐｌｅ．ｃｏｍ",
            " codename0421",
            "４１１１ １１１１ １１１１ １１１１",
        ],
    )
}

fn stream_of(token: impl Fn(u64) -> &'static str, secrets: [&'static str; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..TOKENS {
        let text = match i {
            100 => secrets[0],
            250 => secrets[1],
            400 => secrets[2],
            _ => token(i),
        };
        let delta = serde_json::json!({ "content": text });
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
        openai::usage(120, TOKENS),
    );
    out.extend_from_slice(format!("data: {u}\n\ndata: [DONE]\n\n").as_bytes());
    out
}

fn bench(c: &mut Criterion) {
    let scanner = scanner();
    let body = stream();
    let chunks: Vec<&[u8]> = body.chunks(97).collect();
    let mut g = c.benchmark_group("guarded_stream_500_tokens");
    g.throughput(Throughput::Elements(TOKENS));
    g.bench_function("meter_alone", |b| {
        b.iter(|| {
            let mut m = SseMeter::new(false);
            for c in &chunks {
                black_box(m.feed(c));
            }
            black_box(m.finish());
            m.usage
        })
    });
    let guarded = |chunks: &[&[u8]]| {
        let mut m = SseMeter::new(false);
        let mut guard = StreamGuard::new(scanner.clone(), Dialect::OpenAi, false);
        let mut sent = 0;
        for c in chunks {
            black_box(m.feed(c));
            sent += guard.feed(c).len();
        }
        black_box(m.finish());
        sent += guard.finish().len();
        (m.usage, sent)
    };
    g.bench_function("meter_and_guard_1000_words_all_pii", |b| {
        b.iter(|| guarded(&chunks))
    });
    let cjk = cjk_stream();
    let cjk_chunks: Vec<&[u8]> = cjk.chunks(97).collect();
    g.bench_function("meter_alone_cjk", |b| {
        b.iter(|| {
            let mut m = SseMeter::new(false);
            for c in &cjk_chunks {
                black_box(m.feed(c));
            }
            black_box(m.finish());
            m.usage
        })
    });
    g.bench_function("meter_and_guard_cjk_full_width", |b| {
        b.iter(|| guarded(&cjk_chunks))
    });
    g.finish();

    // Time to first token: the first content chunk, from a fresh filter to released bytes.
    let first = body
        .split(|b| *b == b'\n')
        .find(|l| l.starts_with(b"data: "))
        .map(|l| [l, b"\n\n".as_slice()].concat())
        .unwrap();
    let mut g = c.benchmark_group("guarded_stream_first_chunk");
    g.bench_function("meter_alone", |b| {
        b.iter(|| {
            let mut m = SseMeter::new(false);
            black_box(m.feed(black_box(&first)));
        })
    });
    g.bench_function("meter_and_guard_1000_words_all_pii", |b| {
        b.iter(|| {
            let mut m = SseMeter::new(false);
            let mut guard = StreamGuard::new(scanner.clone(), Dialect::OpenAi, false);
            black_box(m.feed(black_box(&first)));
            black_box(guard.feed(black_box(&first)))
        })
    });
    g.finish();

    // The masked stream really is masked: a benchmark of a filter that does nothing is no benchmark.
    let mut guard = StreamGuard::new(scanner.clone(), Dialect::OpenAi, false);
    let mut out = Vec::new();
    for c in &chunks {
        out.extend(guard.feed(c));
    }
    out.extend(guard.finish());
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("alice.smith") && !out.contains("codename0421") && !out.contains("4111"));
    let mut guard = StreamGuard::new(scanner, Dialect::OpenAi, false);
    let mut out = Vec::new();
    for c in &cjk_chunks {
        out.extend(guard.feed(c));
    }
    out.extend(guard.finish());
    let out = String::from_utf8(out).unwrap();
    assert!(
        !out.contains("ｓｍｉｔｈ") && !out.contains("４１１１"),
        "{out}"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
