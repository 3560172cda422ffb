//! The key table in Redis, shared by every instance. Nothing here runs on a request.
//!
//! Layout (under `[redis] key_prefix`, `p`):
//! - `p:keys:records`: a hash, key id → the record as JSON (digests only, never a secret);
//! - `p:keys:version`: a counter, bumped by every change;
//! - `p:keys:epoch`: a random name for this generation of the table, so a Redis that lost its
//!   data and counted up again is never mistaken for the one an instance knew;
//! - `p:keys:changes`: a sorted set, key id → the version that last changed it, so an
//!   instance that knows version `n` reads only the records changed after `n`;
//! - `p:keys:changed`: the channel every change is announced on (the version).
//!
//! A change is a compare-and-set: read the record, apply the change, and write it with a
//! script that refuses if the record moved meanwhile (then the change is retried on the new
//! record). Version bump, write, change set and announcement happen in that one script.
//!
//! If Redis comes back empty (restarted without persistence), the first instance to notice
//! writes its last known-good table back (existing records are never overwritten), so no key
//! is lost by a Redis restart and every instance converges on the union.

use super::{Change, KeyRecord, StoreError};
use crate::config::RedisSettings;
use crate::store::Conn;
use std::time::Duration;

/// How often a change is retried when another instance changed the same key meanwhile.
const CAS_ATTEMPTS: usize = 8;

const WRITE_SCRIPT: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur or '') ~= ARGV[2] then return -1 end
local v = redis.call('INCR', KEYS[2])
redis.call('SETNX', KEYS[4], ARGV[5])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], v, ARGV[1])
redis.call('PUBLISH', ARGV[4], v)
return v
";

/// Where the shared table lives and how long a round trip may take.
#[derive(Debug)]
pub struct RemoteKeys {
    settings: RedisSettings,
    timeout: Duration,
    records: String,
    version: String,
    epoch: String,
    changes: String,
    channel: String,
}

/// Which state of the shared table a copy reflects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamp {
    pub epoch: String,
    pub version: i64,
}

/// What a refresh found.
#[derive(Debug)]
pub enum Update {
    Unchanged,
    /// The whole table (at start, or when Redis went back in time).
    Whole {
        stamp: Stamp,
        records: Vec<KeyRecord>,
    },
    /// The records changed since the version this instance knew.
    Changed {
        version: i64,
        records: Vec<KeyRecord>,
    },
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn parse(id: &str, json: &str) -> Option<KeyRecord> {
    match serde_json::from_str(json) {
        Ok(r) => Some(r),
        Err(e) => {
            log::warn!("keys: record `{id}` in Redis is unreadable ({e}); skipped");
            None
        }
    }
}

impl RemoteKeys {
    pub fn new(settings: &RedisSettings) -> Result<RemoteKeys, String> {
        let p = &settings.key_prefix;
        // One hash tag for the table's keys: its script and pipelines are one slot.
        let t = crate::store::tag(p, "keys");
        Ok(RemoteKeys {
            settings: settings.clone(),
            timeout: settings.timeout,
            records: format!("{t}:records"),
            version: format!("{t}:version"),
            epoch: format!("{t}:epoch"),
            changes: format!("{t}:changes"),
            channel: format!("{p}:keys:changed"),
        })
    }

    /// The channel changes are announced on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// A client for the current primary (a subscription opens its own connection from it).
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        crate::store::subscriber(&self.settings).await
    }

    /// A connection of its own for one change.
    pub async fn connect(&self) -> Result<Conn, StoreError> {
        crate::store::connect(&self.settings, self.timeout)
            .await
            .map_err(unavailable)
    }

    /// Write one change (retrying on a concurrent change to the same key). `local` is this
    /// instance's table, written back first when Redis has lost its copy.
    pub async fn write(
        &self,
        conn: &mut Conn,
        change: Change,
        local: impl FnOnce() -> Vec<KeyRecord>,
    ) -> Result<(), StoreError> {
        if self.stamp(conn).await.map_err(unavailable)?.is_none() {
            self.write_back(conn, &local()).await.map_err(unavailable)?;
        }
        let script = redis::Script::new(WRITE_SCRIPT);
        let id = change.id().to_string();
        for _ in 0..CAS_ATTEMPTS {
            let before: Option<String> = redis::cmd("HGET")
                .arg(&self.records)
                .arg(&id)
                .query_async(conn)
                .await
                .map_err(unavailable)?;
            let current = match &before {
                Some(json) => Some(serde_json::from_str(json).map_err(|e| {
                    unavailable(format!("record `{id}` in Redis is unreadable: {e}"))
                })?),
                None => None,
            };
            let next = change.clone().apply(current)?;
            let json = serde_json::to_string(&next).map_err(unavailable)?;
            let version: i64 = script
                .key(&self.records)
                .key(&self.version)
                .key(&self.changes)
                .key(&self.epoch)
                .arg(&id)
                .arg(before.as_deref().unwrap_or(""))
                .arg(&json)
                .arg(&self.channel)
                .arg(new_epoch())
                .invoke_async(conn)
                .await
                .map_err(unavailable)?;
            if version >= 0 {
                return Ok(());
            }
        }
        Err(unavailable(format!(
            "key `{id}` kept changing under {CAS_ATTEMPTS} attempts; try again"
        )))
    }

