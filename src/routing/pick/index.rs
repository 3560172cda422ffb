//! An approximate prefix index over a pool's endpoints: which endpoint has probably seen
//! which prompt prefix, without any word from the engines.
//!
//! A prompt is a chain of block hashes ([`blocks`]: each ~16-token block hashed with the hash
//! of everything before it, so equal hashes mean equal prefixes). The index remembers, per
//! endpoint, the blocks the gateway sent it — written at pick time — in an LRU sized like the
//! endpoint's KV cache, and, per block, the set of endpoints holding it (a bit mask). A lookup
//! walks the prompt's chain once and gives each endpoint the length of the prefix it holds.
//! Only every [`STRIDE`]th block of a chain is remembered (each stands for its whole run, as
//! the chain makes it depend on all before it): matches are found to the nearest 128 tokens,
//! at an eighth of the work per pick.
//! (`lru` for the per-endpoint recency: the crate Pingora already builds.)

use lru::LruCache;
use std::collections::HashMap;
use std::num::NonZeroUsize;

/// Bytes of canonical prompt text per block: about 16 tokens at ~4 bytes a token.
pub const BLOCK_BYTES: usize = 64;
/// Tokens a block stands for, when a block count is turned back into tokens.
pub const BLOCK_TOKENS: u32 = 16;
/// Every how many blocks the index remembers one.
pub const STRIDE: usize = 8;
/// The most endpoints one pool's index tracks (a block's holders are one `u64`).
pub const MAX_ENDPOINTS: usize = 64;

/// The chained block hashes of a prompt's canonical text; `seed` separates what must not
/// share a cache (another model, another adapter).
pub fn blocks(text: &[u8], seed: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(text.len() / BLOCK_BYTES + 1);
    let mut h = seed;
    for chunk in text.chunks(BLOCK_BYTES) {
        h = xxhash_rust::xxh3::xxh3_64_with_seed(chunk, h);
        out.push(h);
    }
    out
}

/// Which endpoint holds which prefix, approximately.
pub struct PrefixIndex {
    holders: HashMap<u64, u64>,
    recent: Vec<LruCache<u64, ()>>,
}

impl PrefixIndex {
    /// An index for `endpoints` (at most [`MAX_ENDPOINTS`]), each remembering prefixes of
    /// about `capacity` blocks in all.
    pub fn new(endpoints: usize, capacity: usize) -> PrefixIndex {
        let cap = NonZeroUsize::new((capacity / STRIDE).max(1)).unwrap_or(NonZeroUsize::MIN);
        PrefixIndex {
            holders: HashMap::new(),
            recent: (0..endpoints.min(MAX_ENDPOINTS))
                .map(|_| LruCache::new(cap))
                .collect(),
        }
    }

    pub fn endpoints(&self) -> usize {
        self.recent.len()
    }

    /// Blocks each endpoint remembers at most (as [`PrefixIndex::new`] took them).
    pub fn capacity_blocks(&self) -> usize {
        self.recent
            .first()
            .map_or(STRIDE, |r| r.cap().get() * STRIDE)
    }

    /// What `endpoint` remembers, most recent first.
    pub fn recent(&self, endpoint: usize) -> Option<&LruCache<u64, ()>> {
        self.recent.get(endpoint)
    }

    /// `endpoint` remembers `recent` (it remembered nothing before).
    pub fn adopt(&mut self, endpoint: usize, recent: LruCache<u64, ()>) {
        let Some(slot) = self.recent.get_mut(endpoint) else {
            return;
        };
        let bit = 1u64 << endpoint;
        for (h, ()) in recent.iter() {
            *self.holders.entry(*h).or_insert(0) |= bit;
        }
        *slot = recent;
    }

