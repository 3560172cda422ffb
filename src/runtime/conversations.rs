//! The Responses API's stored answers on routes whose backend keeps no state (translated to
//! Chat Completions, Messages or Gemini): each answered turn (the whole input the model read
//! and the response the client got) and each of its output items, by id, for
//! `previous_response_id`, `item_reference`, `GET` and `DELETE /v1/responses/{id}`.
//!
//! Everything belongs to the consumer that made it: another consumer (or tenant) asking for
//! it is told it does not exist. In memory, the newest [`MAX_TURNS`] turns for [`TTL`]; with
//! `[redis]`, also in Redis for the same time, so any instance continues a conversation
//! another one started (`{prefix}resp:{id}` and `{prefix}resp-item:{item id}`, JSON values
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

struct Kept<T> {
    owner: Arc<str>,
    value: T,
    expires: Instant,
}

#[derive(Default)]
struct Memory {
    turns: HashMap<String, Kept<Arc<Turn>>>,
    items: HashMap<String, Kept<Value>>,
    /// Turn ids oldest first, with their item ids (for eviction).
    order: VecDeque<(String, Vec<String>)>,
}

impl Memory {
    fn insert(&mut self, id: String, owner: Arc<str>, turn: Arc<Turn>, expires: Instant) {
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
        self.order.push_back((id.clone(), item_ids));
        self.turns.insert(
            id,
            Kept {
                owner,
                value: turn,
                expires,
            },
        );
        while self.order.len() > MAX_TURNS {
            if let Some((old, items)) = self.order.pop_front() {
                self.forget(&old, &items);
            }
        }
    }

    fn forget(&mut self, id: &str, items: &[String]) {
        self.turns.remove(id);
        for i in items {
            self.items.remove(i);
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
        let p = link.prefix().to_string();
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
        let items: Vec<String> = {
            let mut memory = self.memory();
            let items = memory
                .order
                .iter()
                .find(|(t, _)| t == id)
                .map(|(_, items)| items.clone())
                .unwrap_or_default();
            memory.forget(id, &items);
            memory.order.retain(|(t, _)| t != id);
            items
        };
        if let Some(link) = &self.redis {
            let key = format!("{}resp:{id}", link.prefix());
            let item_keys: Vec<String> = items
                .iter()
                .map(|i| format!("{}resp-item:{i}", link.prefix()))
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
        let key = format!("{}{key}", link.prefix());
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
}
