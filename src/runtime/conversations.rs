//! The Responses API's stored answers on routes whose backend keeps no state (translated to
//! Chat Completions, Messages or Gemini): each answered turn (the whole input the model read
//! and the response the client got) and each of its output items, by id, for
//! `previous_response_id`, `item_reference`, `GET` and `DELETE /v1/responses/{id}`.
//!
//! Everything belongs to the consumer that made it: another consumer (or tenant) asking for
//! it is told it does not exist. In memory, the newest [`MAX_TURNS`] turns (at most
//! [`MAX_BYTES`] of them) for [`TTL`]; with `[redis]`, also in Redis for the same time, so any
//! instance continues a conversation another one started (`{prefix}resp:{id}` and `{prefix}resp-item:{item id}`, JSON values
//! that carry their owner, expiring with `EX`). A turn is written before its answer's last
//! bytes go out, so a client that asks for it right after finds it. Redis not answering is
//! logged, and the turn counts as not stored there.

use crate::config::RedisSettings;
use crate::runtime::redis_link::RedisLink;
use crate::wire::translate::responses::history::{output, Turn};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a stored turn is kept.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// How many turns this instance keeps in memory (the oldest go first).
pub const MAX_TURNS: usize = 10_000;
/// How many bytes of stored turns (as JSON) this instance keeps in memory: a turn holds its
/// whole conversation, so long conversations are bounded by size, not only by count.
pub const MAX_BYTES: usize = 256 * 1024 * 1024;

struct Kept<T> {
    owner: Arc<str>,
    value: T,
    expires: Instant,
}

#[derive(Default)]
struct Memory {
    turns: HashMap<String, Kept<Arc<Turn>>>,
    items: HashMap<String, Kept<Value>>,
    /// Turns oldest first (for eviction).
    order: VecDeque<Stored>,
    /// The JSON size of the turns kept.
    bytes: usize,
}

/// A kept turn's id, its output items' ids and its JSON size.
struct Stored {
    id: String,
    items: Vec<String>,
    size: usize,
}

impl Memory {
    fn insert(&mut self, id: String, owner: Arc<str>, turn: Arc<Turn>, expires: Instant) {
        let size = serde_json::to_vec(&*turn).map_or(0, |v| v.len());
        let mut item_ids = Vec::new();
        for item in output(&turn.response) {
            if let Some(item_id) = item["id"].as_str() {
                item_ids.push(item_id.to_string());
                let kept = Kept {
                    owner: Arc::clone(&owner),
                    value: item.clone(),
                    expires,
                };
                self.items.insert(item_id.to_string(), kept);
            }
        }
        self.order.push_back(Stored {
            id: id.clone(),
            items: item_ids,
            size,
        });
        self.bytes = self.bytes.saturating_add(size);
        self.turns.insert(
            id,
            Kept {
                owner,
                value: turn,
                expires,
            },
        );
        // The newest turn stays, whatever its size.
        while self.order.len() > MAX_TURNS || (self.bytes > MAX_BYTES && self.order.len() > 1) {
            if let Some(old) = self.order.pop_front() {
                self.forget(&old);
            }
        }
    }

    /// Forget a turn and its items (already out of `order`).
    fn forget(&mut self, stored: &Stored) {
        self.turns.remove(&stored.id);
        for i in &stored.items {
            self.items.remove(i);
        }
        self.bytes = self.bytes.saturating_sub(stored.size);
    }

    /// Forget the turn `id`, if it is kept; its item ids.
    fn remove(&mut self, id: &str) -> Vec<String> {
        let Some(at) = self.order.iter().position(|s| s.id == id) else {
            return Vec::new();
        };
        match self.order.remove(at) {
            Some(stored) => {
                self.forget(&stored);
                stored.items
            }
            None => Vec::new(),
        }
    }
}

/// The process's stored conversations (shared by every config, like the key table).
pub struct Conversations {
    memory: Mutex<Memory>,
    redis: Option<RedisLink>,
}

fn visible<'a, T>(kept: Option<&'a Kept<T>>, owner: &str, now: Instant) -> Option<&'a T> {
    kept.filter(|k| &*k.owner == owner && k.expires > now)
        .map(|k| &k.value)
}

