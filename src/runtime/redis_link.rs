//! A Redis connection for work that has to wait for Redis's answer (a conversation another
//! instance stored, a stream another instance holds): one multiplexed connection, opened on
//! first use and dropped after any error (the next call reconnects), every command bounded by
//! `[redis] timeout_ms`. Background sync keeps its own connections.

use crate::config::RedisSettings;
use crate::store::Conn;
use std::sync::Mutex;
use std::time::Duration;

pub struct RedisLink {
    settings: RedisSettings,
    timeout: Duration,
    prefix: String,
    conn: Mutex<Option<Conn>>,
}

impl RedisLink {
    /// A link to the configured Redis (its current primary, asked at each connect).
    pub fn new(settings: &RedisSettings) -> Option<RedisLink> {
        Some(RedisLink {
            settings: settings.clone(),
            timeout: settings.timeout,
            prefix: settings.key_prefix.clone(),
            conn: Mutex::new(None),
        })
    }

    /// `[redis] key_prefix`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The start of one concern's keys: its hash tag and a colon (one slot on a Cluster).
    pub fn tagged(&self, group: &str) -> String {
        format!("{}:", crate::store::tag(&self.prefix, group))
    }

    /// A client for the current primary, for what needs its own connection (a pub/sub
    /// subscription).
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        crate::store::subscriber(&self.settings).await
    }

    /// Run one command (or pipeline) within the timeout, (re)connecting as needed.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let run = async {
            let existing = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let conn = match existing {
                Some(c) => c,
                None => {
                    let c = crate::store::connect(&self.settings, self.timeout)
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
