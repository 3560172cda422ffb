//! Delivery for the legacy HTTP+SSE transport, whose answers travel on a stream the client
//! holds open on one instance while its messages may be posted to any other.
//!
//! The instance holding a stream registers it here (and, with `[redis]`, marks it in Redis
//! with a key it refreshes while the stream lives). A message posted elsewhere is checked
//! against that mark before it is accepted: no mark is 404 (no such stream anywhere), a Redis
//! that does not answer within `redis.timeout_ms` is 503. The answer is then published on the
//! stream's channel; [`RelayListener`] on the holding instance passes it to the stream.
//! Without Redis, only the holding instance can take the stream's messages (sticky routing).

use crate::config::RedisSettings;
use crate::runtime::redis_link::RedisLink;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// Events waiting for a slow stream before posting to it waits.
const QUEUE: usize = 64;
/// How long a stream's mark outlives its last refresh.
pub const MARK_TTL_S: u64 = 60;

/// Where a stream is.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Local,
    /// Held by another instance (its mark is in Redis).
    Remote,
    Nowhere,
    /// Redis did not answer: whether the stream exists elsewhere is unknown.
    StoreDown,
}

/// The streams this instance holds, and the way to the others'.
#[derive(Default)]
pub struct Relay {
    streams: Mutex<HashMap<String, mpsc::Sender<Bytes>>>,
    store: Option<RedisLink>,
}

/// A registered stream; dropping it unregisters it.
pub struct Registered<'a> {
    relay: &'a Relay,
    id: String,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.relay.streams().remove(&self.id);
    }
}

impl Relay {
    pub fn new(redis: Option<&RedisSettings>) -> Relay {
        let store = redis.and_then(RedisLink::new);
        Relay {
            streams: Mutex::default(),
            store,
        }
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<String, mpsc::Sender<Bytes>>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a stream this instance holds.
    pub fn register(&self, id: &str) -> (Registered<'_>, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        self.streams().insert(id.to_string(), tx);
        (
            Registered {
                relay: self,
                id: id.to_string(),
            },
            rx,
        )
    }

    fn channel_prefix(prefix: &str) -> String {
        format!("{prefix}mcp:sse:")
    }

    /// Mark (or refresh the mark of) a stream held here; a no-op without Redis.
    pub async fn mark(&self, id: &str) {
        let Some(store) = &self.store else { return };
        let key = format!("{}{id}", Self::channel_prefix(store.prefix()));
        let marked = store
            .run(|mut c| async move { c.set_ex::<_, _, ()>(&key, 1, MARK_TTL_S).await })
            .await;
        if let Err(e) = marked {
            log::warn!("mcp: cannot mark a legacy SSE stream in Redis ({e}); its messages must come to this instance");
        }
    }

    /// Remove a stream's mark.
    pub async fn unmark(&self, id: &str) {
        let Some(store) = &self.store else { return };
        let key = format!("{}{id}", Self::channel_prefix(store.prefix()));
        let _removed = store
            .run(|mut c| async move { c.del::<_, ()>(&key).await })
            .await;
    }

    /// Where the stream `id` is.
    pub async fn route(&self, id: &str) -> Route {
        if self.streams().contains_key(id) {
            return Route::Local;
        }
        let Some(store) = &self.store else {
            return Route::Nowhere;
        };
        let key = format!("{}{id}", Self::channel_prefix(store.prefix()));
        match store
            .run(|mut c| async move { c.exists::<_, bool>(&key).await })
            .await
        {
            Ok(true) => Route::Remote,
            Ok(false) => Route::Nowhere,
            Err(_) => Route::StoreDown,
        }
    }

    /// Hand an event to the stream `id`, here or through Redis.
    pub async fn deliver(&self, id: &str, event: Bytes) -> Result<(), String> {
        let local = self.streams().get(id).cloned();
        if let Some(tx) = local {
            return tx
                .send(event)
                .await
                .map_err(|_| "the stream closed".to_string());
        }
        let store = self
            .store
            .as_ref()
            .ok_or("the stream is not on this instance")?;
        let channel = format!("{}{id}", Self::channel_prefix(store.prefix()));
        store
            .run(|mut c| async move { c.publish::<_, _, ()>(&channel, event.to_vec()).await })
            .await
    }

    /// Pass an event published for stream `id` to it, if it is here.
    fn relayed(&self, id: &str, event: Bytes) {
        let local = self.streams().get(id).cloned();
        if let Some(tx) = local {
            if tx.try_send(event).is_err() {
                log::warn!("mcp: a relayed event found its stream full or closed; dropped");
            }
        }
    }
}

/// Subscribes (with `[redis]`) to every stream's channel and passes what arrives to the
/// streams this instance holds. Reconnects after a failure, every `retry`.
pub struct RelayListener {
    pub bridge: Arc<super::Bridge>,
    pub retry: Duration,
}

#[async_trait]
impl BackgroundService for RelayListener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let relay = &self.bridge.relay;
        let Some(store) = &relay.store else { return };
        let prefix = Relay::channel_prefix(store.prefix());
        loop {
            let listen = async {
                let mut pubsub = store.client().await?.get_async_pubsub().await?;
                pubsub.psubscribe(format!("{prefix}*")).await?;
                let mut messages = pubsub.on_message();
                while let Some(m) = messages.next().await {
                    let channel = m.get_channel_name().to_string();
                    if let (Some(id), Ok(payload)) =
                        (channel.strip_prefix(&prefix), m.get_payload::<Vec<u8>>())
                    {
                        relay.relayed(id, Bytes::from(payload));
                    }
                }
                Ok::<(), redis::RedisError>(())
            };
            let ended = tokio::select! {
                r = listen => r,
                _ = shutdown.changed() => return,
            };
            if let Err(e) = ended {
                log::debug!("mcp relay listener: {e}; retrying in {:?}", self.retry);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.retry) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
