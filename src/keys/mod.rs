//! Client keys managed at run time (`/admin/keys`, `tollgate keys`): created, listed, rotated
//! with a grace period, revoked, expiring. Every instance holds the whole table in memory, so
//! authenticating never touches a store; the table is persisted to `[keys] state_file`,
//! written atomically (a temp file, fsync, rename), and loaded at start. Secrets are never
//! kept: records hold SHA-256 digests, compared in constant time.
//!
//! Keys from the config file keep working as they did; the API lists them read-only.

pub mod api;
pub mod cli;
mod record;
mod state_file;

use crate::key_digest::{digest, KeyDigest};
use arc_swap::ArcSwap;
pub use record::{KeyRecord, KeyState, PreviousSecret};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// One key in the live table, with when it was last used (approximate, not persisted).
#[derive(Debug)]
pub struct Entry {
    pub record: KeyRecord,
    /// The id, shared by every request the key makes (its usage-analytics label).
    pub label: Arc<str>,
    pub last_used: AtomicI64,
}

/// The live table: every record by id, and the digests that open them.
#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<String, Arc<Entry>>,
    /// Digest → (entry, whether it is the rotated-out secret).
    by_digest: HashMap<KeyDigest, (Arc<Entry>, bool)>,
}

impl Table {
    fn build(records: Vec<KeyRecord>, previous: &Table) -> Table {
        let mut t = Table::default();
        for record in records {
            let last = previous
                .by_id
                .get(&record.id)
                .map_or(0, |e| e.last_used.load(Ordering::Relaxed));
            let entry = Arc::new(Entry {
                label: record.id.as_str().into(),
                record,
                last_used: AtomicI64::new(last),
            });
            t.by_digest
                .insert(entry.record.digest, (Arc::clone(&entry), false));
            if let Some(p) = &entry.record.previous {
                t.by_digest.insert(p.digest, (Arc::clone(&entry), true));
            }
            t.by_id.insert(entry.record.id.clone(), entry);
        }
        t
    }
}

/// What an API key opened: its entry (consumer, the models it narrows that consumer to, id),
/// shared rather than copied per request.
pub type KeyGrant = Arc<Entry>;

/// Why a change to the table was refused.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no key store is configured: set [keys] state_file")]
    Unconfigured,
    #[error("no key with id `{0}`")]
    UnknownKey(String),
    #[error("the key store could not be written: {0}")]
    Write(std::io::Error),
}

/// The process's key table (it outlives config reloads).
#[derive(Debug)]
pub struct KeyStore {
    table: ArcSwap<Table>,
    /// Where the table is persisted; `None`: no API-created keys.
    state_file: Option<PathBuf>,
    /// One change at a time, each persisted before it is visible.
    writer: Mutex<()>,
}

impl KeyStore {
    /// Open the store, loading `state_file` when it exists (a leftover temp file from an
    /// interrupted write is ignored).
    pub fn open(state_file: Option<PathBuf>) -> Result<KeyStore, String> {
        let records = match &state_file {
            Some(path) => state_file::load(path)?,
            None => Vec::new(),
        };
        Ok(KeyStore {
            table: ArcSwap::from_pointee(Table::build(records, &Table::default())),
            state_file,
            writer: Mutex::new(()),
        })
    }

    pub fn configured(&self) -> bool {
        self.state_file.is_some()
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

    /// Apply `change` to a copy of the records, persist it, then make it live.
    fn change(
        &self,
        change: impl FnOnce(&mut Vec<KeyRecord>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some(path) = &self.state_file else {
            return Err(StoreError::Unconfigured);
        };
        let _one_at_a_time = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.table.load_full();
        let mut records: Vec<KeyRecord> = self.list().iter().map(|e| e.record.clone()).collect();
        change(&mut records)?;
        state_file::write(path, &records).map_err(StoreError::Write)?;
        self.table.store(Arc::new(Table::build(records, &current)));
        Ok(())
    }

    /// Add a new key.
    pub fn insert(&self, record: KeyRecord) -> Result<(), StoreError> {
        self.change(|all| {
            all.push(record);
            Ok(())
        })
    }

    /// Give key `id` a new secret (`digest`); the old one works until `until`.
    pub fn rotate(&self, id: &str, digest: KeyDigest, until: i64) -> Result<(), StoreError> {
        self.change(|all| {
            let r = all
                .iter_mut()
                .find(|r| r.id == id)
                .ok_or_else(|| StoreError::UnknownKey(id.to_string()))?;
            r.previous = Some(PreviousSecret {
                digest: r.digest,
                until,
            });
            r.digest = digest;
            Ok(())
        })
    }

    /// Revoke key `id` (its record stays, marked revoked).
    pub fn revoke(&self, id: &str, now_s: i64) -> Result<(), StoreError> {
        self.change(|all| {
            let r = all
                .iter_mut()
                .find(|r| r.id == id)
                .ok_or_else(|| StoreError::UnknownKey(id.to_string()))?;
            r.revoked_at.get_or_insert(now_s);
            Ok(())
        })
    }

    /// One key's entry.
    pub fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.table.load().by_id.get(id).cloned()
    }
}

#[cfg(test)]
mod tests;
