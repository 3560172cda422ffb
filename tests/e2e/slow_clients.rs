//! Slow-header clients (slowloris): thousands of connections each sending a request head one
//! byte per 200 ms are all cut by the header deadline while a real client, sending requests
//! at a fixed rate, keeps its latency; the gateway's memory stays bounded.
//!
//! `TOLLGATE_SLOW_CLIENTS` sets how many (default 2,000, the CI form);
//! `load-tests/slow-headers.sh` runs the 10,000 form against a release build.

use crate::edge::{api_addr, start_edge};
use crate::harness::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What each open slow connection may add to the gateway's resident memory, in KiB
/// (measured: about 25 KiB each, 33 MiB idle and 83 MiB with 2,000 open, debug build).
const RSS_PER_CONNECTION_KIB: u64 = 64;
const HEADER_TIMEOUT_MS: u64 = 3000;

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Per-request latencies of `n` requests sent at `per_second`, each on a new connection.
async fn paced_latencies(gw: &Gateway, n: usize, per_second: u64) -> Vec<Duration> {
    let client = unpooled_client();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / per_second));
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        tick.tick().await;
        let started = Instant::now();
        let r = client
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&chat_body("chat", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        out.push(started.elapsed());
    }
    out
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// Open `n` connections and trickle a head into each, one byte per 200 ms, on a runtime of
/// its own thread (so the real client's timings are not the trickle's). Returns how many
/// were answered 408 and closed.
fn trickle(addr: String, n: usize, opened: Arc<AtomicUsize>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
            let mut tasks = Vec::with_capacity(n);
            for i in 0..n {
                let mut s = TcpStream::connect(&addr).await.unwrap();
                opened.fetch_add(1, Ordering::Relaxed);
                tasks.push(tokio::spawn(async move {
                    // Spread the trickles over the 200 ms period.
                    tokio::time::sleep(Duration::from_millis((i % 200) as u64)).await;
                    for b in head {
                        if s.write_all(std::slice::from_ref(b)).await.is_err() {
                            break;
                        }
                        let mut one = [0u8; 1];
                        let peeked =
                            tokio::time::timeout(Duration::from_millis(200), s.peek(&mut one));
                        if peeked.await.is_ok() {
                            break;
                        }
                    }
                    let mut answer = Vec::new();
                    let read = tokio::time::timeout(
                        Duration::from_secs(20),
                        s.read_to_end(&mut answer),
                    );
                    matches!(read.await, Ok(Ok(_))) && answer.starts_with(b"HTTP/1.1 408")
                }));
            }
            let mut cut = 0;
            for t in tasks {
                cut += usize::from(t.await.unwrap_or(false));
            }
            cut
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_and_a_real_client_keeps_its_latency() {
    let n: usize = std::env::var("TOLLGATE_SLOW_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mock = mock();
    let gw = start_edge(
        &mock,
        &format!("client_header_timeout_ms = {HEADER_TIMEOUT_MS}\nmax_connections = 20000"),
    );
    let rss_idle = rss_mib(gw.pid());
    let baseline = p99(paced_latencies(&gw, 40, 20).await);

    let opened = Arc::new(AtomicUsize::new(0));
    let slow = trickle(api_addr(&gw), n, Arc::clone(&opened));
    let deadline = Instant::now() + Duration::from_secs(60);
    while opened.load(Ordering::Relaxed) < n {
        assert!(Instant::now() < deadline, "could not open {n} connections");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.wait_metric("tollgate_client_connections", &[], n as f64)
        .await;
    let rss_loaded = rss_mib(gw.pid());
    let loaded = p99(paced_latencies(&gw, 40, 20).await);

    let cut = tokio::task::spawn_blocking(move || slow.join().unwrap())
        .await
        .unwrap();
    eprintln!(
        "slow clients: {n}, cut by the header deadline: {cut}; real client p99 {baseline:?} idle, \
         {loaded:?} under the trickle; RSS {rss_idle} MiB idle, {rss_loaded} MiB with all open"
    );
    assert_eq!(cut, n, "every slow client is answered 408 and closed");
    let floor = baseline.max(Duration::from_millis(5));
    assert!(
        loaded <= floor * 10,
        "p99 {loaded:?} under the trickle against {baseline:?} without"
    );
    let bound = rss_idle + 32 + n as u64 * RSS_PER_CONNECTION_KIB / 1024;
    assert!(
        rss_loaded < bound,
        "RSS {rss_loaded} MiB with {n} open, over {bound} MiB"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_edge_rejections_total",
            &[("reason", "header_timeout")]
        ),
        n as f64
    );
    gw.wait_metric("tollgate_client_connections", &[], 0.0)
        .await;
    assert_eq!(
        mock.requests().len(),
        80,
        "only the real client's requests went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_near_its_baseline_after_512_streams() {
    let mock = mock();
    let gw = start_edge(&mock, "");
    // Warm up (thread pools, pools of buffers), then the baseline.
    for _ in 0..8 {
        let (_, body) = stream_once(gw.url("/v1/chat/completions"), "itl_ms=1,tokens=8").await;
        assert!(body.contains("data: [DONE]"));
    }
    let baseline = rss_mib(gw.pid());
    // Each stream lasts ~10 s, so all 512 are open together even when opening them is slow
    // (the whole suite runs in parallel on 2 cores).
    let streams: Vec<_> = (0..512)
        .map(|_| {
            tokio::spawn(stream_once(
                gw.url("/v1/chat/completions"),
                "itl_ms=150,tokens=64",
            ))
        })
        .collect();
    gw.wait_metric("tollgate_inflight_streams", &[], 512.0)
        .await;
    let peak = rss_mib(gw.pid());
    for s in streams {
        let (status, body) = s.await.unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("data: [DONE]"), "a stream did not complete");
    }
    gw.wait_metric("tollgate_inflight_streams", &[], 0.0).await;
    gw.wait_metric("tollgate_client_connections", &[], 0.0)
        .await;
    // After the burst the free memory goes back to the system (tollgate_memory_trims_total).
    let bound = |peak: u64| baseline + peak.saturating_sub(baseline) / 2 + 8;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = rss_mib(gw.pid());
    while after > bound(peak) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = rss_mib(gw.pid());
    }
    eprintln!(
        "512 streams: RSS {baseline} MiB before, {peak} MiB with all open, {after} MiB after"
    );
    assert!(
        after <= bound(peak),
        "RSS {after} MiB after the streams, {baseline} before, {peak} at the peak"
    );
    // The trim runs on its own 500 ms tick: RSS may be under the bound before it fires.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&gw.metrics().await, "tollgate_memory_trims_total", &[]) < 1.0 {
        assert!(Instant::now() < deadline, "no memory trim after the burst");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
