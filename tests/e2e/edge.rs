//! The edge over raw sockets: a smuggling and malformed-request corpus, each case answered
//! with its status and a JSON body in the client's dialect, the connection closed, and the
//! mock upstream never reached; pipelined requests after a refused one are not served; the
//! header, keep-alive and body deadlines close what lingers.

use crate::harness::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The gateway on a mock with `edge` as its `[edge]` table.
pub fn start_edge(mock: &tollgate::mock::MockServer, edge: &str) -> Gateway {
    let body = format!(
        "[edge]\n{edge}\n{}\n[[models]]\nname = \"chat\"\n\
         targets = [{{ provider = \"up\", model = \"up-chat\" }}]\n",
        mock_provider("up", &mock.url(), "")
    );
    Gateway::start(&body)
}

pub fn api_addr(gw: &Gateway) -> String {
    gw.api.trim_start_matches("http://").to_string()
}

/// What came back on a connection before it closed (or `within` ran out).
pub struct Exchange {
    pub bytes: Vec<u8>,
    pub closed: bool,
}

impl Exchange {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn status(&self) -> u16 {
        let text = self.text();
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Status lines (`HTTP/1.1 NNN `) in what came back.
    pub fn responses(&self) -> usize {
        let text = self.text();
        text.match_indices("HTTP/1.1 ")
            .filter(|(i, _)| {
                let rest = text.as_bytes().get(i + 9..i + 13).unwrap_or(&[]);
                rest.len() == 4 && rest[..3].iter().all(u8::is_ascii_digit) && rest[3] == b' '
            })
            .count()
    }

    pub fn json_body(&self) -> serde_json::Value {
        let text = self.text();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
    }
}

/// Send `bytes`, then read until the gateway closes or `within` passes.
pub async fn exchange(addr: &str, bytes: &[u8], within: Duration) -> Exchange {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // A refusal may close before all of a large request is written: that is fine.
    let _ = s.write_all(bytes).await;
    read_until_closed(&mut s, within).await
}

pub async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Exchange {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Exchange {
                    bytes: out,
                    closed: true,
                }
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => {
                return Exchange {
                    bytes: out,
                    closed: false,
                }
            }
        }
    }
}

const BODY: &str = r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;

fn good(path: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    )
}

/// A chat request whose head carries `extra` header lines (each ending in CRLF), no length.
fn with(extra: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n{extra}\r\n{BODY}"
    )
    .into_bytes()
}

