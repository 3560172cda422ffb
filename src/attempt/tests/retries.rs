//! Same-target retries, context-overflow failover and the first-token deadline.

use super::*;

fn with_retries(providers: &[Arc<Provider>], attempts: u32) -> Attempts {
    Attempts::new(plan_with(providers, 3, generous(), |m| {
        m.retries = crate::config::Retries {
            attempts,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            max_retry_after: Duration::from_secs(5),
            on_status: vec![429, 500],
            on_connect: true,
            on_reset: false,
            on_timeout: false,
        }
    }))
}

#[test]
fn same_target_retries_wait_honour_retry_after_and_leave_max_attempts_to_the_candidates() {
    let ps = [provider("a"), provider("b"), provider("c")];
    let mut a = with_retries(&ps, 2);
    a.begin().unwrap();
    // A 500: retried on `a` after the jittered back-off (100 ms, half of it random: 75 ms).
    let Answer::RetrySame { after } = a.answered(500, false, None, now()) else {
        panic!("a retry")
    };
    assert_eq!(after, Duration::from_millis(75));
    assert_eq!(a.pending_wait(), Some(after));
    assert_eq!(a.begin().unwrap().provider.name, "a");
    // A 429 asking for 2 s: waited as asked.
    let asked = Some(Duration::from_secs(2));
    assert_eq!(
        a.answered(429, false, asked, now()),
        Answer::RetrySame {
            after: Duration::from_secs(2)
        }
    );
    a.begin().unwrap();
    // Retries spent on `a`: a 429 fails over to `b`. Three attempts were made, but retries do
    // not use up max_attempts (3): `b` and `c` are still there.
    assert_eq!(a.answered(429, false, None, now()), Answer::FailOver);
    assert_eq!(a.begin().unwrap().provider.name, "b");
    let Answer::RetrySame { .. } = a.answered(500, false, None, now()) else {
        panic!("b's own retries")
    };
    a.begin().unwrap();
    a.answered(500, false, None, now());
    a.begin().unwrap();
    assert_eq!(a.answered(429, false, None, now()), Answer::FailOver);
    assert_eq!(a.begin().unwrap().provider.name, "c");
    a.answered(500, false, None, now());
    a.begin().unwrap();
    a.answered(500, false, None, now());
    a.begin().unwrap();
    // The last candidate's retries spent: its answer is the client's.
    assert_eq!(a.answered(500, false, None, now()), Answer::Commit);
    let log: Vec<_> = a
        .log()
        .iter()
        .map(|e| (e.outcome.label(), e.waited_ms))
        .collect();
    assert_eq!(
        log[..3],
        [
            ("status_500", None),
            ("status_429", Some(75)),
            ("status_429", Some(2000))
        ]
    );
    assert_eq!(log.len(), 9, "three candidates, each tried three times");
}

#[test]
fn a_retry_leaves_room_in_the_budget_for_the_failover() {
    // A budget of exactly one retry: spent on the failover, not on a same-target retry.
    let ps = [provider("a"), provider("b")];
    let mut a = Attempts::new(plan_with(&ps, 3, RetryBudget::new(0.0, 0.1), |m| {
        m.retries = crate::config::Retries {
            attempts: 2,
            on_status: vec![500],
            ..Default::default()
        };
        m.retry_on_status = vec![500];
    }));
    a.begin().unwrap();
    assert_eq!(a.answered(500, false, None, now()), Answer::FailOver);
    assert_eq!(a.begin().unwrap().provider.name, "b");
    assert_eq!(a.answered(200, false, None, now()), Answer::Commit);
}

#[test]
fn a_failed_half_open_probe_is_not_retried() {
    let ps = [provider("a"), provider("b")];
    let mut a = with_retries(&ps, 2);
    let settings = ps[0].outlier;
    for _ in 0..10 {
        ps[0].health.record(false, &settings, Instant::now());
    }
    assert!(ps[0].health.is_ejected());
    a.begin().unwrap();
    // `a` was ejected before this attempt: its failure goes to `b` at once.
    let wants = a.answered(500, false, None, now());
    assert!(!matches!(wants, Answer::RetrySame { .. }), "{wants:?}");
}

#[test]
fn a_retry_after_over_the_cap_fails_over_at_once() {
    let ps = [provider("a"), provider("b")];
    let mut a = with_retries(&ps, 2);
    a.begin().unwrap();
    let asked = Some(Duration::from_secs(120));
    assert_eq!(a.answered(429, false, asked, now()), Answer::FailOver);
    assert_eq!(a.pending_wait(), None);
    assert_eq!(a.begin().unwrap().provider.name, "b");
    // Connect failures are retried when `on` says "connect".
    let mut a = with_retries(&ps, 1);
    a.begin().unwrap();
    assert!(matches!(
        a.failed(Failure::ConnectRefused, false, now()),
        Retry::Same { .. }
    ));
    a.begin().unwrap();
    assert!(matches!(
        a.failed(Failure::ConnectRefused, false, now()),
        Retry::Next
    ));
}

#[test]
fn a_context_overflow_skips_to_a_larger_window() {
    let ps = [provider("a"), provider("b"), provider("c")];
    let mut a = Attempts::new(plan_with(&ps, 3, generous(), |m| {
        for (t, w) in m.targets.iter_mut().zip([4_096, 4_096, 200_000]) {
            t.context_window = Some(w);
        }
    }));
    a.begin().unwrap();
    assert_eq!(a.answered(400, true, None, now()), Answer::ReadErrorBody);
    assert_eq!(a.error_body(true, now()), Verdict::FailOver);
    assert_eq!(
        a.begin().unwrap().provider.name,
        "c",
        "b's window is no larger"
    );
    assert_eq!(
        a.answered(400, true, None, now()),
        Answer::Commit,
        "nothing larger left"
    );
    // Another 400 is committed.
    let mut a = Attempts::new(plan_over(&ps, 3, generous()));
    a.begin().unwrap();
    assert_eq!(
        a.answered(400, true, None, now()),
        Answer::Commit,
        "no windows declared"
    );
}

#[test]
fn a_first_token_deadline_holds_the_last_candidate_too() {
    let ps = [provider_with("a", |p| {
        p.first_token_timeout = Some(Duration::from_secs(5))
    })];
    let mut a = Attempts::new(plan_over(&ps, 1, generous()));
    a.begin().unwrap();
    assert_eq!(a.answered(200, true, None, now()), Answer::ReadFirstEvent);
    let Retry::GiveUp(e) = a.failed(Failure::TimedOut(Clock::FirstToken), false, now()) else {
        panic!("nothing left")
    };
    assert!(e.to_string().contains("first_token_timeout_ms"), "{e}");
}
