//! The limits of one config bound to the process's [`Limiter`]: which scopes a request is
//! counted in. At most four, always locked in this order: its consumer's tenant, the
//! consumer, the consumer on that model, and the API key it came with.

use super::clock::{Calendar, CalendarCache};
use super::{Counter, Limiter, Scope};
use crate::config::{Config, Consumer, LimitSet};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// The limits of one config.
pub struct LimitPlan {
    pub(super) limiter: Arc<Limiter>,
    pub(super) calendar: CalendarCache,
    pub(super) default_max_tokens: u64,
    /// Consumers with limits; the others are not counted at all.
    consumers: HashMap<String, ConsumerScopes>,
    tenants: HashMap<String, (Named, LimitSet)>,
}

struct ConsumerScopes {
    own: Named,
    models: HashMap<String, Named>,
}

/// A scope with the phrase that names it in refusals ("consumer `a` on model `chat`").
pub(super) struct Named {
    pub who: String,
    pub scope: Arc<Scope>,
}

/// The API key a request came with, and its own limits.
#[derive(Debug, Clone, Copy)]
pub struct KeyScope<'a> {
    pub id: &'a str,
    pub limits: &'a LimitSet,
}

/// One scope a request is counted in, with its limits now.
pub(super) struct Counted<'a> {
    pub who: Cow<'a, str>,
    pub scope: Arc<Scope>,
    pub set: LimitSet,
}

/// The scopes of one request, in locking order.
pub(super) type ScopeList<'a> = [Option<Counted<'a>>; 4];

pub(super) fn limited_counters(set: &LimitSet) -> Vec<Counter> {
    let pairs = [
        (set.rpm, Counter::Requests),
        (set.tpm, Counter::Tokens),
        (set.tokens_per_day, Counter::TokensDay),
        (set.tokens_per_month, Counter::TokensMonth),
        (set.usd_micros_per_day, Counter::UsdDay),
        (set.usd_micros_per_month, Counter::UsdMonth),
        (set.concurrency, Counter::Inflight),
    ];
    pairs
        .into_iter()
        .filter_map(|(l, c)| l.map(|_| c))
        .collect()
}

fn named(limiter: &Limiter, key: String, who: String, set: &LimitSet) -> Named {
    let scope = limiter.scope(&key);
    scope.set_active(&limited_counters(set));
    Named { who, scope }
}

impl LimitPlan {
    pub fn new(limiter: Arc<Limiter>, config: &Config) -> LimitPlan {
        let mut consumers = HashMap::new();
        for c in &config.consumers {
            let l = &c.limits;
            if l.base.is_empty() && l.schedule.is_empty() && l.models.is_empty() {
                continue;
            }
            let own = Named {
                who: format!("consumer `{}`", c.name),
                scope: limiter.scope(&format!("consumer:{}", c.name)),
            };
            let mut counters = limited_counters(&l.base);
            for s in &l.schedule {
                counters.extend(limited_counters(&l.base.with(&s.rates)));
            }
            own.scope.set_active(&counters);
            let models = l
                .models
                .iter()
                .map(|(model, set)| {
                    let key = format!("consumer:{}:model:{model}", c.name);
                    let who = format!("consumer `{}` on model `{model}`", c.name);
                    (model.clone(), named(&limiter, key, who, set))
                })
                .collect();
            consumers.insert(c.name.clone(), ConsumerScopes { own, models });
        }
        let tenants = config
            .tenants
            .iter()
            .map(|t| {
                let key = format!("tenant:{}", t.name);
                let who = format!("tenant `{}`", t.name);
                let n = named(&limiter, key, who, &t.limits);
                (t.name.clone(), (n, t.limits))
            })
            .collect();
        limiter.set_timezone(config.limits.timezone.clone());
        LimitPlan {
            calendar: CalendarCache::new(config.limits.timezone.clone()),
            default_max_tokens: config.limits.default_max_tokens,
            limiter,
            consumers,
            tenants,
        }
    }

    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// The scopes a request of `consumer` on `model` (with `key`) is counted in.
    pub(super) fn scopes_of<'a>(
        &'a self,
        consumer: &'a Consumer,
        model: &str,
        key: Option<KeyScope<'_>>,
        cal: &Calendar,
    ) -> ScopeList<'a> {
        let counted = |n: &'a Named, set: LimitSet| Counted {
            who: Cow::Borrowed(n.who.as_str()),
            scope: Arc::clone(&n.scope),
            set,
        };
        let tenant = consumer
            .tenant
            .as_ref()
            .and_then(|t| self.tenants.get(t))
            .map(|(n, set)| counted(n, *set));
        let (own, per_model) = match self.consumers.get(&consumer.name) {
            Some(s) => (
                Some(counted(&s.own, consumer.limits.at(cal.minute_of_day))),
                s.models
                    .get(model)
                    .zip(consumer.limits.for_model(model).copied())
                    .map(|(n, set)| counted(n, set)),
            ),
            None => (None, None),
        };
        let key = key.filter(|k| !k.limits.is_empty()).map(|k| {
            let scope = self.limiter.scope(&format!("key:{}", k.id));
            scope.set_active(&limited_counters(k.limits));
            Counted {
                who: Cow::Owned(format!("key `{}`", k.id)),
                scope,
                set: *k.limits,
            }
        });
        [tenant, own, per_model, key]
    }

    /// The consumer's own scope for one MCP tool (`server/tool`), limited to `rpm` calls.
    pub(super) fn tool_scope<'a>(&self, consumer: &Consumer, tool: &str, rpm: u64) -> Counted<'a> {
        let set = LimitSet {
            rpm: Some(rpm),
            ..LimitSet::default()
        };
        let scope = self
            .limiter
            .scope(&format!("consumer:{}:tool:{tool}", consumer.name));
        scope.set_active(&limited_counters(&set));
        Counted {
            who: Cow::Owned(format!("consumer `{}` on tool `{tool}`", consumer.name)),
            scope,
            set,
        }
    }

    /// The scopes the admin view of `consumer` shows, with their names there.
    pub(super) fn views_of<'a>(
        &'a self,
        consumer: &Consumer,
        cal: &Calendar,
    ) -> Vec<(String, &'a Arc<Scope>, LimitSet)> {
        let mut out = Vec::new();
        if let Some(t) = &consumer.tenant {
            if let Some((n, set)) = self.tenants.get(t) {
                out.push((format!("tenant:{t}"), &n.scope, *set));
            }
        }
        if let Some(s) = self.consumers.get(&consumer.name) {
            let own = consumer.limits.at(cal.minute_of_day);
            out.push(("consumer".into(), &s.own.scope, own));
            for (model, set) in &consumer.limits.models {
                if let Some(named) = s.models.get(model) {
                    out.push((format!("model:{model}"), &named.scope, *set));
                }
            }
        }
        out
    }
}
