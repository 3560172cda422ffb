//! Table-driven tests of the attempt engine: each case is a plan, a sequence of events, and
//! the decisions and attempt log expected. No sockets, no clock but the one passed in.

use super::*;
use crate::config::{Model, Provider, Strategy};
use crate::feedback::budget::RetryBudget;
use crate::feedback::health::{OutlierSettings, Standing};
use crate::routing::CostBasis;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn provider(name: &str) -> Arc<Provider> {
    provider_with(name, |_| {})
}

fn provider_with(name: &str, edit: impl FnOnce(&mut Provider)) -> Arc<Provider> {
    let mut p = Provider {
        outlier: OutlierSettings {
            consecutive_failures: 2,
            ..OutlierSettings::default()
        },
        ..Provider::for_tests(name)
    };
    edit(&mut p);
    Arc::new(p)
}

/// A priority plan over providers `a`, `b`, `c`... (one target each).
fn plan_over(providers: &[Arc<Provider>], max_attempts: usize, budget: RetryBudget) -> Plan {
    plan_with(providers, max_attempts, budget, |_| {})
}

fn plan_with(
    providers: &[Arc<Provider>],
    max_attempts: usize,
    budget: RetryBudget,
    edit: impl FnOnce(&mut Model),
) -> Plan {
    let targets = providers
        .iter()
        .map(|p| Target {
            provider: Arc::clone(p),
            model: format!("up-{}", p.name),
            health: crate::feedback::health::HealthSlot::deployment(&p.name, ""),
            weight: 1,
            context_window: None,
            price: None,
        })
        .collect();
    let mut model = Model {
        name: "m".into(),
        strategy: Strategy::Priority,
        targets,
        fallbacks: vec![],
        max_attempts,
        retry_on_status: vec![429, 503],
        price: None,
        log_payloads: false,
        rules: vec![],
        retry_budget: Arc::new(budget),
        max_ejection_percent: 100,
        retries: Default::default(),
        stream_recovery: Default::default(),
    };
    edit(&mut model);
    Plan::new(Arc::new(model), CostBasis::default(), &mut rand::rng())
}

fn generous() -> RetryBudget {
    RetryBudget::new(100.0, 1000.0)
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        unix_s: 1_000,
        jitter: 0.5,
    }
}

/// One event as a test writes it.
#[derive(Debug, Clone, Copy)]
enum Ev {
    Fail(Failure, bool),
    Answered(u16, bool),
    First(bool),
}

/// The decision as a test expects it.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    Same,
    Next,
    GiveUp(&'static str),
    FailOver,
    ReadFirst,
    ReadBody,
    Commit,
}

/// Run `events`, beginning an attempt whenever the engine is between attempts. Returns the
/// decisions and the attempt log as `provider:outcome`.
fn run(attempts: &mut Attempts, events: &[Ev]) -> (Vec<Want>, Vec<String>) {
    let mut decisions = Vec::new();
    for ev in events {
        if !attempts.committed() && attempts.phase != Phase::Trying {
            attempts.begin().expect("a candidate to begin");
        }
        let d = match *ev {
            Ev::Fail(f, reused) => match attempts.failed(f, reused, now()) {
                Retry::Same { .. } => Want::Same,
                Retry::Next => Want::Next,
                Retry::GiveUp(e) => Want::GiveUp(e.outcome()),
            },
            Ev::Answered(s, stream) => match attempts.answered(s, stream, None, now()) {
                Answer::RetrySame { .. } => Want::Same,
                Answer::FailOver => Want::FailOver,
                Answer::ReadFirstEvent => Want::ReadFirst,
                Answer::ReadErrorBody => Want::ReadBody,
                Answer::Commit => Want::Commit,
            },
            Ev::First(err) => match attempts.first_event(err, now()) {
                Verdict::FailOver => Want::FailOver,
                Verdict::Commit => Want::Commit,
            },
        };
        decisions.push(d);
    }
    let log = attempts
        .log()
        .iter()
        .map(|a| format!("{}:{}", a.provider, a.outcome.label()))
        .collect();
    (decisions, log)
}

/// Name, max_attempts, events, decisions, attempt log.
type Case<'a> = (&'a str, usize, &'a [Ev], &'a [Want], &'a [&'a str]);

