use super::*;

const LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 32 * 1024,
    max_headers: 100,
    max_request_line: 8 * 1024,
    allow_underscores: false,
};

fn verdict(head: &str) -> Result<Option<HeadInfo>, Rejection> {
    check(head.as_bytes(), &LIMITS)
}

const POST: &str = "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n";

#[test]
fn good_heads_are_complete_with_their_length_and_dialect() {
    let h = format!("{POST}Content-Length: 2\r\n\r\n{{}}");
    let info = verdict(&h).unwrap().unwrap();
    assert_eq!(info.len, h.len() - 2);
    assert_eq!(info.dialect, Dialect::OpenAi);
    assert_eq!(info.body, BodyFraming::Length(2));
    assert_eq!(info.request_end(), Some(h.len() as u64));
    let h = "POST /v1/messages HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n";
    let info = verdict(h).unwrap().unwrap();
    assert_eq!(info.dialect, Dialect::Anthropic);
    assert_eq!(
        (info.body, info.request_end()),
        (BodyFraming::Chunked, None)
    );
    assert!(
        verdict("GET / HTTP/1.0\r\n\r\n").unwrap().is_some(),
        "1.0 needs no host"
    );
    assert!(verdict("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap()
        .is_some());
    let absolute = "GET http://gw:8080/v1/models HTTP/1.1\r\nHost: gw:8080\r\n\r\n";
    assert!(verdict(absolute).unwrap().is_some());
    let utf8 = "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\u{e9}\r\n\r\n";
    assert!(verdict(utf8).unwrap().is_some());
}

#[test]
fn partial_heads_wait_for_more_and_every_prefix_of_a_good_head_does() {
    let h = format!("{POST}Content-Length: 2\r\n\r\n");
    for cut in 1..h.len() {
        assert_eq!(verdict(&h[..cut]), Ok(None), "prefix of {cut} bytes");
    }
}

#[test]
fn each_malformed_head_gets_its_reason() {
    let cases: &[(&str, Rejection)] = &[
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", Rejection::LengthAndChunked),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", Rejection::LengthAndChunked),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", Rejection::BadTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \tchunked\r\n\r\n", Rejection::BadTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Rejection::BadTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", Rejection::DuplicateLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", Rejection::BadLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", Rejection::BadLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n", Rejection::BadLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", Rejection::ObsFold),
        ("POST / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", Rejection::BadHeaderValue),
        ("POST / HTTP/1.1\r\nHost: a\r\nX-A: \u{1}\r\n\r\n", Rejection::BadHeaderValue),
        ("POST / HTTP/1.1\r\nHost: gw\r\r\n\r\n", Rejection::BadHeaderValue),
        ("POST / HTTP/1.1\r\nX-A: a\rb\r\nHost: gw\r\n\r\n", Rejection::BadHeaderValue),
        ("POST / HTTP/1.1\nHost: a\n\n", Rejection::BareLineFeed),
        ("POST / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", Rejection::BareLineFeed),
        ("POST / HTTP/1.1\r\nHost: a\r\nX_Forwarded: y\r\n\r\n", Rejection::UnderscoreInName),
        ("POST / HTTP/1.1\r\nHost: a\r\nX A: y\r\n\r\n", Rejection::BadHeaderName),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 1\r\n\r\n", Rejection::BadHeaderName),
        ("POST / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", Rejection::BadHeaderName),
        ("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\nConnection: Upgrade\r\n\r\n", Rejection::Upgrade),
        ("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", Rejection::Upgrade),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Rejection::BadRequestLine),
        ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Rejection::BadRequestLine),
        ("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Rejection::BadRequestLine),
        ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", Rejection::BadRequestLine),
        ("GET / HTTP/1.1\r\n\r\n", Rejection::MissingHost),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Rejection::DuplicateHost),
        ("GET http://evil.example/ HTTP/1.1\r\nHost: gw\r\n\r\n", Rejection::ForeignTarget),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Rejection::TransferEncodingOnHttp10),
    ];
    for (head, want) in cases {
        assert_eq!(verdict(head), Err(*want), "{head:?}");
    }
    let invalid_utf8 = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: \xff\xfe\r\n\r\n";
    assert_eq!(check(invalid_utf8, &LIMITS), Err(Rejection::BadHeaderValue));
}

#[test]
fn caps_refuse_large_heads_many_headers_and_long_request_lines() {
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    assert_eq!(verdict(&big), Err(Rejection::HeadTooLarge));
    // Even before the head ends: no unbounded buffering.
    assert_eq!(verdict(&big[..33_000]), Err(Rejection::HeadTooLarge));
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    assert_eq!(verdict(&many), Err(Rejection::TooManyHeaders));
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9_000));
    assert_eq!(verdict(&long), Err(Rejection::RequestLineTooLong));
    assert_eq!(verdict(&long[..8_500]), Err(Rejection::RequestLineTooLong));
    let ok = HeadLimits {
        allow_underscores: true,
        ..LIMITS
    };
    let h = "GET / HTTP/1.1\r\nHost: a\r\nX_Y: 1\r\n\r\n";
    assert!(check(h.as_bytes(), &ok).unwrap().is_some());
}