    /// For each endpoint, how many leading blocks of `chain` it holds.
    pub fn matched(&self, chain: &[u64], out: &mut [u32]) {
        let n = self.recent.len().min(out.len());
        out[..n].fill(0);
        let mut active: u64 = if n == MAX_ENDPOINTS {
            u64::MAX
        } else {
            (1u64 << n) - 1
        };
        for (depth, h) in anchors(chain).enumerate() {
            let held = self.holders.get(h).copied().unwrap_or(0);
            let lost = active & !held;
            let mut bits = lost;
            while bits != 0 {
                let e = bits.trailing_zeros() as usize;
                out[e] = (depth * STRIDE) as u32;
                bits &= bits - 1;
            }
            active &= held;
            if active == 0 {
                return;
            }
        }
        let mut bits = active;
        let whole = (chain.len() / STRIDE * STRIDE) as u32;
        while bits != 0 {
            let e = bits.trailing_zeros() as usize;
            out[e] = whole;
            bits &= bits - 1;
        }
    }

    /// `endpoint` is sent `chain`: it holds these blocks now, the oldest it held make room.
    pub fn insert(&mut self, endpoint: usize, chain: &[u64]) {
        let Some(recent) = self.recent.get_mut(endpoint) else {
            return;
        };
        let bit = 1u64 << endpoint;
        for h in anchors(chain) {
            *self.holders.entry(*h).or_insert(0) |= bit;
            if let Some((old, ())) = recent.push(*h, ()) {
                if old != *h {
                    drop_holder(&mut self.holders, old, bit);
                }
            }
        }
    }

    /// `endpoint` left (or restarted): it holds nothing.
    pub fn forget(&mut self, endpoint: usize) {
        let Some(recent) = self.recent.get_mut(endpoint) else {
            return;
        };
        let bit = 1u64 << endpoint;
        for (h, ()) in recent.iter() {
            drop_holder(&mut self.holders, *h, bit);
        }
        recent.clear();
    }

    /// Anchors `endpoint` remembers.
    pub fn remembered(&self, endpoint: usize) -> usize {
        self.recent.get(endpoint).map_or(0, LruCache::len)
    }

    /// Blocks remembered in all.
    pub fn len(&self) -> usize {
        self.holders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.holders.is_empty()
    }
}

/// The blocks of a chain the index remembers: every [`STRIDE`]th.
fn anchors(chain: &[u64]) -> impl Iterator<Item = &u64> {
    chain.iter().skip(STRIDE - 1).step_by(STRIDE)
}

fn drop_holder(holders: &mut HashMap<u64, u64>, h: u64, bit: u64) {
    if let Some(mask) = holders.get_mut(&h) {
        *mask &= !bit;
        if *mask == 0 {
            holders.remove(&h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_prefixes_share_hashes_and_a_change_breaks_the_chain() {
        let a = blocks(&[b'a'; 200], 1);
        let mut text = vec![b'a'; 200];
        text[150] = b'b';
        let b = blocks(&text, 1);
        assert_eq!(a.len(), 4);
        assert_eq!(a[..2], b[..2]);
        assert_ne!(a[2], b[2]);
        assert_ne!(
            a[0],
            blocks(&[b'a'; 200], 2)[0],
            "another seed, another cache"
        );
    }

    #[test]
    fn matched_prefixes_per_endpoint_and_eviction_forgets() {
        // Four anchors' worth of blocks per endpoint.
        let mut idx = PrefixIndex::new(3, 4 * STRIDE);
        let chain: Vec<u64> = (1..=4 * STRIDE as u64).collect();
        idx.insert(0, &chain);
        idx.insert(1, &chain[..2 * STRIDE + 3]);
        let mut out = [9; 3];
        idx.matched(&chain, &mut out);
        let s = STRIDE as u32;
        assert_eq!(out, [4 * s, 2 * s, 0], "to the nearest anchor");
        // Endpoint 0 holds four anchors: two more push out the oldest two.
        let other: Vec<u64> = (1000..1000 + 2 * STRIDE as u64).collect();
        idx.insert(0, &other);
        idx.matched(&chain, &mut out);
        assert_eq!(
            out,
            [0, 2 * s, 0],
            "its chain now starts with a forgotten anchor"
        );
        idx.forget(1);
        idx.matched(&chain, &mut out);
        assert_eq!(out, [0, 0, 0]);
        assert_eq!(idx.len(), 4, "only endpoint 0's four anchors are left");
    }
}
