//! How upstream connections are made: TLS verification with a private CA and SNI, HTTP/2,
//! name resolution and re-resolution (a hosts file on loopback addresses), and a connect
//! timeout against a black hole (CONVENTIONS U3).

use crate::harness::*;
use crate::upstream_servers::{h2c_server, BlackHole, TlsFront};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn provider(name: &str, base_url: &str, extra: &str) -> String {
    provider_toml(name, "openai", base_url, extra)
}

fn model(name: &str, providers: &[&str]) -> String {
    let targets: Vec<String> = providers
        .iter()
        .map(|p| format!("{{ provider = \"{p}\", model = \"up-{p}\" }}"))
        .collect();
    format!(
        "[[models]]\nname = \"{name}\"\nstrategy = \"priority\"\ntargets = [{}]\n",
        targets.join(", ")
    )
}

fn attempt_outcomes(line: &Value) -> Vec<String> {
    line["attempt_log"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["outcome"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn tls_is_verified_against_the_providers_ca_and_name() {
    let mock = mock();
    let front = TlsFront::start("llm.test", mock.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &front.ca_pem).unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 llm.test\n").unwrap();
    let url = format!("https://llm.test:{}/v1", front.addr.port());
    let ca_line = format!("tls_ca_file = \"{}\"", ca.display());
    let body = [
        provider("good", &url, &ca_line),
        provider(
            "wrongname",
            &url,
            &format!("{ca_line}\ntls_sni = \"other.test\""),
        ),
        provider("noca", &url, ""),
        model("chat", &["good"]),
        model("wrong-sni", &["wrongname"]),
        model("no-ca", &["noca"]),
    ]
    .concat();
    let gw = Gateway::start_with(&body, &format!("hosts_file = \"{}\"", hosts.display()));

    for stream in [false, true] {
        let r = post(&gw, "/v1/chat/completions", &chat_body("chat", stream)).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(text.contains("chat.completion"), "{text}");
    }
    let seen = mock.requests();
    assert_eq!(seen.len(), 2, "{seen:?}\n{:?}", gw.log_lines());
    let want_host = format!("llm.test:{}", front.addr.port());
    assert_eq!(seen[0].header("host"), Some(want_host.as_str()));

    for model in ["wrong-sni", "no-ca"] {
        let r = post(&gw, "/v1/chat/completions", &chat_body(model, false)).await;
        assert_eq!(r.status(), 502, "{model}");
        let err: Value = r.json().await.unwrap();
        assert!(err["error"]["message"].is_string(), "{err}");
    }
    assert_eq!(mock.requests().len(), 2, "nothing unverified got through");
    let lines = gw.wait_log_lines(4).await;
    assert_eq!(attempt_outcomes(&lines[2]), ["tls_error"]);
    assert_eq!(attempt_outcomes(&lines[3]), ["tls_error"]);
}

#[tokio::test]
async fn http2_upstreams_are_spoken_to_in_h2() {
    let (addr, seen) = h2c_server().await;
    let body = [
        provider("h2", &format!("http://{addr}/v1"), "http2 = true"),
        model("chat", &["h2"]),
    ]
    .concat();
    let gw = Gateway::start(&body);
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "over h2");
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", true)).await;
    assert_eq!(r.status(), 200);
    let events = sse_data(&r.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}\n{:?}", gw.log_lines());
    for (method, path, authority, version) in &seen {
        assert_eq!(method, "POST");
        assert_eq!(path, "/v1/chat/completions");
        assert_eq!(authority, &addr.to_string());
        assert_eq!(*version, http::Version::HTTP_2);
    }
    let lines = gw.wait_log_lines(2).await;
    assert_eq!(lines[1]["output_tokens"], 2, "{}", lines[1]);
}

/// Two mocks on one port at 127.0.0.2 and 127.0.0.3 (whatever port the OS gives the first).
fn twin_mocks() -> (MockServer, MockServer) {
    for _ in 0..20 {
        let a = MockServer::start_at(SocketAddr::from(([127, 0, 0, 2], 0)), Script::default())
            .expect("mock on 127.0.0.2");
        let at = SocketAddr::from(([127, 0, 0, 3], a.addr.port()));
        if let Ok(b) = MockServer::start_at(at, Script::default()) {
            return (a, b);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

#[tokio::test]
async fn a_name_is_re_resolved_and_a_failed_resolution_keeps_the_last_addresses() {
    let (a, b) = twin_mocks();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.2 llm.test\n127.0.0.3 llm.test\n").unwrap();
    let body = [
        provider("pool", &format!("http://llm.test:{}/v1", a.addr.port()), ""),
        model("chat", &["pool"]),
    ]
    .concat();
    let server_extra = format!(
        "hosts_file = \"{}\"\nresolve_interval_ms = 100",
        hosts.display()
    );
    let gw = Gateway::start_with(&body, &server_extra);
    let send = |n: usize| {
        let gw = &gw;
        async move {
            for _ in 0..n {
                let r = post(gw, "/v1/chat/completions", &chat_body("chat", false)).await;
                assert_eq!(r.status(), 200);
            }
        }
    };

    // Both addresses share the traffic.
    send(10).await;
    assert_eq!((a.requests().len(), b.requests().len()), (5, 5));
    gw.wait_metric("tollgate_upstream_addresses", &[("provider", "pool")], 2.0)
        .await;

    // The name now points at one address: once re-resolved, only it is used.
    std::fs::write(&hosts, "127.0.0.3 llm.test\n").unwrap();
    gw.wait_metric("tollgate_upstream_addresses", &[("provider", "pool")], 1.0)
        .await;
    send(6).await;
    assert_eq!((a.requests().len(), b.requests().len()), (5, 11));

    // Resolution fails (the file is gone): the last good address stays in use.
    std::fs::remove_file(&hosts).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        &gw.metrics().await,
        "tollgate_dns_resolutions_total",
        &[("provider", "pool"), ("result", "error")],
    ) < 2.0
    {
        assert!(Instant::now() < deadline, "no failed resolution counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send(4).await;
    assert_eq!((a.requests().len(), b.requests().len()), (5, 15));
    assert!(gw.stderr().contains("keeping"), "{}", gw.stderr());
}

#[tokio::test]
async fn a_black_holed_upstream_times_out_on_connect_and_fails_over() {
    let mock = mock();
    let hole = BlackHole::start();
    let body = [
        provider("hole", &format!("http://{}/v1", hole.addr), "")
            .replace("connect_timeout_ms = 1000", "connect_timeout_ms = 300"),
        mock_provider("good", &mock.url(), ""),
        model("chat", &["hole", "good"]),
        model("alone", &["hole"]),
    ]
    .concat();
    let gw = Gateway::start(&body);

    let started = Instant::now();
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat", true)).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("[DONE]"));
    let failed_over_in = started.elapsed();

    let started = Instant::now();
    let r = post(&gw, "/v1/chat/completions", &chat_body("alone", false)).await;
    assert_eq!(r.status(), 502);
    let alone_in = started.elapsed();
    // The connect timeout (300 ms), not the kernel's SYN retries (over a minute), bounds both.
    assert!(
        failed_over_in < Duration::from_secs(5),
        "{failed_over_in:?}"
    );
    assert!(alone_in < Duration::from_secs(5), "{alone_in:?}");

    let lines = gw.wait_log_lines(2).await;
    assert_eq!(attempt_outcomes(&lines[0]), ["connect_timeout", "ok"]);
    assert_eq!(attempt_outcomes(&lines[1]), ["connect_timeout"]);
    gw.wait_metric(
        "tollgate_upstream_failovers_total",
        &[("reason", "connect_timeout")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let mock = mock();
    let body = format!(
        "{}\n{}\n{}",
        provider("m", &mock_base(&mock.url(), ""), ""),
        model("chat", &["m"]),
        // The large-body path (the forwarder's own I/O) pools its connections too.
        "[[models]]\nname = \"big\"\ntargets = [{ provider = \"m\", model = \"up-big\" }]\n"
    );
    let gw = Gateway::start(&body);
    let c = client();
    for i in 0..1000 {
        let (model, stream) = match i % 4 {
            0 => ("chat", false),
            1 => ("chat", true),
            2 => ("big", i % 8 == 2),
            _ => ("chat", false),
        };
        let req = if model == "big" {
            big_chat_body(model, stream, 80 * 1024)
        } else {
            chat_body(model, stream)
        };
        let r = c
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&req)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        r.bytes().await.unwrap();
    }
    assert_eq!(mock.requests().len(), 1000);
    // One connection per path (proxy and forwarder); on a loaded machine the next request can
    // arrive before the last one's connection is back in the pool, which opens one more.
    let accepted = mock.state.accepted_connections();
    assert!(
        accepted <= 4,
        "1,000 sequential requests opened {accepted} upstream connections"
    );
}
