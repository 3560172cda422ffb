//! Client keys managed at run time (`/admin/keys`, `tollgate keys`): created, listed, rotated
//! with a grace period, revoked, expiring. Every instance holds the whole table in memory, so
//! authenticating never touches a store. Secrets are never kept: records hold SHA-256
//! digests, compared in constant time.
//!
//! Where the table lives ([`Backing`]):
//! - with `[redis]`, in Redis ([`remote`]): changes are written there first (a 503 when it is
//!   unreachable), and every instance refreshes its copy on the store sync tick and at once on
//!   a change notice; while Redis is down the last known-good table keeps serving. `[keys]
//!   state_file`, if set, is then a local cache of that table, read at start;
//! - without Redis, in `[keys] state_file`, written atomically and loaded at start;
//! - with neither, there are no API keys (creating one is a 503 that says what to set).
//!
//! Keys from the config file keep working as they did; the API lists them read-only.

pub mod api;
pub mod cli;
mod record;
mod remote;
mod state_file;

use crate::types::key_digest::{digest, KeyDigest};
use arc_swap::ArcSwap;
pub use record::{KeyRecord, KeyState, PreviousSecret};
use remote::RemoteKeys;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// One key in the live table, with when it was last used (approximate, not persisted).
#[derive(Debug)]
pub struct Entry {
    pub record: KeyRecord,
    /// The id, shared by every request the key makes (its usage-analytics label).
    pub label: Arc<str>,
    /// Its own limits, read once (empty: none).
    pub limits: crate::config::LimitSet,
    /// Where it works from, read once (empty: anywhere its consumer's do).
    pub ip_rules: crate::config::IpRules,
    pub last_used: AtomicI64,
}

/// The live table: every record by id, and the digests that open them.
#[derive(Debug, Default, Clone)]
struct Table {
    by_id: HashMap<String, Arc<Entry>>,
    /// Digest → (entry, whether it is the rotated-out secret).
    by_digest: HashMap<KeyDigest, (Arc<Entry>, bool)>,
    /// The state of the Redis table this copy reflects (default: none yet, or no Redis).
    stamp: remote::Stamp,
}

impl Table {
    fn build(records: Vec<KeyRecord>, previous: &Table, stamp: remote::Stamp) -> Table {
        let mut t = Table {
            stamp,
            ..Table::default()
        };
        for record in records {
            t.put(record, previous);
        }
        t
    }

    /// Add or replace one record (keeping when it was last used).
    fn put(&mut self, record: KeyRecord, previous: &Table) {
        let last = previous
            .by_id
            .get(&record.id)
            .map_or(0, |e| e.last_used.load(Ordering::Relaxed));
        if let Some(old) = self.by_id.remove(&record.id) {
            self.by_digest.remove(&old.record.digest);
            if let Some(p) = &old.record.previous {
                self.by_digest.remove(&p.digest);
            }
        }
        let entry = Arc::new(Entry {
            label: record.id.as_str().into(),
            limits: record.limit_set(),
            ip_rules: record.ip_rules(&mut Vec::new()),
            record,
            last_used: AtomicI64::new(last),
        });
        self.by_digest
            .insert(entry.record.digest, (Arc::clone(&entry), false));
        if let Some(p) = &entry.record.previous {
            self.by_digest.insert(p.digest, (Arc::clone(&entry), true));
        }
        self.by_id.insert(entry.record.id.clone(), entry);
    }

