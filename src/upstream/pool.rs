//! A provider as a pool of replicas (its `strategy`, `replicas`): the addresses its base
//! URL's name and its listed replicas resolve to, and the picker ([`crate::routing::pick`])
//! over them. A new resolution rebuilds the pool around the addresses that stayed. A pick is held as a
//! [`Picked`] for the attempt: its first byte teaches the picker the replica's prefill rate,
//! and dropping it (the attempt failed, the request ended, on any path) frees the replica's
//! counters. A replica that cannot be reached is ejected for ten seconds (then tried again by
//! the next pick that wants it), so a retry in place reaches another.

use crate::config::pools::PoolSpec;
use crate::metrics::METRICS;
use crate::routing::pick::{blocks, Ask, Pool, Settings, Strategy, Ticket, BLOCK_TOKENS};
use crate::wire::json_spans::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// One resolution's addresses and the picker over them.
pub struct Pooled {
    pub addrs: Vec<SocketAddr>,
    /// The addresses as metric labels, and the provider's name.
    labels: Vec<String>,
    provider: String,
    pool: Pool,
    spec: PoolSpec,
    /// The pick clock's origin (kept across rebuilds).
    born: Instant,
}

impl Pooled {
    pub fn new(provider: &str, addrs: Vec<SocketAddr>, spec: &PoolSpec) -> Pooled {
        let pool = Pool::new(addrs.len(), spec.strategy, settings(spec));
        Pooled {
            labels: addrs.iter().map(ToString::to_string).collect(),
            provider: provider.to_string(),
            addrs,
            pool,
            spec: spec.clone(),
            born: Instant::now(),
        }
    }

    /// The pool over `addrs`: an address that stays keeps its replica's state; a new one
    /// joins (slow start) — unless the pool had none yet (the first resolution) — and one
    /// gone is purged.
    pub fn rebuilt(&self, addrs: Vec<SocketAddr>) -> Pooled {
        let pool = if self.addrs.is_empty() {
            Pool::new(addrs.len(), self.spec.strategy, settings(&self.spec))
        } else {
            let keep: Vec<Option<usize>> = addrs
                .iter()
                .map(|a| self.addrs.iter().position(|o| o == a))
                .collect();
            self.pool.rebuilt(&keep, self.now_s())
        };
        Pooled {
            labels: addrs.iter().map(ToString::to_string).collect(),
            provider: self.provider.clone(),
            addrs,
            pool,
            spec: self.spec.clone(),
            born: self.born,
        }
    }

    pub fn strategy(&self) -> Strategy {
        self.spec.strategy
    }

    /// The metric series of replicas that are gone in `next` are dropped (the in-flight
    /// gauge once nothing is in flight there), so a changing fleet does not grow the labels.
    pub fn drop_gone_labels(&self, next: &Pooled) {
        for (e, addr) in self.addrs.iter().enumerate() {
            if next.addrs.contains(addr) {
                continue;
            }
            let labels = self.labels(e);
            METRICS.endpoint_picks.remove_label_values(&labels).ok();
            METRICS.endpoint_ejections.remove_label_values(&labels).ok();
            let in_flight = &METRICS.endpoint_in_flight;
            if in_flight.with_label_values(&labels).get() == 0 {
                in_flight.remove_label_values(&labels).ok();
            }
        }
    }

    /// A replica's active health check answered: `ok` ends its ejection (and it ramps up
    /// again), a failure ejects it until `for_s` from now (the next check's verdict).
    pub fn checked(&self, addr: SocketAddr, ok: bool, for_s: f64) {
        let Some(e) = self.addrs.iter().position(|a| *a == addr) else {
            return;
        };
        let now = self.now_s();
        if ok {
            self.pool.recover(e, now);
        } else {
            if self.pool.ejected(e, now) {
                self.pool.eject(e, now + for_s, false);
                return;
            }
            METRICS
                .endpoint_ejections
                .with_label_values(&self.labels(e))
                .inc();
            self.pool.eject(e, now + for_s, true);
        }
    }

    fn now_s(&self) -> f64 {
        self.born.elapsed().as_secs_f64()
    }

    fn labels(&self, endpoint: usize) -> [&str; 2] {
        let label = self.labels.get(endpoint).map_or("", String::as_str);
        [self.provider.as_str(), label]
    }
}

/// The picker's settings for a pool's spec.
fn settings(spec: &PoolSpec) -> Settings {
    let mut s = Settings::default();
    if let Some(tokens) = spec.kv_cache_tokens {
        s.index_blocks = usize::try_from(tokens / u64::from(BLOCK_TOKENS)).unwrap_or(usize::MAX);
    }
    if let Some(d) = spec.slow_start {
        s.slow_start_s = d.as_secs_f64();
    }
    s
}

