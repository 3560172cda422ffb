//! Where the shared Redis is, and a client for its current primary.
//!
//! `[redis]` names one server (`url`) or a Sentinel group (`sentinels`, `master_name`). Every
//! part of the gateway that talks to Redis (the limit and usage sync, the key table and its
//! change stream, the MCP relay, the conversation store) asks [`primary`] for a client when it
//! (re)connects: with Sentinel that asks the sentinels which server is the primary now, so a
//! connection lost to a failover reconnects to the promoted replica. Nothing here runs on a
//! request's path.
//!
//! The `redis` crate's Sentinel client does the asking (and checks the server's `ROLE`);
//! written here: the settings' credentials on both kinds of connection, and the
//! `tollgate_store_*` metrics (the topology, the current primary, each switch).

use crate::config::{RedisSettings, RedisTopology};
use crate::metrics::METRICS;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisResult};
use std::sync::Mutex;

/// The primary last reported, to count switches.
static LAST_PRIMARY: Mutex<Option<String>> = Mutex::new(None);

/// A client for the current primary (connections are opened from it by the caller).
pub async fn primary(settings: &RedisSettings) -> RedisResult<Client> {
    let client = match &settings.topology {
        RedisTopology::Url(url) => {
            let mut info = url.as_str().into_connection_info()?;
            let mut redis = info.redis_settings().clone();
            if let Some(u) = &settings.username {
                redis = redis.set_username(u.expose());
            }
            if let Some(p) = &settings.password {
                redis = redis.set_password(p.expose());
            }
            info = info.set_redis_settings(redis);
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
