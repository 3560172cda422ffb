//! Rules and the scanner: every rule of the policies that apply, run over one text, findings
//! resolved into what the text becomes (masked), whether it is refused, and what to count.
//!
//! [`Hold`] is the same scanner on a live stream's text: it releases at once everything no
//! match can still reach and keeps only the tail a match could be in progress in.

use super::fold::Folded;
use super::matcher::Matcher;
use std::sync::Arc;

/// What a rule does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Refuse the request (400 `content_policy_violation`), or end the stream with an error.
    Block,
    /// Replace the finding with a label.
    Mask,
    /// Shadow mode: count and log, change nothing.
    Log,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Mask => "mask",
            Action::Log => "log",
        }
    }
}

/// Which way the text travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Request,
    Response,
}

impl Flow {
    pub fn label(self) -> &'static str {
        match self {
            Flow::Request => "request",
            Flow::Response => "response",
        }
    }
}

/// One matcher of a rule, and what a mask puts in its place.
pub struct Check {
    pub matcher: Matcher,
    pub replacement: Arc<str>,
}

/// A named rule of a policy.
pub struct Rule {
    pub policy: Arc<str>,
    pub name: Arc<str>,
    pub action: Action,
    pub checks: Vec<Check>,
}

impl Rule {
    /// Count a finding in `tollgate_guardrail_actions_total` (resolved when a rule fires, so
    /// loading a config registers no series).
    pub fn count(&self, flow: Flow) {
        count_action(&self.policy, &self.name, self.action, flow);
    }
}

/// One guardrail action in `tollgate_guardrail_actions_total`.
pub fn count_action(policy: &str, rule: &str, action: Action, flow: Flow) {
    crate::metrics::METRICS
        .guardrail_actions
        .with_label_values(&[policy, rule, action.label(), flow.label()])
        .inc();
}

/// A finding: a byte range, the rule and check that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub start: usize,
    pub end: usize,
    pub rule: usize,
    pub check: usize,
}

/// The rules that apply to one direction of one request.
#[derive(Clone)]
pub struct Scanner {
    pub rules: Vec<Arc<Rule>>,
    /// The direction it counts its actions under.
    pub flow: Flow,
}

/// What scanning a text decided.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The rule whose `block` fired first.
    pub blocked: Option<usize>,
    /// Rules that fired (any action), each once, in order.
    pub fired: Vec<usize>,
}

impl Verdict {
    pub fn note(&mut self, rule: usize) {
        if !self.fired.contains(&rule) {
            self.fired.push(rule);
        }
    }
}

