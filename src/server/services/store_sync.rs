//! The one background conversation with Redis (with `[redis]`): every `sync_interval_ms`,
//! and at once when another instance announces a key change, one tick
//! - syncs the limiter's counts ([`crate::limits::sync`]),
//! - writes the usage roll-ups ([`crate::telemetry::analytics`]),
//! - brings the key table up to date ([`crate::auth::keys`]: one `GET` of its version when nothing
//!   changed).
//!
//! A failed tick drops the connection and backs off (up to the interval, at least 1 s); the
//! limiter then decides by `on_failure` and the key table keeps its last known-good copy.
//! Nothing here is ever awaited by a request.

use crate::auth::keys::KeyStore;
use crate::limits::sync::StoreSync;
use crate::metrics::METRICS;
use crate::store::Conn;
use crate::telemetry::analytics::Rollups;
use async_trait::async_trait;
use futures_util::StreamExt;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The sync loop.
pub struct RedisSync {
    pub limits: StoreSync,
    pub usage: Arc<Rollups>,
    pub keys: Arc<KeyStore>,
    /// Woken by [`KeyChanges`].
    pub wake: Arc<Notify>,
}

impl RedisSync {
    async fn tick(
        &self,
        conn: &mut Option<Conn>,
        stale_fields: &mut Vec<(String, String)>,
    ) -> redis::RedisResult<()> {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => conn.insert(
                crate::store::connect(&self.limits.settings, self.limits.settings.timeout).await?,
            ),
        };
        self.limits.sync_once(c, stale_fields).await?;
        let s = &self.limits.settings;
        self.usage
            .flush(c, &s.key_prefix, &self.limits.instance)
            .await?;
        if self.keys.refresh(c).await? {
            METRICS.key_table_refreshes.inc();
        }
        Ok(())
    }
}

#[async_trait]
impl BackgroundService for RedisSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let settings = &self.limits.settings;
        let interval = settings.sync_interval;
        let timeout = settings.timeout;
        let max_backoff = interval.max(Duration::from_secs(1));
        let gauge = METRICS.ratelimit_store_up.with_label_values(&["redis"]);
        gauge.set(0);
        let limiter = &self.limits.limiter;
        let mut conn: Option<Conn> = None;
        let mut stale_fields = Vec::new();
        let mut logged: Option<bool> = None;
        let mut wait = interval;
        loop {
            let tick = self.tick(&mut conn, &mut stale_fields);
            let result = match tokio::time::timeout(timeout, tick).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            };
            match result {
                Ok(()) => {
                    limiter.set_store_up(true);
                    gauge.set(1);
                    METRICS.ratelimit_syncs.inc();
                    if logged != Some(true) {
                        log::info!("rate-limit store up: syncing with Redis every {interval:?}");
                        logged = Some(true);
                    }
                    wait = interval;
                }
                Err(e) => {
                    conn = None;
                    limiter.set_store_up(false);
                    gauge.set(0);
                    METRICS.ratelimit_store_errors.inc();
                    if logged != Some(false) {
                        log::warn!(
                            "rate-limit store down ({e}); deciding by on_failure = {:?} (the key table keeps its last copy) until it returns",
                            settings.on_failure
                        );
                        logged = Some(false);
                    }
                    wait = (wait * 2).min(max_backoff);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Listens for key changes other instances announce, and wakes the sync loop so they apply
/// within one round trip instead of one interval. Lost messages only cost that interval.
pub struct KeyChanges {
    pub keys: Arc<KeyStore>,
    pub wake: Arc<Notify>,
    pub retry: Duration,
}

#[async_trait]
impl BackgroundService for KeyChanges {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(remote) = self.keys.remote() else {
            return;
        };
        loop {
            let listen = async {
                let mut pubsub = remote.client().await?.get_async_pubsub().await?;
                pubsub.subscribe(remote.channel()).await?;
                // Anything announced while we were away is read on this wake-up.
                self.wake.notify_one();
                let mut messages = pubsub.on_message();
                while messages.next().await.is_some() {
                    self.wake.notify_one();
                }
                Ok::<(), redis::RedisError>(())
            };
            let ended = tokio::select! {
                r = listen => r,
                _ = shutdown.changed() => return,
            };
            if let Err(e) = ended {
                log::debug!("key change listener: {e}; retrying in {:?}", self.retry);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.retry) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
