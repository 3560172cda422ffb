//! The picker's choices on small pools, step by step.

use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn chain(group: u8, blocks_n: usize) -> Vec<u64> {
    blocks(&vec![group; blocks_n * BLOCK_BYTES], 7)
}

pub(super) fn ask(chain: &[u64]) -> Ask<'_> {
    Ask {
        chain,
        prompt_tokens: chain.len() as u32 * BLOCK_TOKENS,
        session: None,
    }
}

#[test]
fn a_prompt_goes_back_where_its_prefix_is() {
    let pool = Pool::new(4, Strategy::PrefixAffinity, Settings::default());
    let mut rng = StdRng::seed_from_u64(1);
    let a = chain(1, 64);
    let mut first = pool.pick(&ask(&a), 0.0, &mut rng).unwrap();
    pool.first_byte(&mut first, 0.1);
    let e = first.endpoint;
    pool.done(first);
    let again = pool.pick(&ask(&a), 1.0, &mut rng).unwrap();
    assert_eq!(again.endpoint, e);
    assert_eq!(again.matched_tokens, 64 * BLOCK_TOKENS);
}

#[test]
fn one_hot_prefix_spreads_within_the_load_bound() {
    let pool = Pool::new(4, Strategy::PrefixAffinity, Settings::default());
    let mut rng = StdRng::seed_from_u64(2);
    let a = chain(3, 128);
    let tickets: Vec<Ticket> = (0..40)
        .map(|i| pool.pick(&ask(&a), f64::from(i) * 0.001, &mut rng).unwrap())
        .collect();
    let loads: Vec<u32> = (0..4).map(|e| pool.in_flight(e)).collect();
    let mean = 10.0;
    for l in &loads {
        assert!(f64::from(*l) <= mean * 1.25 + 1.0, "{loads:?}");
    }
    for t in tickets {
        pool.done(t);
    }
    assert!((0..4).all(|e| pool.in_flight(e) == 0));
}

#[test]
fn a_down_endpoint_is_never_picked_and_comes_back_cold() {
    let pool = Pool::new(2, Strategy::PrefixAffinity, Settings::default());
    let mut rng = StdRng::seed_from_u64(3);
    let a = chain(5, 16);
    let t = pool.pick(&ask(&a), 0.0, &mut rng).unwrap();
    let e = t.endpoint;
    pool.done(t);
    pool.set_up(e, false, 0.0);
    for _ in 0..10 {
        let t = pool.pick(&ask(&a), 0.0, &mut rng).unwrap();
        assert_ne!(t.endpoint, e);
        pool.done(t);
    }
    pool.set_up(e, true, 0.0);
    pool.set_up(1 - e, false, 0.0);
    let t = pool.pick(&ask(&a), 0.0, &mut rng).unwrap();
    assert_eq!(
        (t.endpoint, t.matched_tokens),
        (e, 0),
        "forgotten while down"
    );
    pool.set_up(1 - e, false, 0.0);
    pool.set_up(e, false, 0.0);
    assert!(pool.pick(&ask(&a), 0.0, &mut rng).is_none());
}

#[test]
fn round_robin_and_least_request_do_what_they_say() {
    let mut rng = StdRng::seed_from_u64(4);
    let a = chain(9, 4);
    let rr = Pool::new(3, Strategy::RoundRobin, Settings::default());
    let picks: Vec<usize> = (0..6)
        .map(|_| rr.pick(&ask(&a), 0.0, &mut rng).unwrap().endpoint)
        .collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    let lr = Pool::new(3, Strategy::LeastRequest, Settings::default());
    let held: Vec<Ticket> = (0..3)
        .map(|_| lr.pick(&ask(&a), 0.0, &mut rng).unwrap())
        .collect();
    let mut ends: Vec<usize> = held.iter().map(|t| t.endpoint).collect();
    ends.sort_unstable();
    assert_eq!(ends, [0, 1, 2], "one each before any gets a second");
}

#[test]
fn an_ejected_endpoint_sits_out_until_its_time_unless_all_are_out() {
    let pool = Pool::new(2, Strategy::LeastRequest, Settings::default());
    let mut rng = StdRng::seed_from_u64(5);
    let a = chain(1, 8);
    pool.eject(0, 10.0, true);
    for _ in 0..5 {
        let t = pool.pick(&ask(&a), 1.0, &mut rng).unwrap();
        assert_eq!(t.endpoint, 1);
        pool.done(t);
    }
    pool.eject(1, 10.0, true);
    let t = pool
        .pick(&ask(&a), 2.0, &mut rng)
        .expect("all out: still pick one");
    pool.done(t);
    let back = (0..10)
        .map(|_| {
            let t = pool.pick(&ask(&a), 11.0, &mut rng).unwrap();
            let e = t.endpoint;
            pool.done(t);
            e
        })
        .collect::<std::collections::HashSet<_>>();
    assert_eq!(back.len(), 2, "both back after their time");
}
