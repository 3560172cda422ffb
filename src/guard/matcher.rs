//! One matcher: a word list or a pattern, with the two questions the scanner asks of it —
//! where does it match in this text, and could a match still be in progress at the text's end.
//!
//! The second question is what keeps a live stream safe: a start position is *live* when the
//! bytes from it to the end are a prefix of some match no longer than the matcher's longest
//! match. It is answered with an anchored automaton run from each candidate start (an
//! Aho-Corasick DFA for words, a regex DFA for patterns), so the hold-back is exactly as long
//! as the longest possible match needs and no longer. (The regex and aho-corasick crates find
//! matches; neither answers "is this a prefix of a match", hence the anchored runs here.)

use aho_corasick::automaton::Automaton as _;
use aho_corasick::{AhoCorasick, MatchKind};
use regex_automata::dfa::{dense, Automaton as _, StartKind};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::Anchored;

/// Checks a candidate's text beyond its shape (a checksum, an address parse).
pub type Validator = fn(&str) -> bool;

/// A list of words, matched case-insensitively (ASCII) and optionally as whole words.
pub struct Words {
    finder: AhoCorasick,
    prefixes: aho_corasick::dfa::DFA,
    first: ByteSet,
    whole_word: bool,
    longest: usize,
}

/// A regular expression, with its shape-checking validator and its longest match.
pub struct Pattern {
    finder: regex::Regex,
    prefixes: dense::DFA<Vec<u32>>,
    /// The prefix automaton's anchored start state by the byte before the start (index 0:
    /// none; `1 + b`: byte `b`), resolved once: `None` where that byte stops the automaton.
    starts: Box<[Option<StateID>]>,
    first: ByteSet,
    validate: Option<Validator>,
    longest: usize,
}

/// The bytes a match can begin with (after any byte): a text without one of them has no
/// match and no live start, and is passed over without running an automaton.
struct ByteSet([bool; 256]);

impl ByteSet {
    fn of(can_start: impl Fn(u8) -> bool) -> ByteSet {
        let mut set = [false; 256];
        for b in 0..=u8::MAX {
            set[usize::from(b)] = can_start(b);
        }
        ByteSet(set)
    }

    fn has(&self, b: u8) -> bool {
        self.0[usize::from(b)]
    }

    /// Whether any byte of `bytes` could begin a match.
    fn any_in(&self, bytes: &[u8]) -> bool {
        bytes.iter().any(|&b| self.has(b))
    }
}

pub enum Matcher {
    Words(Box<Words>),
    Pattern(Box<Pattern>),
}

/// How large a pattern's prefix automaton may grow.
const DFA_LIMIT: usize = 8 * 1024 * 1024;

impl Words {
    pub fn new(words: &[String], whole_word: bool) -> Result<Words, String> {
        // Each word in the view the text is matched in (see `fold`).
        let words: Vec<String> = words
            .iter()
            .map(|w| super::fold::fold_word(w.trim()))
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Err("the word list is empty".into());
        }
        let finder = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&words)
            .map_err(|e| e.to_string())?;
        let prefixes = aho_corasick::dfa::DFA::builder()
            .ascii_case_insensitive(true)
            .start_kind(aho_corasick::StartKind::Anchored)
            .build(&words)
            .map_err(|e| e.to_string())?;
        let longest = words.iter().map(|w| w.len()).max().unwrap_or(1);
        let first = ByteSet::of(|b| {
            prefixes
                .start_state(aho_corasick::Anchored::Yes)
                .is_ok_and(|s| {
                    !prefixes.is_dead(prefixes.next_state(aho_corasick::Anchored::Yes, s, b))
                })
        });
        Ok(Words {
            finder,
            prefixes,
            first,
            whole_word,
            longest,
        })
    }
}

impl Pattern {
    /// `source` is a regex; `longest` bounds how long a match can be (the hold-back's bound
    /// for patterns that could run on).
    pub fn new(
        source: &str,
        case_insensitive: bool,
        longest: usize,
        validate: Option<Validator>,
    ) -> Result<Pattern, String> {
        let finder = regex::RegexBuilder::new(source)
            .case_insensitive(case_insensitive)
            .size_limit(DFA_LIMIT)
            .build()
            .map_err(|e| e.to_string())?;
        let prefixes = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(StartKind::Anchored)
                    // `\b` is answered for ASCII; a non-ASCII byte next to one stops the run,
                    // which counts as live (held) until `longest`.
                    .unicode_word_boundary(true)
                    .dfa_size_limit(Some(DFA_LIMIT))
                    .determinize_size_limit(Some(DFA_LIMIT)),
            )
            .syntax(
                regex_automata::util::syntax::Config::new()
                    .case_insensitive(case_insensitive)
                    .utf8(false),
            )
            .build(source)
            .map_err(|e| format!("too complex to check on streams: {e}"))?;
        let start = |behind: Option<u8>| {
            let config = start::Config::new()
                .anchored(Anchored::Yes)
                .look_behind(behind);
            prefixes.start_state(&config).ok()
        };
        let starts: Box<[Option<StateID>]> = std::iter::once(start(None))
            .chain((0..=u8::MAX).map(|b| start(Some(b))))
            .collect();
        // A byte that stops the automaton (non-ASCII next to `\b`) counts as a possible start.
        let first = ByteSet::of(|b| {
            starts.iter().any(|s| {
                s.is_none_or(|s| {
                    let next = prefixes.next_state(s, b);
                    !prefixes.is_dead_state(next)
                })
            })
        });
        Ok(Pattern {
            finder,
            prefixes,
            starts,
            first,
            validate,
            longest: longest.max(1),
        })
    }
}