impl Scanner {
    pub fn new(flow: Flow) -> Scanner {
        Scanner {
            rules: Vec::new(),
            flow,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every rule only logs: findings are counted and nothing is rewritten or refused.
    pub fn only_logs(&self) -> bool {
        self.rules.iter().all(|r| r.action == Action::Log)
    }

    /// The longest match of any check: the most a stream ever holds back.
    pub fn longest(&self) -> usize {
        self.checks()
            .map(|(_, _, c)| c.matcher.longest())
            .max()
            .unwrap_or(0)
    }

    fn checks(&self) -> impl Iterator<Item = (usize, usize, &Check)> {
        self.rules.iter().enumerate().flat_map(|(r, rule)| {
            rule.checks
                .iter()
                .enumerate()
                .map(move |(c, ch)| (r, c, ch))
        })
    }

    /// Every finding in `text[from..]`, sorted by start (longest first on a tie).
    pub fn hits(&self, text: &str, from: usize) -> Vec<Hit> {
        let mut hits = Vec::new();
        self.hits_into(text, from, &mut hits);
        hits
    }

    /// [`Self::hits`] into a reused vector (cleared first). Rules match on the text's
    /// [`Folded`] view; the findings are spans of the original text.
    pub fn hits_into(&self, text: &str, from: usize, hits: &mut Vec<Hit>) {
        self.hits_in_view(text, Folded::of(text).as_ref(), from, hits);
    }

    /// [`Self::hits_into`] with the text's view already made.
    fn hits_in_view(&self, text: &str, folded: Option<&Folded>, from: usize, hits: &mut Vec<Hit>) {
        hits.clear();
        match folded {
            None => self.view_hits(text, from, hits),
            Some(f) => {
                self.view_hits(&f.text, f.to_view(from), hits);
                for h in hits.iter_mut() {
                    h.start = f.start(h.start, text.len());
                    h.end = f.end(h.end);
                }
            }
        }
        hits.sort_unstable_by_key(|h| (h.start, std::cmp::Reverse(h.end), h.rule, h.check));
    }

    fn view_hits(&self, text: &str, from: usize, hits: &mut Vec<Hit>) {
        for (rule, check, c) in self.checks() {
            c.matcher.find(text, from, |start, end| {
                hits.push(Hit {
                    start,
                    end,
                    rule,
                    check,
                })
            });
        }
    }

    /// The first start in `text[from..]` a match could still be in progress at (in the
    /// folded view, mapped back).
    pub fn earliest_live(&self, text: &str, from: usize) -> usize {
        self.earliest_live_in_view(text, Folded::of(text).as_ref(), from)
    }

    fn earliest_live_in_view(&self, text: &str, folded: Option<&Folded>, from: usize) -> usize {
        // Each check only looks before the earliest start found so far.
        let earliest = |view: &str, from: usize| {
            self.checks().fold(view.len(), |earliest, (_, _, c)| {
                c.matcher.earliest_live(view, from, earliest)
            })
        };
        match folded {
            None => earliest(text, from),
            Some(f) => f.start(earliest(&f.text, f.to_view(from)), text.len()),
        }
    }

    /// Apply the findings in `text[from..to]` (which must not cut any of them): the text
    /// with masks in place goes to `out`, the verdict records what fired. Overlapping
    /// findings: the earliest wins (the longest on a tie); the others are neither acted on
    /// nor counted.
    pub fn apply(
        &self,
        text: &str,
        from: usize,
        to: usize,
        hits: &[Hit],
        out: &mut String,
        v: &mut Verdict,
    ) {
        let mut at = from;
        for h in hits.iter().filter(|h| h.start >= from && h.end <= to) {
            if h.start < at {
                continue;
            }
            let rule = &self.rules[h.rule];
            rule.count(self.flow);
            v.note(h.rule);
            match rule.action {
                Action::Log => out.push_str(&text[at..h.end]),
                Action::Block => {
                    v.blocked.get_or_insert(h.rule);
                    out.push_str(&text[at..h.end]);
                }
                Action::Mask => {
                    out.push_str(&text[at..h.start]);
                    out.push_str(&rule.checks[h.check].replacement);
                }
            }
            at = h.end;
        }
        out.push_str(&text[at..to]);
    }

    /// Scan a whole text (a request's message, a JSON answer's content). `None` when it
    /// stays as it is.
    pub fn scan(&self, text: &str, v: &mut Verdict) -> Option<String> {
        let hits = self.hits(text, 0);
        if hits.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        self.apply(text, 0, text.len(), &hits, &mut out, v);
        (out != text).then_some(out)
    }
}

/// The bytes of context kept before the held text, for `\b` and whole-word checks.
const CONTEXT: usize = 4;

/// One stream channel's held text (a choice's content, a tool call's arguments, a block).
#[derive(Debug, Default)]
pub struct Hold {
    /// Context (the last released characters), then the held text.
    buf: String,
    /// Where the held text starts in `buf`.
    held_from: usize,
    /// The findings of the last scan (kept for its allocation).
    hits: Vec<Hit>,
}

impl Hold {
    /// Add `text`; what can be released now (masked) is appended to `out`.
    pub fn feed(&mut self, scanner: &Scanner, text: &str, out: &mut String, v: &mut Verdict) {
        self.buf.push_str(text);
        let from = self.held_from;
        // One view of the buffer serves both questions.
        let folded = Folded::of(&self.buf);
        let mut release = scanner.earliest_live_in_view(&self.buf, folded.as_ref(), from);
        if release == from {
            return;
        }
        scanner.hits_in_view(&self.buf, folded.as_ref(), from, &mut self.hits);
        // Never cut a finding: release up to the start of one that reaches past the point
        // (which may in turn cut an earlier, overlapping one).
        while let Some(h) = self
            .hits
            .iter()
            .find(|h| h.start < release && h.end > release)
        {
            release = h.start;
        }
        scanner.apply(&self.buf, from, release, &self.hits, out, v);
        self.keep_from(release);
    }

    /// The channel ended: everything held is final, appended to `out`.
    pub fn flush(&mut self, scanner: &Scanner, out: &mut String, v: &mut Verdict) {
        let from = self.held_from;
        scanner.hits_into(&self.buf, from, &mut self.hits);
        scanner.apply(&self.buf, from, self.buf.len(), &self.hits, out, v);
        self.keep_from(self.buf.len());
    }

    pub fn is_empty(&self) -> bool {
        self.held_from == self.buf.len()
    }

    pub fn held_bytes(&self) -> usize {
        self.buf.len() - self.held_from
    }

    /// Drop released text, keeping a few characters of context before `at`.
    fn keep_from(&mut self, at: usize) {
        let mut ctx = at.saturating_sub(CONTEXT);
        while !self.buf.is_char_boundary(ctx) {
            ctx -= 1;
        }
        self.buf.drain(..ctx);
        self.held_from = at - ctx;
    }
}
