//! Virtual models (`[[models]]`: strategy, targets, fallbacks, rules, retry budget) and
//! consumers (`[[consumers]]`: key digests, allowed models, limits, tags), from their file
//! shapes to the runtime types, every problem reported with its dotted path.

use super::file;
use super::providers::build_targets;
use super::{limits, rules, Consumer, IpRules, Model, Price, Provider, Rule, Strategy, Target};
use crate::types::key_digest::parse_key_digest;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Same-target retries of a model (see `retries` in docs/configuration.md).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retries {
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub max_retry_after: Duration,
    pub on_status: Vec<u16>,
    pub on_connect: bool,
    pub on_reset: bool,
    pub on_timeout: bool,
}

impl Model {
    /// What answering `target` costs per token: its own price, else the model's.
    pub fn price_of(&self, target: &Target) -> Option<Price> {
        target.price.or(self.price)
    }

    /// The price admission reserves budget at: the model's, else its dearest target's (the
    /// charge at the end uses the target that answered).
    pub fn reserve_price(&self) -> Option<Price> {
        self.price.or_else(|| {
            self.targets
                .iter()
                .chain(&self.fallbacks)
                .filter_map(|t| t.price)
                .max_by(|a, b| {
                    (a.output_per_mtok + a.input_per_mtok)
                        .total_cmp(&(b.output_per_mtok + b.input_per_mtok))
                })
        })
    }

    /// Whether routing needs a prompt-token count (a rule or a target's context window).
    pub fn needs_prompt_tokens(&self) -> bool {
        self.rules.iter().any(Rule::needs_prompt_tokens)
            || self
                .targets
                .iter()
                .chain(&self.fallbacks)
                .chain(self.rules.iter().flat_map(|r| &r.targets))
                .any(|t| t.context_window.is_some())
    }
}

/// What a model does when a committed stream breaks off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamRecovery {
    /// End the stream with an honest error event.
    #[default]
    Off,
    /// The next candidate continues the text already sent (prefill), where it can.
    Continue,
    /// The next candidate regenerates; the already-sent prefix is skipped if it matches.
    Restart,
}

impl StreamRecovery {
    pub fn label(self) -> &'static str {
        match self {
            StreamRecovery::Off => "off",
            StreamRecovery::Continue => "continue",
            StreamRecovery::Restart => "restart",
        }
    }
}

/// Every model, and the set of their names.
pub(super) fn build_models(
    file_models: Vec<file::ModelSection>,
    by_name: &HashMap<&str, &Arc<Provider>>,
    errs: &mut Vec<String>,
) -> (Vec<Arc<Model>>, HashSet<String>) {
    let mut models = Vec::new();
    let mut model_names = HashSet::new();
    for (i, m) in file_models.into_iter().enumerate() {
        let at = format!("models[{i}]");
        if m.name.is_empty() || m.name == "*" {
            errs.push(format!("{at}.name must be a non-empty name other than `*`"));
        }
        if !model_names.insert(m.name.clone()) {
            errs.push(format!("{at}.name `{}` is defined twice", m.name));
        }
        let strategy = match m.strategy.as_str() {
            "weighted" => Strategy::Weighted,
            "priority" => Strategy::Priority,
            "least_latency" => Strategy::LeastLatency,
            "least_cost" => Strategy::LeastCost,
            other => {
                errs.push(format!(
                    "{at}.strategy must be \"weighted\", \"priority\", \"least_latency\" or \"least_cost\", not \"{other}\""
                ));
                Strategy::Weighted
            }
        };
        if m.targets.is_empty() {
            errs.push(format!("{at}.targets must list at least one target"));
        }
        if m.max_attempts == 0 {
            errs.push(format!("{at}.max_attempts must be > 0"));
        }
        if m.max_ejection_percent > 100 {
            errs.push(format!("{at}.max_ejection_percent must be at most 100"));
        }
        let b = &m.retry_budget;
        if !(b.percent >= 0.0 && b.percent <= 100.0) {
            errs.push(format!("{at}.retry_budget.percent must be in [0, 100]"));
        }
        if !(b.min_per_second >= 0.0 && b.min_per_second.is_finite()) {
            errs.push(format!("{at}.retry_budget.min_per_second must be >= 0"));
        }
        for (j, s) in m.retry_on_status.iter().enumerate() {
            if !(400..=599).contains(s) {
                errs.push(format!(
                    "{at}.retry_on_status[{j}] must be an HTTP error status (400-599), not {s}"
                ));
            }
        }
        let price = m.price.as_ref().map(|p| limits::build_price(&at, p, errs));
        let stream_recovery = build_stream_recovery(&at, &m.stream_recovery, errs);
        let targets = build_targets(&format!("{at}.targets"), &m.targets, by_name, errs);
        let fallbacks = build_targets(&format!("{at}.fallbacks"), &m.fallbacks, by_name, errs);
        let rules = build_rules(&at, &m.rules, by_name, errs);
        models.push(Arc::new(Model {
            name: m.name,
            strategy,
            targets,
            fallbacks,
            max_attempts: m.max_attempts,
            retry_on_status: m.retry_on_status,
            price,
            log_payloads: m.log_payloads,
            rules,
            retry_budget: Arc::new(crate::feedback::budget::RetryBudget::new(
                m.retry_budget.percent,
                m.retry_budget.min_per_second,
            )),
            max_ejection_percent: m.max_ejection_percent.min(100),
            retries: build_retries(&format!("{at}.retries"), &m.retries, errs),
            stream_recovery,
        }));
    }

    (models, model_names)
}

