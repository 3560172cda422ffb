//! End-to-end overhead: the same closed-loop load sent straight to the mock upstream, through
//! Tollgate with an unlimited key, and through Tollgate with a key under RPM/TPM/concurrency
//! limits and a daily budget (never reached), side by side in one run, interleaved twice;
//! then the same for streams (`stream: true`, 16 deltas and a usage chunk, read to the end).
//!
//!   cargo bench --bench e2e_overhead            # TG_BENCH_SECS=5 TG_BENCH_CONC=16 by default
//!   TG_BENCH_BIN=/path/to/tollgate cargo bench --bench e2e_overhead   # another build, e.g. an older one
//!
//! Reports requests/s, p50 and p99 for each, and the ratios. All on loopback; the load stops
//! after the configured seconds. On a 2-core machine client, mock and gateway share the CPU,
//! so read the ratios, not the absolute numbers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::let_underscore_must_use,
    clippy::disallowed_methods,
    reason = "test and benchmark code: a failed step is a failed run, and the gateway's rules for clocks, tasks and results are the gateway's"
)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::mock::{script::Script, MockServer};

const KEY: &str = "tg-bench-key";
const LIMITED_KEY: &str = "tg-bench-key-limited";

struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

const JSON_BODY: &str = r#"{"model":"chat","max_tokens":16,"messages":[{"role":"user","content":"Say hello to the benchmark"}]}"#;
const SSE_BODY: &str = r#"{"model":"chat","max_tokens":16,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello to the benchmark"}]}"#;

async fn load(
    url: String,
    key: Option<&'static str>,
    body: &'static str,
    conc: usize,
    secs: u64,
) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let warmup_end = Instant::now() + Duration::from_millis(500);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut req = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body);
                if let Some(key) = key {
                    req = req.bearer_auth(key);
                }
                let ok = match req.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if t >= warmup_end {
                    if ok {
                        lat.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        all.extend(l);
        errors += e;
    }
    all.sort();
    let measured = Duration::from_secs(secs) - Duration::from_millis(500);
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Run {
        rps: all.len() as f64 / measured.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
        errors,
    }
}

/// Two distinct free ports (both listeners held at once, so they cannot coincide).
fn two_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().map(|a| a.port()).expect("port");
    (port(&a), port(&b))
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` this is a one-second smoke run.
    let measuring = std::env::args().any(|a| a == "--bench");
    let secs: u64 = std::env::var("TG_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 5 } else { 1 });
    let rounds = if measuring { 2 } else { 1 };
    let conc: usize = std::env::var("TG_BENCH_CONC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let mock = Arc::new(MockServer::start(Script::default()).expect("mock"));
    let dir = tempfile::tempdir().expect("dir");
    let (api, admin) = two_ports();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{api}\"\nadmin_listen = \"127.0.0.1:{admin}\"\nthreads = 1\n\
         pid_file = \"{d}/p.pid\"\nupgrade_sock = \"{d}/u.sock\"\n[log]\naccess_log = \"{d}/access.log\"\nlevel = \"warn\"\n\
         [[providers]]\nname = \"m\"\nkind = \"openai\"\nbase_url = \"{url}/v1\"\n\
         [[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"mock-small\" }}]\n\
         [[consumers]]\nname = \"bench\"\nkeys = [\"sha256:{digest}\"]\n\
         [[consumers]]\nname = \"bench-limited\"\nkeys = [\"sha256:{limited}\"]\n\
         limits = {{ rpm = 100000000, tpm = 1000000000000, concurrency = 100000, tokens_per_day = 1000000000000 }}\n",
        d = dir.path().display(),
        url = mock.url(),
        digest = hex::encode(tollgate::auth::digest(KEY)),
        limited = hex::encode(tollgate::auth::digest(LIMITED_KEY)),
    );
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, config).expect("config");
    let bin =
        std::env::var("TG_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tollgate").into());
    let mut child = Command::new(&bin)
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn tollgate");
    let ready = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", api)).is_err() {
        assert!(Instant::now() < ready, "gateway did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    let direct_url = format!("{}/v1/chat/completions", mock.url());
    let gw_url = format!("http://127.0.0.1:{api}/v1/chat/completions");
    println!("e2e overhead: {conc} concurrent clients, {secs}s per run, 1 gateway worker thread, mock TTFT 0, gateway {bin}");
    for (kind, body) in [("JSON", JSON_BODY), ("SSE", SSE_BODY)] {
        compare(&rt, kind, body, &direct_url, &gw_url, conc, secs, rounds);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Direct, through the gateway, and through the gateway with limits, `rounds` times; then the
/// ratios.
#[allow(
    clippy::too_many_arguments,
    reason = "a benchmark's knobs, spelled out"
)]
fn compare(
    rt: &tokio::runtime::Runtime,
    kind: &str,
    body: &'static str,
    direct_url: &str,
    gw_url: &str,
    conc: usize,
    secs: u64,
    rounds: usize,
) {
    println!("-- {kind}");
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>7}",
        "target", "req/s", "p50 µs", "p99 µs", "errors"
    );
    let mut ratios = Vec::new();
    for _round in 0..rounds {
        let d = rt.block_on(load(direct_url.into(), None, body, conc, secs));
        let g = rt.block_on(load(gw_url.into(), Some(KEY), body, conc, secs));
        let l = rt.block_on(load(gw_url.into(), Some(LIMITED_KEY), body, conc, secs));
        for (name, r) in [("direct", &d), ("tollgate", &g), ("+limits", &l)] {
            println!(
                "{:<10} {:>10.0} {:>10} {:>10} {:>7}",
                name,
                r.rps,
                r.p50.as_micros(),
                r.p99.as_micros(),
                r.errors
            );
        }
        let ratio = |a: &Run, b: &Run| {
            (
                a.rps / b.rps,
                a.p50.as_secs_f64() / b.p50.as_secs_f64(),
                a.p99.as_secs_f64() / b.p99.as_secs_f64(),
            )
        };
        ratios.push((ratio(&g, &d), ratio(&l, &g)));
    }
    for (i, (gd, lg)) in ratios.iter().enumerate() {
        println!(
            "{kind} round {}: tollgate/direct  req/s x{:.2}  p50 x{:.2}  p99 x{:.2}",
            i + 1,
            gd.0,
            gd.1,
            gd.2
        );
        println!(
            "{kind} round {}: limits on/off    req/s x{:.2}  p50 x{:.2}  p99 x{:.2}",
            i + 1,
            lg.0,
            lg.1,
            lg.2
        );
    }
}
