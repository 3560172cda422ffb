//! The built-in detectors: what each one matches, its mask label, its longest match, and the
//! check that turns a look-alike into a finding (Luhn, IBAN mod-97, ISO 7064 for resident IDs,
//! an address parse). The patterns are ASCII-only so their stream automata stay small.

use super::matcher::{Pattern, Validator};

/// A built-in PII detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    Email,
    Phone,
    PaymentCard,
    Iban,
    CnResidentId,
    Ipv4,
    Ipv6,
    Secret,
}

impl Detector {
    /// Every detector, in the order overlapping findings are preferred.
    pub const ALL: [Detector; 8] = [
        Detector::PaymentCard,
        Detector::Iban,
        Detector::CnResidentId,
        Detector::Secret,
        Detector::Email,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::Phone,
    ];

    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The name in config files.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::PaymentCard => "payment_card",
            Detector::Iban => "iban",
            Detector::CnResidentId => "cn_resident_id",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::Secret => "secret",
        }
    }

    /// What a `mask` puts in place of a finding.
    pub fn label(self) -> &'static str {
        match self {
            Detector::Email => "[EMAIL]",
            Detector::Phone => "[PHONE]",
            Detector::PaymentCard => "[CARD]",
            Detector::Iban => "[IBAN]",
            Detector::CnResidentId => "[CN_ID]",
            Detector::Ipv4 | Detector::Ipv6 => "[IP]",
            Detector::Secret => "[SECRET]",
        }
    }

    fn source(self) -> (&'static str, usize, Option<Validator>) {
        match self {
            Detector::Email => (
                r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}",
                254,
                Some(email_ok),
            ),
            // International (+CC ...), grouped national numbers, and mainland mobiles.
            Detector::Phone => (
                r"(?:\+[0-9]{1,3}[ .\-]?(?:\([0-9]{1,4}\)[ .\-]?)?[0-9]{1,4}(?:[ .\-]?[0-9]{2,4}){1,4}|(?:\([0-9]{2,4}\)[ .\-]?|(?-u:\b))[0-9]{2,4}(?:[ .\-][0-9]{2,4}){1,4}|(?-u:\b)1[3-9][0-9]{9})(?-u:\b)",
                32,
                Some(phone_ok),
            ),
            Detector::PaymentCard => (
                r"(?-u:\b)[0-9](?:[ \-]?[0-9]){12,18}(?-u:\b)",
                37,
                Some(luhn_ok),
            ),
            Detector::Iban => (
                r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)",
                42,
                Some(iban_ok),
            ),
            Detector::CnResidentId => {
                (r"(?-u:\b)[1-9][0-9]{16}[0-9Xx](?-u:\b)", 18, Some(cn_id_ok))
            }
            Detector::Ipv4 => (
                r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)",
                15,
                None,
            ),
            Detector::Ipv6 => (
                r"(?:[0-9A-Fa-f]{1,4}:|:){2,7}(?:[0-9A-Fa-f]{1,4}|:)",
                39,
                Some(ipv6_ok),
            ),
            Detector::Secret => (
                r"(?-u:\b)(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})",
                256,
                None,
            ),
        }
    }

    pub fn pattern(self) -> Result<Pattern, String> {
        let (source, longest, validate) = self.source();
        Pattern::new(source, false, longest, validate)
    }
}

fn digits(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.chars().filter_map(|c| c.to_digit(10))
}

fn email_ok(s: &str) -> bool {
    s.len() <= 254
        && s.split_once('@')
            .is_some_and(|(local, _)| local.len() <= 64)
}

/// 10 to 15 digits (E.164's most), or 8 and more after a `+` country code; a mobile is 11.
fn phone_ok(s: &str) -> bool {
    let n = digits(s).count();
    if s.starts_with('+') {
        (8..=15).contains(&n)
    } else {
        (10..=15).contains(&n)
    }
}

/// 13 to 19 digits passing the Luhn check.
fn luhn_ok(s: &str) -> bool {
    let ds: Vec<u32> = digits(s).collect();
    if !(13..=19).contains(&ds.len()) {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match (i % 2 == 1, d * 2) {
            (true, d2) if d2 > 9 => d2 - 9,
            (true, d2) => d2,
            (false, _) => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616: the country code and check digits moved to the end, letters as numbers, mod 97
/// is 1.
fn iban_ok(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for &b in tail.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// GB 11643: ISO 7064 MOD 11-2 over the first 17 digits gives the 18th (X for 10).
fn cn_id_ok(s: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = s.as_bytes();
    if b.len() != 18 {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize] == b[17].to_ascii_uppercase()
}

fn ipv6_ok(s: &str) -> bool {
    s.matches(':').count() >= 2 && s.parse::<std::net::Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::matcher::Matcher;

    fn found(d: Detector, text: &str) -> Vec<String> {
        let m = Matcher::Pattern(Box::new(d.pattern().unwrap()));
        let mut v = vec![];
        m.find(text, 0, |s, e| v.push(text[s..e].to_string()));
        v
    }

    #[test]
    fn each_detector_matches_its_kind_and_not_look_alikes() {
        assert_eq!(
            found(Detector::Email, "mail jane.doe+x@mail.example.com now"),
            ["jane.doe+x@mail.example.com"]
        );
        assert!(found(Detector::Email, "a@b is not one").is_empty());
        assert_eq!(
            found(Detector::PaymentCard, "card 4111 1111 1111 1111."),
            ["4111 1111 1111 1111"]
        );
        assert!(found(Detector::PaymentCard, "order 4111111111111112").is_empty());
        assert_eq!(
            found(Detector::Iban, "IBAN GB82 WEST 1234 5698 7654 32 ok"),
            ["GB82 WEST 1234 5698 7654 32"]
        );
        assert!(found(Detector::Iban, "GB82 WEST 1234 5698 7654 33").is_empty());
        assert_eq!(
            found(Detector::CnResidentId, "ID 11010519491231002X."),
            ["11010519491231002X"]
        );
        assert!(found(Detector::CnResidentId, "ID 110105194912310021").is_empty());
        assert_eq!(
            found(Detector::Ipv4, "from 192.168.10.1:80"),
            ["192.168.10.1"]
        );
        assert!(found(Detector::Ipv4, "v 1.2.3").is_empty());
        assert_eq!(
            found(Detector::Ipv6, "at 2001:db8::8a2e:370:7334 ok"),
            ["2001:db8::8a2e:370:7334"]
        );
        assert!(found(Detector::Ipv6, "at 12:30:45").is_empty());
        assert_eq!(
            found(Detector::Phone, "call +44 20 7946 0958 now"),
            ["+44 20 7946 0958"]
        );
        assert_eq!(
            found(Detector::Phone, "call (415) 555-2671"),
            ["(415) 555-2671"]
        );
        assert_eq!(found(Detector::Phone, "手机13812345678"), ["13812345678"]);
        assert!(found(Detector::Phone, "on 2026-12-02").is_empty());
        assert_eq!(
            found(Detector::Secret, "key sk-proj-abcdefghijklmnopqrstuvwx end"),
            ["sk-proj-abcdefghijklmnopqrstuvwx"]
        );
        assert_eq!(
            found(Detector::Secret, "AKIAIOSFODNN7EXAMPLE"),
            ["AKIAIOSFODNN7EXAMPLE"]
        );
    }

    #[test]
    fn names_round_trip() {
        for d in Detector::ALL {
            assert_eq!(Detector::from_name(d.name()), Some(d));
        }
        assert_eq!(Detector::from_name("ssn"), None);
    }
}
