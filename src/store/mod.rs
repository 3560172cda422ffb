//! Where the shared Redis is, and connections to it.
//!
//! `[redis]` names one server (`url`), a Sentinel group (`sentinels`, `master_name`) or a
//! Cluster (`cluster` seeds). Every part of the gateway that talks to Redis (the limit and usage
//! sync, the key table and its change stream, the MCP relay, the conversation store) opens its
//! connection with [`connect`] (a [`Conn`]) and its subscriptions from [`subscriber`] when it
//! (re)connects: with Sentinel that asks the sentinels which server is the primary now, so a
//! connection lost to a failover reconnects to the promoted replica; with Cluster the crate's
//! cluster connection follows the slots. Nothing here runs on a request's path.
//!
//! **Keys for Cluster.** Every pipeline and script touches one hash slot: each concern's keys
//! carry one hash tag ([`tag`]: `{prefix:rl}` limit counters, `{prefix:usage}` usage buckets,
//! `{prefix:keys}` the key table, `{prefix:resp}` stored conversations), so a sync tick is one
//! round trip per concern on any topology. Pub/sub uses the classic commands, which a Cluster
//! broadcasts to every node, so a subscription on any one node hears every instance.
//!
//! The `redis` crate's Sentinel and cluster clients do the finding (and check the server's
//! `ROLE`); written here: the settings' credentials on every kind of connection, one connection
//! type for the three topologies, and the `tollgate_store_*` metrics (the topology, the current
//! primary, each switch).

use crate::config::{RedisSettings, RedisTopology};
use crate::metrics::METRICS;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisFuture,
    RedisResult, Value,
};
use std::sync::Mutex;
use std::time::Duration;

/// The hash tag of one concern's keys: `{prefix:group}`.
pub fn tag(prefix: &str, group: &str) -> String {
    format!("{{{prefix}:{group}}}")
}

/// A connection to the store, whatever its topology.
#[derive(Clone)]
pub enum Conn {
    /// One server, or the primary a Sentinel group named.
    Server(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection with `timeout` on connecting and on each answer.
pub async fn connect(settings: &RedisSettings, timeout: Duration) -> RedisResult<Conn> {
    if let RedisTopology::Cluster { seeds } = &settings.topology {
        let nodes: Vec<String> = seeds
            .iter()
            .map(|(h, p)| format!("redis://{h}:{p}/"))
            .collect();
        let mut b = ClusterClientBuilder::new(nodes)
            .connection_timeout(timeout)
            .response_timeout(timeout);
        if let Some(u) = &settings.username {
            b = b.username(u.expose());
        }
        if let Some(p) = &settings.password {
            b = b.password(p.expose());
        }
        METRICS
            .store_topology
            .with_label_values(&["cluster"])
            .set(1);
        return Ok(Conn::Cluster(b.build()?.get_async_connection().await?));
    }
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let c = primary(settings)
        .await?
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    Ok(Conn::Server(c))
}

/// A client to subscribe with: the primary, or for a Cluster the first seed that answers
/// (classic pub/sub reaches every node of a Cluster).
pub async fn subscriber(settings: &RedisSettings) -> RedisResult<Client> {
    match &settings.topology {
        RedisTopology::Cluster { seeds } => seed(settings, seeds).await,
        RedisTopology::Url(_) | RedisTopology::Sentinel { .. } => primary(settings).await,
    }
}

/// A client for the first of a Cluster's `seeds` that answers.
async fn seed(settings: &RedisSettings, seeds: &[(String, u16)]) -> RedisResult<Client> {
    let mut last = None;
    for (host, port) in seeds {
        let info = format!("redis://{host}:{port}/").into_connection_info()?;
        let redis = credentials(settings, info.redis_settings().clone());
        let info = info.set_redis_settings(redis);
        let client = Client::open(info)?;
        match client.get_multiplexed_async_connection().await {
            Ok(_) => return Ok(client),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| (redis::ErrorKind::InvalidClientConfig, "no cluster seed").into()))
}

fn credentials(
    settings: &RedisSettings,
    mut redis: redis::RedisConnectionInfo,
) -> redis::RedisConnectionInfo {
    if let Some(u) = &settings.username {
        redis = redis.set_username(u.expose());
    }
    if let Some(p) = &settings.password {
        redis = redis.set_password(p.expose());
    }
    redis
}

/// The primary last reported, to count switches.
static LAST_PRIMARY: Mutex<Option<String>> = Mutex::new(None);

/// A client for the current primary (a Cluster's: its first seed's).
async fn primary(settings: &RedisSettings) -> RedisResult<Client> {
    let client = match &settings.topology {
        RedisTopology::Cluster { seeds } => seed(settings, seeds).await?,
        RedisTopology::Url(url) => {
            let info = url.as_str().into_connection_info()?;
            let redis = credentials(settings, info.redis_settings().clone());
            let info = info.set_redis_settings(redis);
            METRICS.store_topology.with_label_values(&["single"]).set(1);
            Client::open(info)?
        }
        RedisTopology::Sentinel {
            sentinels,
            master_name,
        } => {
            let addrs = sentinels
                .iter()
                .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
            let mut b = SentinelClientBuilder::new(addrs, master_name, SentinelServerType::Master)?;
            if let Some(u) = &settings.username {
                b = b.set_client_to_redis_username(u.expose());
            }
            if let Some(p) = &settings.password {
                b = b.set_client_to_redis_password(p.expose());
            }
            if let Some(p) = &settings.sentinel_password {
                b = b.set_client_to_sentinel_password(p.expose());
            }
            METRICS
                .store_topology
                .with_label_values(&["sentinel"])
                .set(1);
            b.build()?.async_get_client().await?
        }
    };
    note_primary(&client.get_connection_info().addr().to_string());
    Ok(client)
}

/// Record `addr` as the primary: the gauge moves to it, and a change is a switch.
fn note_primary(addr: &str) {
    let mut last = LAST_PRIMARY.lock().unwrap_or_else(|p| p.into_inner());
    if last.as_deref() == Some(addr) {
        return;
    }
    if let Some(old) = last.take() {
        METRICS.store_primary.remove_label_values(&[&old]).ok();
        METRICS.store_primary_switches.inc();
        log::warn!("redis: the primary is now {addr} (was {old})");
    }
    METRICS.store_primary.with_label_values(&[addr]).set(1);
    *last = Some(addr.to_string());
}
