//! The fleet in virtual time: replicas with an LRU prefix cache over 16-token blocks, one FIFO
//! prefill server each (time to first token = queue wait + a fixed cost + uncached tokens over
//! the prefill rate) and batched decoding that slows as the batch grows. Prefill and decoding
//! share the replica's GPU: while a prefill runs, the replica's decoding batch makes no progress
//! (GPU time is conserved, as with vLLM's and SGLang's chunked prefill), so the prefill a cache
//! saves is decoding time won. A request on a replica that dies is picked again at once (the
//! gateway's failover), so it still succeeds.

use crate::policies::{Policy, View};
use crate::workloads::{Event as Plan, Req};
use lru::LruCache;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::num::NonZeroUsize;

/// A replica's engine, as the simulation models it.
#[derive(Debug, Clone, Copy)]
pub struct Engine {
    pub prefill_tok_s: f64,
    pub prefill_fixed_s: f64,
    pub tpot_s: f64,
    /// Added to each output token's time per request decoding beside it.
    pub tpot_per_batch_s: f64,
    pub cache_blocks: usize,
}

pub const BLOCK_TOKENS: u32 = 16;

struct Replica {
    up: bool,
    cache: LruCache<u64, ()>,
    queue: VecDeque<usize>,
    busy: Option<usize>,
    decoding: u32,
    /// Seconds of prefill run so far: the time its decoding batch stood still.
    stalled: f64,
    /// Generation: events of a replica that died are stale.
    life: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ev {
    Arrive(usize),
    PrefillDone {
        replica: usize,
        life: u32,
        req: usize,
    },
    Finish {
        replica: usize,
        life: u32,
        req: usize,
    },
    Plan(Plan),
    Sample,
}

#[derive(PartialEq)]
struct At(f64, u64, Ev);
impl Eq for At {}
impl PartialOrd for At {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for At {
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub hit_rate: f64,
    pub ttft: Vec<f64>,
    pub throughput_tok_s: f64,
    pub success_rate: f64,
    pub inflight_cov: f64,
    pub max_share_1s: f64,
    /// `max_share_1s` over the fair share (1 / replicas up) in that window.
    pub max_share_vs_fair: f64,
}

struct Run<'a> {
    engine: Engine,
    reqs: &'a [Req],
    replicas: Vec<Replica>,
    heap: BinaryHeap<At>,
    seq: u64,
    now: f64,
    on: Vec<Option<usize>>,
    first_byte: Vec<Option<f64>>,
    /// Per request: its replica's `stalled` when its decoding last accounted for it.
    stall_seen: Vec<f64>,
    done_at: Vec<Option<f64>>,
    hit_tokens: u64,
    prompt_tokens: u64,
    covs: Vec<f64>,
    last_arrival: f64,
    window: Vec<u32>,
    window_start: f64,
    max_share: (f64, f64),
}

impl Run<'_> {
    fn at(&mut self, t: f64, e: Ev) {
        self.seq += 1;
        self.heap.push(At(t, self.seq, e));
    }

    fn view(&self) -> View<'_> {
        View {
            caches: self.replicas.iter().map(|r| &r.cache).collect(),
            queued_tokens: self
                .replicas
                .iter()
                .map(|r| {
                    r.queue
                        .iter()
                        .chain(r.busy.iter())
                        .map(|q| self.reqs[*q].tokens())
                        .sum()
                })
                .collect(),
            engine: self.engine,
        }
    }

    fn dispatch(&mut self, req: usize, policy: &mut dyn Policy) {
        let view = self.view();
        let Some(e) = policy.pick(&self.reqs[req], req, self.now, &view) else {
            return;
        };
        self.on[req] = Some(e);
        self.window[e] += 1;
        self.replicas[e].queue.push_back(req);
        self.start_prefill(e);
    }

    fn start_prefill(&mut self, e: usize) {
        let r = &mut self.replicas[e];
        if r.busy.is_some() || !r.up {
            return;
        }
        let Some(req) = r.queue.pop_front() else {
            return;
        };
        r.busy = Some(req);
        let blocks = &self.reqs[req].blocks;
        let mut held = 0;
        for b in blocks {
            if r.cache.get(b).is_none() {
                break;
            }
            held += 1;
        }
        for b in blocks {
            r.cache.put(*b, ());
        }
        let total = self.reqs[req].tokens();
        let hit = (held * BLOCK_TOKENS).min(total);
        self.hit_tokens += u64::from(hit);
        self.prompt_tokens += u64::from(total);
        let secs = self.engine.prefill_fixed_s + f64::from(total - hit) / self.engine.prefill_tok_s;
        r.stalled += secs;
        let life = r.life;
        self.at(
            self.now + secs,
            Ev::PrefillDone {
                replica: e,
                life,
                req,
            },
        );
    }

    fn sample(&mut self, policy: &dyn Policy) {
        let loads: Vec<f64> = (0..self.replicas.len())
            .filter(|e| self.replicas[*e].up)
            .map(|e| f64::from(policy.in_flight(e)))
            .collect();
        let n = loads.len() as f64;
        let mean = loads.iter().sum::<f64>() / n.max(1.0);
        // While requests still arrive: after the last one the picker decides nothing, and
        // what is left in flight is the drain.
        if mean >= 1.0 && self.now <= self.last_arrival {
            let var = loads.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
            self.covs.push(var.sqrt() / mean);
        }
        if self.now - self.window_start >= 1.0 {
            let total: u32 = self.window.iter().sum();
            if total >= 8 {
                let top = f64::from(*self.window.iter().max().unwrap_or(&0)) / f64::from(total);
                let fair = 1.0 / n.max(1.0);
                if top > self.max_share.0 {
                    self.max_share = (top, top / fair);
                }
            }
            self.window.iter_mut().for_each(|w| *w = 0);
            self.window_start = self.now;
        }
    }
}

