//! Operations: config reload under streaming load, SIGTERM drain, graceful binary upgrade.

use crate::harness::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Providers, `chat` and `chat-v{version}`, and `team-a` under an RPM limit.
fn versioned_config(mock_url: &str, version: usize) -> String {
    format!(
        "{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up-chat\" }}]\n\n\
         [[models]]\nname = \"chat-v{version}\"\ntargets = [{{ provider = \"m\", model = \"up-v{version}\" }}]\n\n\
         [[consumers]]\nname = \"team-a\"\nkeys = [\"{}\"]\nlimits = {{ rpm = 100000 }}\n",
        mock_provider("m", mock_url, ""),
        digest_line(KEY)
    )
}

/// One streaming chat request; returns the whole body.
async fn stream(url: String, script: &'static str) -> Result<String, String> {
    let resp = client()
        .post(url)
        .bearer_auth(KEY)
        .header("x-mock", script)
        .json(&chat_body("chat", true))
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status()));
    }
    resp.text().await.map_err(|e| format!("body: {e}"))
}

fn complete(body: &str) -> bool {
    body.contains("data: [DONE]") && !body.contains("\"error\"")
}

async fn wait_inflight(gw: &Gateway, n: f64) {
    gw.wait_metric("tollgate_inflight_requests", &[], n).await;
}

#[tokio::test]
async fn ten_reloads_one_broken_under_fifty_streams() {
    let mock = mock();
    let gw = Gateway::start_raw("", &versioned_config(&mock.url(), 0));
    let streams: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(stream(
                gw.url("/v1/chat/completions"),
                "itl_ms=40,tokens=60",
            ))
        })
        .collect();
    wait_inflight(&gw, 50.0).await;

    for version in 1..=10 {
        let broken = version == 4;
        let text = if broken {
            "[[models]]\nname = \"half-written\n".to_string()
        } else {
            versioned_config(&mock.url(), version)
        };
        std::fs::write(&gw.config_path, text).unwrap();
        if version % 2 == 1 {
            signal(gw.pid(), "HUP");
            gw.wait_metric(
                "tollgate_config_reloads_total",
                &[("result", "ok")],
                (version - usize::from(version > 4)) as f64,
            )
            .await;
        } else {
            let r = client()
                .post(format!("{}/admin/reload", gw.admin))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            if broken {
                assert_eq!(status, 422, "{body}");
                assert_eq!(body["status"], "rejected");
                assert!(
                    body["errors"][0]
                        .as_str()
                        .unwrap()
                        .contains("TOML syntax error"),
                    "{body}"
                );
            } else {
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["models"], 2);
            }
        }
    }

    for s in streams {
        let body = s.await.unwrap().expect("stream answered");
        assert!(complete(&body), "a stream in flight was disturbed:\n{body}");
    }
    let m = gw.metrics().await;
    assert_eq!(
        metric(&m, "tollgate_config_reloads_total", &[("result", "ok")]),
        9.0
    );
    assert_eq!(
        metric(&m, "tollgate_config_reloads_total", &[("result", "error")]),
        1.0
    );

    // The last good file is in effect: chat-v10 routes, chat-v9 is gone.
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat-v10", false)).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let up = mock.requests().last().unwrap().json().unwrap();
    assert_eq!(up["model"], "up-v10");
    let r = post(&gw, "/v1/chat/completions", &chat_body("chat-v9", false)).await;
    assert_eq!(r.status(), 404);
    // Limiter counts carried over the reloads: the 50 streams and the request since.
    // The minute window slides, so a boundary crossed during the test weighs the
    // earlier requests a little under 1 (a few seconds' worth); a reset would show ~1.
    let v = gw.admin_json("/admin/limits?consumer=team-a").await;
    assert!(
        v["scopes"][0]["rpm"]["used"].as_f64().unwrap() >= 45.0,
        "{v}"
    );
    assert!(gw
        .stderr()
        .contains("config reload (POST /admin/reload) rejected"));
}

