//! Overload and slow clients: above the in-flight cap, the connection caps or the memory
//! watermark a request is shed at once with 503 `overloaded` in its dialect while admitted
//! ones finish; a client that stops reading a stream is cut at the write deadline, its
//! upstream request cancelled, its usage charged and its slots given back.

use crate::edge::{api_addr, exchange, read_until_closed, start_edge};
use crate::harness::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn assert_shed(r: &reqwest::header::HeaderMap) {
    assert!(r.get("retry-after").is_some(), "{r:?}");
    assert_eq!(r["x-should-retry"], "true");
}

#[tokio::test]
async fn above_the_in_flight_cap_requests_are_shed_at_once_in_their_dialect() {
    let mock = mock();
    let gw = start_edge(&mock, "max_requests_in_flight = 3");
    let streams: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(stream_once(
                gw.url("/v1/chat/completions"),
                "itl_ms=50,tokens=30",
            ))
        })
        .collect();
    gw.wait_metric("tollgate_inflight_requests", &[], 3.0).await;

    let r = unpooled_client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_shed(r.headers());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "overloaded", "{v}");
    assert_eq!(v["error"]["type"], "server_error", "{v}");

    let r = unpooled_client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "chat", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_shed(r.headers());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "overloaded_error", "{v}");

    for s in streams {
        let (status, body) = s.await.unwrap();
        assert_eq!(status, 200);
        assert!(
            body.contains("data: [DONE]"),
            "an admitted stream was hurt: {body}"
        );
    }
    assert_eq!(
        mock.requests().len(),
        3,
        "shed requests reached the upstream"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(&m, "tollgate_shed_total", &[("reason", "in_flight")]),
        2.0
    );
    // The slots came back: a request now goes through.
    let (status, body) = stream_once(gw.url("/v1/chat/completions"), "itl_ms=50,tokens=30").await;
    assert_eq!(status, 200);
    assert!(body.contains("[DONE]"));
    gw.wait_metric("tollgate_inflight_requests", &[], 0.0).await;
    gw.wait_metric("tollgate_client_connections", &[], 0.0)
        .await;
}

async fn connect_from(local: &str, addr: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let to: SocketAddr = addr.parse().unwrap();
    socket.connect(to).await.unwrap()
}

fn get_models() -> Vec<u8> {
    format!("GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n\r\n")
        .into_bytes()
}

#[tokio::test]
async fn connections_over_the_global_or_per_client_cap_are_answered_503_and_closed() {
    let mock = mock();
    let gw = start_edge(&mock, "max_connections = 3\nmax_connections_per_ip = 2");
    let addr = api_addr(&gw);
    // Serving (not only listening) before the idle connections are counted.
    let probe = format!(
        "GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
    );
    let got = exchange(&addr, probe.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(got.status(), 200, "{}", got.text());
    gw.wait_metric("tollgate_client_connections", &[], 0.0)
        .await;
    let a1 = connect_from("127.0.0.1", &addr).await;
    let a2 = connect_from("127.0.0.1", &addr).await;
    gw.wait_metric("tollgate_client_connections", &[], 2.0)
        .await;

    let mut a3 = connect_from("127.0.0.1", &addr).await;
    a3.write_all(&get_models()).await.unwrap();
    let got = read_until_closed(&mut a3, Duration::from_secs(5)).await;
    assert_eq!(got.status(), 503, "{}", got.text());
    assert_eq!(got.json_body()["error"]["code"], "overloaded");
    assert!(got.closed);

    // Another client address is under its own cap...
    let mut b1 = connect_from("127.0.0.2", &addr).await;
    b1.write_all(&get_models()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = b1.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // ...but not under the global one.
    let mut b2 = connect_from("127.0.0.2", &addr).await;
    b2.write_all(&get_models()).await.unwrap();
    let got = read_until_closed(&mut b2, Duration::from_secs(5)).await;
    assert_eq!(got.status(), 503, "{}", got.text());

    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_shed_total",
            &[("reason", "client_connections")]
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "tollgate_shed_total", &[("reason", "connections")]),
        1.0
    );
    drop((a1, a2, b1));
    gw.wait_metric("tollgate_client_connections", &[], 0.0)
        .await;
    // With the connections gone, a new one is served.
    let got = exchange(&addr, &get_models(), Duration::from_millis(500)).await;
    assert_eq!(got.status(), 200, "{}", got.text());
}

#[tokio::test]
async fn above_the_memory_watermark_new_requests_are_shed() {
    let mock = mock();
    let gw = start_edge(&mock, "shed_above_memory_mb = 1");
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    assert_eq!(r.status(), 503);
    assert_shed(r.headers());
    let m = gw.metrics().await;
    assert_eq!(
        metric(&m, "tollgate_shed_total", &[("reason", "memory")]),
        1.0
    );
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_its_upstream_cancelled_and_slots_freed() {
    let mock = mock();
    let body = format!(
        "[edge]\nclient_write_timeout_ms = 400\n{}\n[[models]]\nname = \"chat\"\n\
         targets = [{{ provider = \"up\", model = \"up-chat\" }}]\n\
         [[consumers]]\nname = \"team-a\"\nkeys = [\"{}\"]\nlimits = {{ concurrency = 1 }}\n",
        mock_provider("up", &mock.url(), ""),
        digest_line(KEY)
    );
    let gw = Gateway::start_raw("", &body);
    let addr: SocketAddr = api_addr(&gw).parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let req = serde_json::to_string(&chat_body("chat", true)).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n\
         x-mock: itl_ms=0,tokens=100000\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{req}",
        req.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 2048];
    let n = s.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    // Now the client stops reading (and keeps the socket open).

    let line = &gw.wait_log_lines(1).await[0];
    assert_eq!(line["outcome"], "client_too_slow", "{line}");
    assert!(line["output_tokens"].as_u64().unwrap() > 0, "{line}");
    assert!(line["input_tokens"].as_u64().unwrap() > 0, "{line}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.state.open_connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream request was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.wait_metric("tollgate_inflight_requests", &[], 0.0).await;
    gw.wait_metric("tollgate_client_connections", &[], 0.0)
        .await;
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_requests_total",
            &[("outcome", "client_too_slow")]
        ),
        1.0,
        "{}",
        m.lines()
            .filter(|l| l.starts_with("tollgate_requests_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The concurrency slot (limit 1) is free again.
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    assert_eq!(r.status(), 200);
    drop(s);
}
