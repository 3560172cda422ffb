//! A pool whose membership changed (a re-resolution, a replica added to or gone from the
//! list): survivors keep what the picker knew of them, joiners start their slow start,
//! leavers are forgotten.

use super::index::PrefixIndex;
use super::{Load, Pool, MAX_ENDPOINTS};
use lru::LruCache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

impl Pool {
    /// The pool after a membership change: new endpoint `i` was old endpoint `keep[i]`
    /// (`None`: it joins at `now_s`). A survivor keeps its counters (shared, so requests
    /// picked from the old pool release them once), its ejection and what the index knew;
    /// sessions on a leaver are dropped; the learnt prefill rate carries over.
    pub fn rebuilt(&self, keep: &[Option<usize>], now_s: f64) -> Pool {
        let keep = &keep[..keep.len().min(MAX_ENDPOINTS)];
        let loads = keep
            .iter()
            .map(|old| match old.and_then(|o| self.loads.get(o)) {
                Some(l) => Arc::clone(l),
                None => Arc::new(Load::new(now_s)),
            })
            .collect();
        let index = self.index_mut().remapped(keep);
        let to_new: HashMap<usize, usize> = keep
            .iter()
            .enumerate()
            .filter_map(|(new, old)| old.map(|o| (o, new)))
            .collect();
        let old_sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let mut sessions = LruCache::new(old_sessions.cap());
        // Oldest first, so recency survives.
        for (k, e) in old_sessions.iter().rev() {
            if let Some(n) = to_new.get(e) {
                sessions.put(*k, *n);
            }
        }
        Pool {
            strategy: self.strategy,
            settings: self.settings,
            loads,
            rate: AtomicU64::new(self.rate.load(Ordering::Relaxed)),
            index: Mutex::new(index),
            sessions: Mutex::new(sessions),
            turn: AtomicU32::new(0),
        }
    }
}

impl PrefixIndex {
    /// The index over a changed membership (see [`Pool::rebuilt`]): a survivor's memory
    /// moves to its new position, a joiner's is empty.
    pub fn remapped(&self, keep: &[Option<usize>]) -> PrefixIndex {
        let mut out = PrefixIndex::new(keep.len(), self.capacity_blocks());
        for (new, old) in keep.iter().enumerate() {
            let Some(recent) = old.and_then(|o| self.recent(o)) else {
                continue;
            };
            out.adopt(new, recent.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ask;
    use super::super::{blocks, Settings, Strategy, BLOCK_BYTES, BLOCK_TOKENS};
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn survivors_keep_their_prefixes_and_counters_and_leavers_are_gone() {
        let pool = Pool::new(3, Strategy::PrefixAffinity, Settings::default());
        let mut rng = StdRng::seed_from_u64(5);
        let a = blocks(&vec![b'a'; 64 * BLOCK_BYTES], 1);
        let held = pool.pick(&ask(&a), 0.0, &mut rng).unwrap();
        let e = held.endpoint;
        // The endpoint that held the prefix moves to position 0; one old endpoint leaves and
        // a new one joins at position 2.
        let other = (0..3).find(|o| *o != e).unwrap();
        let new = pool.rebuilt(&[Some(e), Some(other), None], 100.0);
        assert_eq!(new.len(), 3);
        assert_eq!(new.in_flight(0), 1, "the old pool's request still counts");
        pool.done(held);
        assert_eq!(new.in_flight(0), 0, "and is released once, for both");
        let again = new.pick(&ask(&a), 100.0, &mut rng).unwrap();
        assert_eq!(again.endpoint, 0, "the prefix followed its endpoint");
        assert_eq!(again.matched_tokens, 64 * BLOCK_TOKENS);
    }

    #[test]
    fn a_joiner_ramps_up_instead_of_taking_everything() {
        let settings = Settings::default();
        let pool = Pool::new(2, Strategy::LeastRequest, settings);
        let mut rng = StdRng::seed_from_u64(6);
        let grown = pool.rebuilt(&[Some(0), Some(1), None], 0.0);
        // Two old endpoints with four each; the joiner counts ten times its load at first.
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(pool.pick(&ask(&[]), 0.0, &mut rng).unwrap());
        }
        let picks: Vec<usize> = (0..6)
            .map(|_| {
                let t = grown.pick(&ask(&[]), 1.0, &mut rng).unwrap();
                let e = t.endpoint;
                held.push(t);
                e
            })
            .collect();
        let to_joiner = picks.iter().filter(|e| **e == 2).count();
        assert!(to_joiner >= 1, "it gets some: {picks:?}");
        assert!(to_joiner <= 2, "but not a flood: {picks:?}");
        // Once the ramp is over it is one of three.
        let later = grown
            .pick(&ask(&[]), settings.slow_start_s + 1.0, &mut rng)
            .unwrap();
        assert_eq!(later.endpoint, 2, "the least loaded after its ramp");
    }
}
