//! The view rules match on: text as a reader sees it, not as its code points spell it.
//! Full-width and other compatibility forms become their plain letters and digits (NFKD),
//! non-ASCII letters their lower case (with `ß` as `ss`, final `ς` as `σ`), combining marks
//! and default-ignorable characters (zero-width spaces and joiners, soft hyphens, bidi
//! controls, variation selectors) vanish, and non-breaking spaces are spaces. So
//! `ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ`, `Vol\u{200d}demort`, `Vo\u{301}ldemort`, `KİLL` and a card number
//! spaced with U+00A0 match as their plain forms do.
//!
//! ASCII letters keep their case (patterns such as `AKIA[0-9A-Z]{16}` are case-sensitive;
//! word lists already match ASCII in any case). Each byte of the view remembers the
//! original character it came from, so a finding maps back to exact original bytes and a
//! mask replaces precisely what was matched. ASCII text is its own view and costs nothing.
//! Normalisation is the `unicode-normalization` crate's; the fold and the ignorable set are
//! the few lines here.

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// A text's matching view and, per view byte, the original character's byte span.
#[derive(Debug, Default)]
pub struct Folded {
    pub text: String,
    spans: Vec<(u32, u32)>,
}

impl Folded {
    /// The view of `text`, or `None` when it is ASCII (then it is its own view).
    pub fn of(text: &str) -> Option<Folded> {
        if text.is_ascii() {
            return None;
        }
        let mut f = Folded {
            text: String::with_capacity(text.len()),
            spans: Vec::with_capacity(text.len()),
        };
        for (at, c) in text.char_indices() {
            let span = (at as u32, (at + c.len_utf8()) as u32);
            // ASCII and the CJK Unified Ideographs have no decomposition and no case.
            if c.is_ascii() || ('\u{4e00}'..='\u{9fff}').contains(&c) {
                f.push(c, span);
                continue;
            }
            decompose_compatible(c, |d| {
                if is_combining_mark(d) || ignorable(d) {
                    return;
                }
                fold(d, |e| f.push(e, span));
            });
        }
        Some(f)
    }

    fn push(&mut self, c: char, span: (u32, u32)) {
        self.text.push(c);
        self.spans.resize(self.text.len(), span);
    }

    /// The view offset of original offset `at` (the first view byte from there on).
    pub fn to_view(&self, at: usize) -> usize {
        self.spans
            .partition_point(|&(start, _)| (start as usize) < at)
    }

    /// The original offset a view start maps to.
    pub fn start(&self, view: usize, original_len: usize) -> usize {
        self.spans
            .get(view)
            .map_or(original_len, |&(start, _)| start as usize)
    }

    /// The original offset a view end maps to.
    pub fn end(&self, view: usize) -> usize {
        view.checked_sub(1)
            .and_then(|i| self.spans.get(i))
            .map_or(0, |&(_, end)| end as usize)
    }
}

/// A non-ASCII character's matching form.
fn fold(c: char, mut out: impl FnMut(char)) {
    match c {
        '\u{a0}' | '\u{2007}' | '\u{202f}' => out(' '),
        'ß' | 'ẞ' => {
            out('s');
            out('s');
        }
        'ς' => out('σ'),
        c if c.is_ascii() => out(c),
        c => {
            for l in c.to_lowercase() {
                // `İ` lowers to `i` + a combining dot: the mark goes, as every mark does.
                if !is_combining_mark(l) {
                    out(l);
                }
            }
        }
    }
}

/// Unicode's Default_Ignorable_Code_Point: characters that render as nothing.
fn ignorable(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// A word list's entry in the same view (so `机密` or `Привет` match as the text's view).
pub fn fold_word(word: &str) -> String {
    Folded::of(word).map_or_else(|| word.to_string(), |f| f.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_trick_folds_to_its_plain_form_and_maps_back() {
        for (text, view) in [
            ("ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ", "john@example.com"),
            ("Vol\u{200d}de\u{200b}mort", "Voldemort"),
            ("Vo\u{301}lde\u{308}mort", "Voldemort"),
            ("KİLL", "KILL"),
            ("4111\u{a0}1111\u{a0}1111\u{a0}1111", "4111 1111 1111 1111"),
            ("STRAẞE", "STRAssE"),
            ("ПРИВЕТ", "привет"),
            ("机密", "机密"),
        ] {
            let f = Folded::of(text).unwrap();
            assert_eq!(f.text, view, "{text}");
            // The whole view maps back to the whole text.
            assert_eq!(f.start(0, text.len()), 0);
            assert_eq!(f.end(f.text.len()), text.len());
        }
        assert!(Folded::of("plain ascii").is_none());
    }

    #[test]
    fn a_span_of_the_view_is_a_span_of_whole_original_characters() {
        let text = "mail ｊｏｈｎ＠ｘ．ｃｏ ok";
        let f = Folded::of(text).unwrap();
        let at = f.text.find("john@x.co").unwrap();
        let (s, e) = (f.start(at, text.len()), f.end(at + "john@x.co".len()));
        assert_eq!(&text[s..e], "ｊｏｈｎ＠ｘ．ｃｏ");
        assert_eq!(f.to_view(s), at);
    }
}
