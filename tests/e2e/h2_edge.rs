//! HTTP/2 meets the same edge as HTTP/1: six concurrent requests on one h2 connection under
//! `max_requests_in_flight = 2` get two answers and four immediate 503s, and a decoded head
//! over the header caps or with an underscore in a name is refused as HTTP/1's would be.

use crate::harness::*;
use crate::https::{connect, issue};
use bytes::Bytes;
use std::time::{Duration, Instant};

fn start(dir: &std::path::Path, tls_port: u16, mock: &MockServer) -> Gateway {
    let server = format!(
        "tls_listen = \"127.0.0.1:{tls_port}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display(),
    );
    let body = format!(
        "[edge]\nmax_requests_in_flight = 2\nmax_headers = 20\n\n{}\
         [[models]]\nname = \"chat\"\ntargets = [{{ provider = \"up\", model = \"up-chat\" }}]\n",
        mock_provider("up", &mock.url(), "")
    );
    Gateway::start_with(&body, &server)
}

type H2 = h2::client::SendRequest<Bytes>;

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
    let dir = tempfile::tempdir().unwrap();
    let ca = issue(dir.path(), 40);
    let tls_port = free_port();
    let mock = mock();
    let gw = start(dir.path(), tls_port, &mock);
    let deadline = Instant::now() + Duration::from_secs(20);
    let tls = loop {
        match connect(tls_port, &ca, b"\x02h2").await {
            Ok(tls) => break tls,
            Err(e) => assert!(Instant::now() < deadline, "no TLS listener: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
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