/// Pick a replica of `pooled` for a request whose upstream body is `body`, to `model`, from
/// a client that sent `headers`.
pub fn pick(
    pooled: &Arc<Pooled>,
    body: &[u8],
    model: &str,
    headers: &http::HeaderMap,
) -> Option<(SocketAddr, Picked)> {
    let chain = match pooled.spec.strategy {
        Strategy::PrefixAffinity => {
            let seed = xxhash_rust::xxh3::xxh3_64(model.as_bytes());
            blocks(prompt(body), seed)
        }
        Strategy::RoundRobin | Strategy::LeastRequest => Vec::new(),
    };
    let ask = Ask {
        chain: &chain,
        prompt_tokens: u32::try_from(chain.len()).unwrap_or(u32::MAX / BLOCK_TOKENS) * BLOCK_TOKENS,
        session: pooled
            .spec
            .session_header
            .as_ref()
            .and_then(|h| headers.get(h))
            .map(|v| xxhash_rust::xxh3::xxh3_64(v.as_bytes())),
    };
    let ticket = pooled.pool.pick(&ask, pooled.now_s(), &mut rand::rng())?;
    let addr = *pooled.addrs.get(ticket.endpoint)?;
    let labels = pooled.labels(ticket.endpoint);
    METRICS.endpoint_picks.with_label_values(&labels).inc();
    METRICS.endpoint_in_flight.with_label_values(&labels).inc();
    if pooled.spec.strategy == Strategy::PrefixAffinity {
        let tokens = &METRICS.endpoint_prefix_tokens;
        let provider = pooled.provider.as_str();
        tokens
            .with_label_values(&[provider, "prompt"])
            .inc_by(u64::from(ask.prompt_tokens));
        tokens
            .with_label_values(&[provider, "matched"])
            .inc_by(u64::from(ticket.matched_tokens));
    }
    let picked = Picked {
        pooled: Arc::clone(pooled),
        ticket: Some(ticket),
    };
    Some((addr, picked))
}

/// The part of a request body that is the prompt: the value of its `messages`, `prompt`,
/// `input` or `contents` member (so the other members, which vary between turns, do not
/// break the prefix), else the whole body.
fn prompt(body: &[u8]) -> &[u8] {
    let mut found = None;
    let mut c = Cursor::new(body);
    let walked = c.object(|c, key| {
        let span = c.skip()?;
        if found.is_none() && matches!(key, b"messages" | b"prompt" | b"input" | b"contents") {
            found = Some(span);
        }
        Some(())
    });
    match (walked, found) {
        (Some(()), Some(span)) => body.get(span).unwrap_or(body),
        _ => body,
    }
}

/// One attempt's replica, held until the attempt ends.
pub struct Picked {
    pooled: Arc<Pooled>,
    ticket: Option<Ticket>,
}

/// How long a replica that could not be reached sits out picks.
const EJECTION_S: f64 = 10.0;

impl Picked {
    /// The replica could not be reached (refused, timed out connecting, no route): it sits
    /// out picks for a while, so the retry goes to another. Returns whether another replica
    /// of the pool is there to take it.
    pub fn unreachable(mut self) -> bool {
        let Some(t) = self.ticket.take() else {
            return false;
        };
        let e = t.endpoint;
        let labels = self.pooled.labels(e);
        METRICS.endpoint_in_flight.with_label_values(&labels).dec();
        METRICS.endpoint_ejections.with_label_values(&labels).inc();
        self.pooled.pool.done(t);
        let now = self.pooled.now_s();
        self.pooled.pool.eject(e, now + EJECTION_S, true);
        self.pooled.pool.others_live(e, now)
    }

    /// The replica answered (its response header came).
    pub fn first_byte(&mut self) {
        if let Some(t) = self.ticket.as_mut() {
            self.pooled.pool.first_byte(t, self.pooled.now_s());
        }
    }
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("addrs", &self.addrs)
            .field("strategy", &self.spec.strategy)
            .finish()
    }
}

impl std::fmt::Debug for Picked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoint = self.ticket.as_ref().map(|t| t.endpoint);
        f.debug_struct("Picked")
            .field("endpoint", &endpoint)
            .finish()
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let labels = self.pooled.labels(t.endpoint);
            METRICS.endpoint_in_flight.with_label_values(&labels).dec();
            self.pooled.pool.done(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_is_the_messages_member_so_other_fields_do_not_matter() {
        let a = br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
        let b = br#"{"messages":[{"role":"user","content":"hi"}],"model":"m","stream":true}"#;
        assert_eq!(prompt(a), prompt(b));
        assert_eq!(prompt(a), br#"[{"role":"user","content":"hi"}]"#);
        assert_eq!(prompt(b"not json"), b"not json");
    }

    #[test]
    fn a_pick_is_released_when_dropped() {
        let addrs: Vec<SocketAddr> = vec![
            "127.0.0.2:1".parse().unwrap(),
            "127.0.0.3:1".parse().unwrap(),
        ];
        let spec = PoolSpec {
            strategy: Strategy::LeastRequest,
            replicas: Vec::new(),
            session_header: None,
            kv_cache_tokens: None,
            slow_start: None,
        };
        let pooled = Arc::new(Pooled::new("p", addrs, &spec));
        let h = http::HeaderMap::new();
        let (first, held) = pick(&pooled, b"{}", "m", &h).unwrap();
        let (second, _held_too) = pick(&pooled, b"{}", "m", &h).unwrap();
        assert_ne!(first, second, "the least loaded one");
        drop(held);
        let (third, _held_again) = pick(&pooled, b"{}", "m", &h).unwrap();
        assert_eq!(third, first, "free again");
    }
}
