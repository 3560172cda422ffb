//! Picking one replica of a pool for a request: the router for self-hosted fleets.
//!
//! A pool is a provider's replicas (vLLM, SGLang, MindIE, TGI). Three strategies:
//! - `round_robin`: each endpoint in turn;
//! - `least_request`: the fewest requests in flight (ties broken at random);
//! - `prefix_affinity` (the default for pools): the endpoint where the prompt is expected to
//!   start generating soonest. Each endpoint's cost, in seconds, is the prefill it owes
//!   (pending prefill tokens plus this prompt's part it has not seen) over its prefill rate,
//!   plus a penalty per request in flight; "has seen" comes from an approximate prefix
//!   index the gateway writes at pick time ([`index`]), the pending tokens are those picked
//!   for it and not yet answered with a first byte, and the prefill rate is learnt from how
//!   long first bytes take (one rate for the pool: its replicas serve one model on like
//!   hardware, and a rate per replica would make the first one measured look fastest and
//!   draw everything; a slow replica shows in its pending work instead). An endpoint above
//!   `load_factor` × the mean in flight is not a candidate unless none is below (so one hot
//!   prefix spreads instead of piling onto one replica), and one below two thirds of the
//!   mean takes a request whose prefix is warm elsewhere (else the warm rule would leave it
//!   idle for good); near-ties go to the least loaded, then the one remembering least; a
//!   session key (a header the client sends) keeps a conversation where it was while that
//!   stays near the best.
//!
//! In every strategy an endpoint that joined a running pool ramps up over `slow_start_s`
//! (its load counts over the elapsed share), and a pool rebuilt after a membership change
//! keeps what it knew of the endpoints that stayed ([`membership`]).
//!
//! No engine cooperation and nothing on the network: a pick is a walk of the prompt's block
//! chain and arithmetic over counters. Written here: `pingora-load-balancing` selects by hash
//! or round robin over backends with no notion of load or cache, so nothing of its selection
//! fits this.

pub mod index;
mod membership;

pub use index::{blocks, PrefixIndex, BLOCK_BYTES, BLOCK_TOKENS, MAX_ENDPOINTS, STRIDE};

use lru::LruCache;
use rand::{Rng, RngCore};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use crate::types::strategy::Strategy;

/// The picker's knobs (defaults from the routers that measured them).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Prefill tokens per second an endpoint is assumed to do before it is measured.
    pub prefill_tokens_per_s: f64,
    /// Seconds added to an endpoint's cost per request it has in flight (decode slows).
    pub stream_penalty_s: f64,
    /// No endpoint above this × the mean in flight is picked unless all are.
    pub load_factor: f64,
    /// Costs within this fraction of the best are near-ties.
    pub tie: f64,
    /// When an endpoint holds at least this share of the prompt, only the endpoints holding
    /// the most compete (within the load bound).
    pub affinity_share: f64,
    /// Blocks the index remembers per endpoint (~16 tokens each).
    pub index_blocks: usize,
    /// Session keys remembered.
    pub sessions: usize,
    /// Seconds over which an endpoint that joined a running pool ramps up to its full
    /// share: it counts as loaded by its in-flight requests over the elapsed fraction
    /// (at least a tenth), so a cold replica is not handed everything at once.
    pub slow_start_s: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prefill_tokens_per_s: 8_000.0,
            stream_penalty_s: 0.02,
            load_factor: 1.25,
            tie: 0.1,
            affinity_share: 0.5,
            index_blocks: 65_536,
            sessions: 65_536,
            slow_start_s: 30.0,
        }
    }
}

/// What the picker reads of a request.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The prompt's block chain ([`blocks`]).
    pub chain: &'a [u64],
    pub prompt_tokens: u32,
    /// A session key, when the client names its conversation.
    pub session: Option<u64>,
}

/// One pick: the endpoint, and what it owes back to the counters.
#[derive(Debug)]
pub struct Ticket {
    pub endpoint: usize,
    /// Prefill tokens charged to the endpoint until the first byte.
    uncached: u64,
    /// What the endpoint had to prefill before this request's first byte (its rate sample).
    work: u64,
    picked_s: f64,
    /// The block count the endpoint already held (for the hit-rate metric).
    pub matched_tokens: u32,
}

