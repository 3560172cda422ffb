//! A real three-primary Redis Cluster (`redis-server --cluster-enabled yes`, joined with
//! `redis-cli --cluster create`) shared by two gateway instances: the limit sync, the key
//! table and its change stream, and usage analytics all work on it.

use crate::harness::*;
use crate::keys::{admin, chat_with};
use crate::limits::{chat, limits_config};
use reqwest::Method;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Cluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports::<3>().to_vec();
        let nodes = ports
            .iter()
            .map(|p| {
                Command::new("redis-server")
                    .args(["--port", &p.to_string(), "--bind", "127.0.0.1"])
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .args(["--cluster-config-file", &format!("nodes-{p}.conf")])
                    .arg("--dir")
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server")
            })
            .collect();
        let c = Cluster {
            nodes,
            ports,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.ports.iter().all(|p| c.info(*p).is_some()) {
            assert!(Instant::now() < deadline, "the nodes never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        let addrs: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let made = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(made.success(), "the cluster was not created");
        while !c
            .ports
            .iter()
            .all(|p| c.info(*p).is_some_and(|i| i.contains("cluster_state:ok")))
        {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn info(&self, port: u16) -> Option<String> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        redis::cmd("CLUSTER").arg("INFO").query(&mut conn).ok()
    }

    fn section(&self) -> String {
        let seeds: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        format!(
            "[redis]\ncluster = [{}]\nsync_interval_ms = 100\n",
            seeds.join(", ")
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

#[tokio::test]
async fn two_instances_share_limits_keys_and_usage_through_a_redis_cluster() {
    let cluster = Cluster::start();
    let mock = mock();
    const LIMIT: usize = 10;
    let config = format!(
        "{}\n[admin]\ntoken_env = \"TG_ADMIN_TOKENS\"\n",
        limits_config(
            &mock.url(),
            &format!("{{ rpm = {LIMIT} }}"),
            &cluster.section()
        )
    );
    let a = Gateway::start_raw("", &config);
    let b = Gateway::start_raw("", &config);
    for gw in [&a, &b] {
        gw.wait_metric("tollgate_ratelimit_store_up", &[("store", "redis")], 1.0)
            .await;
        assert_eq!(
            metric(
                &gw.metrics().await,
                "tollgate_store_topology",
                &[("topology", "cluster")]
            ),
            1.0
        );
    }
    // One limit across both: twice the limit offered, alternating, every 50 ms.
    let mut admitted = 0;
    for i in 0..2 * LIMIT {
        let gw = if i % 2 == 0 { &a } else { &b };
        let r = chat(gw, 1, false, "").await;
        match r.status().as_u16() {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
        r.bytes().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // docs/limits.md's bound at 10 req/s per instance, 100 ms interval and timeout: 4.
    assert!(
        (LIMIT..=LIMIT + 4).contains(&admitted),
        "admitted {admitted} of {}",
        2 * LIMIT
    );
    // A key made on A works on B (the key table's script and pipelines run in one slot).
    let (status, made) = admin(
        &a,
        Method::POST,
        "/admin/keys",
        Some(json!({"consumer": "team-a", "name": "on-a-cluster"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["key"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while chat_with(&b, &secret, "chat").await == 401 {
        assert!(Instant::now() < deadline, "B never saw the key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Usage from both instances, read on either.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = b.admin_json("/admin/usage?group_by=consumer").await;
        let seen = v["top"][0]["requests"].as_u64().unwrap_or(0);
        if v["source"] == "redis" && seen >= admitted as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "usage never shared: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