/// Run `reqs` (with the fleet `plans`: deaths and joins) through `policy` on `replicas`
/// (the first `initially_up` of them up).
pub fn run(
    engine: Engine,
    replicas: usize,
    initially_up: usize,
    reqs: &[Req],
    plans: &[(f64, Plan)],
    policy: &mut dyn Policy,
) -> Outcome {
    let cap = NonZeroUsize::new(engine.cache_blocks.max(1)).unwrap();
    let mut run = Run {
        engine,
        reqs,
        replicas: (0..replicas)
            .map(|i| Replica {
                up: i < initially_up,
                cache: LruCache::new(cap),
                queue: VecDeque::new(),
                busy: None,
                decoding: 0,
                stalled: 0.0,
                life: 0,
            })
            .collect(),
        heap: BinaryHeap::new(),
        seq: 0,
        now: 0.0,
        on: vec![None; reqs.len()],
        first_byte: vec![None; reqs.len()],
        stall_seen: vec![0.0; reqs.len()],
        done_at: vec![None; reqs.len()],
        hit_tokens: 0,
        prompt_tokens: 0,
        covs: Vec::new(),
        last_arrival: reqs.iter().map(|r| r.arrival).fold(0.0, f64::max),
        window: vec![0; replicas],
        window_start: 0.0,
        max_share: (0.0, 0.0),
    };
    for e in initially_up..replicas {
        policy.set_up(e, false, run.now);
    }
    for (i, r) in reqs.iter().enumerate() {
        run.at(r.arrival, Ev::Arrive(i));
    }
    for (t, p) in plans {
        run.at(*t, Ev::Plan(*p));
    }
    run.at(0.1, Ev::Sample);
    let mut pending = reqs.len();
    while let Some(At(t, _, ev)) = run.heap.pop() {
        run.now = t;
        match ev {
            Ev::Arrive(i) => run.dispatch(i, policy),
            Ev::PrefillDone { replica, life, req } if life == run.replicas[replica].life => {
                run.first_byte[req] = Some(t - reqs[req].arrival);
                policy.first_byte(req, t);
                let r = &mut run.replicas[replica];
                r.busy = None;
                r.decoding += 1;
                run.stall_seen[req] = r.stalled;
                let tpot = engine.tpot_s + engine.tpot_per_batch_s * f64::from(r.decoding);
                let end = t + f64::from(reqs[req].out_tokens) * tpot;
                run.at(end, Ev::Finish { replica, life, req });
                run.start_prefill(replica);
            }
            Ev::Finish { replica, life, req } if life == run.replicas[replica].life => {
                // Prefills that ran while this request decoded push its end back.
                let owed = run.replicas[replica].stalled - run.stall_seen[req];
                if owed > 1e-9 {
                    run.stall_seen[req] = run.replicas[replica].stalled;
                    run.at(t + owed, Ev::Finish { replica, life, req });
                    continue;
                }
                run.replicas[replica].decoding -= 1;
                run.done_at[req] = Some(t);
                policy.done(req);
                pending -= 1;
            }
            Ev::PrefillDone { .. } | Ev::Finish { .. } => {}
            Ev::Plan(Plan::Kill(e)) => {
                let r = &mut run.replicas[e];
                r.up = false;
                r.life += 1;
                r.cache.clear();
                r.decoding = 0;
                let lost: Vec<usize> = r.queue.drain(..).chain(r.busy.take()).collect();
                let mut lost = lost;
                lost.extend((0..reqs.len()).filter(|q| {
                    run.on[*q] == Some(e)
                        && run.first_byte[*q].is_some()
                        && run.done_at[*q].is_none()
                }));
                policy.set_up(e, false, run.now);
                for q in lost {
                    policy.done(q);
                    run.first_byte[q] = None;
                    run.dispatch(q, policy);
                }
            }
            Ev::Plan(Plan::Join(e)) => {
                run.replicas[e].up = true;
                policy.set_up(e, true, run.now);
            }
            Ev::Sample => {
                run.sample(policy);
                if pending > 0 {
                    run.at(t + 0.1, Ev::Sample);
                }
            }
        }
    }
    let done: Vec<f64> = run.done_at.iter().flatten().copied().collect();
    let start = reqs.iter().map(|r| r.arrival).fold(f64::INFINITY, f64::min);
    let end = done.iter().copied().fold(0.0, f64::max);
    let out: u64 = reqs
        .iter()
        .zip(&run.done_at)
        .filter(|(_, d)| d.is_some())
        .map(|(r, _)| u64::from(r.out_tokens))
        .sum();
    Outcome {
        hit_rate: run.hit_tokens as f64 / (run.prompt_tokens as f64).max(1.0),
        ttft: run.first_byte.iter().flatten().copied().collect(),
        throughput_tok_s: out as f64 / (end - start).max(1e-9),
        success_rate: done.len() as f64 / reqs.len().max(1) as f64,
        inflight_cov: run.covs.iter().sum::<f64>() / (run.covs.len().max(1) as f64),
        max_share_1s: run.max_share.0,
        max_share_vs_fair: run.max_share.1,
    }
}