impl Conversations {
    pub fn new(redis: Option<&RedisSettings>) -> Conversations {
        Conversations {
            memory: Mutex::default(),
            redis: redis.and_then(RedisLink::new),
        }
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The turn that answered `id`, if `owner` stored it and it has not expired.
    pub async fn turn(&self, id: &str, owner: &str) -> Option<Arc<Turn>> {
        let now = Instant::now();
        if let Some(t) = visible(self.memory().turns.get(id), owner, now) {
            return Some(Arc::clone(t));
        }
        let stored = self.fetch(&format!("resp:{id}"), owner).await?;
        let turn: Turn = serde_json::from_value(stored).ok()?;
        Some(Arc::new(turn))
    }

    /// An output item of a stored turn, by its id.
    pub async fn item(&self, id: &str, owner: &str) -> Option<Value> {
        let now = Instant::now();
        if let Some(v) = visible(self.memory().items.get(id), owner, now) {
            return Some(v.clone());
        }
        self.fetch(&format!("resp-item:{id}"), owner).await
    }

    /// Keep `turn` (its response's `id` names it) for `owner`.
    pub async fn save(&self, owner: &str, turn: Turn) {
        let Some(id) = turn.response["id"].as_str().map(str::to_string) else {
            return;
        };
        let owner: Arc<str> = Arc::from(owner);
        let turn = Arc::new(turn);
        let expires = Instant::now() + TTL;
        self.memory()
            .insert(id.clone(), Arc::clone(&owner), Arc::clone(&turn), expires);
        let Some(link) = &self.redis else { return };
        let p = link.tagged("resp");
        let ttl = TTL.as_secs();
        let mut pipe = redis::pipe();
        let value = json!({"owner": &*owner, "value": &*turn});
        pipe.set_ex(format!("{p}resp:{id}"), value.to_string(), ttl)
            .ignore();
        for item in output(&turn.response) {
            if let Some(item_id) = item["id"].as_str() {
                let value = json!({"owner": &*owner, "value": item});
                pipe.set_ex(format!("{p}resp-item:{item_id}"), value.to_string(), ttl)
                    .ignore();
            }
        }
        let written = link
            .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await;
        if let Err(e) = written {
            log::warn!("responses store: turn {id} kept on this instance only: {e}");
        }
    }

    /// Forget the turn `id` of `owner`; whether there was one.
    pub async fn delete(&self, id: &str, owner: &str) -> bool {
        if self.turn(id, owner).await.is_none() {
            return false;
        }
        let items = self.memory().remove(id);
        if let Some(link) = &self.redis {
            let key = format!("{}resp:{id}", link.tagged("resp"));
            let item_keys: Vec<String> = items
                .iter()
                .map(|i| format!("{}resp-item:{i}", link.tagged("resp")))
                .collect();
            let deleted = link
                .run(|mut c| async move {
                    let mut pipe = redis::pipe();
                    pipe.del(key).ignore();
                    for k in item_keys {
                        pipe.del(k).ignore();
                    }
                    pipe.query_async::<()>(&mut c).await
                })
                .await;
            if let Err(e) = deleted {
                log::warn!("responses store: deleting {id} from Redis: {e}");
            }
        }
        true
    }

    /// A value stored in Redis under `{prefix}{key}`, if `owner` stored it.
    async fn fetch(&self, key: &str, owner: &str) -> Option<Value> {
        let link = self.redis.as_ref()?;
        let key = format!("{}{key}", link.tagged("resp"));
        let raw = link
            .run(|mut c| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await;
        let raw = match raw {
            Ok(raw) => raw?,
            Err(e) => {
                log::warn!("responses store: Redis read failed: {e}");
                return None;
            }
        };
        let mut stored: Value = serde_json::from_str(&raw).ok()?;
        (stored["owner"] == owner).then(|| stored["value"].take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(id: &str) -> Turn {
        Turn {
            input: vec![json!({"type": "message", "role": "user", "content": "hi"})],
            response: json!({"id": id, "object": "response", "output": [
                {"type": "message", "id": format!("msg_{id}"), "role": "assistant", "content": []}
            ]}),
        }
    }

    #[tokio::test]
    async fn turns_and_items_belong_to_their_owner_and_can_be_deleted() {
        let store = Conversations::new(None);
        store.save("alice", turn("resp_1")).await;
        assert!(store.turn("resp_1", "alice").await.is_some());
        assert!(store.turn("resp_1", "bob").await.is_none(), "not bob's");
        assert!(store.item("msg_resp_1", "alice").await.is_some());
        assert!(store.item("msg_resp_1", "bob").await.is_none());
        assert!(!store.delete("resp_1", "bob").await);
        assert!(store.delete("resp_1", "alice").await);
        assert!(store.turn("resp_1", "alice").await.is_none());
        assert!(store.item("msg_resp_1", "alice").await.is_none());
    }

    #[tokio::test]
    async fn memory_keeps_the_newest_turns() {
        let store = Conversations::new(None);
        for k in 0..MAX_TURNS + 2 {
            store.save("a", turn(&format!("r{k}"))).await;
        }
        assert!(store.turn("r0", "a").await.is_none());
        assert!(store.item("msg_r1", "a").await.is_none());
        assert!(store.turn("r2", "a").await.is_some());
        assert_eq!(store.memory().turns.len(), MAX_TURNS);
        assert_eq!(store.memory().items.len(), MAX_TURNS);
    }

    #[tokio::test]
    async fn memory_is_bounded_by_size_too() {
        let store = Conversations::new(None);
        let big = |id: &str| {
            let mut t = turn(id);
            t.input = vec![
                json!({"type": "message", "role": "user", "content": "x".repeat(MAX_BYTES / 3)}),
            ];
            t
        };
        for k in 0..4 {
            store.save("a", big(&format!("b{k}"))).await;
        }
        assert!(
            store.turn("b0", "a").await.is_none(),
            "the oldest went first"
        );
        assert!(store.turn("b3", "a").await.is_some());
        assert!(store.memory().bytes <= MAX_BYTES);
        assert!(store.delete("b3", "a").await);
        let kept: usize = store.memory().order.iter().map(|s| s.size).sum();
        assert_eq!(store.memory().bytes, kept, "the count follows deletes");
    }
}
