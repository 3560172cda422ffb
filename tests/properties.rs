//! Properties over generated inputs (proptest): the SSE framer frames any split of the same
//! bytes into the same events; both stream translators take any bytes or any sequence of
//! plausible events, in any split, without panicking and with bounded output; the strict
//! head check never accepts what httparse refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed run"
)]

#[allow(dead_code, reason = "the properties use some of the checks")]
#[path = "../fuzz/checks.rs"]
mod checks;

use proptest::prelude::*;

/// One plausible event: a mix of fields, data lines (JSON or not) and line endings.
fn event() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        "[a-z ]{0,12}".prop_map(|s| format!("data: {s}")),
        Just(r#"data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}"#.to_string()),
        Just(r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#.to_string()),
        Just(r#"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#.to_string()),
        Just("event: message_stop".to_string()),
        Just("data: [DONE]".to_string()),
        Just(": keep-alive".to_string()),
        "[ -~]{0,20}",
    ];
    let ending = prop_oneof![Just("\n"), Just("\r\n")];
    (prop::collection::vec((line, ending.clone()), 1..4), ending).prop_map(|(lines, end)| {
        let mut s: String = lines.into_iter().map(|(l, e)| format!("{l}{e}")).collect();
        s.push_str(end);
        s
    })
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(event(), 0..12).prop_map(|e| e.concat().into_bytes())
}

/// The stream with two split-point bytes in front (the fuzz checks' input shape).
fn with_splits() -> impl Strategy<Value = Vec<u8>> {
    (any::<[u8; 2]>(), stream()).prop_map(|(cuts, s)| [cuts.to_vec(), s].concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_split_of_a_stream_frames_the_same_events(input in with_splits()) {
        checks::sse(&input);
    }

    #[test]
    fn any_split_of_arbitrary_bytes_frames_the_same(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        checks::sse(&input);
    }

    #[test]
    fn translators_take_any_plausible_stream(input in with_splits()) {
        checks::translate_chunks(&input);
        checks::translate_events(&input);
    }

    #[test]
    fn translators_take_any_bytes(input in prop::collection::vec(any::<u8>(), 0..4096)) {
        checks::translate_chunks(&input);
        checks::translate_events(&input);
    }

    #[test]
    fn the_head_check_accepts_nothing_httparse_refuses(
        head in "(GET|POST|PRI) [ -~]{1,20} HTTP/1\\.[01]\r\n([A-Za-z_ -]{1,10}:[ -~\t]{0,12}\r?\n){0,6}\r\n"
    ) {
        checks::head(head.as_bytes());
    }
}