fn build_stream_recovery(at: &str, text: &str, errs: &mut Vec<String>) -> StreamRecovery {
    match text {
        "off" => StreamRecovery::Off,
        "continue" => StreamRecovery::Continue,
        "restart" => StreamRecovery::Restart,
        other => {
            errs.push(format!(
                "{at}.stream_recovery must be \"off\", \"continue\" or \"restart\", not \"{other}\""
            ));
            StreamRecovery::Off
        }
    }
}

fn build_rules(
    at: &str,
    sections: &[file::RuleSection],
    by_name: &HashMap<&str, &Arc<Provider>>,
    errs: &mut Vec<String>,
) -> Vec<Rule> {
    let mut rule_names = HashSet::new();
    sections
        .iter()
        .enumerate()
        .map(|(j, r)| {
            let here = format!("{at}.rules[{j}]");
            if !rule_names.insert(r.name.clone()) {
                errs.push(format!("{here}.name `{}` is used twice", r.name));
            }
            Rule {
                name: r.name.clone(),
                conditions: rules::build_conditions(&here, r, errs),
                targets: build_targets(&format!("{here}.targets"), &r.targets, by_name, errs),
            }
        })
        .collect()
}

fn build_retries(at: &str, r: &file::RetriesSection, errs: &mut Vec<String>) -> Retries {
    let mut out = Retries {
        attempts: r.attempts,
        backoff: Duration::from_millis(r.backoff_ms),
        max_backoff: Duration::from_millis(r.max_backoff_ms.max(r.backoff_ms)),
        max_retry_after: Duration::from_millis(r.max_retry_after_ms),
        ..Retries::default()
    };
    if r.attempts > 10 {
        errs.push(format!("{at}.attempts must be at most 10"));
    }
    if r.max_backoff_ms < r.backoff_ms {
        errs.push(format!("{at}.max_backoff_ms must be >= backoff_ms"));
    }
    for (j, on) in r.on.iter().enumerate() {
        match on {
            file::RetryOn::Status(s) if (400..=599).contains(s) => out.on_status.push(*s),
            file::RetryOn::Status(s) => errs.push(format!(
                "{at}.on[{j}] must be an HTTP error status (400-599), not {s}"
            )),
            file::RetryOn::Failure(k) => match k.as_str() {
                "connect" => out.on_connect = true,
                "reset" => out.on_reset = true,
                "timeout" => out.on_timeout = true,
                other => errs.push(format!(
                    "{at}.on[{j}] must be a status or \"connect\", \"reset\" or \"timeout\", not \"{other}\""
                )),
            },
        }
    }
    out
}

pub(super) fn build_consumers(
    file_consumers: Vec<file::ConsumerSection>,
    limit_section: &file::LimitsSection,
    model_names: &HashSet<String>,
    errs: &mut Vec<String>,
) -> Vec<Arc<Consumer>> {
    let known_model = |name: &str| model_names.contains(name);
    let default_limits = limit_section
        .default
        .as_ref()
        .map(|t| limits::build_consumer_limits("limits.default", t, &known_model, errs));
    let mut consumers = Vec::new();
    let mut consumer_names = HashSet::new();
    let mut all_keys = HashMap::new();
    let mut keyless_nets = Vec::new();
    for (i, c) in file_consumers.into_iter().enumerate() {
        let at = format!("consumers[{i}]");
        if !consumer_names.insert(c.name.clone()) {
            errs.push(format!("{at}.name `{}` is defined twice", c.name));
        }
        let keyless_from =
            super::access::build_nets(&format!("{at}.keyless_from"), &c.keyless_from, errs);
        if c.keys.is_empty() && keyless_from.is_empty() {
            errs.push(format!(
                "{at}.keys must list at least one key digest (or keyless_from its networks)"
            ));
        }
        for (j, net) in keyless_from.iter().enumerate() {
            let overlapping = keyless_nets
                .iter()
                .find(|(other, _): &&(ipnet::IpNet, String)| {
                    other.contains(net) || net.contains(other)
                });
            if let Some((_, other)) = overlapping {
                errs.push(format!(
                    "{at}.keyless_from[{j}] overlaps {other}: a keyless caller must be one consumer"
                ));
            }
            keyless_nets.push((*net, format!("{at}.keyless_from[{j}]")));
        }
        let mut keys = Vec::new();
        for (j, k) in c.keys.iter().enumerate() {
            match parse_key_digest(k) {
                Ok(d) => {
                    if let Some(other) = all_keys.insert(d, format!("{at}.keys[{j}]")) {
                        errs.push(format!("{at}.keys[{j}] is the same key as {other}"));
                    }
                    keys.push(d);
                }
                Err(why) => errs.push(format!("{at}.keys[{j}] {why}")),
            }
        }
        let models_allowed = if c.models.iter().any(|m| m == "*") {
            None
        } else {
            for (j, m) in c.models.iter().enumerate() {
                if !model_names.contains(m) {
                    errs.push(format!("{at}.models[{j}] names unknown model `{m}`"));
                }
            }
            Some(c.models.into_iter().collect())
        };
        let limits = match &c.limits {
            Some(t) => {
                limits::build_consumer_limits(&format!("{at}.limits"), t, &known_model, errs)
            }
            None => default_limits.clone().unwrap_or_default(),
        };
        consumers.push(Arc::new(Consumer {
            name: c.name,
            keys,
            models: models_allowed,
            limits,
            project: c.project,
            tenant: c.tenant,
            log_payloads: c.log_payloads,
            mcp_tools: c.mcp_tools,
            routes: (!c.routes.is_empty()).then(|| c.routes.into_iter().collect()),
            keyless_from,
            ip_rules: IpRules {
                allow: super::access::build_nets(&format!("{at}.allow_ips"), &c.allow_ips, errs),
                deny: super::access::build_nets(&format!("{at}.deny_ips"), &c.deny_ips, errs),
            },
        }));
    }

    consumers
}
