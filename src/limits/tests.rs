//! Limiter tests on an injected clock: no sleeps, exact expectations.

use super::clock::ManualClock;
use super::*;
use crate::config::{parse_with_env, Config, Consumer, LimitSet};
use crate::error::GatewayError;

const KEY: &str = "sha256:c45e76e88b4379cdf3b212a6d61c2be7d5ee1755fee3025f1e73408b986c8b44";
/// 2026-11-22T06:00:00Z, a minute boundary.
pub(super) const T0: i64 = 1_795_327_200_000;

pub(super) fn setup(
    limits: &str,
    policy: Option<OnStoreFailure>,
) -> (Config, LimitPlan, Arc<ManualClock>) {
    let text = format!(
        r#"
[[providers]]
name = "mock"
kind = "mock"
[[models]]
name = "chat"
targets = [{{ provider = "mock", model = "m" }}]
price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}
[[models]]
name = "other"
targets = [{{ provider = "mock", model = "m" }}]
[[consumers]]
name = "team"
keys = ["{KEY}"]
{limits}
"#
    );
    let config = parse_with_env(&text, &|_| None).unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let limiter = Arc::new(Limiter::new(clock.clone(), policy));
    let plan = LimitPlan::new(limiter, &config);
    (config, plan, clock)
}

fn ask(prompt_tokens: u64, max_tokens: Option<u64>) -> Ask {
    Ask {
        prompt_tokens,
        max_tokens,
        choices: 1,
    }
}

fn reserve(
    c: &Config,
    plan: &LimitPlan,
    model: &str,
    prompt: u64,
    max: Option<u64>,
) -> Result<Reservation, GatewayError> {
    let model = c.model(model).unwrap();
    plan.reserve(&c.consumers[0], model, None, ask(prompt, max))
        .1
}

#[test]
fn rpm_admits_exactly_the_limit_then_refuses_with_a_wait() {
    let (c, plan, clock) = setup("limits = { rpm = 3 }", None);
    for _ in 0..3 {
        reserve(&c, &plan, "chat", 10, Some(10))
            .unwrap()
            .settle(20, 0);
    }
    let err = reserve(&c, &plan, "chat", 10, Some(10)).unwrap_err();
    match &err {
        GatewayError::RateLimited {
            limit,
            retry_after_ms,
            message,
        } => {
            assert_eq!(limit.label(), "requests");
            assert!(message.contains("Limit 3, Requested 1"), "{message}");
            // All three are in the current minute: wait for the next, then a third of it.
            assert_eq!(*retry_after_ms, 60_000 + 20_000);
        }
        other => panic!("{other:?}"),
    }
    clock.advance(80_000);
    assert!(reserve(&c, &plan, "chat", 10, Some(10)).is_ok());
}

#[test]
fn tpm_reserves_the_estimate_and_settle_returns_the_rest() {
    let (c, plan, _clock) = setup("limits = { tpm = 1000 }", None);
    // 100 prompt + 800 max_tokens reserved; a second one does not fit.
    let first = reserve(&c, &plan, "chat", 100, Some(800)).unwrap();
    assert_eq!(first.reserved_tokens(), 900);
    assert!(matches!(
        reserve(&c, &plan, "chat", 100, Some(800)),
        Err(GatewayError::RateLimited {
            limit: Counter::Tokens,
            ..
        })
    ));
    // The real usage was 50 tokens: the over-estimate goes back.
    first.settle(50, 0);
    let second = reserve(&c, &plan, "chat", 100, Some(800)).unwrap();
    let (headers, _) = plan.reserve(
        &c.consumers[0],
        c.model("chat").unwrap(),
        None,
        ask(1, Some(1)),
    );
    assert_eq!(headers.tokens.unwrap().remaining, 1000 - 50 - 900 - 2);
    drop(second);
}

#[test]
fn a_request_larger_than_the_window_is_never_retryable() {
    let (c, plan, _clock) = setup("limits = { tpm = 1000 }", None);
    let err = reserve(&c, &plan, "chat", 600, Some(600)).unwrap_err();
    assert!(
        matches!(err, GatewayError::RequestTooLarge { .. }),
        "{err:?}"
    );
    assert!(!err.should_retry());
    // Without max_tokens, limits.default_max_tokens (1024) is reserved.
    assert!(matches!(
        reserve(&c, &plan, "chat", 1, None),
        Err(GatewayError::RequestTooLarge { .. })
    ));
}

