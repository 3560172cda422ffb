//! The mock as one replica of a self-hosted fleet (`tollgate-mock --replica ...`): an engine
//! with a prefix cache and a prefill queue, so a router's choices show in its answers' timing
//! and in a vLLM-style `GET /metrics`.
//!
//! The model (the fleet simulator's, `bench/fleet/sim.rs`, in real time): a prompt is its
//! request body's `messages` (or `prompt`) text cut into 64-byte blocks (~16 tokens), each
//! hashed with the ones before it; the cache is an LRU of those hashes sized in tokens; a
//! request waits its turn in one FIFO prefill queue, then takes `fixed_ms` plus its uncached
//! tokens over `prefill_tok_s` before its first byte. The mock's own hashing: nothing here
//! comes from the gateway's picker.

use lru::LruCache;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BLOCK_BYTES: usize = 64;
const BLOCK_TOKENS: u64 = 16;

/// A replica's engine settings: `prefill_tok_s=..,cache_tokens=..,fixed_ms=..`.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    pub prefill_tok_s: f64,
    pub cache_tokens: u64,
    pub fixed: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            prefill_tok_s: 20_000.0,
            cache_tokens: 65_536,
            fixed: Duration::from_millis(5),
        }
    }
}

impl EngineSettings {
    /// `key=value` pairs separated by commas; unknown keys and bad numbers are errors.
    pub fn parse(text: &str) -> Result<EngineSettings, String> {
        let mut s = EngineSettings::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("\"{pair}\" is not key=value"))?;
            let n: f64 = v
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite() && *n > 0.0)
                .ok_or_else(|| format!("{k}: \"{v}\" is not a positive number"))?;
            match k {
                "prefill_tok_s" => s.prefill_tok_s = n,
                "cache_tokens" => s.cache_tokens = n as u64,
                "fixed_ms" => s.fixed = Duration::from_secs_f64(n / 1000.0),
                other => return Err(format!("unknown replica setting \"{other}\"")),
            }
        }
        Ok(s)
    }
}

/// One replica's engine state.
pub struct Engine {
    settings: EngineSettings,
    cache: Mutex<LruCache<u64, ()>>,
    /// Prefill is one request at a time, in arrival order (tokio's mutex is fair).
    prefill: tokio::sync::Mutex<()>,
    running: AtomicU64,
    waiting: AtomicU64,
    queries: AtomicU64,
    hits: AtomicU64,
}

/// A request counted as running until dropped.
pub struct Running<'a>(&'a AtomicU64);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Engine {
    pub fn new(settings: EngineSettings) -> Engine {
        let blocks = (settings.cache_tokens / BLOCK_TOKENS).max(1);
        let cap = NonZeroUsize::new(usize::try_from(blocks).unwrap_or(usize::MAX))
            .unwrap_or(NonZeroUsize::MIN);
        Engine {
            settings,
            cache: Mutex::new(LruCache::new(cap)),
            prefill: tokio::sync::Mutex::new(()),
            running: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    /// Wait for this prompt's prefill (queue, then the uncached part); the request runs
    /// (decodes) while the returned guard lives. Returns the cached tokens too.
    pub async fn prefill(&self, prompt: &[u8]) -> (Running<'_>, u64) {
        let chain = chain(prompt);
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let turn = self.prefill.lock().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let held = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let held = chain.iter().take_while(|h| cache.get(*h).is_some()).count();
            for h in &chain {
                cache.put(*h, ());
            }
            held
        };
        let total = chain.len() as u64 * BLOCK_TOKENS;
        let cached = held as u64 * BLOCK_TOKENS;
        self.queries.fetch_add(total, Ordering::Relaxed);
        self.hits.fetch_add(cached, Ordering::Relaxed);
        let secs = (total - cached) as f64 / self.settings.prefill_tok_s;
        tokio::time::sleep(self.settings.fixed + Duration::from_secs_f64(secs)).await;
        drop(turn);
        self.running.fetch_add(1, Ordering::Relaxed);
        (Running(&self.running), cached)
    }

    /// vLLM's metric names for the same things, in Prometheus text.
    pub fn metrics_text(&self) -> String {
        let used = self.cache.lock().map_or(0, |c| c.len()) as f64;
        let cap = (self.settings.cache_tokens / BLOCK_TOKENS).max(1) as f64;
        format!(
            "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running {}\n\
             # TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting {}\n\
             # TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc {}\n\
             # TYPE vllm:prefix_cache_queries counter\nvllm:prefix_cache_queries_total {}\n\
             # TYPE vllm:prefix_cache_hits counter\nvllm:prefix_cache_hits_total {}\n",
            self.running.load(Ordering::Relaxed),
            self.waiting.load(Ordering::Relaxed),
            used / cap,
            self.queries.load(Ordering::Relaxed),
            self.hits.load(Ordering::Relaxed),
        )
    }
}

/// The prompt's block hashes, each over its block and every block before it.
fn chain(prompt: &[u8]) -> Vec<u64> {
    let mut out = Vec::with_capacity(prompt.len() / BLOCK_BYTES + 1);
    let mut h = DefaultHasher::new();
    for block in prompt.chunks(BLOCK_BYTES) {
        block.hash(&mut h);
        out.push(h.finish());
    }
    out
}

/// The prompt text of a request body: its `messages` (or `prompt`) as JSON text.
pub fn prompt_of(body: &serde_json::Value) -> Vec<u8> {
    let v = body.get("messages").or_else(|| body.get("prompt"));
    v.map(|v| v.to_string().into_bytes()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_repeated_prefix_is_a_hit_and_shows_in_the_metrics() {
        let e = Engine::new(EngineSettings {
            prefill_tok_s: 1e9,
            cache_tokens: 1 << 20,
            fixed: Duration::ZERO,
        });
        let a = vec![b'a'; 64 * 10];
        let (_r, cached) = e.prefill(&a).await;
        assert_eq!(cached, 0);
        let mut b = a.clone();
        b.extend_from_slice(&[b'b'; 64]);
        let (_r2, cached) = e.prefill(&b).await;
        assert_eq!(cached, 160);
        let m = e.metrics_text();
        assert!(m.contains("vllm:prefix_cache_hits_total 160"), "{m}");
        assert!(m.contains("vllm:prefix_cache_queries_total 336"), "{m}");
        assert!(m.contains("vllm:num_requests_running 2"), "{m}");
        assert!(EngineSettings::parse("cache_tokens=0").is_err());
        assert!(EngineSettings::parse("warp=1").is_err());
        let s = EngineSettings::parse("prefill_tok_s=500, fixed_ms=30").unwrap();
        assert_eq!(s.fixed, Duration::from_millis(30));
    }
}