#[test]
fn every_transition() {
    use Ev::*;
    use Failure::*;
    let cases: &[Case] = &[
        (
            "first try answers",
            3,
            &[Answered(200, false)],
            &[Want::Commit],
            &["a:ok"],
        ),
        (
            "refused, then answered",
            3,
            &[Fail(ConnectRefused, false), Answered(200, false)],
            &[Want::Next, Want::Commit],
            &["a:connect_refused", "b:ok"],
        ),
        (
            "retryable status fails over, others commit",
            3,
            &[Answered(503, false), Answered(400, false)],
            &[Want::FailOver, Want::Commit],
            &["a:status_503", "b:status"],
        ),
        (
            "a retryable status on the last candidate is committed",
            2,
            &[Answered(429, false), Answered(503, false)],
            &[Want::FailOver, Want::Commit],
            &["a:status_429", "b:status"],
        ),
        (
            "max_attempts bounds the plan",
            2,
            &[
                Fail(ConnectTimeout, false),
                Fail(TimedOut(Clock::FirstByte), false),
            ],
            &[Want::Next, Want::GiveUp("upstream_timeout")],
            &["a:connect_timeout", "b:timeout"],
        ),
        (
            "one stale retry on the same candidate, then failover",
            3,
            &[Fail(Reset, true), Fail(Reset, true), Answered(200, false)],
            &[Want::Same, Want::Next, Want::Commit],
            &["a:stale_connection", "a:connection_reset", "b:ok"],
        ),
        (
            "a timeout on a reused connection is not taken for a stale one",
            3,
            &[Fail(TimedOut(Clock::FirstByte), true)],
            &[Want::Next],
            &["a:timeout"],
        ),
        (
            "a stream reads its first event while a candidate is left",
            3,
            &[
                Answered(200, true),
                First(true),
                Answered(200, true),
                First(false),
            ],
            &[
                Want::ReadFirst,
                Want::FailOver,
                Want::ReadFirst,
                Want::Commit,
            ],
            &["a:first_frame_error", "b:ok"],
        ),
        (
            "the last candidate's stream is committed without a look",
            1,
            &[Answered(200, true)],
            &[Want::Commit],
            &["a:ok"],
        ),
        (
            "an unresolved provider fails over; nothing left gives a connect error",
            2,
            &[Fail(Unresolved, false), Fail(ConnectRefused, false)],
            &[Want::Next, Want::GiveUp("upstream_connect_error")],
            &["a:unresolved", "b:connect_refused"],
        ),
    ];
    for (name, max_attempts, events, want, log) in cases {
        let ps = [provider("a"), provider("b"), provider("c")];
        let mut attempts = Attempts::new(plan_over(&ps, *max_attempts, generous()));
        let (got, got_log) = run(&mut attempts, events);
        assert_eq!(&got, want, "{name}: decisions");
        assert_eq!(&got_log, log, "{name}: attempt log");
    }
}

#[test]
fn the_retry_budget_refuses_failovers_and_remembers() {
    let ps = [provider("a"), provider("b"), provider("c")];
    // No floor, 0 %: no failover at all.
    let mut attempts = Attempts::new(plan_over(&ps, 3, RetryBudget::new(0.0, 0.0)));
    let (got, _) = run(&mut attempts, &[Ev::Fail(Failure::ConnectRefused, false)]);
    assert_eq!(got, [Want::GiveUp("upstream_connect_error")]);
    assert!(attempts.budget_refused());
    assert!(!attempts.can_fail_over());
    // A retryable status is then committed rather than failed over.
    let mut attempts = Attempts::new(plan_over(&ps, 3, RetryBudget::new(0.0, 0.0)));
    let (got, log) = run(&mut attempts, &[Ev::Answered(503, false)]);
    assert_eq!(got, [Want::Commit]);
    assert_eq!(log, ["a:status"]);
}

#[test]
fn failures_feed_passive_health_and_ejected_candidates_move_back() {
    let ps = [provider("a"), provider("b")];
    for _ in 0..2 {
        let mut attempts = Attempts::new(plan_over(&ps, 2, generous()));
        run(
            &mut attempts,
            &[
                Ev::Fail(Failure::ConnectRefused, false),
                Ev::Answered(200, false),
            ],
        );
    }
    assert_eq!(ps[0].health.claim(Instant::now()), Standing::Ejected);
    assert_eq!(ps[1].health.claim(Instant::now()), Standing::Healthy);
    // The next plan tries the healthy provider first, the ejected one last.
    let mut attempts = Attempts::new(plan_over(&ps, 2, generous()));
    let (_, log) = run(&mut attempts, &[Ev::Answered(200, false)]);
    assert_eq!(log, ["b:ok"]);
    // A stale connection and a 4xx never count against health.
    let c = [provider("c")];
    for _ in 0..3 {
        let mut attempts = Attempts::new(plan_over(&c, 1, generous()));
        run(
            &mut attempts,
            &[Ev::Fail(Failure::Reset, true), Ev::Answered(404, false)],
        );
    }
    assert_eq!(c[0].health.claim(Instant::now()), Standing::Healthy);
}

#[test]
fn a_cut_counts_against_health_and_names_the_clock() {
    let ps = [provider("a")];
    let mut attempts = Attempts::new(plan_over(&ps, 1, generous()));
    run(&mut attempts, &[Ev::Answered(200, true)]);
    assert!(attempts.committed());
    let e = attempts.cut(Failure::TimedOut(Clock::Idle), 7, now());
    assert_eq!(e.outcome(), "upstream_timeout");
    let e = attempts.cut(Failure::Reset, 7, now());
    assert_eq!(e.outcome(), "upstream_error");
    assert!(e.to_string().contains("after 7 events"), "{e}");
    assert_eq!(ps[0].health.claim(Instant::now()), Standing::Ejected);
}

#[test]
fn labels_are_the_access_log_words() {
    assert_eq!(Failure::Status(503).label(), "status_503");
    assert_eq!(Failure::Status(99).label(), "status_other");
    assert_eq!(Failure::TimedOut(Clock::Total).label(), "total_timeout");
    assert_eq!(
        ExchangeOutcome::UpstreamCut(Failure::TimedOut(Clock::Idle)).label(),
        "upstream_idle_timeout"
    );
    assert_eq!(
        ExchangeOutcome::UpstreamCut(Failure::Reset).label(),
        "upstream_cut"
    );
    assert!(!Failure::Status(400).retryable(&[503]));
    assert!(Failure::Status(503).retryable(&[503]));
}

mod retries;
