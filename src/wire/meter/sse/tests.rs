use super::*;

/// The longest event the meter parses.
const MAX_LINE: usize = crate::wire::sse::MAX_EVENT;

const STREAM: &str = concat!(
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}],\"usage\":null}\n\n",
    ": keep-alive comment\n\n",
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":5,\"total_tokens\":26}}\n\n",
    "data: [DONE]\n\n",
);

fn run(stream: &[u8], strip: bool, split: impl Fn(&[u8]) -> Vec<&[u8]>) -> (SseMeter, Vec<u8>) {
    let mut m = SseMeter::new(strip);
    let mut out = Vec::new();
    for piece in split(stream) {
        match m.feed(piece) {
            Some(b) => out.extend_from_slice(&b),
            None => out.extend_from_slice(piece),
        }
    }
    if let Some(b) = m.finish() {
        out.extend_from_slice(&b);
    }
    (m, out)
}

#[test]
fn usage_is_read_at_every_split_offset() {
    let bytes = STREAM.as_bytes();
    for cut in 0..bytes.len() {
        let (m, out) = run(bytes, false, |b| vec![&b[..cut], &b[cut..]]);
        assert_eq!(
            m.usage,
            Some(Usage {
                input: 21,
                output: 5
            }),
            "cut at {cut}"
        );
        assert!(m.done);
        assert_eq!(m.deltas, 2);
        assert_eq!(out, bytes);
    }
}

#[test]
fn byte_by_byte_with_crlf() {
    let crlf = STREAM.replace('\n', "\r\n");
    let (m, _) = run(crlf.as_bytes(), false, |b| b.chunks(1).collect());
    assert_eq!(
        m.usage,
        Some(Usage {
            input: 21,
            output: 5
        })
    );
    assert_eq!(m.text_bytes, "Hello world".len() as u64);
    assert!(m.done);
}

#[test]
fn strip_removes_the_injected_usage_chunk_and_null_fields() {
    let expected = STREAM
        .replace(",\"usage\":null", "")
        .replace(
            "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":5,\"total_tokens\":26}}\n\n",
            "",
        );
    let bytes = STREAM.as_bytes();
    for cut in 0..bytes.len() {
        let (m, out) = run(bytes, true, |b| vec![&b[..cut], &b[cut..]]);
        assert_eq!(String::from_utf8(out).unwrap(), expected, "cut at {cut}");
        assert_eq!(
            m.usage,
            Some(Usage {
                input: 21,
                output: 5
            })
        );
    }
}

#[test]
fn strip_passes_whole_events_through_without_delay() {
    let mut m = SseMeter::new(true);
    let first = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
    assert_eq!(m.feed(first.as_bytes()).unwrap(), first.as_bytes());
    assert_eq!(m.feed(b"data: {\"cho").unwrap(), b"".as_slice());
    let rest = m.feed(b"ices\":[]}\n\n").unwrap();
    assert_eq!(rest, b"data: {\"choices\":[]}\n\n".as_slice());
}

#[test]
fn usage_null_inside_content_strings_is_kept() {
    let ev = "data: {\"choices\":[{\"delta\":{\"content\":\"say \\\",\\\"usage\\\":null\"}}],\"usage\":null}\n\n";
    let (_, out) = run(ev.as_bytes(), true, |b| vec![b]);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out, ev.replace("],\"usage\":null}", "]}"));
    let data = out.trim().strip_prefix("data: ").unwrap();
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["choices"][0]["delta"]["content"], "say \",\"usage\":null");
}

#[test]
fn cut_stream_has_no_usage_but_counts_deltas() {
    let cut = &STREAM[..STREAM.find("\" world").unwrap()];
    let (m, _) = run(cut.as_bytes(), false, |b| vec![b]);
    assert_eq!(m.usage, None);
    assert!(!m.done);
    assert_eq!(m.deltas, 1);
}

#[test]
fn error_event_is_noticed() {
    let (m, _) = run(
        b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n",
        false,
        |b| vec![b],
    );
    assert!(m.error_event);
    assert_eq!(m.events, 1);
    assert!(!m.saw_content());
}

#[test]
fn tool_call_arguments_count_as_content() {
    let ev = "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}\n\n";
    let (m, _) = run(ev.as_bytes(), false, |b| vec![b]);
    assert_eq!(m.deltas, 1);
    assert_eq!(m.text_bytes, 7);
}

#[test]
fn garbage_and_huge_lines_are_bounded() {
    let mut junk = vec![b'x'; MAX_LINE * 3];
    junk.extend_from_slice(b"\n\ndata: \xff\xfe not json\n\n");
    junk.extend_from_slice(STREAM.as_bytes());
    for strip in [false, true] {
        let (m, out) = run(&junk, strip, |b| b.chunks(64 * 1024).collect());
        assert!(m.held_bytes() <= 2 * MAX_LINE);
        assert_eq!(
            m.usage,
            Some(Usage {
                input: 21,
                output: 5
            })
        );
        assert!(out.len() >= MAX_LINE * 3);
    }
}

#[test]
fn gemini_parts_are_content_and_usage_metadata_is_usage() {
    let ev = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"}}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":1}}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":2}}\r\n\r\n",
    );
    let (m, _) = run(ev.as_bytes(), false, |b| b.chunks(3).collect());
    assert_eq!(m.deltas, 2);
    assert_eq!(
        m.usage,
        Some(Usage {
            input: 7,
            output: 6
        })
    );
}

#[test]
fn responses_deltas_are_content_and_completed_carries_usage() {
    let ev = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"usage\":null}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hello\"}\n\n",
        "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{}\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"usage\":{\"input_tokens\":9,\"output_tokens\":3,\"total_tokens\":12}}}\n\n",
    );
    let (m, _) = run(ev.as_bytes(), false, |b| vec![b]);
    assert_eq!(m.deltas, 2);
    assert_eq!(m.text_bytes, 7);
    assert!(m.done);
    assert_eq!(
        m.usage,
        Some(Usage {
            input: 9,
            output: 3
        })
    );
}
