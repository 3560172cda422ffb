//! What each fuzz target checks, one function per target. Shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and by `tests/fuzz_corpus.rs`, which runs every committed
//! corpus file through the same function under `cargo test`. Each one panics on a broken
//! property (beyond "it does not panic"): accepted heads parse under httparse, any split of
//! an event stream frames the same, translated and metered output stays bounded.

use bytes::Bytes;
use tollgate::edge::head::{check, HeadLimits};
use tollgate::mcp::wire;
use tollgate::wire::meter::SseMeter;
use tollgate::wire::protocol::{self, Operation};
use tollgate::wire::sse::{Framer, Piece};
use tollgate::wire::translate::stream::{ChunksToEvents, EventsToChunks};

/// One target's check.
pub type Check = fn(&[u8]);

/// The targets, by the names of their corpus directories.
pub const TARGETS: &[(&str, Check)] = &[
    ("head", head),
    ("request", request),
    ("sse", sse),
    ("translate_chunks", translate_chunks),
    ("translate_events", translate_events),
    ("config", config),
    ("mcp", mcp),
    ("admission", admission),
];

const LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 8 * 1024,
    max_headers: 64,
    max_request_line: 2 * 1024,
    allow_underscores: false,
};

/// The strict head check: what it accepts, httparse parses to the same length, with the
/// same header count; every shorter prefix of an accepted head is "more" or refused.
pub fn head(data: &[u8]) {
    let Ok(Some(info)) = check(data, &LIMITS) else {
        return;
    };
    assert!(info.len <= data.len());
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(data) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, info.len, "lengths differ"),
        other => panic!("accepted head that httparse does not: {other:?}"),
    }
    if info.len <= 2048 {
        for cut in 1..info.len {
            assert!(
                !matches!(check(&data[..cut], &LIMITS), Ok(Some(_))),
                "a prefix of {cut} bytes was complete"
            );
        }
    }
}

/// The request parser and the body rewrite: a parsed body is rewritten to valid JSON that
/// names the upstream model, and translates to the other dialect without panicking.
pub fn request(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let operation = match selector % 4 {
        0 => Operation::Chat,
        1 => Operation::Completion,
        2 => Operation::Embeddings,
        _ => Operation::Messages,
    };
    let Ok(parsed) = protocol::parse(operation, Bytes::copy_from_slice(body)) else {
        return;
    };
    let out = parsed.upstream_body("up-\"model\"");
    // The rewrite parses again (JSON text: lone surrogate escapes are grammatical, RFC 8259
    // §8.2, so they are not decoded here) and names the upstream model.
    let again = protocol::parse(operation, out.clone()).expect("the rewrite parses");
    assert_eq!(again.model, "up-\"model\"");
    // The translators take what decodes.
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out) else {
        return;
    };
    if let Some(object) = v.as_object() {
        let translated = [
            tollgate::wire::translate::request::chat_to_messages(object, "m"),
            tollgate::wire::translate::request::messages_to_chat(object, "m"),
        ];
        for t in translated.into_iter().flatten() {
            assert_eq!(t["model"], "m", "a translated body names its model");
        }
    }
}

fn frame_all(framer: &mut Framer, chunks: &[&[u8]]) -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    let mut take = |p: Piece<'_>| match p {
        Piece::Event(e) => out.push((true, e.raw.to_vec())),
        Piece::Oversized(b) => out.push((false, b.to_vec())),
    };
    for c in chunks {
        framer.feed(c, &mut take);
    }
    framer.finish(&mut take);
    out
}

/// Split `data` where its first two bytes say.
fn split(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let (cuts, rest) = data.split_at(data.len().min(2));
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| usize::from(*c) * rest.len() / 256)
        .collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut at = 0;
    for p in points {
        chunks.push(&rest[at..p]);
        at = p;
    }
    chunks.push(&rest[at..]);
    (chunks, rest)
}

/// The framer: any split of the same bytes gives the same events (under its limit), and
/// events and oversized bytes together are exactly the input; the meter takes any stream.
pub fn sse(data: &[u8]) {
    let (chunks, whole) = split(data);
    let big = frame_all(&mut Framer::new(1 << 20), &[whole]);
    assert_eq!(big, frame_all(&mut Framer::new(1 << 20), &chunks));
    let bytes: Vec<u8> = big.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(bytes, whole, "the framer lost or added bytes");
    // A small limit: bytes are still all passed on, whatever the split.
    let small = frame_all(&mut Framer::new(64), &chunks);
    let bytes: Vec<u8> = small.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(bytes, whole);
    for strip in [false, true] {
        let mut meter = SseMeter::new(strip);
        let mut out = 0;
        for c in &chunks {
            out += meter.feed(c).map_or(c.len(), |b| b.len());
        }
        out += meter.finish().map_or(0, |b| b.len());
        assert!(out <= whole.len() + 64, "the meter grew the stream");
    }
}

fn bounded(input: usize, output: usize) {
    assert!(
        output <= 16 * input + 4096,
        "{input} bytes became {output} bytes"
    );
}

/// OpenAI chunks to Anthropic events, in any split: no panic, bounded output.
pub fn translate_chunks(data: &[u8]) {
    let (chunks, whole) = split(data);
    let mut t = ChunksToEvents::default();
    let mut out = 0;
    for c in &chunks {
        out += t.feed(c).len();
    }
    out += t.finish().len();
    bounded(whole.len(), out);
}

