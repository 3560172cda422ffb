//! The stream filter against every split of a stream, in both dialects.

use super::detect::Detector;
use super::matcher::{Matcher, Words};
use super::scan::{Check, Rule};
use super::stream::StreamGuard;
use super::{Action, Flow, Scanner};
use crate::types::dialect::Dialect;
use std::sync::Arc;

pub(crate) fn rule(name: &str, action: Action, checks: Vec<Check>) -> Arc<Rule> {
    Arc::new(Rule {
        policy: Arc::from("p"),
        name: Arc::from(name),
        action,
        checks,
    })
}

pub(crate) fn pii(action: Action) -> Arc<Rule> {
    let checks = Detector::ALL
        .iter()
        .map(|d| Check {
            matcher: Matcher::Pattern(Box::new(d.pattern().unwrap())),
            replacement: Arc::from(d.label()),
        })
        .collect();
    rule("pii", action, checks)
}

pub(crate) fn words(list: &[&str], action: Action) -> Arc<Rule> {
    let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    rule(
        "words",
        action,
        vec![Check {
            matcher: Matcher::Words(Box::new(Words::new(&list, true).unwrap())),
            replacement: Arc::from("[REDACTED]"),
        }],
    )
}

pub(crate) fn scanner(rules: Vec<Arc<Rule>>) -> Scanner {
    Scanner {
        rules,
        flow: Flow::Response,
    }
}

fn openai_stream(parts: &[&str]) -> String {
    let mut s = String::new();
    s.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    for p in parts {
        let d = serde_json::json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":p},"finish_reason":null}]});
        s.push_str(&format!("data: {d}\n\n"));
    }
    s.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    s
}

fn openai_text(out: &str) -> String {
    out.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

pub(crate) fn run(g: &mut StreamGuard, chunks: &[&[u8]]) -> String {
    let mut out = Vec::new();
    for c in chunks {
        out.extend(g.feed(c));
    }
    out.extend(g.finish());
    String::from_utf8(out).unwrap()
}

#[test]
fn an_email_split_at_every_byte_is_masked_in_every_stream() {
    let text = "Write to jane.doe@example.com or call +44 20 7946 0958 today.";
    let rules = scanner(vec![pii(Action::Mask)]);
    for at in 1..text.len() {
        let (a, b) = text.split_at(at);
        let body = openai_stream(&[a, b]);
        // And the bytes themselves split at every position of the event stream, too.
        for cut in [1, body.len() / 3, body.len() / 2] {
            let mut g = StreamGuard::new(rules.clone(), Dialect::OpenAi, false);
            let (x, y) = body.as_bytes().split_at(cut);
            let out = run(&mut g, &[x, y]);
            assert_eq!(
                openai_text(&out),
                "Write to [EMAIL] or call [PHONE] today.",
                "split at {at}, cut at {cut}"
            );
            assert!(!out.contains("jane") && !out.contains("7946"), "{out}");
            assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
        }
    }
}

#[test]
fn text_no_match_can_reach_is_released_at_once() {
    let mut g = StreamGuard::new(
        scanner(vec![words(&["forbidden"], Action::Mask)]),
        Dialect::OpenAi,
        false,
    );
    let stream = openai_stream(&["Hello there, ", "for"]);
    let open = stream.split("\"finish_reason\":\"stop\"").next().unwrap();
    let open = &open[..open.rfind("data: ").unwrap()];
    let out = g.feed(open.as_bytes());
    let out = String::from_utf8(out).unwrap();
    // "for" could begin "forbidden" and waits; the rest went out.
    assert_eq!(openai_text(&out), "Hello there, ");
}

#[test]
fn a_block_ends_the_stream_and_says_which_rule() {
    let mut g = StreamGuard::new(
        scanner(vec![words(&["launch codes"], Action::Block)]),
        Dialect::OpenAi,
        false,
    );
    let out = run(
        &mut g,
        &[openai_stream(&["The launch", " codes are 1234."]).as_bytes()],
    );
    assert_eq!(g.blocked(), Some(0));
    assert!(!out.contains("codes"), "{out}");
    assert!(!out.contains("[DONE]"), "{out}");
}

#[test]
fn shadow_mode_changes_no_byte() {
    let body = openai_stream(&["mail jane", ".doe@example.com now"]);
    let mut g = StreamGuard::new(scanner(vec![pii(Action::Log)]), Dialect::OpenAi, false);
    let out = run(&mut g, &[body.as_bytes()]);
    assert_eq!(openai_text(&out), openai_text(&body));
    assert_eq!(g.verdict.fired, vec![0]);
}

#[test]
fn anthropic_blocks_are_masked_and_flushed_before_their_stop() {
    let ev = |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
    let text = "card 4111 1111 1111 1111 ok";
    let rules = scanner(vec![pii(Action::Mask)]);
    for at in 1..text.len() {
        let (a, b) = text.split_at(at);
        let mut body = ev(
            "message_start",
            serde_json::json!({"type":"message_start","message":{"id":"m"}}),
        );
        body += &ev(
            "content_block_start",
            serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        );
        for p in [a, b] {
            body += &ev(
                "content_block_delta",
                serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":p}}),
            );
        }
        body += &ev(
            "content_block_stop",
            serde_json::json!({"type":"content_block_stop","index":0}),
        );
        body += &ev("message_stop", serde_json::json!({"type":"message_stop"}));
        let mut g = StreamGuard::new(rules.clone(), Dialect::Anthropic, false);
        let out = run(&mut g, &[body.as_bytes()]);
        let mut got = String::new();
        let mut stopped = false;
        for e in out.split("\n\n").filter(|e| !e.is_empty()) {
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            if v["type"] == "content_block_delta" {
                assert!(!stopped, "a delta after the block's stop: {out}");
                got.push_str(v["delta"]["text"].as_str().unwrap());
            }
            stopped |= v["type"] == "content_block_stop";
        }
        assert_eq!(got, "card [CARD] ok", "split at {at}");
    }
}
