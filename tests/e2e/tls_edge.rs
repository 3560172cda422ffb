//! HTTPS meets the same edge as plain HTTP/1. HTTP/2: six concurrent requests on one h2
//! connection under `max_requests_in_flight = 2` get two answers and four immediate 503s, and
//! a decoded head over the header caps or with an underscore in a name is refused as HTTP/1's
//! would be. TLS: connections count from accept, and a flood of handshakes that never finish
//! is cut at `tls_handshake_timeout_ms` while a real client keeps its latency.

use crate::harness::*;
use crate::https::{connect, issue};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// A gateway with an HTTPS listener (a certificate the test makes, issued by `serial`'s CA)
/// and `edge` settings, in front of `mock`.
struct Https {
    gw: Gateway,
    ca: std::path::PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn https(serial: u32, mock: &MockServer, edge: &str) -> Https {
    let dir = tempfile::tempdir().unwrap();
    let ca = issue(dir.path(), serial);
    let port = free_port();
    let server = format!(
        "tls_listen = \"127.0.0.1:{port}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display(),
    );
    let body = format!(
        "[edge]\n{edge}\n\n{}\
         [[models]]\nname = \"chat\"\ntargets = [{{ provider = \"up\", model = \"up-chat\" }}]\n",
        mock_provider("up", &mock.url(), "")
    );
    let gw = Gateway::start_with(&body, &server);
    Https {
        gw,
        ca,
        port,
        _dir: dir,
    }
}

type H2 = h2::client::SendRequest<Bytes>;

/// The first TLS connection, once the listener is up.
async fn first_connection(
    port: u16,
    ca: &std::path::Path,
    alpn: &[u8],
) -> tokio_openssl::SslStream<tokio::net::TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match connect(port, ca, alpn).await {
            Ok(tls) => return tls,
            Err(e) => assert!(Instant::now() < deadline, "no TLS listener: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send(h2: &mut H2, headers: &[(&str, String)]) -> u16 {
    let mut req = http::Request::post("https://localhost/v1/chat/completions")
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let (resp, mut body) = h2.send_request(req.body(()).unwrap(), false).unwrap();
    body.send_data(Bytes::from(chat_body("chat", false).to_string()), true)
        .unwrap();
    let resp = resp.await.unwrap();
    let status = resp.status().as_u16();
    let mut data = resp.into_body();
    while let Some(chunk) = data.data().await {
        let chunk = chunk.unwrap();
        let _ = data.flow_control().release_capacity(chunk.len());
    }
    status
}

#[tokio::test]
async fn http2_requests_meet_the_in_flight_cap_and_the_head_checks() {
    let mock = mock();
    let Https { gw, ca, port, .. } = &https(
        40,
        &mock,
        "max_requests_in_flight = 2\nmax_headers = 20\nh2_max_concurrent_streams = 50",
    );
    let tls = first_connection(*port, ca, b"\x02h2").await;
    let (h2, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);

    let started = Instant::now();
    let slow = [("x-mock", "ttft_ms=1500".to_string())];
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let mut h2 = h2.clone();
            let slow = slow.clone();
            tokio::spawn(async move {
                let status = send(&mut h2, &slow).await;
                (status, started.elapsed())
            })
        })
        .collect();
    let mut answered = 0;
    for t in tasks {
        let (status, took) = t.await.unwrap();
        match status {
            200 => answered += 1,
            503 => assert!(took < Duration::from_millis(1200), "shed at once: {took:?}"),
            other => panic!("status {other}"),
        }
    }
    assert_eq!(answered, 2, "two in flight, four shed");
    assert_eq!(
        h2.current_max_send_streams(),
        50,
        "the stream cap is announced"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(&m, "tollgate_shed_total", &[("reason", "in_flight")]),
        4.0
    );

