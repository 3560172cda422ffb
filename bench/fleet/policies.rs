//! The policies compared: the usual load balancers, the published cache-aware routers' ideas,
//! Tollgate's own picker (the gateway's code, `tollgate::routing::pick`), and an oracle that
//! sees the true caches and queues.

use crate::sim::{Engine, BLOCK_TOKENS};
use crate::workloads::Req;
use lru::LruCache;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use tollgate::routing::pick::{Ask, Pool, Settings, Strategy, Ticket};

/// What only the oracle looks at: the true caches and the prefill tokens queued on each replica.
pub struct View<'a> {
    pub caches: Vec<&'a LruCache<u64, ()>>,
    pub queued_tokens: Vec<u32>,
    pub engine: Engine,
}

pub trait Policy {
    fn pick(&mut self, req: &Req, id: usize, now: f64, view: &View<'_>) -> Option<usize>;
    fn first_byte(&mut self, _id: usize, _now: f64) {}
    fn done(&mut self, id: usize);
    fn set_up(&mut self, replica: usize, up: bool, now: f64);
    fn in_flight(&self, replica: usize) -> u32;
}

/// In-flight counting shared by the simple policies.
pub struct Counted {
    name: &'static str,
    rng: StdRng,
    load: Vec<u32>,
    up: Vec<bool>,
    on: HashMap<usize, usize>,
    turn: usize,
    /// Per replica, blocks it was sent (for the cache-aware tree), and the hash ring.
    seen: Vec<LruCache<u64, ()>>,
    ring: Vec<(u64, usize)>,
    /// The oracle's: blocks of prompts picked for each replica and not yet prefilled.
    queued: Vec<HashMap<u64, u32>>,
    blocks_of: HashMap<usize, Vec<u64>>,
}

impl Counted {
    pub fn new(name: &'static str, replicas: usize, seed: u64, index_blocks: usize) -> Counted {
        let cap = std::num::NonZeroUsize::new(index_blocks.max(1)).unwrap();
        let mut ring: Vec<(u64, usize)> = (0..replicas)
            .flat_map(|r| (0..100u64).map(move |v| (mix(r as u64 * 1000 + v), r)))
            .collect();
        ring.sort_unstable();
        Counted {
            name,
            rng: StdRng::seed_from_u64(seed),
            load: vec![0; replicas],
            up: vec![true; replicas],
            on: HashMap::new(),
            turn: 0,
            seen: (0..replicas).map(|_| LruCache::new(cap)).collect(),
            ring,
            queued: vec![HashMap::new(); replicas],
            blocks_of: HashMap::new(),
        }
    }

    fn ups(&self) -> Vec<usize> {
        (0..self.load.len()).filter(|e| self.up[*e]).collect()
    }

    fn least(&mut self, among: &[usize]) -> usize {
        let min = among.iter().map(|e| self.load[*e]).min().unwrap_or(0);
        let ties: Vec<usize> = among
            .iter()
            .copied()
            .filter(|e| self.load[*e] == min)
            .collect();
        ties[self.rng.random_range(0..ties.len())]
    }

    /// Consistent hashing of the first 8 blocks with bounded load (1.25 × mean).
    fn chwbl(&mut self, req: &Req, ups: &[usize]) -> usize {
        let key = req.blocks.iter().take(8).fold(0u64, |h, b| mix(h ^ b));
        let total: u32 = ups.iter().map(|e| self.load[*e]).sum();
        let bound = (f64::from(total + 1) * 1.25 / ups.len() as f64).ceil() as u32;
        let start = self.ring.partition_point(|(h, _)| *h < key);
        for i in 0..self.ring.len() {
            let (_, r) = self.ring[(start + i) % self.ring.len()];
            if self.up[r] && self.load[r] < bound {
                return r;
            }
        }
        self.least(ups)
    }

    /// SGLang's cache-aware router: balanced load → the longest matched prefix if it covers
    /// half the prompt, else the replica that has seen least; imbalanced → the least loaded.
    fn sglang_tree(&mut self, req: &Req, ups: &[usize]) -> usize {
        let (lo, hi) = ups.iter().fold((u32::MAX, 0), |(lo, hi), e| {
            (lo.min(self.load[*e]), hi.max(self.load[*e]))
        });
        if hi > 32 && f64::from(hi) > 1.5 * f64::from(lo) {
            return self.least(ups);
        }
        let matched =
            |s: &LruCache<u64, ()>| req.blocks.iter().take_while(|b| s.contains(*b)).count();
        let best = ups
            .iter()
            .copied()
            .max_by_key(|e| matched(&self.seen[*e]))
            .unwrap_or(0);
        if matched(&self.seen[best]) * 2 >= req.blocks.len() {
            best
        } else {
            ups.iter()
                .copied()
                .min_by_key(|e| self.seen[*e].len())
                .unwrap_or(0)
        }
    }