/// The corpus: what is sent, the status and the `error.code` that must come back.
fn corpus() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    let n = BODY.len();
    let bytes = |s: String| s.into_bytes();
    let many: String = (0..1000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let mut invalid_utf8 = with("X-Name: caf\r\n");
    let at = invalid_utf8
        .windows(3)
        .position(|w| w == b"caf")
        .expect("marker")
        + 3;
    invalid_utf8.splice(at..at, [0xff, 0xfe]);
    vec![
        ("CL then TE", with(&format!("Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n")), 400, "content_length_and_chunked"),
        ("TE then CL", with(&format!("Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n")), 400, "content_length_and_chunked"),
        ("chunked, identity", with("Transfer-Encoding: chunked, identity\r\n"), 400, "bad_transfer_encoding"),
        ("tab before chunked", with("Transfer-Encoding: \tchunked\r\n"), 400, "bad_transfer_encoding"),
        ("identity alone", with("Transfer-Encoding: identity\r\n"), 400, "bad_transfer_encoding"),
        ("two TE headers", with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400, "bad_transfer_encoding"),
        ("TE: xchunked", with("Transfer-Encoding: xchunked\r\n"), 400, "bad_transfer_encoding"),
        ("duplicate CL, same", with(&format!("Content-Length: {n}\r\nContent-Length: {n}\r\n")), 400, "duplicate_content_length"),
        ("duplicate CL, differing", with(&format!("Content-Length: {n}\r\nContent-Length: 5\r\n")), 400, "duplicate_content_length"),
        ("CL with a sign", with(&format!("Content-Length: +{n}\r\n")), 400, "bad_content_length"),
        ("CL negative", with("Content-Length: -1\r\n"), 400, "bad_content_length"),
        ("CL with inner space", with("Content-Length: 1 0\r\n"), 400, "bad_content_length"),
        ("CL list", with(&format!("Content-Length: {n},{n}\r\n")), 400, "bad_content_length"),
        ("CL hex", with("Content-Length: 0x10\r\n"), 400, "bad_content_length"),
        ("obs-fold", with("X-A: b\r\n c\r\n"), 400, "obs_fold"),
        ("NUL in a value", with("X-A: b\0c\r\n"), 400, "bad_header_value"),
        ("control byte in a value", with("X-A: \u{7}\r\n"), 400, "bad_header_value"),
        ("invalid UTF-8 in a value", invalid_utf8, 400, "bad_header_value"),
        ("bare LF in the head", bytes(format!("POST /v1/chat/completions HTTP/1.1\nHost: gw\nContent-Length: {n}\n\n{BODY}")), 400, "bare_lf"),
        ("bare LF after one header", with("X-A: b\nX-B: c\r\n"), 400, "bare_lf"),
        ("underscore in a name", with("X_Forwarded_For: 1.2.3.4\r\n"), 400, "underscore_in_header_name"),
        ("space before colon", with("Content-Length : 1\r\n"), 400, "bad_header_name"),
        ("bad byte in a name", with("X(A): 1\r\n"), 400, "bad_header_name"),
        ("line without colon", with("nocolon\r\n"), 400, "bad_header_name"),
        ("websocket upgrade", bytes("GET /v1/models HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".into()), 400, "upgrade"),
        ("h2c upgrade", bytes("GET /v1/models HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n".into()), 400, "upgrade"),
        ("h2 prior knowledge", bytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".into()), 400, "bad_request_line"),
        ("garbage request line", bytes("HELLO\r\n\r\n".into()), 400, "bad_request_line"),
        ("HTTP/1.2", bytes("GET /v1/models HTTP/1.2\r\nHost: gw\r\n\r\n".into()), 400, "bad_request_line"),
        ("missing Host", bytes(format!("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {n}\r\n\r\n{BODY}")), 400, "missing_host"),
        ("two Hosts", with("Host: other\r\n"), 400, "duplicate_host"),
        ("absolute target elsewhere", bytes(format!("POST http://evil.example/v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: {n}\r\n\r\n{BODY}")), 400, "foreign_target"),
        ("TE on HTTP/1.0", bytes("POST /v1/chat/completions HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into()), 400, "transfer_encoding_on_http10"),
        ("64 KiB header", with(&format!("X-Big: {}\r\n", "a".repeat(64 * 1024))), 431, "headers_too_large"),
        ("1,000 headers", with(&many), 431, "too_many_headers"),
        ("9 KB request line", bytes(format!("GET /v1/{} HTTP/1.1\r\nHost: gw\r\n\r\n", "a".repeat(9_000))), 414, "request_line_too_long"),
    ]
}

#[tokio::test]
async fn the_malformed_request_corpus_is_refused_in_json_and_closed() {
    let mock = mock();
    let gw = start_edge(&mock, "");
    let addr = api_addr(&gw);
    let cases = corpus();
    assert!(cases.len() >= 25);
    for (name, bytes, status, code) in &cases {
        let got = exchange(&addr, bytes, Duration::from_secs(5)).await;
        assert_eq!(got.status(), *status, "{name}: {}", got.text());
        let text = got.text().to_ascii_lowercase();
        assert!(text.contains("connection: close"), "{name}: {text}");
        assert!(text.contains("content-type: application/json"), "{name}");
        assert_eq!(got.json_body()["error"]["code"], *code, "{name}: {text}");
        assert!(got.closed, "{name}: the connection stayed open");
        assert_eq!(got.responses(), 1, "{name}");
    }
    // The Anthropic dialect gets its own error shape.
    let n = BODY.len();
    let smuggle = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: gw\r\nx-api-key: {KEY}\r\n\
         Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n{BODY}"
    );
    let got = exchange(&addr, smuggle.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(got.status(), 400);
    let v = got.json_body();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");

    // A good request after a refused one on the same connection is never served.
    let mut pipelined = with("Transfer-Encoding: chunked, identity\r\n");
    pipelined.extend_from_slice(good("/v1/chat/completions").as_bytes());
    let got = exchange(&addr, &pipelined, Duration::from_secs(5)).await;
    assert_eq!(got.status(), 400);
    assert_eq!(got.responses(), 1, "{}", got.text());
    assert!(got.closed);
    assert!(
        mock.requests().is_empty(),
        "the upstream saw {} requests",
        mock.requests().len()
    );

    // Two good pipelined requests are both served, on one connection.
    let two = format!(
        "{}{}",
        good("/v1/chat/completions"),
        good("/v1/chat/completions")
    );
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(two.as_bytes()).await.unwrap();
    let got = read_until_closed(&mut s, Duration::from_millis(1500)).await;
    assert_eq!(
        got.text().matches("HTTP/1.1 200").count(),
        2,
        "{}",
        got.text()
    );
    assert_eq!(mock.requests().len(), 2);

    let m = gw.metrics().await;
    let refused: f64 = cases
        .iter()
        .map(|(_, _, _, code)| *code)
        .collect::<std::collections::BTreeSet<_>>()
        .iter()
        .map(|code| metric(&m, "tollgate_edge_rejections_total", &[("reason", code)]))
        .sum();
    assert_eq!(refused, cases.len() as f64 + 2.0);
}

#[tokio::test]
async fn header_keepalive_and_body_deadlines_close_what_lingers() {
    let mock = mock();
    let gw = start_edge(
        &mock,
        "client_header_timeout_ms = 600\nkeepalive_timeout_ms = 400\nclient_body_timeout_ms = 500",
    );
    let addr = api_addr(&gw);

    // A head trickling in is cut at the total header deadline, however steady the trickle.
    let started = Instant::now();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = good("/v1/chat/completions");
    let mut answered = None;
    for b in head.as_bytes() {
        if s.write_all(std::slice::from_ref(b)).await.is_err() {
            break;
        }
        let mut one = [0u8; 1];
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(50), s.peek(&mut one)).await {
            answered = Some(r);
            break;
        }
    }
    assert!(answered.is_some(), "the trickle was never cut");
    let got = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert_eq!(got.status(), 408, "{}", got.text());
    assert_eq!(got.json_body()["error"]["code"], "request_timeout");
    assert!(got.closed);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // An idle kept-alive connection is closed after the keep-alive timeout, without a word.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(good("/v1/chat/completions").as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let got = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(got.closed, "the idle connection stayed open");
    assert_eq!(got.responses(), 1, "{}", got.text());
    assert_eq!(got.status(), 200);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(350), "{took:?}");

    // A body that stops arriving is given up after the body timeout.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"model\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(got.closed, "a stalled body held the connection");
    assert_eq!(got.status(), 408, "{}", got.text());
    assert_eq!(got.json_body()["error"]["code"], "request_timeout");
    assert_eq!(mock.requests().len(), 1);
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_edge_rejections_total",
            &[("reason", "header_timeout")]
        ),
        1.0
    );
    gw.wait_metric("tollgate_client_connections", &[], 0.0)
        .await;
    gw.wait_metric("tollgate_inflight_requests", &[], 0.0).await;
}
