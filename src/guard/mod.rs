//! Guardrails: named policies of rules (sensitive words, PII detectors, prompt-injection
//! patterns, custom regexes) and an optional moderation hook, attached to consumers, keys or
//! models, applied to requests and to answers — JSON and live streams, in both dialects.
//!
//! | module | owns |
//! |---|---|
//! | [`matcher`] | one word list or pattern: its matches, and whether one is still in progress |
//! | [`detect`] | the built-in PII detectors and their checksums |
//! | [`fold`] | the view rules match on: compatibility forms, case, marks and invisibles folded |
//! | [`escapes`] | JSON text in a stream, its needless `\uXXXX` escapes decoded before matching |
//! | [`injection`] | the shipped prompt-injection pattern set |
//! | [`scan`] | rules, the scanner over a text, and the stream channel's hold-back |
//! | [`text`] | where the text is in request and answer bodies of each dialect |
//! | `channel` | one stream text channel: its hold-back, and JSON text's escape canonicaliser |
//! | [`stream`] | the live-stream filter over client-dialect events |
//! | [`wire`] | what the filter reads of each event: its text fields' spans |
//! | [`answer`] | one answer's guard: a stream's filter, or a JSON body screened whole |
//!
//! This module knows nothing of the proxy: it takes text and bytes and says what they
//! become. Admission and the exchange apply its verdicts; the moderation hook's HTTP call
//! is [`crate::request::moderation`]'s.

pub mod answer;
mod channel;
pub mod detect;
mod escapes;
mod fold;
pub mod injection;
pub mod matcher;
pub mod scan;
pub mod stream;
pub mod text;
mod wire;

pub use scan::{Action, Flow, Rule, Scanner, Verdict};
use std::sync::Arc;
use std::time::Duration;

/// Which texts a policy looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
    Both,
}

impl Direction {
    pub fn covers(self, flow: Flow) -> bool {
        matches!(
            (self, flow),
            (Direction::Both, _)
                | (Direction::Request, Flow::Request)
                | (Direction::Response, Flow::Response)
        )
    }
}

/// What the moderation hook does when the service fails or does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Allow,
    Block,
}

/// The moderation service's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModerationKind {
    /// `POST {base}/moderations` with `{"model", "input"}`; reads `results[0].flagged`.
    OpenAiModeration,
    /// `POST {base}{path}` with `{"input"}`; reads `flagged`.
    Http,
}

/// A policy's moderation hook.
#[derive(Debug)]
pub struct Moderation {
    pub policy: Arc<str>,
    /// The rule name it reports under (`moderation` unless named).
    pub name: Arc<str>,
    pub kind: ModerationKind,
    /// The `[[providers]]` entry that is the service.
    pub provider: String,
    pub path: String,
    pub model: Option<String>,
    pub timeout: Duration,
    pub on_error: OnError,
    /// What a flagged text gets: `block` or `log`.
    pub action: Action,
    pub direction: Direction,
    /// Streams: characters per checked window, and how many of them the next window repeats.
    pub window_chars: usize,
    pub overlap_chars: usize,
    /// Streams: text waits for its window's verdict.
    pub hold: bool,
}

/// Whom a policy applies to: every request when all three lists are empty, else any
/// request whose consumer, key or model is listed (`*` lists everyone).
#[derive(Debug, Default)]
pub struct Attach {
    pub consumers: Vec<String>,
    pub keys: Vec<String>,
    pub models: Vec<String>,
}

impl Attach {
    fn applies(&self, consumer: &str, key: Option<&str>, model: &str) -> bool {
        let listed = |list: &[String], name: Option<&str>| {
            name.is_some_and(|n| list.iter().any(|x| x == "*" || x == n))
        };
        (self.consumers.is_empty() && self.keys.is_empty() && self.models.is_empty())
            || listed(&self.consumers, Some(consumer))
            || listed(&self.keys, key)
            || listed(&self.models, Some(model))
    }
}

pub struct Policy {
    pub name: Arc<str>,
    pub direction: Direction,
    pub attach: Attach,
    pub rules: Vec<Arc<Rule>>,
    pub moderation: Option<Arc<Moderation>>,
}

/// Every configured policy.
#[derive(Default)]
pub struct Guardrails {
    pub policies: Vec<Policy>,
}

impl std::fmt::Debug for Guardrails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.policies.iter().map(|p| &*p.name).collect();
        f.debug_struct("Guardrails")
            .field("policies", &names)
            .finish()
    }
}

/// The rules that apply to one request, per direction.
#[derive(Clone)]
pub struct Selected {
    pub request: Scanner,
    pub response: Scanner,
    pub request_moderation: Vec<Arc<Moderation>>,
    pub response_moderation: Vec<Arc<Moderation>>,
}

impl Selected {
    pub fn guards_response(&self) -> bool {
        !self.response.is_empty() || !self.response_moderation.is_empty()
    }
}

impl Guardrails {
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policies for a request of `consumer` (with `key`, its key label) to `model`.
    pub fn select(&self, consumer: &str, key: Option<&str>, model: &str) -> Option<Selected> {
        let mut s = Selected {
            request: Scanner::new(Flow::Request),
            response: Scanner::new(Flow::Response),
            request_moderation: Vec::new(),
            response_moderation: Vec::new(),
        };
        let mut any = false;
        for p in self
            .policies
            .iter()
            .filter(|p| p.attach.applies(consumer, key, model))
        {
            any = true;
            for flow in [Flow::Request, Flow::Response] {
                if !p.direction.covers(flow) {
                    continue;
                }
                let (scanner, hooks) = match flow {
                    Flow::Request => (&mut s.request, &mut s.request_moderation),
                    Flow::Response => (&mut s.response, &mut s.response_moderation),
                };
                scanner.rules.extend(p.rules.iter().cloned());
                if let Some(m) = p.moderation.as_ref().filter(|m| m.direction.covers(flow)) {
                    hooks.push(Arc::clone(m));
                }
            }
        }
        any.then_some(s)
    }
}

/// Why a text was refused: the policy and rule, never the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub policy: Arc<str>,
    pub rule: Arc<str>,
    pub reason: BlockReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReason {
    /// A `block` rule matched.
    Matched,
    /// The moderation service flagged the text.
    Flagged,
    /// The moderation service failed and the hook says `on_error = "block"`.
    ModerationUnavailable,
}

impl Blocked {
    pub fn of_rule(rule: &Rule) -> Blocked {
        Blocked {
            policy: Arc::clone(&rule.policy),
            rule: Arc::clone(&rule.name),
            reason: BlockReason::Matched,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_fields;