#[derive(Debug)]
struct Load {
    in_flight: AtomicU32,
    pending: AtomicU64,
    up: AtomicBool,
    /// Ejected until this time (`f64` bits, the pick clock's seconds): it could not be
    /// reached. After it, the next pick may try it again (half-open).
    ejected_until: AtomicU64,
    /// When it joined a running pool (`f64` bits; -inf: it was there from the start).
    joined_s: AtomicU64,
}

impl Load {
    fn new(joined_s: f64) -> Load {
        Load {
            in_flight: AtomicU32::new(0),
            pending: AtomicU64::new(0),
            up: AtomicBool::new(true),
            ejected_until: AtomicU64::new(0f64.to_bits()),
            joined_s: AtomicU64::new(joined_s.to_bits()),
        }
    }
}

/// One pool's picker.
pub struct Pool {
    strategy: Strategy,
    settings: Settings,
    /// Shared with the pool this one was rebuilt from, so tickets of either count once.
    loads: Vec<Arc<Load>>,
    /// The pool's learnt prefill tokens per second, as `f64` bits.
    rate: AtomicU64,
    index: Mutex<PrefixIndex>,
    sessions: Mutex<LruCache<u64, usize>>,
    turn: AtomicU32,
}

impl Pool {
    /// A pool of `endpoints` (at most [`MAX_ENDPOINTS`]), all up.
    pub fn new(endpoints: usize, strategy: Strategy, settings: Settings) -> Pool {
        let n = endpoints.min(MAX_ENDPOINTS);
        let loads = (0..n)
            .map(|_| Arc::new(Load::new(f64::NEG_INFINITY)))
            .collect();
        let sessions = NonZeroUsize::new(settings.sessions.max(1)).unwrap_or(NonZeroUsize::MIN);
        Pool {
            strategy,
            settings,
            loads,
            rate: AtomicU64::new(settings.prefill_tokens_per_s.to_bits()),
            index: Mutex::new(PrefixIndex::new(n, settings.index_blocks)),
            sessions: Mutex::new(LruCache::new(sessions)),
            turn: AtomicU32::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.loads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.loads.is_empty()
    }

    pub fn in_flight(&self, endpoint: usize) -> u32 {
        self.loads
            .get(endpoint)
            .map_or(0, |l| l.in_flight.load(Ordering::Relaxed))
    }

    /// An endpoint joins (`true`, at `now_s`: its slow start begins) or leaves; one that
    /// leaves is forgotten by the index.
    pub fn set_up(&self, endpoint: usize, up: bool, now_s: f64) {
        if let Some(l) = self.loads.get(endpoint) {
            let was = l.up.swap(up, Ordering::Relaxed);
            if was && !up {
                self.index_mut().forget(endpoint);
            }
            if !was && up {
                l.joined_s.store(now_s.to_bits(), Ordering::Relaxed);
            }
        }
    }

    /// How much of its full share `endpoint` may take at `now_s` (slow start), in (0.1, 1].
    fn weight(&self, endpoint: usize, now_s: f64) -> f64 {
        let joined = f64::from_bits(self.loads[endpoint].joined_s.load(Ordering::Relaxed));
        if self.settings.slow_start_s <= 0.0 {
            return 1.0;
        }
        ((now_s - joined) / self.settings.slow_start_s).clamp(0.1, 1.0)
    }

    /// Its in-flight requests as load: over its slow-start weight.
    fn load(&self, endpoint: usize, now_s: f64) -> f64 {
        f64::from(self.loads[endpoint].in_flight.load(Ordering::Relaxed))
            / self.weight(endpoint, now_s)
    }

    fn index_mut(&self) -> std::sync::MutexGuard<'_, PrefixIndex> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pick an endpoint for `ask` at `now_s` (any monotonic clock, seconds); `None` when
    /// none is up.
    pub fn pick(&self, ask: &Ask<'_>, now_s: f64, rng: &mut dyn RngCore) -> Option<Ticket> {
        let live: Vec<usize> = (0..self.loads.len())
            .filter(|e| self.loads[*e].up.load(Ordering::Relaxed))
            .collect();
        if live.is_empty() {
            return None;
        }
        let ejected = |e: &usize| {
            f64::from_bits(self.loads[*e].ejected_until.load(Ordering::Relaxed)) > now_s
        };
        // Ejected replicas sit out their time, unless every replica is ejected.
        let up: Vec<usize> = live.iter().copied().filter(|e| !ejected(e)).collect();
        let up = if up.is_empty() { live } else { up };
        let mut held = [0u32; MAX_ENDPOINTS];
        let endpoint = match self.strategy {
            Strategy::RoundRobin => {
                // In turn; one still ramping up is passed over but for its weight's share.
                let mut e = up[0];
                for _ in 0..up.len() {
                    let t = self.turn.fetch_add(1, Ordering::Relaxed) as usize;
                    e = up[t % up.len()];
                    if rng.random::<f64>() < self.weight(e, now_s) {
                        break;
                    }
                }
                e
            }
            Strategy::LeastRequest => {
                let load = |e: &usize| self.load(*e, now_s);
                let least = up.iter().map(load).fold(f64::INFINITY, f64::min);
                let ties: Vec<usize> = up.iter().copied().filter(|e| load(e) <= least).collect();
                ties[rng.random_range(0..ties.len())]
            }
            Strategy::PrefixAffinity => {
                self.index_mut().matched(ask.chain, &mut held);
                self.by_cost(ask, &up, &held, now_s, rng)
            }
        };
        let matched_tokens = (held[endpoint] * BLOCK_TOKENS).min(ask.prompt_tokens);
        let uncached = u64::from(ask.prompt_tokens - matched_tokens);
        let load = &self.loads[endpoint];
        let before = load.pending.fetch_add(uncached, Ordering::Relaxed);
        load.in_flight.fetch_add(1, Ordering::Relaxed);
        if self.strategy == Strategy::PrefixAffinity {
            self.index_mut().insert(endpoint, ask.chain);
            if let Some(s) = ask.session {
                self.sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .put(s, endpoint);
            }
        }
        Some(Ticket {
            endpoint,
            uncached,
            work: before + uncached,
            picked_s: now_s,
            matched_tokens,
        })
    }

    /// The endpoint expected to answer first, among those within the load bound.
    fn by_cost(
        &self,
        ask: &Ask<'_>,
        up: &[usize],
        held: &[u32],
        now_s: f64,
        rng: &mut dyn RngCore,
    ) -> usize {
        let s = &self.settings;
        let flight = |e: usize| self.loads[e].in_flight.load(Ordering::Relaxed);
        let load = |e: usize| self.load(e, now_s);
        let total: u32 = up.iter().map(|e| flight(*e)).sum();
        let bound = (f64::from(total + 1) * s.load_factor / up.len() as f64)
            .ceil()
            .max(1.0);
        let within: Vec<usize> = up.iter().copied().filter(|e| load(*e) < bound).collect();
        let candidates = if within.is_empty() { up } else { &within[..] };
        let cost = |e: usize| {
            let l = &self.loads[e];
            let seen = (held[e] * BLOCK_TOKENS).min(ask.prompt_tokens);
            let todo = l.pending.load(Ordering::Relaxed) + u64::from(ask.prompt_tokens - seen);
            let rate = f64::from_bits(self.rate.load(Ordering::Relaxed)).max(1.0);
            todo as f64 / rate + s.stream_penalty_s * load(e)
        };
        // Where a good share of the prompt is already held, only the endpoints holding the
        // most of it compete: sending a warm prefix elsewhere would cost every later request
        // of its kind a cold prefill, which one request's cost does not see.
        let most = candidates.iter().map(|e| held[*e]).max().unwrap_or(0);
        let warm =
            f64::from(most * BLOCK_TOKENS) >= s.affinity_share * f64::from(ask.prompt_tokens);
        let pool: Vec<usize> = if warm && most > 0 {
            candidates
                .iter()
                .copied()
                .filter(|e| held[*e] == most)
                .collect()
        } else {
            candidates.to_vec()
        };
        // A replica far below the mean is capacity the warm rule would leave idle for good
        // (one hot prefix held by all but it): it takes the request, and holds the prefix after.
        let mean = f64::from(total) / up.len() as f64;
        if warm && mean >= 2.0 {
            if let Some(e) = up
                .iter()
                .copied()
                .filter(|e| load(*e) < mean / 1.5)
                .min_by(|a, b| load(*a).total_cmp(&load(*b)))
            {
                return e;
            }
        }
        let costs: Vec<(usize, f64)> = pool.iter().map(|e| (*e, cost(*e))).collect();
        let best = costs.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
        let near: Vec<usize> = costs
            .iter()
            .filter(|c| c.1 <= best * (1.0 + s.tie) + 1e-3)
            .map(|c| c.0)
            .collect();
        if let Some(e) = ask.session.and_then(|k| {
            self.sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&k)
                .copied()
        }) {
            if near.contains(&e) {
                return e;
            }
        }
        match near.len() {
            0 => pool.first().copied().unwrap_or(candidates[0]),
            1 => near[0],
            _ => {
                // The least loaded, then the one remembering least (a new prefix goes where it
                // crowds no other out); a random one of those still tied.
                let index = self.index_mut();
                let key = |e: usize| ((load(e) * 16.0) as u64, index.remembered(e));
                let best = near.iter().map(|e| key(*e)).min().unwrap_or((0, 0));
                let tied: Vec<usize> = near.iter().copied().filter(|e| key(*e) == best).collect();
                tied[rng.random_range(0..tied.len())]
            }
        }
    }

