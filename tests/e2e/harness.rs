//! Test harness: the real `tollgate` binary on OS-chosen ports, the in-process mock upstream,
//! and helpers that read what a user sees (responses, `/metrics`, the access log).

use serde_json::Value;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
pub use tollgate::mock::{script::Script, MockServer};

/// The client key every test consumer uses.
pub const KEY: &str = "tg-test-key-0001";
/// A second key whose consumer may only use the model `chat`.
pub const LIMITED_KEY: &str = "tg-test-key-limited";
/// The backend key the gateway injects (through `api_key_env`).
pub const UPSTREAM_KEY: &str = "sk-upstream-secret";

/// The MCP session-sealing key every test gateway shares (64 hex digits).
pub const MCP_SESSION_KEY: &str =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// The credential the gateway injects into calls to the test API.
pub const PETSTORE_KEY: &str = "petstore-secret-7";

pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free ports: the listeners are held together, so the OS cannot hand the same
/// port out twice.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("the OS gives a free port"))
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .map(|a| a.port())
            .expect("a bound port")
    })
}

pub fn digest_line(key: &str) -> String {
    format!("sha256:{}", hex::encode(tollgate::auth::digest(key)))
}

/// The consumers every test config ends with.
pub fn consumers() -> String {
    format!(
        "[[consumers]]\nname = \"team-a\"\nkeys = [\"{}\"]\nmodels = [\"*\"]\n\n\
         [[consumers]]\nname = \"team-limited\"\nkeys = [\"{}\"]\nmodels = [\"chat\"]\n",
        digest_line(KEY),
        digest_line(LIMITED_KEY)
    )
}

pub struct Gateway {
    child: Child,
    pub api: String,
    pub admin: String,
    pub access_log: PathBuf,
    /// The config file it runs on (rewrite it, then reload).
    pub config_path: PathBuf,
    stderr_log: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Admin tokens the gateway's environment holds in `TG_ADMIN_TOKENS` (for `[admin] token_env`).
pub const ADMIN_TOKENS: &str = "tg-admin-current-7f3a9c, tg-admin-previous-2b8e41";
/// The first of [`ADMIN_TOKENS`].
pub const ADMIN_TOKEN: &str = "tg-admin-current-7f3a9c";

impl Gateway {
    /// Start the gateway on `body` (providers, models; consumers are appended) with
    /// `[server]` extras such as `max_body_bytes = 1024`.
    pub fn start(body: &str) -> Gateway {
        Self::start_with(body, "")
    }

    pub fn start_with(body: &str, server_extra: &str) -> Gateway {
        Self::start_raw(server_extra, &format!("{body}\n{}", consumers()))
    }

    /// Start on `rest` as the whole config after `[server]` and `[log]` (consumers included).
    pub fn start_raw(server_extra: &str, rest: &str) -> Gateway {
        Self::spawn(server_extra, rest, None)
    }

    /// Start with plain HTTP off and the HTTPS listener on `tls_port` (in `server_extra`).
    pub fn start_tls_only(body: &str, server_extra: &str, tls_port: u16) -> Gateway {
        let rest = format!("{body}\n{}", consumers());
        Self::spawn(server_extra, &rest, Some(tls_port))
    }

    fn spawn(server_extra: &str, rest: &str, tls_only: Option<u16>) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let [api_port, admin_port] = free_ports();
        let access_log = dir.path().join("access.log");
        let listen = match tls_only {
            Some(_) => "off".to_string(),
            None => format!("127.0.0.1:{api_port}"),
        };
        let config = format!(
            "[server]\nlisten = \"{listen}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n\
             threads = 2\npid_file = \"{d}/tollgate.pid\"\nupgrade_sock = \"{d}/upgrade.sock\"\n{server_extra}\n\
             [log]\naccess_log = \"{log}\"\nlevel = \"warn\"\n\n{rest}",
            d = dir.path().display(),
            log = access_log.display(),
        );
        let config_path = dir.path().join("tollgate.toml");
        std::fs::write(&config_path, config).expect("write config");
        let stderr_log = dir.path().join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("-c")
            .arg(&config_path)
            .env("TG_UPSTREAM_KEY", UPSTREAM_KEY)
            .env("TG_ADMIN_TOKENS", ADMIN_TOKENS)
            .env("TG_MCP_SESSION_KEY", MCP_SESSION_KEY)
            .env("TG_PETSTORE_KEY", PETSTORE_KEY)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_log).expect("stderr file"))
            .spawn()
            .expect("spawn tollgate");
        let gw = Gateway {
            child,
            api: format!("http://127.0.0.1:{api_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            access_log,
            config_path,
            stderr_log,
            dir,
        };
        gw.wait_ready(tls_only.unwrap_or(api_port), admin_port);
        gw
    }

    fn wait_ready(&self, api_port: u16, admin_port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let api = std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok();
            let admin = std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_ok();
            if api && admin {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not start; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.api, path)
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("metrics reachable")
            .text()
            .await
            .expect("metrics body")
    }

    /// Access-log lines so far.
    pub fn log_lines(&self) -> Vec<Value> {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.access_log) {
            let _ = f.read_to_string(&mut text);
        }
        // A line still being written (no newline yet) is not read.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        let mut lines: Vec<Value> = complete
            .lines()
            .map(|l| serde_json::from_str(l).expect("access log lines are JSON"))
            .collect();
        // Lines are written as requests finish; tests read them in the order requests started.
        lines.sort_by(|a, b| started_at(a).total_cmp(&started_at(b)));
        lines
    }

    /// Wait (with a deadline) until the access log has `n` lines, and return them.
    pub async fn wait_log_lines(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.log_lines();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} access-log lines, have {}",
                lines.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until a metric's value equals `want` (metrics settle in `logging`, after the body).
    pub async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = metric(&self.metrics().await, name, labels);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}{labels:?} is {got}, want {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Send a signal (`TERM`, `HUP`, `QUIT`...) to a process this test started.
pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{name} {pid}");
}