#[tokio::test]
async fn sigterm_lets_streams_finish_then_exits_zero() {
    let mock = mock();
    let mut gw = Gateway::start_raw(
        "grace_period_seconds = 3\ngraceful_shutdown_timeout_seconds = 5",
        &versioned_config(&mock.url(), 0),
    );
    let streams: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(stream(
                gw.url("/v1/chat/completions"),
                "itl_ms=50,tokens=30",
            ))
        })
        .collect();
    wait_inflight(&gw, 10.0).await;
    let started = Instant::now();
    signal(gw.pid(), "TERM");

    for s in streams {
        let body = s.await.unwrap().expect("stream answered");
        assert!(complete(&body), "a stream was cut by SIGTERM:\n{body}");
    }
    // New connections are no longer accepted while the old ones drain.
    let port: u16 = gw.api.rsplit(':').next().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.wait_exit(Duration::from_secs(20)).await, Some(0));
    // The streams took ~1.5 s; the process left once they were done, not at its 3 s grace.
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2900), "exited after {took:?}");
    // Every stream was logged before the exit.
    let lines = gw.wait_log_lines(10).await;
    assert!(lines.iter().all(|l| l["outcome"] == "success"), "{lines:?}");
}

#[tokio::test]
async fn an_idle_gateway_stops_at_once_on_sigterm() {
    let mock = mock();
    let mut gw = Gateway::start_raw(
        "grace_period_seconds = 30",
        &versioned_config(&mock.url(), 0),
    );
    // A kept-alive idle connection does not hold the drain.
    let client = client();
    let r = client
        .get(gw.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    gw.wait_metric("tollgate_client_connections", &[], 1.0)
        .await;
    let started = Instant::now();
    signal(gw.pid(), "TERM");
    assert_eq!(gw.wait_exit(Duration::from_secs(10)).await, Some(0));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "an idle gateway took {took:?} to stop"
    );
    let lines = gw.wait_log_lines(1).await;
    assert_eq!(
        lines[0]["status"], 200,
        "the log was written out before the exit"
    );
}

#[tokio::test]
async fn graceful_upgrade_under_load_drops_nothing() {
    let mock = mock();
    let mut old = Gateway::start_raw(
        "grace_period_seconds = 2\ngraceful_shutdown_timeout_seconds = 3",
        &versioned_config(&mock.url(), 0),
    );
    // Long streams started on the old process.
    let streams: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(stream(
                old.url("/v1/chat/completions"),
                "itl_ms=50,tokens=80",
            ))
        })
        .collect();
    wait_inflight(&old, 5.0).await;

    // Steady load, a new connection per request, for the whole upgrade.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = tokio::spawn({
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let url = old.url("/v1/chat/completions");
        async move {
            let fresh = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = fresh
                    .post(&url)
                    .bearer_auth(KEY)
                    .json(
                        &json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}),
                    )
                    .send()
                    .await;
                let outcome = match r {
                    Ok(r) if r.status() == 200 => {
                        r.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                    }
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(e);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            errors
        }
    });

    let mut new = old.start_upgrade();
    let sock = old.dir.path().join("upgrade.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the new process never opened the upgrade socket"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = ok.load(Ordering::Relaxed);
    signal(old.pid(), "QUIT");
    assert_eq!(old.wait_exit(Duration::from_secs(30)).await, Some(0));
    let served_during = ok.load(Ordering::Relaxed) - before;
    // A little more load on the new process alone.
    let after_exit = ok.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok.load(Ordering::Relaxed) < after_exit + 20 {
        assert!(
            Instant::now() < deadline,
            "no progress after the old process exited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let errors = load.await.unwrap();
    let _ = new.kill();
    let _ = new.wait();

    assert!(
        errors.is_empty(),
        "{} failed requests: {:?}",
        errors.len(),
        &errors[..errors.len().min(3)]
    );
    assert!(
        served_during > 50,
        "load kept flowing during the upgrade ({served_during})"
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    for s in streams {
        let body = s.await.unwrap().expect("stream answered");
        assert!(complete(&body), "a stream was cut by the upgrade:\n{body}");
    }
}
