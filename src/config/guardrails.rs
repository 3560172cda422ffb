//! `[[guardrails]]`: the file's policy shapes, checked and compiled into
//! [`crate::guard::Guardrails`]. Every error names its field (`guardrails[0].rules[1].pattern:
//! …`); a word file that cannot be read, a regex that does not compile, an unknown detector
//! or an unknown moderation provider are errors at load, never at request time.

use crate::guard::detect::Detector;
use crate::guard::matcher::{Matcher, Pattern, Words};
use crate::guard::scan::{Check, Rule};
use crate::guard::{
    injection, Action, Attach, Direction, Guardrails, Moderation, ModerationKind, OnError, Policy,
};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailSection {
    pub name: String,
    #[serde(default = "both")]
    pub direction: DirectionName,
    /// Whom it applies to (all three empty: every request).
    #[serde(default)]
    pub consumers: Vec<String>,
    /// Key labels: an API key's id, or `config:<consumer>:<index>`.
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub rules: Vec<GuardRuleSection>,
    #[serde(default)]
    pub moderation: Option<ModerationSection>,
}

fn both() -> DirectionName {
    DirectionName::Both
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectionName {
    Request,
    Response,
    Both,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    Block,
    Mask,
    Log,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Words,
    Pii,
    Regex,
    Injection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardRuleSection {
    pub name: String,
    pub kind: RuleKind,
    pub action: ActionName,
    /// What a mask puts in place of a finding (default: the detector's label, `[REDACTED]`).
    #[serde(default)]
    pub replacement: Option<String>,
    /// `words`: the list, and/or a file of one word per line (`#` comments).
    #[serde(default)]
    pub words: Vec<String>,
    #[serde(default)]
    pub words_file: Option<String>,
    #[serde(default)]
    pub whole_word: bool,
    /// `pii`: which detectors (empty: all).
    #[serde(default)]
    pub detectors: Vec<String>,
    /// `regex`: the pattern, and how long a match can be (the stream hold-back bound).
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub max_match_chars: Option<usize>,
    #[serde(default)]
    pub case_insensitive: bool,
    /// `injection`: the shipped set (default on) plus these patterns.
    #[serde(default = "yes")]
    pub defaults: bool,
    #[serde(default)]
    pub patterns: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerationKindName {
    OpenaiModeration,
    Http,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnErrorName {
    Allow,
    Block,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModerationSection {
    pub kind: ModerationKindName,
    /// The `[[providers]]` entry that is the service (its base URL, key and timeouts).
    pub provider: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `http`: the path below the provider's base URL.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    pub on_error: OnErrorName,
    /// `block` (default) or `log`.
    #[serde(default = "block")]
    pub action: ActionName,
    #[serde(default = "default_window")]
    pub window_chars: usize,
    #[serde(default = "default_overlap")]
    pub overlap_chars: usize,
    #[serde(default)]
    pub hold: bool,
}

fn default_timeout_ms() -> u64 {
    2_000
}
fn block() -> ActionName {
    ActionName::Block
}
fn default_window() -> usize {
    1_000
}
fn default_overlap() -> usize {
    100
}

/// The most a custom pattern's match may be, when it does not say.
const DEFAULT_MAX_MATCH: usize = 256;

fn action(a: ActionName) -> Action {
    match a {
        ActionName::Block => Action::Block,
        ActionName::Mask => Action::Mask,
        ActionName::Log => Action::Log,
    }
}

pub fn build(
    sections: &[GuardrailSection],
    providers: &HashSet<&str>,
    errs: &mut Vec<String>,
) -> Guardrails {
    let mut seen = HashSet::new();
    let mut policies = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        let at = format!("guardrails[{i}]");
        if s.name.is_empty() {
            errs.push(format!("{at}.name must not be empty"));
        }
        if !seen.insert(s.name.as_str()) {
            errs.push(format!("{at}.name `{}` is defined twice", s.name));
        }
        if s.rules.is_empty() && s.moderation.is_none() {
            errs.push(format!(
                "{at} has no rules and no moderation: it would do nothing"
            ));
        }
        let policy: Arc<str> = Arc::from(s.name.as_str());
        let direction = match s.direction {
            DirectionName::Request => Direction::Request,
            DirectionName::Response => Direction::Response,
            DirectionName::Both => Direction::Both,
        };
        let mut names = HashSet::new();
        let rules = s
            .rules
            .iter()
            .enumerate()
            .filter_map(|(j, r)| {
                let at = format!("{at}.rules[{j}]");
                if !names.insert(r.name.as_str()) {
                    errs.push(format!(
                        "{at}.name `{}` is used twice in this policy",
                        r.name
                    ));
                }
                build_rule(&at, &policy, r, errs).map(Arc::new)
            })
            .collect();
        let moderation = s
            .moderation
            .as_ref()
            .and_then(|m| {
                build_moderation(
                    &format!("{at}.moderation"),
                    &policy,
                    direction,
                    m,
                    providers,
                    errs,
                )
            })
            .map(Arc::new);
        policies.push(Policy {
            name: policy,
            direction,
            attach: Attach {
                consumers: s.consumers.clone(),
                keys: s.keys.clone(),
                models: s.models.clone(),
            },
            rules,
            moderation,
        });
    }
    Guardrails { policies }
}

fn build_rule(
    at: &str,
    policy: &Arc<str>,
    r: &GuardRuleSection,
    errs: &mut Vec<String>,
) -> Option<Rule> {
    let checks = match r.kind {
        RuleKind::Words => word_checks(at, r, errs)?,
        RuleKind::Pii => pii_checks(at, r, errs),
        RuleKind::Regex => {
            let Some(source) = &r.pattern else {
                errs.push(format!("{at}.pattern is required for kind = \"regex\""));
                return None;
            };
            let longest = r.max_match_chars.unwrap_or(DEFAULT_MAX_MATCH);
            let built = Pattern::new(source, r.case_insensitive, longest * 4, None);
            vec![pattern_check(built, r, &format!("{at}.pattern"), errs)?]
        }
        RuleKind::Injection => {
            let Some(source) = injection::combined(r.defaults, &r.patterns) else {
                errs.push(format!(
                    "{at}: defaults = false and no patterns: nothing to match"
                ));
                return None;
            };
            let longest = r.max_match_chars.unwrap_or(injection::LONGEST);
            let built = Pattern::new(&source, true, longest * 4, None);
            vec![pattern_check(built, r, &format!("{at}.patterns"), errs)?]
        }
    };
    if checks.is_empty() {
        return None;
    }
    Some(Rule {
        policy: Arc::clone(policy),
        name: Arc::from(r.name.as_str()),
        action: action(r.action),
        checks,
    })
}

/// What a rule's match is replaced with: the rule's `replacement`, else `label`.
fn replacement(r: &GuardRuleSection, label: &str) -> Arc<str> {
    Arc::from(r.replacement.as_deref().unwrap_or(label))
}

/// `kind = "words"`: the listed words and those of `words_file`, one matcher.
fn word_checks(at: &str, r: &GuardRuleSection, errs: &mut Vec<String>) -> Option<Vec<Check>> {
    let mut words = r.words.clone();
    if let Some(path) = &r.words_file {
        match std::fs::read_to_string(path) {
            Ok(text) => words.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            ),
            Err(e) => {
                errs.push(format!("{at}.words_file: cannot read {path}: {e}"));
                return None;
            }
        }
    }
    match Words::new(&words, r.whole_word) {
        Ok(w) => Some(vec![Check {
            matcher: Matcher::Words(Box::new(w)),
            replacement: replacement(r, "[REDACTED]"),
        }]),
        Err(e) => {
            errs.push(format!("{at}.words: {e}"));
            None
        }
    }
}

/// `kind = "pii"`: one check per detector asked for (all of them when none is named).
fn pii_checks(at: &str, r: &GuardRuleSection, errs: &mut Vec<String>) -> Vec<Check> {
    let wanted: Vec<Detector> = if r.detectors.is_empty() {
        Detector::ALL.to_vec()
    } else {
        let mut v = Vec::new();
        for (k, name) in r.detectors.iter().enumerate() {
            match Detector::from_name(name) {
                Some(d) => v.push(d),
                None => errs.push(format!(
                    "{at}.detectors[{k}]: unknown detector `{name}` (one of {})",
                    Detector::ALL.map(Detector::name).join(", ")
                )),
            }
        }
        v
    };
    let mut checks = Vec::new();
    for d in wanted {
        match d.pattern() {
            Ok(p) => checks.push(Check {
                matcher: Matcher::Pattern(Box::new(p)),
                replacement: replacement(r, d.label()),
            }),
            Err(e) => errs.push(format!("{at}.detectors: {} failed to build: {e}", d.name())),
        }
    }
    checks
}

/// A regex or injection rule's one check, or its error under `field`.
fn pattern_check<E: std::fmt::Display>(
    built: Result<Pattern, E>,
    r: &GuardRuleSection,
    field: &str,
    errs: &mut Vec<String>,
) -> Option<Check> {
    match built {
        Ok(p) => Some(Check {
            matcher: Matcher::Pattern(Box::new(p)),
            replacement: replacement(r, "[REDACTED]"),
        }),
        Err(e) => {
            errs.push(format!("{field}: {e}"));
            None
        }
    }
}

fn build_moderation(
    at: &str,
    policy: &Arc<str>,
    direction: Direction,
    m: &ModerationSection,
    providers: &HashSet<&str>,
    errs: &mut Vec<String>,
) -> Option<Moderation> {
    if !providers.contains(m.provider.as_str()) {
        errs.push(format!(
            "{at}.provider `{}` is not one of [[providers]]",
            m.provider
        ));
        return None;
    }
    if m.timeout_ms == 0 {
        errs.push(format!("{at}.timeout_ms must be > 0"));
    }
    if m.window_chars == 0 || m.overlap_chars >= m.window_chars {
        errs.push(format!(
            "{at}.overlap_chars must be smaller than window_chars (> 0)"
        ));
        return None;
    }
    let act = match m.action {
        ActionName::Mask => {
            errs.push(format!(
                "{at}.action must be \"block\" or \"log\" (a verdict has no span to mask)"
            ));
            return None;
        }
        a => action(a),
    };
    let (kind, path) = match m.kind {
        ModerationKindName::OpenaiModeration => (
            ModerationKind::OpenAiModeration,
            m.path.clone().unwrap_or_else(|| "/moderations".into()),
        ),
        ModerationKindName::Http => match &m.path {
            Some(p) if p.starts_with('/') => (ModerationKind::Http, p.clone()),
            _ => {
                errs.push(format!(
                    "{at}.path is required for kind = \"http\" and starts with `/`"
                ));
                return None;
            }
        },
    };
    let name: Arc<str> = Arc::from(m.name.as_deref().unwrap_or("moderation"));
    Some(Moderation {
        policy: Arc::clone(policy),
        name,
        kind,
        provider: m.provider.clone(),
        path,
        model: m.model.clone(),
        timeout: Duration::from_millis(m.timeout_ms),
        on_error: match m.on_error {
            OnErrorName::Allow => OnError::Allow,
            OnErrorName::Block => OnError::Block,
        },
        action: act,
        direction,
        window_chars: m.window_chars,
        overlap_chars: m.overlap_chars,
        hold: m.hold,
    })
}
