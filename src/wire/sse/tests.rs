use super::*;

/// Everything a framer hands out, with oversized bytes merged per event.
fn frame(chunks: &[&[u8]], max: usize) -> Vec<(bool, Vec<u8>)> {
    let mut f = Framer::new(max);
    let mut out: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut collect = |p: Piece<'_>| match p {
        Piece::Event(e) => out.push((false, e.raw.to_vec())),
        Piece::Oversized(b) => match out.last_mut() {
            Some((true, v)) if !v.ends_with(b"\n\n") => v.extend_from_slice(b),
            _ => out.push((true, b.to_vec())),
        },
    };
    for c in chunks {
        f.feed(c, &mut collect);
    }
    f.finish(&mut collect);
    out
}

const STREAM: &[u8] = b": keep-alive\n\ndata: {\"a\":1}\n\nevent: message_start\r\ndata: {\"b\":2}\r\n\r\ndata: one\ndata: two\n\ndata: [DONE]\n\n";

#[test]
fn events_are_the_same_whatever_the_split() {
    let whole = frame(&[STREAM], MAX_EVENT);
    assert_eq!(whole.len(), 5);
    assert!(whole.iter().all(|(over, _)| !over));
    for i in 0..=STREAM.len() {
        for j in i..=STREAM.len() {
            let parts = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
            assert_eq!(frame(&parts, MAX_EVENT), whole, "split at {i}, {j}");
        }
    }
    let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
    assert_eq!(frame(&bytes, MAX_EVENT), whole);
}

#[test]
fn fields_data_names_and_kinds() {
    let mut events = Vec::new();
    Framer::default().feed(STREAM, |p| {
        if let Piece::Event(e) = p {
            events.push((
                e.lines().all(|l| l.starts_with(b":")),
                e.name().map(<[u8]>::to_vec),
                e.data().map(|d| d.to_vec()),
            ));
        }
    });
    assert_eq!(events[0], (true, None, None));
    assert_eq!(events[1].2.as_deref(), Some(&b"{\"a\":1}"[..]));
    assert_eq!(events[2].1.as_deref(), Some(&b"message_start"[..]));
    assert_eq!(events[2].2.as_deref(), Some(&b"{\"b\":2}"[..]));
    assert_eq!(events[3].2.as_deref(), Some(&b"one\ntwo"[..]));
}

#[test]
fn errors_are_recognised_in_both_dialects() {
    let is_error = |raw: &[u8]| Event { raw }.is_error();
    assert!(is_error(b"event: error\ndata: {\"type\":\"error\"}\n\n"));
    assert!(is_error(b"data: {\"error\":{\"message\":\"x\"}}\n\n"));
    assert!(!is_error(b"data: {\"error\":null,\"choices\":[]}\n\n"));
    assert!(!is_error(b"data: [DONE]\n\n"));
}

#[test]
fn an_oversized_event_passes_through_and_framing_resumes() {
    let mut stream = b"data: ".to_vec();
    stream.extend(std::iter::repeat_n(b'x', 100));
    stream.extend_from_slice(b"\n\ndata: small\n\n");
    for split in [1, 7, 40, 200] {
        let chunks: Vec<&[u8]> = stream.chunks(split).collect();
        let out = frame(&chunks, 32);
        assert_eq!(out.len(), 2, "split {split}: {out:?}");
        assert!(out[0].0);
        assert_eq!(out[0].1.len(), 108);
        assert_eq!(out[1], (false, b"data: small\n\n".to_vec()));
    }
}

#[test]
fn a_last_event_without_its_blank_line_is_handed_out_at_the_end() {
    let out = frame(&[b"data: a\n\ndata: b"], MAX_EVENT);
    assert_eq!(out[1], (false, b"data: b".to_vec()));
}