    /// `endpoint` sits out picks until `until_s` (a time already past ends its ejection).
    /// `forget`: it could not be reached, and what the index knew of it is dropped (a replica
    /// that comes back may have restarted empty).
    pub fn eject(&self, endpoint: usize, until_s: f64, forget: bool) {
        if let Some(l) = self.loads.get(endpoint) {
            l.ejected_until.store(until_s.to_bits(), Ordering::Relaxed);
            if forget {
                self.index_mut().forget(endpoint);
            }
        }
    }

    /// `endpoint` passed a health check at `now_s`: an ejection ends, and one that was
    /// ejected (it may have restarted empty) ramps up again like a joiner.
    pub fn recover(&self, endpoint: usize, now_s: f64) {
        if self.ejected(endpoint, now_s) {
            self.eject(endpoint, now_s, false);
            if let Some(l) = self.loads.get(endpoint) {
                l.joined_s.store(now_s.to_bits(), Ordering::Relaxed);
            }
        }
    }

    /// Whether `endpoint` sits out picks at `now_s`.
    pub fn ejected(&self, endpoint: usize, now_s: f64) -> bool {
        self.loads
            .get(endpoint)
            .is_some_and(|l| f64::from_bits(l.ejected_until.load(Ordering::Relaxed)) > now_s)
    }

