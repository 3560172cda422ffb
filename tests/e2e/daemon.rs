//! Daemon mode and the systemd unit: `-d` starts a daemon, the unit's reload sequence
//! (`-u -d`, then SIGQUIT to the old pid) upgrades with no failed request, and
//! `systemd-analyze verify` accepts the unit.

use crate::harness::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Stops the daemons a test started, whatever happens to the test.
struct Daemons(Vec<u32>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for pid in &self.0 {
            if alive(*pid) {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
}

/// Poll `f` until it yields (with a deadline).
async fn wait_for<T>(f: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn run(args: &[&str], config: &Path) -> std::process::ExitStatus {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .arg("-c")
        .arg(config)
        .env("TG_UPSTREAM_KEY", UPSTREAM_KEY)
        .status()
        .expect("run tollgate")
}

#[tokio::test]
async fn daemon_start_and_the_units_reload_sequence() {
    let mock = mock();
    let dir = tempfile::tempdir().unwrap();
    let [api, admin] = free_ports();
    let pid_file = dir.path().join("tollgate.pid");
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{api}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
             pid_file = \"{}\"\nupgrade_sock = \"{}\"\ngrace_period_seconds = 1\n\
             graceful_shutdown_timeout_seconds = 2\n[log]\naccess_log = \"off\"\nlevel = \"warn\"\n\
             {}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"x\" }}]\n{}",
            pid_file.display(),
            dir.path().join("upgrade.sock").display(),
            mock_provider("m", &mock.url(), ""),
            consumers()
        ),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{api}/v1/chat/completions");
    let ask = || async {
        let r = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
            .post(&url)
            .bearer_auth(KEY)
            .json(&chat_body("chat", false))
            .send()
            .await;
        matches!(r, Ok(r) if r.status() == 200)
    };

    // ExecStart: -d forks the daemon, which writes the pid file and starts listening.
    assert!(run(&["-d"], &config).success());
    let old = wait_for(|| read_pid(&pid_file)).await;
    let mut daemons = Daemons(vec![old]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ask().await {
        assert!(Instant::now() < deadline, "the daemon never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // ExecReload: -u -d, then SIGQUIT to the old pid; requests never fail.
    assert!(run(&["-u", "-d"], &config).success());
    let new = wait_for(|| read_pid(&pid_file).filter(|p| *p != old)).await;
    daemons.0.push(new);
    signal(old, "QUIT");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut served = 0;
    while alive(old) {
        assert!(ask().await, "a request failed during the upgrade");
        served += 1;
        assert!(Instant::now() < deadline, "the old daemon did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served > 10);
    assert!(ask().await, "the new daemon serves");

    // ExecStop: SIGTERM, and it is gone.
    signal(new, "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(new) {
        assert!(Instant::now() < deadline, "the daemon did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let mut probe = Command::new("systemd-analyze");
    probe.arg("--version");
    if !tool_present("systemd-analyze", probe) {
        return;
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/tollgate.service"
    ))
    .unwrap();
    // verify checks that the executables exist: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/tollgate", env!("CARGO_BIN_EXE_tollgate")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("tollgate.service"),
        "systemd-analyze has remarks on the unit:\n{stderr}"
    );
}
