//! The HTTPS listener: HTTP/1.1 and HTTP/2 over TLS with a certificate the test makes, the
//! official OpenAI SDK streaming over it, a certificate swapped on disk served after SIGHUP,
//! a bad one refused by the reload (the old one keeps serving), and plain HTTP turned off.

use crate::harness::*;
use crate::upstream_servers::{certificate, key};
use bytes::Bytes;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA and a `localhost` certificate it signs, written as PEM files into `dir`; returns the
/// CA certificate's path.
pub(crate) fn issue(dir: &Path, serial: u32) -> PathBuf {
    let ca_key = key();
    let ca = certificate(&format!("Tollgate Test CA {serial}"), &ca_key, None, serial);
    let leaf_key = key();
    let leaf = certificate("localhost", &leaf_key, Some((&ca, &ca_key)), serial + 1);
    std::fs::write(dir.join("cert.pem"), leaf.to_pem().unwrap()).unwrap();
    std::fs::write(
        dir.join("key.pem"),
        leaf_key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    let ca_path = dir.join(format!("ca-{serial}.pem"));
    std::fs::write(&ca_path, ca.to_pem().unwrap()).unwrap();
    ca_path
}

/// A TLS connection to `port` as `localhost`, verified against `ca`, offering `alpn`.
pub(crate) async fn connect(
    port: u16,
    ca: &Path,
    alpn: &[u8],
) -> Result<tokio_openssl::SslStream<tokio::net::TcpStream>, String> {
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_ca_file(ca).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    b.set_alpn_protos(alpn).unwrap();
    let ssl = b
        .build()
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut tls)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(tls)
}

/// One HTTP/1.1 request over TLS; the raw response.
async fn https_get_models(port: u16, ca: &Path) -> Result<String, String> {
    let mut tls = connect(port, ca, b"\x08http/1.1").await?;
    let req = format!(
        "GET /v1/models HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {KEY}\r\nconnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tls.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn config(dir: &Path, tls_port: u16) -> (String, String) {
    let server = format!(
        "tls_listen = \"127.0.0.1:{tls_port}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display(),
    );
    let body = "[[providers]]\nname = \"m\"\nkind = \"mock\"\n\
                [[models]]\nname = \"chat\"\ntargets = [{ provider = \"m\", model = \"mock-small\" }]\n";
    (server, body.to_string())
}

#[tokio::test]
async fn https_serves_http1_and_h2_and_a_swapped_certificate_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first_ca = issue(dir.path(), 10);
    let tls_port = free_port();
    let (server, body) = config(dir.path(), tls_port);
    let gw = Gateway::start_with(&body, &server);
    wait_for_port(tls_port).await;

    let r = https_get_models(tls_port, &first_ca).await.unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("\"chat\""), "{r}");

    // HTTP/2 over TLS (ALPN h2), a JSON answer and a stream.
    let tls = connect(tls_port, &first_ca, b"\x02h2").await.unwrap();
    assert_eq!(tls.ssl().selected_alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    for stream in [false, true] {
        let req = http::Request::post("https://localhost/v1/chat/completions")
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let (resp, mut send) = h2.send_request(req, false).unwrap();
        let body = chat_body("chat", stream).to_string();
        send.send_data(Bytes::from(body), true).unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let mut data = resp.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = data.data().await {
            let chunk = chunk.unwrap();
            let _ = data.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(text).unwrap();
        if stream {
            assert!(text.contains("data: [DONE]"), "{text}");
        } else {
            assert!(text.contains("chat.completion"), "{text}");
        }
    }

    // A new certificate (from another CA) on disk, then SIGHUP: the next handshakes get it.
    let second_ca = issue(dir.path(), 20);
    signal(gw.pid(), "HUP");
    gw.wait_metric("tollgate_config_reloads_total", &[("result", "ok")], 1.0)
        .await;
    let r = https_get_models(tls_port, &second_ca).await.unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        https_get_models(tls_port, &first_ca).await.is_err(),
        "the old one is gone"
    );

    // A broken certificate is a reload error; the one loaded before keeps serving.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    signal(gw.pid(), "HUP");
    gw.wait_metric("tollgate_config_reloads_total", &[("result", "error")], 1.0)
        .await;
    let r = https_get_models(tls_port, &second_ca).await.unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test]
async fn the_official_openai_sdk_streams_over_https_and_plain_http_can_be_off() {
    let dir = tempfile::tempdir().unwrap();
    let ca = issue(dir.path(), 30);
    let tls_port = free_port();
    let (server, body) = config(dir.path(), tls_port);
    let gw = Gateway::start_tls_only(&body, &server, tls_port);
    assert!(
        std::net::TcpStream::connect(gw.api.trim_start_matches("http://")).is_err(),
        "no plain HTTP listener"
    );
    let Some(python) = python_with("openai, pytest") else {
        return;
    };
    let (ok, report) = crate::sdk::pytest(
        python,
        "test_https.py",
        &[
            (
                "TOLLGATE_HTTPS_URL",
                format!("https://localhost:{tls_port}/v1"),
            ),
            ("TOLLGATE_CA_FILE", ca.display().to_string()),
        ],
    )
    .await;
    assert!(ok, "SDK tests failed:\n{report}");
    assert!(report.contains("2 passed"), "{report}");
}

/// Wait until something listens on `port` (bounded).
async fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "nothing on {port}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