    // The head caps, on decoded HTTP/2 heads.
    let mut h2 = h2.clone();
    let many: Vec<(&str, String)> = (0..30)
        .map(|i| (["x-a", "x-b", "x-c"][i % 3], format!("v{i}")))
        .collect();
    assert_eq!(send(&mut h2, &many).await, 431);
    assert_eq!(send(&mut h2, &[("x_forwarded", "1".into())]).await, 400);
    assert_eq!(send(&mut h2, &[]).await, 200, "the slots came back");
    assert_eq!(mock.requests().len(), 3, "nothing refused went upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handshake_flood_is_counted_and_cut_while_a_real_client_keeps_its_latency() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let n = 200;
    let mock = mock();
    let Https { gw, ca, port, .. } = &https(
        50,
        &mock,
        "tls_handshake_timeout_ms = 2000\nmax_connections = 1000",
    );
    let (ca, tls_port) = (ca.as_path(), *port);
    drop(first_connection(tls_port, ca, b"\x08http/1.1").await);
    gw.wait_metric("tollgate_client_connections", &[], 0.0)
        .await;
    // Each sends the start of a ClientHello record, then nothing.
    let mut slow = Vec::new();
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", tls_port))
            .await
            .unwrap();
        s.write_all(b"\x16\x03\x01\x02\x00\x01").await.unwrap();
        slow.push(s);
    }
    gw.wait_metric("tollgate_client_connections", &[], n as f64)
        .await;
    // A real client meanwhile: a whole request over TLS in bounded time.
    let started = Instant::now();
    let mut tls = connect(tls_port, ca, b"\x08http/1.1").await.unwrap();
    let req = format!(
        "GET /v1/models HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {KEY}\r\nconnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        took < Duration::from_millis(1500),
        "the real client waited {took:?}"
    );
    // Every slow handshake is cut at its deadline.
    for mut s in slow {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a stalled handshake was not closed: {read:?}"
        );
    }
    gw.wait_metric(
        "tollgate_edge_rejections_total",
        &[("reason", "tls_handshake_timeout")],
        n as f64,
    )
    .await;
    gw.wait_metric("tollgate_client_connections", &[], 0.0)
        .await;
}

/// Open streams on one connection and reset each at once, as fast as the client can write
/// them; then one ordinary request on the same connection. `Err`: the server ended it.
async fn reset_burst(port: u16, ca: &std::path::Path) -> Result<u16, h2::Error> {
    let tls = first_connection(port, ca, b"\x02h2").await;
    let (mut h2, conn) = h2::client::handshake(tls).await.unwrap();
    let conn = tokio::spawn(conn);
    for _ in 0..500 {
        let req = http::Request::post("https://localhost/v1/chat/completions")
            .header("authorization", format!("Bearer {KEY}"))
            .body(())
            .unwrap();
        let Ok((_resp, mut stream)) = h2.send_request(req, false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
    }
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if conn.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if ended.is_ok() {
        return Err(conn.await.unwrap().expect_err("ended by the server"));
    }
    Ok(send(&mut h2, &[]).await)
}

#[tokio::test]
async fn a_rapid_reset_burst_ends_its_connection_and_others_are_served() {
    let mock = mock();
    // Out of reach, the same burst leaves the connection serving: the end below is the cap's.
    let lenient = https(60, &mock, "h2_max_pending_resets = 100000");
    assert_eq!(reset_burst(lenient.port, &lenient.ca).await.unwrap(), 200);
    drop(lenient);
    let strict = https(70, &mock, "h2_max_pending_resets = 5");
    // GOAWAY (ENHANCE_YOUR_CALM) and the close: the client sees one or the other first.
    let err = reset_burst(strict.port, &strict.ca)
        .await
        .expect_err("the burst ends the connection");
    assert!(
        err.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || err.is_io(),
        "{err}"
    );
    // Another client on another connection is served as usual.
    let tls = connect(strict.port, &strict.ca, b"\x02h2").await.unwrap();
    let (mut h2, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(send(&mut h2, &[]).await, 200);
}
