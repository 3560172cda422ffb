//! A Sentinel group on loopback: a primary, a replica and three sentinels (`redis-server
//! --sentinel`), the gateway following the primary through a failover.

use crate::harness::*;
use crate::limits::{chat, limits_config};
use crate::redis_server::RedisServer;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The name the sentinels monitor.
pub const MASTER: &str = "tollgate-primary";

pub struct Sentinels {
    children: Vec<Child>,
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Sentinels {
    /// Three sentinels watching the primary at `port` (quorum 2, down after 1 s).
    pub fn start(primary_port: u16) -> Sentinels {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports::<3>().to_vec();
        let children = ports
            .iter()
            .map(|p| {
                let conf = dir.path().join(format!("sentinel-{p}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "port {p}\nbind 127.0.0.1\ndir {}\n\
                         sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n\
                         sentinel down-after-milliseconds {MASTER} 1000\n\
                         sentinel failover-timeout {MASTER} 10000\n",
                        dir.path().display()
                    ),
                )
                .unwrap();
                Command::new("redis-server")
                    .arg(&conf)
                    .arg("--sentinel")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server --sentinel")
            })
            .collect();
        Sentinels {
            children,
            ports,
            _dir: dir,
        }
    }

    /// The primary's port as the first sentinel answering says.
    pub fn primary_port(&self) -> Option<u16> {
        self.ports.iter().find_map(|p| {
            let client = redis::Client::open(format!("redis://127.0.0.1:{p}/")).ok()?;
            let mut c = client
                .get_connection_with_timeout(Duration::from_secs(1))
                .ok()?;
            let addr: Vec<String> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER)
                .query(&mut c)
                .ok()?;
            addr.get(1)?.parse().ok()
        })
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `INFO replication` of the server at `port`: whether it is a replica with its link up.
pub fn replica_linked(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return false;
    };
    let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
        return false;
    };
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut c)
        .unwrap_or_default();
    info.contains("master_link_status:up")
}

/// A primary, its replica (linked) and three sentinels that see the primary.
pub struct Group {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Sentinels,
}

impl Group {
    pub fn start() -> Group {
        let primary = RedisServer::start();
        let replica = RedisServer::start_replica_of(primary.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !replica_linked(replica.port) {
            assert!(Instant::now() < deadline, "the replica never linked");
            std::thread::sleep(Duration::from_millis(50));
        }
        let sentinels = Sentinels::start(primary.port);
        while sentinels.primary_port() != Some(primary.port) {
            assert!(
                Instant::now() < deadline,
                "the sentinels never saw the primary"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Group {
            primary,
            replica,
            sentinels,
        }
    }

    /// The `[redis]` section naming the sentinels, syncing every `interval_ms`.
    pub fn section(&self, interval_ms: u64) -> String {
        let list: Vec<String> = self
            .sentinels
            .ports
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        format!(
            "[redis]\nsentinels = [{}]\nmaster_name = \"{MASTER}\"\nsync_interval_ms = {interval_ms}\non_failure = \"local\"\n",
            list.join(", ")
        )
    }
}

/// How the primary fails.
#[derive(Clone, Copy)]
enum Fault {
    /// Killed, as a crash.
    Kill,
    /// `DEBUG SLEEP`: alive but silent for longer than the sentinels wait.
    Stall,
}

async fn follows_a_failover(fault: Fault) {
    let mut group = Group::start();
    let mock = mock();
    let gw = Gateway::start_raw(
        "",
        &limits_config(&mock.url(), "{ rpm = 100000 }", &group.section(100)),
    );
    gw.wait_metric("tollgate_ratelimit_store_up", &[("store", "redis")], 1.0)
        .await;
    let before = format!("127.0.0.1:{}", group.primary.port);
    gw.wait_metric("tollgate_store_primary", &[("address", &before)], 1.0)
        .await;
    assert_eq!(
        metric(
            &gw.metrics().await,
            "tollgate_store_topology",
            &[("topology", "sentinel")]
        ),
        1.0
    );
    match fault {
        Fault::Kill => group.primary.kill(),
        Fault::Stall => group.primary.debug_sleep(8),
    }
    let failed = Instant::now();
    let after = format!("127.0.0.1:{}", group.replica.port);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut served = 0;
    loop {
        let r = chat(&gw, 1, false, "").await;
        assert_eq!(r.status(), 200, "a request during the failover");
        r.bytes().await.unwrap();
        served += 1;
        let m = gw.metrics().await;
        if metric(&m, "tollgate_store_primary", &[("address", &after)]) == 1.0
            && metric(&m, "tollgate_ratelimit_store_up", &[("store", "redis")]) == 1.0
        {
            assert!(
                metric(&m, "tollgate_store_primary_switches_total", &[]) >= 1.0,
                "{m}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the gateway never followed: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let followed = failed.elapsed().as_millis();
    // Syncing with the promoted primary: its sync count keeps rising.
    let syncs = |m: &str| metric(m, "tollgate_ratelimit_syncs_total", &[]);
    let at = syncs(&gw.metrics().await);
    let deadline = Instant::now() + Duration::from_secs(10);
    while syncs(&gw.metrics().await) < at + 3.0 {
        assert!(Instant::now() < deadline, "no sync after the switch");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let how = match fault {
        Fault::Kill => "killed",
        Fault::Stall => "stalled (DEBUG SLEEP)",
    };
    eprintln!(
        "sentinel failover, primary {how}: followed {followed} ms after (sentinels' down-after: 1,000 ms); {served} requests served meanwhile, none lost"
    );
}

#[tokio::test]
async fn the_gateway_follows_a_sentinel_failover_and_loses_no_request() {
    follows_a_failover(Fault::Kill).await;
}

#[tokio::test]
async fn a_stalled_primary_is_left_for_the_promoted_one() {
    follows_a_failover(Fault::Stall).await;
}