#[test]
fn concurrency_slots_come_back_on_settle_and_on_drop() {
    let (c, plan, _clock) = setup("limits = { concurrency = 2 }", None);
    let a = reserve(&c, &plan, "chat", 1, Some(1)).unwrap();
    let b = reserve(&c, &plan, "chat", 1, Some(1)).unwrap();
    assert!(matches!(
        reserve(&c, &plan, "chat", 1, Some(1)),
        Err(GatewayError::RateLimited {
            limit: Counter::Inflight,
            ..
        })
    ));
    a.settle(2, 0);
    let c3 = reserve(&c, &plan, "chat", 1, Some(1)).unwrap();
    drop(b); // an exit path that never settles
    drop(c3);
    let view = plan.describe(&c.consumers[0]);
    assert_eq!(view["scopes"][0]["concurrency"]["in_use"], 0);
}

#[test]
fn per_model_limits_apply_on_top_of_the_consumer() {
    let (c, plan, _clock) = setup(
        "[consumers.limits]\nrpm = 10\n[[consumers.limits.models]]\nmodel = \"chat\"\nrpm = 2\n",
        None,
    );
    reserve(&c, &plan, "chat", 1, Some(1)).unwrap();
    reserve(&c, &plan, "chat", 1, Some(1)).unwrap();
    let err = reserve(&c, &plan, "chat", 1, Some(1)).unwrap_err();
    assert!(err.to_string().contains("on model `chat`"), "{err}");
    // Another model only meets the consumer's own limit (3 of 10 used so far... 2 charged).
    for _ in 0..8 {
        reserve(&c, &plan, "other", 1, Some(1)).unwrap();
    }
    assert!(reserve(&c, &plan, "other", 1, Some(1)).is_err());
}