    fn records(&self) -> Vec<KeyRecord> {
        let mut all: Vec<KeyRecord> = self.by_id.values().map(|e| e.record.clone()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

/// What an API key opened: its entry (consumer, the models it narrows that consumer to, id),
/// shared rather than copied per request.
pub type KeyGrant = Arc<Entry>;

/// Why a change to the table was refused.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no key store is configured: set [keys] state_file or [redis]")]
    Unconfigured,
    #[error("no key with id `{0}`")]
    UnknownKey(String),
    #[error("a key with id `{0}` exists already")]
    Exists(String),
    #[error("the key store could not be written: {0}")]
    Write(std::io::Error),
    #[error("the key store (Redis) is unavailable: {0}; existing keys keep working")]
    Unavailable(String),
}

/// One change to one key.
#[derive(Debug, Clone)]
pub enum Change {
    Insert(Box<KeyRecord>),
    /// A new secret (`digest`); the old one works until `until`.
    Rotate {
        id: String,
        digest: KeyDigest,
        until: i64,
    },
    Revoke {
        id: String,
        at: i64,
    },
}

impl Change {
    fn id(&self) -> &str {
        match self {
            Change::Insert(r) => &r.id,
            Change::Rotate { id, .. } | Change::Revoke { id, .. } => id,
        }
    }

    /// The record after this change, from the record before it.
    fn apply(self, current: Option<KeyRecord>) -> Result<KeyRecord, StoreError> {
        match (self, current) {
            (Change::Insert(r), None) => Ok(*r),
            (Change::Insert(r), Some(_)) => Err(StoreError::Exists(r.id)),
            (Change::Rotate { id, .. } | Change::Revoke { id, .. }, None) => {
                Err(StoreError::UnknownKey(id))
            }
            (Change::Rotate { digest, until, .. }, Some(mut r)) => {
                r.previous = Some(PreviousSecret {
                    digest: r.digest,
                    until,
                });
                r.digest = digest;
                Ok(r)
            }
            (Change::Revoke { at, .. }, Some(mut r)) => {
                r.revoked_at.get_or_insert(at);
                Ok(r)
            }
        }
    }
}

/// Where the table is kept.
#[derive(Debug)]
enum Backing {
    Unconfigured,
    File(PathBuf),
    Redis {
        remote: Box<RemoteKeys>,
        cache: Option<PathBuf>,
    },
}

/// The process's key table (it outlives config reloads).
#[derive(Debug)]
pub struct KeyStore {
    table: ArcSwap<Table>,
    backing: Backing,
    /// One change (or refresh) at a time, each persisted before it is visible.
    writer: tokio::sync::Mutex<()>,
}

impl KeyStore {
    /// Open the store. `state_file` is loaded when it exists (a leftover temp file from an
    /// interrupted write is ignored); with `redis`, it is only the cache Redis refreshes.
    pub fn open(
        state_file: Option<PathBuf>,
        redis: Option<&crate::config::RedisSettings>,
    ) -> Result<KeyStore, String> {
        let records = match &state_file {
            Some(path) => state_file::load(path)?,
            None => Vec::new(),
        };
        let backing = match (redis, state_file) {
            (Some(r), cache) => Backing::Redis {
                remote: Box::new(RemoteKeys::new(r)?),
                cache,
            },
            (None, Some(path)) => Backing::File(path),
            (None, None) => Backing::Unconfigured,
        };
        Ok(KeyStore {
            table: ArcSwap::from_pointee(Table::build(
                records,
                &Table::default(),
                remote::Stamp::default(),
            )),
            backing,
            writer: tokio::sync::Mutex::new(()),
        })
    }

    pub fn configured(&self) -> bool {
        !matches!(self.backing, Backing::Unconfigured)
    }

    /// The shared store, when the table lives in Redis.
    pub fn remote(&self) -> Option<&RemoteKeys> {
        match &self.backing {
            Backing::Redis { remote, .. } => Some(remote),
            Backing::File(_) | Backing::Unconfigured => None,
        }
    }

    /// The grant of `key`, if it is an active API key (or a rotated one in its grace period).
    pub fn authenticate(&self, key: &str, now_s: i64) -> Option<KeyGrant> {
        let d = digest(key);
        let table = self.table.load();
        let (stored, (entry, previous)) = table.by_digest.get_key_value(&d)?;
        if !bool::from(stored.ct_eq(&d)) {
            return None;
        }
        let r = &entry.record;
        let usable = r.state(now_s) == KeyState::Active
            && (!previous || r.previous.as_ref().is_some_and(|p| now_s < p.until));
        if !usable {
            return None;
        }
        entry.last_used.store(now_s, Ordering::Relaxed);
        Some(Arc::clone(entry))
    }

    /// Every API key, in id order.
    pub fn list(&self) -> Vec<Arc<Entry>> {
        let table = self.table.load();
        let mut all: Vec<Arc<Entry>> = table.by_id.values().cloned().collect();
        all.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        all
    }

    /// One key's entry.
    pub fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.table.load().by_id.get(id).cloned()
    }

    /// Apply one change: persisted (to the file or to Redis) before it is live here.
    pub async fn change(&self, change: Change) -> Result<(), StoreError> {
        let _one_at_a_time = self.writer.lock().await;
        match &self.backing {
            Backing::Unconfigured => Err(StoreError::Unconfigured),
            Backing::File(path) => {
                let current = self.table.load_full();
                let id = change.id().to_string();
                let next = change.apply(current.by_id.get(&id).map(|e| e.record.clone()))?;
                let mut table = Table::clone(&current);
                table.put(next, &current);
                state_file::write(path, &table.records()).map_err(StoreError::Write)?;
                self.table.store(Arc::new(table));
                Ok(())
            }
            Backing::Redis { remote, .. } => {
                let mut conn = remote.connect().await?;
                let local = self.table.load_full();
                remote.write(&mut conn, change, || local.records()).await?;
                self.refresh_locked(remote, &mut conn)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        StoreError::Unavailable(format!("written, not yet read back: {e}"))
                    })
            }
        }
    }

    /// Bring the table up to date with Redis (the store sync tick calls this); returns
    /// whether anything changed. Without Redis there is nothing to do.
    pub async fn refresh(&self, conn: &mut crate::store::Conn) -> redis::RedisResult<bool> {
        let Some(remote) = self.remote() else {
            return Ok(false);
        };
        let _one_at_a_time = self.writer.lock().await;
        self.refresh_locked(remote, conn).await
    }

    async fn refresh_locked(
        &self,
        remote: &RemoteKeys,
        conn: &mut crate::store::Conn,
    ) -> redis::RedisResult<bool> {
        let current = self.table.load_full();
        let update = remote
            .read(conn, &current.stamp, || current.records())
            .await?;
        let next = match update {
            remote::Update::Unchanged => return Ok(false),
            remote::Update::Whole { stamp, records } => Table::build(records, &current, stamp),
            remote::Update::Changed { version, records } => {
                let mut t = Table::clone(&current);
                for r in records {
                    t.put(r, &current);
                }
                t.stamp.version = version;
                t
            }
        };
        let cache = match &self.backing {
            Backing::Redis { cache, .. } => cache.as_ref(),
            Backing::File(_) | Backing::Unconfigured => None,
        };
        if let Some(path) = cache {
            if let Err(e) = state_file::write(path, &next.records()) {
                log::warn!("keys: cannot write the cache {}: {e}", path.display());
            }
        }
        self.table.store(Arc::new(next));
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