impl Gateway {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait (with a deadline) for the process to exit; its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Start a second process on the same config with `-u` (graceful upgrade); it takes the
    /// listeners once this one gets SIGQUIT.
    pub fn start_upgrade(&self) -> Child {
        let stderr = self.dir.path().join("stderr-upgrade.log");
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("-u")
            .arg("-c")
            .arg(&self.config_path)
            .env("TG_UPSTREAM_KEY", UPSTREAM_KEY)
            .env("TG_ADMIN_TOKENS", ADMIN_TOKENS)
            .env("TG_MCP_SESSION_KEY", MCP_SESSION_KEY)
            .env("TG_PETSTORE_KEY", PETSTORE_KEY)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(stderr).expect("stderr file"))
            .spawn()
            .expect("spawn tollgate -u")
    }

    /// GET an admin path and parse its JSON.
    /// (With the admin token, which a gateway without `[admin] token_env` ignores.)
    pub async fn admin_json(&self, path: &str) -> Value {
        client()
            .get(format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin reachable")
            .json()
            .await
            .expect("admin JSON")
    }

    /// Poll an admin JSON path until `pred` holds (with a deadline); returns the last view.
    pub async fn wait_admin(&self, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.admin_json(path).await;
            if pred(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: last {path} was {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sum of the samples of `name` whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// When the request of an access-log line started, in seconds (its `ts` minus its duration).
fn started_at(line: &Value) -> f64 {
    let ts = line["ts"].as_str().unwrap_or("");
    let end = humantime::parse_rfc3339(ts)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    end - line["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0
}

/// Whether an external tool the tests need answers `probe` successfully. Locally a missing one
/// skips the test (it says so); under CI (`CI` set) it fails it, because `.ci/run` installs it.
pub fn tool_present(what: &str, mut probe: Command) -> bool {
    let ok = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide {what} (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {what} is not installed (run .ci/run once)");
    }
    ok
}

/// `$TOLLGATE_PYTHON`, else `.venv/bin/python`, if it can import `modules` (see [`tool_present`]).
pub fn python_with(modules: &str) -> Option<PathBuf> {
    let python = std::env::var_os("TOLLGATE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python")));
    let mut probe = Command::new(&python);
    probe.args(["-c", &format!("import {modules}")]);
    tool_present(&format!("python with {modules}"), probe).then_some(python)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A client that keeps no idle connections, so the gateway's connection gauges drain.
pub fn unpooled_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// One streaming chat request (`x-mock: script`) to `url` with the test key, on a
/// connection of its own, read to its end: the status and the body.
pub async fn stream_once(url: String, script: &str) -> (u16, String) {
    let r = unpooled_client()
        .post(url)
        .bearer_auth(KEY)
        .header("x-mock", script)
        .json(&chat_body("chat", true))
        .send()
        .await
        .expect("request sent");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

pub fn mock() -> MockServer {
    MockServer::start(Script::default()).expect("mock starts")
}

/// POST `body` to `path` with the test key.
pub async fn post(gw: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

pub fn chat_body(model: &str, stream: bool) -> Value {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello"}],
    })
}

/// The `data:` payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// A provider table: `kind` at `base_url`, keyed with `TG_UPSTREAM_KEY`, 1 s to connect,
/// 5 s per read, plus `extra` lines.
pub fn provider_toml(name: &str, kind: &str, base_url: &str, extra: &str) -> String {
    format!(
        "[[providers]]\nname = \"{name}\"\nkind = \"{kind}\"\nbase_url = \"{base_url}\"\n\
         api_key_env = \"TG_UPSTREAM_KEY\"\nconnect_timeout_ms = 1000\nread_timeout_ms = 5000\n\
         {MOCK_HEADERS}{extra}\n"
    )
}

/// The mock's scripting headers, forwarded by a provider that fronts it.
pub const MOCK_HEADERS: &str = "forward_headers = [\"x-mock\", \"x-mock-reply\"]\n";

/// The base URL of a mock at `url` behaving as `script` (a `/_mock/<script>` prefix).
pub fn mock_base(url: &str, script: &str) -> String {
    if script.is_empty() {
        format!("{url}/v1")
    } else {
        format!("{url}/_mock/{script}/v1")
    }
}

/// An OpenAI-compatible provider table for a mock at `url` behaving as `script`.
pub fn mock_provider(name: &str, url: &str, script: &str) -> String {
    provider_toml(name, "openai", &mock_base(url, script), "")
}

/// A body whose messages carry about `bytes` of text.
pub fn big_chat_body(model: &str, stream: bool, bytes: usize) -> Value {
    let text = "lorem ipsum ".repeat(bytes / 12 + 1);
    serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    })
}

/// A TCP relay in front of `backends` (`host:port`): each new connection goes to the next one
/// in turn, as a connection-alternating load balancer does. Returns its `http://` URL.
pub async fn alternating_relay(backends: Vec<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind relay");
    let addr = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        let mut n = 0usize;
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = backends[n % backends.len()].clone();
            n += 1;
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    format!("http://{addr}")
}
