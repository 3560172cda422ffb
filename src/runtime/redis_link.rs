//! A Redis connection for work that has to wait for Redis's answer (a conversation another
//! instance stored, a stream another instance holds): one multiplexed connection, opened on
//! first use and dropped after any error (the next call reconnects), every command bounded by
//! `[redis] timeout_ms`. Background sync keeps its own connections.

use crate::config::RedisSettings;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use std::sync::Mutex;
use std::time::Duration;

pub struct RedisLink {
    settings: RedisSettings,
    config: AsyncConnectionConfig,
    timeout: Duration,
    prefix: String,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl RedisLink {
    /// A link to the configured Redis (its current primary, asked at each connect).
    pub fn new(settings: &RedisSettings) -> Option<RedisLink> {
        Some(RedisLink {
            settings: settings.clone(),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(settings.timeout))
                .set_response_timeout(Some(settings.timeout)),
            timeout: settings.timeout,
            prefix: settings.key_prefix.clone(),
            conn: Mutex::new(None),
        })
    }

    /// `[redis] key_prefix`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A client for the current primary, for what needs its own connection (a pub/sub
    /// subscription).
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        crate::store::primary(&self.settings).await
    }

    /// Run one command (or pipeline) within the timeout, (re)connecting as needed.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let run = async {
            let existing = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let conn = match existing {
                Some(c) => c,
                None => {
                    let c = self
                        .client()
                        .await
                        .map_err(|e| e.to_string())?
                        .get_multiplexed_async_connection_with_config(&self.config)
                        .await
                        .map_err(|e| e.to_string())?;
                    *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
                    c
                }
            };
            f(conn).await.map_err(|e| e.to_string())
        };
        let result = match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "Redis did not answer within {} ms",
                self.timeout.as_millis()
            )),
        };
        if result.is_err() {
            *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        result
    }
}
