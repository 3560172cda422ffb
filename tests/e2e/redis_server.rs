//! A real `redis-server` for the tests: started on a free port with no persistence, stopped
//! and restarted on the same port, and asked for its command counts.

use crate::harness::free_port;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            port: free_port(),
            child: None,
        };
        r.restart();
        r
    }

    /// A replica of the server at `primary_port` (`--replicaof`), on a free port.
    pub fn start_replica_of(primary_port: u16) -> RedisServer {
        let mut r = RedisServer {
            port: free_port(),
            child: None,
        };
        r.spawn(&["--replicaof", "127.0.0.1", &primary_port.to_string()]);
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Start (again) on the same port, empty, and wait until it answers PING.
    pub fn restart(&mut self) {
        self.spawn(&[]);
    }

    fn spawn(&mut self, extra: &[&str]) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ping().is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill the server (like a crash): connections drop, data is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    fn ping(&self) -> redis::RedisResult<String> {
        redis::cmd("PING").query(&mut self.connection()?)
    }

    /// `DEBUG SLEEP secs`, sent without waiting: the server stops answering anyone for that
    /// long (alive, silent).
    pub fn debug_sleep(&self, secs: u64) {
        let port = self.port;
        std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
                return;
            };
            if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) {
                let _: redis::RedisResult<()> =
                    redis::cmd("DEBUG").arg("SLEEP").arg(secs).query(&mut c);
            }
        });
    }

    /// `CLIENT PAUSE ms ALL`: the server holds every client's commands (a stalled Redis).
    pub fn pause(&self, ms: u64) {
        let _: String = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(ms)
            .arg("ALL")
            .query(&mut self.connection().expect("redis reachable"))
            .expect("CLIENT PAUSE");
    }

    /// `total_commands_processed` from `INFO stats` (this query itself included).
    pub fn commands_processed(&self) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(&mut self.connection().expect("redis reachable"))
            .expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("total_commands_processed in INFO")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