    /// The shared table's stamp; `None` when Redis holds no table.
    async fn stamp(&self, conn: &mut Conn) -> redis::RedisResult<Option<Stamp>> {
        let (version, epoch): (Option<i64>, Option<String>) = redis::cmd("MGET")
            .arg(&self.version)
            .arg(&self.epoch)
            .query_async(conn)
            .await?;
        Ok(version.map(|version| Stamp {
            epoch: epoch.unwrap_or_default(),
            version,
        }))
    }

    /// What changed since `known`. `local` is this instance's table, written back when Redis
    /// has lost its copy.
    pub async fn read(
        &self,
        conn: &mut Conn,
        known: &Stamp,
        local: impl FnOnce() -> Vec<KeyRecord>,
    ) -> redis::RedisResult<Update> {
        match self.stamp(conn).await? {
            None => {
                let records = local();
                if records.is_empty() {
                    return Ok(Update::Unchanged);
                }
                self.write_back(conn, &records).await?;
                self.read_whole(conn).await
            }
            Some(s) if s == *known => Ok(Update::Unchanged),
            Some(s) if s.epoch != known.epoch || s.version < known.version => {
                self.read_whole(conn).await
            }
            Some(s) => self.read_changed(conn, known.version, s.version).await,
        }
    }

    async fn read_whole(&self, conn: &mut Conn) -> redis::RedisResult<Update> {
        let (all, version, epoch): (Vec<(String, String)>, Option<i64>, Option<String>) =
            redis::pipe()
                .atomic()
                .hgetall(&self.records)
                .get(&self.version)
                .get(&self.epoch)
                .query_async(conn)
                .await?;
        let records = all
            .iter()
            .filter_map(|(id, json)| parse(id, json))
            .collect();
        Ok(Update::Whole {
            stamp: Stamp {
                epoch: epoch.unwrap_or_default(),
                version: version.unwrap_or(0),
            },
            records,
        })
    }

    async fn read_changed(
        &self,
        conn: &mut Conn,
        known: i64,
        version: i64,
    ) -> redis::RedisResult<Update> {
        let changed: Vec<(String, i64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(&self.changes)
            .arg(format!("({known}"))
            .arg("+inf")
            .arg("WITHSCORES")
            .query_async(conn)
            .await?;
        if changed.is_empty() {
            return Ok(Update::Changed {
                version,
                records: Vec::new(),
            });
        }
        let ids: Vec<&str> = changed.iter().map(|(id, _)| id.as_str()).collect();
        let jsons: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&self.records)
            .arg(&ids)
            .query_async(conn)
            .await?;
        let records = ids
            .iter()
            .zip(jsons)
            .filter_map(|(id, json)| parse(id, json.as_deref()?))
            .collect();
        let newest = changed.iter().map(|(_, v)| *v).max().unwrap_or(version);
        Ok(Update::Changed {
            version: newest.max(version),
            records,
        })
    }

    /// Put `records` back into an empty Redis without overwriting any record there.
    async fn write_back(&self, conn: &mut Conn, records: &[KeyRecord]) -> redis::RedisResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for r in records {
            let json = serde_json::to_string(r).unwrap_or_default();
            pipe.hset_nx(&self.records, &r.id, json).ignore();
            pipe.cmd("ZADD")
                .arg(&self.changes)
                .arg("NX")
                .arg(1)
                .arg(&r.id)
                .ignore();
        }
        pipe.cmd("SET").arg(&self.version).arg(1).arg("NX").ignore();
        pipe.cmd("SET")
            .arg(&self.epoch)
            .arg(new_epoch())
            .arg("NX")
            .ignore();
        pipe.query_async::<()>(conn).await?;
        log::warn!(
            "keys: Redis had no key table; wrote back this instance's {} keys",
            records.len()
        );
        Ok(())
    }
}

/// A fresh generation name.
fn new_epoch() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}