/// Anthropic events to OpenAI chunks, in any split: no panic, bounded output.
pub fn translate_events(data: &[u8]) {
    let (chunks, whole) = split(data);
    let mut t = EventsToChunks::default();
    let mut out = 0;
    for c in &chunks {
        out += t.feed(c).len();
    }
    out += t.finish().len();
    bounded(whole.len(), out);
}

/// The config loader: any text is a config or a list of errors, never a panic; each error
/// names something (it is not empty).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = tollgate::config::parse_with_env(text, &|_| Some("sk-fuzz".into())) {
        assert!(e.errors.iter().all(|m| !m.trim().is_empty()));
    }
}

/// The MCP bridge's readers: any posted body is a message or a JSON-RPC error (with an id that
/// is null, a string or an integer), and the 2026-07-28 checks answer any request; any text is
/// an OpenAPI document's tools (valid names, object input schemas) or an error that says why.
pub fn mcp(data: &[u8]) {
    match wire::parse(data) {
        Ok(wire::Message::Request { method, params, .. }) => {
            let routing = wire::Routing {
                version: Some("2026-07-28"),
                method: Some(&method),
                name: None,
                duplicated: None,
            };
            if let Err(e) = wire::check_modern(&method, &params, &routing) {
                assert!(!e.message.is_empty() && e.status >= 400);
            }
        }
        Ok(wire::Message::Notification { .. } | wire::Message::Response) => {}
        Err((id, e)) => {
            assert!(id.is_null() || id.is_string() || id.is_i64() || id.is_u64());
            assert_eq!(e.body(&id)["jsonrpc"], "2.0");
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match tollgate::config::openapi::tools(text, &[], &[]) {
        Ok(tools) => {
            for t in tools {
                assert!(!t.name.is_empty() && t.name.len() <= 64, "{}", t.name);
                assert!(t
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)));
                assert_eq!(t.input_schema["type"], "object");
            }
        }
        Err(e) => assert!(!e.trim().is_empty()),
    }
}

/// One limiter for every admission input: a consumer with a daily token budget, a TPM, a
/// USD budget and a concurrency cap, on a clock that never moves (so counts are exact).
fn admission_plan() -> &'static (tollgate::config::Config, tollgate::limits::LimitPlan) {
    use std::sync::{Arc, OnceLock};
    use tollgate::limits::{clock::ManualClock, LimitPlan, Limiter};
    static PLAN: OnceLock<(tollgate::config::Config, LimitPlan)> = OnceLock::new();
    PLAN.get_or_init(|| {
        let text = r#"
[[providers]]
name = "p"
kind = "mock"
[[models]]
name = "chat"
targets = [{ provider = "p", model = "m" }]
price = { input_per_mtok = 3.0, output_per_mtok = 15.0 }
[[consumers]]
name = "c"
keys = ["sha256:c45e76e88b4379cdf3b212a6d61c2be7d5ee1755fee3025f1e73408b986c8b44"]
limits = { tokens_per_day = 1000000000, tpm = 500000000, usd_per_day = 10000.0, concurrency = 4 }
"#;
        let config = tollgate::config::parse_with_env(text, &|_| None).expect("the fuzz config");
        let clock = Arc::new(ManualClock::new(1_795_327_200_000));
        let plan = LimitPlan::new(Arc::new(Limiter::new(clock, None)), &config);
        (config, plan)
    })
}

/// What the admin view says is used now, per counter that stays put on a still clock.
fn used(view: &serde_json::Value) -> Vec<f64> {
    let scope = &view["scopes"][0];
    ["tpm", "tokens_per_day", "usd_per_day"]
        .iter()
        .map(|k| scope[k]["used"].as_f64().expect("a used figure"))
        .chain(scope["concurrency"]["in_use"].as_f64())
        .collect()
}

/// Admission, parser to reservation: a parsed body's numbers are within their documented
/// ceilings; its reservation is bounded; a refusal changes no counter; a reservation settled
/// to nothing gives back exactly what it took; no counter is ever negative.
pub fn admission(data: &[u8]) {
    use tollgate::limits::{Ask, MAX_DEMAND};
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let operation = match selector % 5 {
        0 => Operation::Chat,
        1 => Operation::Completion,
        2 => Operation::Embeddings,
        3 => Operation::Messages,
        _ => Operation::Responses,
    };
    let Ok(parsed) = protocol::parse(operation, Bytes::copy_from_slice(body)) else {
        return;
    };
    assert!(parsed
        .max_tokens
        .is_none_or(|m| m <= protocol::MAX_OUTPUT_TOKENS));
    assert!((1..=protocol::MAX_CHOICES).contains(&parsed.choices));
    let (config, plan) = admission_plan();
    let consumer = &config.consumers[0];
    let model = config.model("chat").expect("the model");
    let ask = Ask {
        prompt_tokens: parsed.prompt_tokens_estimate,
        max_tokens: parsed.max_tokens,
        choices: parsed.choices,
    };
    let before = used(&plan.describe(consumer));
    let (_, reserved) = plan.reserve(consumer, model, None, ask);
    if let Ok(r) = reserved {
        assert!(r.reserved_tokens() <= MAX_DEMAND);
        let during = used(&plan.describe(consumer));
        assert!(during.iter().zip(&before).all(|(d, b)| d >= b));
        r.settle(0, 0);
    }
    let after = used(&plan.describe(consumer));
    assert_eq!(
        before, after,
        "a refusal or a refunded reservation leaves no trace"
    );
    assert!(after.iter().all(|u| *u >= 0.0));
}