/// A letter or digit of a script that separates words with spaces (CJK text has no word
/// boundaries to check, so a whole-word list matches anywhere in it).
fn is_word_char(c: Option<char>) -> bool {
    c.is_some_and(|c| {
        (c.is_alphanumeric() || c == '_')
            && !matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
    })
}

impl Matcher {
    /// The longest match, in bytes.
    pub fn longest(&self) -> usize {
        match self {
            Matcher::Words(w) => w.longest,
            Matcher::Pattern(p) => p.longest,
        }
    }

    /// Every match in `text[from..]` (the bytes before `from` are context only): `found(start,
    /// end)`. Word lists report overlapping matches; patterns report leftmost ones.
    pub fn find(&self, text: &str, from: usize, mut found: impl FnMut(usize, usize)) {
        if !self
            .first()
            .any_in(&text.as_bytes()[from.min(text.len())..])
        {
            return;
        }
        match self {
            Matcher::Words(w) => {
                let input = aho_corasick::Input::new(text).range(from..);
                for m in w.finder.find_overlapping_iter(input) {
                    if w.whole_word
                        && (is_word_char(text[..m.start()].chars().next_back())
                            || is_word_char(text[m.end()..].chars().next()))
                    {
                        continue;
                    }
                    found(m.start(), m.end());
                }
            }
            Matcher::Pattern(p) => {
                let mut at = from;
                while at <= text.len() {
                    let Some(m) = p.finder.find_at(text, at) else {
                        break;
                    };
                    if m.is_empty() {
                        at = m.end() + text[m.end()..].chars().next().map_or(1, char::len_utf8);
                        continue;
                    }
                    if p.validate.is_none_or(|v| v(m.as_str())) {
                        found(m.start(), m.end());
                        at = m.end();
                    } else {
                        // A failed check (a bad checksum) may hide a valid match further on.
                        at = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
                    }
                }
            }
        }
    }

    /// The first start in `text[from..before]` where a match could still be in progress at
    /// the text's end, or `before` when none could.
    pub fn earliest_live(&self, text: &str, from: usize, before: usize) -> usize {
        let bytes = text.as_bytes();
        let starts = self.first();
        // A match as long as the longest one ending right at the end still waits for the next
        // character (a `\b` or whole-word check).
        let first = from.max(text.len().saturating_sub(self.longest()));
        (first..before.min(text.len()))
            .filter(|&p| starts.has(bytes[p]) && text.is_char_boundary(p))
            .find(|&p| self.live_from(bytes, p))
            .unwrap_or(before)
    }

    fn first(&self) -> &ByteSet {
        match self {
            Matcher::Words(w) => &w.first,
            Matcher::Pattern(p) => &p.first,
        }
    }

    fn live_from(&self, hay: &[u8], start: usize) -> bool {
        match self {
            Matcher::Words(w) => {
                let a = &w.prefixes;
                let Ok(mut sid) = a.start_state(aho_corasick::Anchored::Yes) else {
                    return true;
                };
                for &b in &hay[start..] {
                    sid = a.next_state(aho_corasick::Anchored::Yes, sid, b);
                    if a.is_dead(sid) {
                        return false;
                    }
                }
                // Still inside a word, or a whole word that ends here (its boundary is the
                // next character's).
                true
            }
            Matcher::Pattern(p) => {
                let dfa = &p.prefixes;
                let behind = start.checked_sub(1).map_or(0, |i| 1 + usize::from(hay[i]));
                let Some(mut sid) = p.starts[behind] else {
                    return true;
                };
                for &b in &hay[start..] {
                    sid = dfa.next_state(sid, b);
                    if dfa.is_dead_state(sid) {
                        return false;
                    }
                    if dfa.is_quit_state(sid) {
                        return true;
                    }
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str], whole: bool) -> Matcher {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        Matcher::Words(Box::new(Words::new(&list, whole).unwrap()))
    }

    fn all(m: &Matcher, text: &str) -> Vec<(usize, usize)> {
        let mut v = vec![];
        m.find(text, 0, |s, e| v.push((s, e)));
        v
    }

    #[test]
    fn words_match_case_insensitively_and_whole_words_need_boundaries() {
        let m = words(&["secret", "机密"], true);
        assert_eq!(all(&m, "a SECRET here"), vec![(2, 8)]);
        assert!(all(&m, "secretive").is_empty());
        assert_eq!(all(&m, "这是机密文件").len(), 1);
        let loose = words(&["secret"], false);
        assert_eq!(all(&loose, "secretive"), vec![(0, 6)]);
    }

    #[test]
    fn a_prefix_of_a_word_is_live_and_a_dead_end_is_not() {
        let m = words(&["forbidden"], false);
        assert_eq!(m.earliest_live("this is forb", 0, 12), 8);
        assert_eq!(m.earliest_live("this is fox", 0, 11), 11);
        // A complete match at the end is held: a whole-word check needs the next character.
        assert_eq!(m.earliest_live("x forbidden", 0, 11), 2);
    }

    #[test]
    fn patterns_validate_and_report_live_prefixes() {
        let even: Validator = |s| s.len() % 2 == 0;
        let m = Matcher::Pattern(Box::new(
            Pattern::new(r"(?-u:\b)[0-9]+(?-u:\b)", false, 8, Some(even)).unwrap(),
        ));
        assert_eq!(all(&m, "12 345 6789"), vec![(0, 2), (7, 11)]);
        assert_eq!(m.earliest_live("call 123", 0, 8), 5);
        assert_eq!(m.earliest_live("call 123 now", 0, 12), 12);
        // Older than the longest match: no longer live.
        assert_eq!(m.earliest_live("12345678 90", 0, 11), 9);
    }
}