    /// The oracle: the true caches, plus the prompts already queued on each replica (they will
    /// be cached when their turn comes), and the true queues; the same rule as Tollgate's
    /// otherwise (the most-holding replicas compete when they hold half the prompt; the
    /// soonest first token among them, within the load bound).
    fn oracle(&mut self, req: &Req, ups: &[usize], view: &View<'_>) -> usize {
        let total: u32 = ups.iter().map(|e| self.load[*e]).sum();
        let bound = (f64::from(total + 1) * 1.25 / ups.len() as f64).ceil() as u32;
        let eng = view.engine;
        let queued = &self.queued;
        let held = |e: usize| {
            req.blocks
                .iter()
                .take_while(|b| view.caches[e].contains(*b) || queued[e].contains_key(*b))
                .count() as u32
        };
        let cost = |e: usize| {
            let todo = f64::from(view.queued_tokens[e])
                + f64::from(req.tokens() - (held(e) * BLOCK_TOKENS).min(req.tokens()));
            todo / eng.prefill_tok_s + 0.02 * f64::from(self.load[e])
        };
        let within: Vec<usize> = ups
            .iter()
            .copied()
            .filter(|e| self.load[*e] < bound)
            .collect();
        let among = if within.is_empty() {
            ups.to_vec()
        } else {
            within
        };
        let most = among.iter().map(|e| held(*e)).max().unwrap_or(0);
        let among: Vec<usize> = if most > 0 && most as usize * 2 >= req.blocks.len() {
            among.into_iter().filter(|e| held(*e) == most).collect()
        } else {
            among
        };
        among
            .into_iter()
            .min_by(|a, b| cost(*a).total_cmp(&cost(*b)))
            .unwrap_or(0)
    }
}

pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Policy for Counted {
    fn pick(&mut self, req: &Req, id: usize, _now: f64, view: &View<'_>) -> Option<usize> {
        let ups = self.ups();
        if ups.is_empty() {
            return None;
        }
        let e = match self.name {
            "round_robin" => {
                self.turn += 1;
                ups[self.turn % ups.len()]
            }
            "random" => ups[self.rng.random_range(0..ups.len())],
            "least_request" => self.least(&ups),
            "p2c" => {
                let a = ups[self.rng.random_range(0..ups.len())];
                let b = ups[self.rng.random_range(0..ups.len())];
                if self.load[b] < self.load[a] {
                    b
                } else {
                    a
                }
            }
            "chwbl" => self.chwbl(req, &ups),
            "sglang_tree" => self.sglang_tree(req, &ups),
            _ => self.oracle(req, &ups, view),
        };
        for b in &req.blocks {
            self.seen[e].put(*b, ());
        }
        if self.name == "oracle" {
            for b in &req.blocks {
                *self.queued[e].entry(*b).or_insert(0) += 1;
            }
            self.blocks_of.insert(id, req.blocks.clone());
        }
        self.load[e] += 1;
        self.on.insert(id, e);
        Some(e)
    }

    fn first_byte(&mut self, id: usize, _now: f64) {
        let (Some(blocks), Some(e)) = (self.blocks_of.remove(&id), self.on.get(&id).copied())
        else {
            return;
        };
        for b in blocks {
            if let Some(n) = self.queued[e].get_mut(&b) {
                *n -= 1;
                if *n == 0 {
                    self.queued[e].remove(&b);
                }
            }
        }
    }

    fn done(&mut self, id: usize) {
        self.first_byte(id, 0.0);
        if let Some(e) = self.on.remove(&id) {
            self.load[e] = self.load[e].saturating_sub(1);
        }
    }

    fn set_up(&mut self, replica: usize, up: bool, _now: f64) {
        self.up[replica] = up;
        if !up {
            self.seen[replica].clear();
            self.queued[replica].clear();
        }
    }

    fn in_flight(&self, replica: usize) -> u32 {
        self.load[replica]
    }
}

/// Tollgate's picker, the gateway's own code: one gateway instance, or several that each
/// keep their own index and counters and take requests in turn (a fleet of gateways behind a
/// connection-alternating balancer: none sees the others' picks).
pub struct Tollgate {
    pools: Vec<Pool>,
    rng: StdRng,
    tickets: HashMap<usize, (usize, Ticket)>,
    turn: usize,
}

impl Tollgate {
    pub fn new(replicas: usize, seed: u64, settings: Settings, instances: usize) -> Tollgate {
        Tollgate {
            pools: (0..instances.max(1))
                .map(|_| Pool::new(replicas, Strategy::PrefixAffinity, settings))
                .collect(),
            rng: StdRng::seed_from_u64(seed),
            tickets: HashMap::new(),
            turn: 0,
        }
    }
}

impl Policy for Tollgate {
    fn pick(&mut self, req: &Req, id: usize, now: f64, _view: &View<'_>) -> Option<usize> {
        let ask = Ask {
            chain: &req.blocks,
            prompt_tokens: req.tokens(),
            session: req.session,
        };
        let i = self.turn % self.pools.len();
        self.turn += 1;
        let t = self.pools[i].pick(&ask, now, &mut self.rng)?;
        let e = t.endpoint;
        self.tickets.insert(id, (i, t));
        Some(e)
    }

    fn first_byte(&mut self, id: usize, now: f64) {
        if let Some((i, t)) = self.tickets.get_mut(&id) {
            self.pools[*i].first_byte(t, now);
        }
    }

    fn done(&mut self, id: usize) {
        if let Some((i, t)) = self.tickets.remove(&id) {
            self.pools[i].done(t);
        }
    }

    fn set_up(&mut self, replica: usize, up: bool, now: f64) {
        for p in &self.pools {
            p.set_up(replica, up, now);
        }
    }

    fn in_flight(&self, replica: usize) -> u32 {
        self.pools.iter().map(|p| p.in_flight(replica)).sum()
    }
}
