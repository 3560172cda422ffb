//! The PROXY protocol over real sockets: v1 and v2 headers from a trusted balancer name the
//! client (IP rules and the access log see it, for every request on a kept-alive connection,
//! and over TLS too); a trusted peer without a header is dropped and counted; a header from
//! an untrusted peer is not believed.

use crate::harness::*;
use crate::https::issue;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use std::net::SocketAddr;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// 127.0.0.1 is the balancer; 127.0.0.2 an untrusted neighbour.
fn start(server_extra: &str) -> Gateway {
    let rest = format!(
        "[[providers]]\nname = \"m\"\nkind = \"mock\"\n\
         [[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n{}\n\
         [access]\ntrusted_proxies = [\"127.0.0.1/32\"]\nproxy_protocol = true\n\
         deny = [\"198.51.100.0/24\"]\n",
        consumers()
    );
    Gateway::start_raw(server_extra, &rest)
}

fn api_port(gw: &Gateway) -> u16 {
    gw.api.rsplit(':').next().unwrap().parse().unwrap()
}

async fn connect_from(local: &str, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.connect(to).await.unwrap()
}

fn v1(client: &str, port: u16) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 {port} 8080\r\n").into_bytes()
}

/// A v2 header (PROXY command, TCP over IPv4), built by hand from the spec.
fn v2(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21);
    h.push(0x11);
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&client);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&8080u16.to_be_bytes());
    h
}

fn chat_request(close: bool) -> Vec<u8> {
    let body = serde_json::to_string(&chat_body("chat", false)).unwrap();
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n{}\r\n{body}",
        body.len(),
        if close { "connection: close\r\n" } else { "" }
    )
    .into_bytes()
}

/// Read one response (headers, then `content-length` bytes); its status and body.
async fn response<S: AsyncRead + Unpin>(s: &mut S) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    Some((status, String::from_utf8_lossy(&body).to_string()))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    close: bool,
) -> Option<(u16, String)> {
    s.write_all(&chat_request(close)).await.ok()?;
    response(s).await
}

fn logged_clients(gw: &Gateway) -> Vec<String> {
    gw.log_lines()
        .iter()
        .map(|l| l["client_ip"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn v1_and_v2_headers_name_the_client_for_every_request_on_the_connection() {
    let gw = start("");
    let port = api_port(&gw);

    // v1, with the header and the first request in one write, then a second request.
    let mut s = connect_from("127.0.0.1", port).await;
    let mut first = v1("203.0.113.7", 51234);
    first.extend_from_slice(&chat_request(false));
    s.write_all(&first).await.unwrap();
    assert_eq!(response(&mut s).await.unwrap().0, 200);
    assert_eq!(exchange(&mut s, true).await.unwrap().0, 200, "kept alive");

    // v2, header written on its own.
    let mut s = connect_from("127.0.0.1", port).await;
    s.write_all(&v2([203, 0, 113, 8], 40000)).await.unwrap();
    assert_eq!(exchange(&mut s, true).await.unwrap().0, 200);
    gw.wait_log_lines(3).await;
    assert_eq!(
        logged_clients(&gw),
        ["203.0.113.7", "203.0.113.7", "203.0.113.8"]
    );

    // IP rules apply to the client the header names.
    let mut s = connect_from("127.0.0.1", port).await;
    s.write_all(&v1("198.51.100.5", 1000)).await.unwrap();
    let (status, body) = exchange(&mut s, true).await.unwrap();
    assert_eq!(status, 403);
    assert!(body.contains("permission_denied"), "{body}");
}

#[tokio::test]
async fn a_trusted_peer_without_a_header_is_dropped_and_an_untrusted_header_is_not_believed() {
    let gw = start("");
    let port = api_port(&gw);
    let errors = || async {
        metric(
            &gw.metrics().await,
            "tollgate_proxy_protocol_errors_total",
            &[],
        )
    };
    let before = errors().await;
    let mut s = connect_from("127.0.0.1", port).await;
    assert!(
        exchange(&mut s, true).await.is_none(),
        "no HTTP answer without the header"
    );
    gw.wait_metric("tollgate_proxy_protocol_errors_total", &[], before + 1.0)
        .await;

    // From 127.0.0.2 (not a trusted proxy) the header is just bad HTTP.
    let mut s = connect_from("127.0.0.2", port).await;
    let mut bytes = v1("203.0.113.9", 1);
    bytes.extend_from_slice(&chat_request(true));
    s.write_all(&bytes).await.unwrap();
    let answer = response(&mut s).await;
    assert!(
        answer.as_ref().is_none_or(|(status, _)| *status == 400),
        "{answer:?}"
    );
    // An untrusted peer without a header is served as itself.
    let mut s = connect_from("127.0.0.2", port).await;
    assert_eq!(exchange(&mut s, true).await.unwrap().0, 200);
    gw.wait_log_lines(1).await;
    assert_eq!(logged_clients(&gw).last().unwrap(), "127.0.0.2");
}

#[tokio::test]
async fn the_header_comes_before_tls_on_the_https_listener() {
    let dir = tempfile::tempdir().unwrap();
    let ca = issue(dir.path(), 70);
    let tls_port = free_port();
    let gw = start(&format!(
        "tls_listen = \"127.0.0.1:{tls_port}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display(),
    ));
    let mut tcp = connect_from("127.0.0.1", tls_port).await;
    tcp.write_all(&v2([203, 0, 113, 20], 5555)).await.unwrap();
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_ca_file(&ca).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    let ssl = b
        .build()
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut tls).connect().await.unwrap();
    assert_eq!(exchange(&mut tls, true).await.unwrap().0, 200);
    gw.wait_log_lines(1).await;
    assert_eq!(logged_clients(&gw), ["203.0.113.20"]);
}
