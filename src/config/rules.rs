//! Routing rules on a virtual model: file shape and checks.
//!
//! A rule's conditions (every one that is set must hold) pick its own target set; the first
//! matching rule wins, else the model's `targets` apply. The model's strategy, fallbacks and
//! `max_attempts` apply either way.

use super::file::TargetSection;
use super::Target;
use http::HeaderName;
use serde::Deserialize;

/// `[[models.rules]]`, e.g. `{ name = "long", min_prompt_tokens = 8000, targets = [...] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    pub name: String,
    pub targets: Vec<TargetSection>,
    /// Estimated prompt tokens plus `max_tokens` at least this.
    pub min_prompt_tokens: Option<i64>,
    /// A request header that must be present (or equal `header_equals`).
    pub header: Option<String>,
    pub header_equals: Option<String>,
    /// Any of these words in the last user message (case-insensitive).
    #[serde(default)]
    pub last_user_contains: Vec<String>,
    /// A top-level JSON field of the request that must be present and not null (or equal
    /// `field_equals`), e.g. `field = "tools"`.
    pub field: Option<String>,
    pub field_equals: Option<toml::Value>,
    /// Match this share of requests at random (a canary), 0-100.
    pub percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    MinPromptTokens(u64),
    Header {
        name: HeaderName,
        equals: Option<String>,
    },
    /// Lowercased words.
    LastUserContains(Vec<String>),
    Field {
        name: String,
        equals: Option<serde_json::Value>,
    },
    Percent(f64),
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub conditions: Vec<Condition>,
    pub targets: Vec<Target>,
}

impl Rule {
    pub fn needs_prompt_tokens(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| matches!(c, Condition::MinPromptTokens(_)))
    }
}

/// Check one rule's conditions; the targets are built by the caller.
pub fn build_conditions(at: &str, r: &RuleSection, errs: &mut Vec<String>) -> Vec<Condition> {
    let mut out = Vec::new();
    if r.name.is_empty() {
        errs.push(format!("{at}.name must not be empty"));
    }
    if let Some(n) = r.min_prompt_tokens {
        if n <= 0 {
            errs.push(format!("{at}.min_prompt_tokens must be > 0"));
        }
        out.push(Condition::MinPromptTokens(n.max(0) as u64));
    }
    match (&r.header, &r.header_equals) {
        (Some(h), equals) => match HeaderName::try_from(h.as_str()) {
            Ok(name) => out.push(Condition::Header {
                name,
                equals: equals.clone(),
            }),
            Err(_) => errs.push(format!("{at}.header `{h}` is not a valid header name")),
        },
        (None, Some(_)) => errs.push(format!("{at}.header_equals needs `header`")),
        (None, None) => {}
    }
    if !r.last_user_contains.is_empty() {
        if r.last_user_contains.iter().any(|w| w.trim().is_empty()) {
            errs.push(format!("{at}.last_user_contains must not hold empty words"));
        }
        out.push(Condition::LastUserContains(
            r.last_user_contains
                .iter()
                .map(|w| w.to_lowercase())
                .collect(),
        ));
    }
    match (&r.field, &r.field_equals) {
        (Some(f), equals) => {
            let equals = equals
                .as_ref()
                .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null));
            out.push(Condition::Field {
                name: f.clone(),
                equals,
            });
        }
        (None, Some(_)) => errs.push(format!("{at}.field_equals needs `field`")),
        (None, None) => {}
    }
    if let Some(p) = r.percent {
        if !(p > 0.0 && p <= 100.0) {
            errs.push(format!("{at}.percent must be in (0, 100]"));
        }
        out.push(Condition::Percent(p));
    }
    if out.is_empty() {
        errs.push(format!(
            "{at} has no condition (min_prompt_tokens, header, last_user_contains, field or percent)"
        ));
    }
    if r.targets.is_empty() {
        errs.push(format!("{at}.targets must list at least one target"));
    }
    out
}