#[test]
fn budgets_refuse_with_insufficient_quota_until_the_day_turns() {
    let (c, plan, clock) = setup(
        "limits = { tokens_per_day = 1000, usd_per_month = 0.01 }",
        None,
    );
    reserve(&c, &plan, "chat", 400, Some(400))
        .unwrap()
        .settle(800, 0);
    let err = reserve(&c, &plan, "chat", 100, Some(200)).unwrap_err();
    match &err {
        GatewayError::QuotaExceeded {
            limit,
            retry_after_ms,
            ..
        } => {
            assert_eq!(limit.label(), "tokens_per_day");
            assert_eq!(*retry_after_ms, 18 * 3_600_000, "until UTC midnight");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.should_retry());
    clock.advance(18 * 3_600_000);
    // A new day; the monthly USD budget ($0.01 = 10_000 micros) is what binds now:
    // chat costs 1 µ$/input token and 2 µ$/output token.
    reserve(&c, &plan, "chat", 400, Some(500))
        .unwrap()
        .settle(900, 9_900);
    // 100 more tokens fit the day (1000), but their 150 µ$ do not fit the month.
    let err = reserve(&c, &plan, "chat", 50, Some(50)).unwrap_err();
    assert!(
        matches!(
            err,
            GatewayError::QuotaExceeded {
                limit: Counter::UsdMonth,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn schedules_switch_rates_by_local_hour() {
    // T0 is 06:00 UTC = 15:00 in Tokyo.
    let (c, plan, clock) = setup(
        "[consumers.limits]\nrpm = 100\n[[consumers.limits.schedule]]\nhours = \"09:00-18:00\"\nrpm = 1\n",
        None,
    );
    drop(plan);
    let mut c = c;
    c.limits.timezone = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
    let limiter = Arc::new(Limiter::new(clock.clone(), None));
    let plan = LimitPlan::new(limiter, &c);
    reserve(&c, &plan, "chat", 1, Some(1)).unwrap();
    assert!(reserve(&c, &plan, "chat", 1, Some(1)).is_err());
    clock.advance(3 * 3_600_000); // 18:00 in Tokyo: back to 100 rpm
    assert!(reserve(&c, &plan, "chat", 1, Some(1)).is_ok());
}

#[test]
fn others_counts_from_the_store_join_the_decision() {
    let (c, plan, _clock) = setup("limits = { rpm = 5 }", Some(OnStoreFailure::Local));
    plan.limiter().set_store_up(true);
    let scope = plan.limiter().scope("consumer:team");
    scope.lock().requests.set_others(window::minute_of(T0), 4);
    reserve(&c, &plan, "chat", 1, Some(1)).unwrap();
    assert!(reserve(&c, &plan, "chat", 1, Some(1)).is_err());
}

#[test]
fn store_down_follows_the_failure_policy() {
    for (policy, admitted) in [
        (OnStoreFailure::Local, 2),
        (OnStoreFailure::Open, 5),
        (OnStoreFailure::Closed, 0),
    ] {
        let (c, plan, _clock) = setup("limits = { rpm = 2 }", Some(policy));
        assert_eq!(plan.limiter().mode(), Mode::Degraded(policy));
        let ok = (0..5)
            .filter(|_| reserve(&c, &plan, "chat", 1, Some(1)).is_ok())
            .count();
        assert_eq!(ok, admitted, "{policy:?}");
        plan.limiter().set_store_up(true);
        assert_eq!(plan.limiter().mode(), Mode::Normal);
    }
    let (c, plan, _clock) = setup("limits = { rpm = 2 }", Some(OnStoreFailure::Closed));
    let err = reserve(&c, &plan, "chat", 1, Some(1)).unwrap_err();
    assert_eq!(err.status(), 503);
}

#[test]
fn unlimited_consumers_are_not_counted() {
    let (c, plan, _clock) = setup("", None);
    let r = reserve(&c, &plan, "chat", 10, Some(10)).unwrap();
    assert_eq!(r.reserved_tokens(), 0);
    assert!(plan.limiter().active_scopes().is_empty());
}

#[test]
fn counts_survive_a_new_plan_for_the_same_limiter() {
    let (c, plan, clock) = setup("limits = { rpm = 2 }", None);
    reserve(&c, &plan, "chat", 1, Some(1)).unwrap();
    reserve(&c, &plan, "chat", 1, Some(1)).unwrap();
    let limiter = Arc::clone(plan.limiter());
    drop(plan);
    let reloaded = LimitPlan::new(limiter, &c);
    assert!(reserve(&c, &reloaded, "chat", 1, Some(1)).is_err());
    clock.advance(120_000);
    assert!(reserve(&c, &reloaded, "chat", 1, Some(1)).is_ok());
}

#[test]
fn a_tenant_is_shared_by_its_consumers_and_a_key_scope_binds_one_key() {
    let text = format!(
        r#"
[[providers]]
name = "mock"
kind = "mock"
[[models]]
name = "chat"
targets = [{{ provider = "mock", model = "m" }}]
[[tenants]]
name = "acme"
limits = {{ rpm = 3, concurrency = 10 }}
[[consumers]]
name = "a"
keys = ["{KEY}"]
tenant = "acme"
[[consumers]]
name = "b"
keys = ["sha256:{}"]
tenant = "acme"
limits = {{ rpm = 100 }}
"#,
        "0".repeat(64)
    );
    let c = parse_with_env(&text, &|_| None).unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let plan = LimitPlan::new(Arc::new(Limiter::new(clock.clone(), None)), &c);
    let model = c.model("chat").unwrap();
    let (a, b) = (&c.consumers[0], &c.consumers[1]);
    let go = |who: &Consumer, key: Option<KeyScope<'_>>| {
        plan.reserve(who, model, key, ask(1, Some(1))).1
    };
    let mut held = vec![go(a, None).unwrap(), go(b, None).unwrap()];
    // A key of its own: one request a minute, on top of the tenant's.
    let key_limits = LimitSet {
        rpm: Some(1),
        ..LimitSet::default()
    };
    let key = KeyScope {
        id: "key_1",
        limits: &key_limits,
    };
    held.push(go(b, Some(key)).unwrap());
    let err = go(a, None).unwrap_err();
    assert!(
        err.to_string().contains("tenant `acme`"),
        "the tenant refuses its consumers together: {err}"
    );
    clock.advance(120_000);
    held.push(go(b, Some(key)).unwrap());
    let err = go(b, Some(key)).unwrap_err();
    assert!(err.to_string().contains("key `key_1`"), "{err}");
    // Refused at the key: nothing was charged to the tenant, which has room for exactly two.
    go(a, None).unwrap().settle(2, 0);
    go(b, None).unwrap().settle(2, 0);
    assert!(go(a, None).is_err());
    // Each admitted request held a slot in every scope, and dropping frees them.
    drop(held);
    let plan_view = plan.describe(a);
    assert_eq!(plan_view["scopes"][0]["scope"], "tenant:acme");
    assert_eq!(plan_view["scopes"][0]["concurrency"]["in_use"], 0);
}