    /// Whether an endpoint other than `endpoint` is up and not ejected at `now_s`.
    pub fn others_live(&self, endpoint: usize, now_s: f64) -> bool {
        self.loads.iter().enumerate().any(|(e, l)| {
            e != endpoint
                && l.up.load(Ordering::Relaxed)
                && f64::from_bits(l.ejected_until.load(Ordering::Relaxed)) <= now_s
        })
    }

    /// The ticket's first byte came: its prefill is done, and the endpoint's rate is learnt.
    pub fn first_byte(&self, ticket: &mut Ticket, now_s: f64) {
        let Some(l) = self.loads.get(ticket.endpoint) else {
            return;
        };
        l.pending.fetch_sub(
            ticket.uncached.min(l.pending.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let elapsed = now_s - ticket.picked_s;
        if ticket.work > 0 && elapsed > 1e-6 {
            let sample = ticket.work as f64 / elapsed;
            let old = f64::from_bits(self.rate.load(Ordering::Relaxed));
            self.rate
                .store((old * 0.8 + sample * 0.2).to_bits(), Ordering::Relaxed);
        }
        ticket.uncached = 0;
    }

    /// The ticket's request ended (answered, failed or cut).
    pub fn done(&self, ticket: Ticket) {
        let Some(l) = self.loads.get(ticket.endpoint) else {
            return;
        };
        if ticket.uncached > 0 {
            l.pending.fetch_sub(
                ticket.uncached.min(l.pending.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
        }
        l.in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .ok();
    }
}

#[cfg(test)]
mod tests;
