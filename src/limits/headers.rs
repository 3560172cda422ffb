//! The rate-limit headers of every admitted or limited response, as the client's API sends
//! them. OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, resets as durations
//! (`6s`, `1m30s`). Anthropic: `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`,
//! resets as RFC 3339 times.

use crate::types::dialect::Dialect;
use http::HeaderValue;
use pingora::http::ResponseHeader;

/// One dimension's state for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Until the window is empty again.
    pub reset_ms: i64,
}

/// The tightest request and token quotas over the scopes a request was checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub requests: Option<Quota>,
    pub tokens: Option<Quota>,
}

impl RateHeaders {
    /// Keep whichever quota has less remaining.
    pub fn tighten(slot: &mut Option<Quota>, q: Quota) {
        if slot.is_none_or(|old| q.remaining < old.remaining) {
            *slot = Some(q);
        }
    }

    pub fn apply(&self, h: &mut ResponseHeader, dialect: Dialect) -> pingora::Result<()> {
        for (names, q) in [(0, self.requests), (1, self.tokens)] {
            let Some(q) = q else { continue };
            let [limit, remaining, reset] = match dialect {
                Dialect::OpenAi => OPENAI[names],
                Dialect::Anthropic => ANTHROPIC[names],
            };
            h.insert_header(limit, HeaderValue::from(q.limit))?;
            h.insert_header(remaining, HeaderValue::from(q.remaining))?;
            match dialect {
                Dialect::OpenAi => h.insert_header(reset, duration(q.reset_ms))?,
                Dialect::Anthropic => {
                    let at = jiff::Timestamp::now()
                        .checked_add(jiff::SignedDuration::from_millis(q.reset_ms.max(0)))
                        .unwrap_or_else(|_| jiff::Timestamp::now());
                    h.insert_header(reset, format!("{at:.0}"))?
                }
            }
        }
        Ok(())
    }
}

/// Header names (limit, remaining, reset) for requests and tokens: built once, not per
/// response.
const OPENAI: [[&str; 3]; 2] = [
    [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ],
    [
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ],
];
const ANTHROPIC: [[&str; 3]; 2] = [
    [
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    ],
    [
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ],
];

/// A duration the way OpenAI writes it: `250ms`, `6s`, `6.5s`, `1m30s`, `2h0m0s`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let secs = Seconds(rest);
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

/// Milliseconds under a minute as seconds with the fraction's trailing zeros dropped.
struct Seconds(i64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (s, milli) = (self.0 / 1000, self.0 % 1000);
        match milli {
            0 => write!(f, "{s}"),
            m if m % 100 == 0 => write!(f, "{s}.{}", m / 100),
            m if m % 10 == 0 => write!(f, "{s}.{:02}", m / 10),
            m => write!(f, "{s}.{m:03}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openai_headers() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(250), "250ms");
        assert_eq!(duration(6_000), "6s");
        assert_eq!(duration(6_500), "6.5s");
        assert_eq!(duration(90_000), "1m30s");
        assert_eq!(duration(60_000), "1m0s");
        assert_eq!(duration(7_200_000), "2h0m0s");
        assert_eq!(duration(61_050), "1m1.05s");
        assert_eq!(duration(1_001), "1.001s");
    }

    #[test]
    fn headers_keep_the_tightest_quota() {
        let mut h = RateHeaders::default();
        let q = |remaining| Quota {
            limit: 10,
            remaining,
            reset_ms: 1_500,
        };
        RateHeaders::tighten(&mut h.requests, q(7));
        RateHeaders::tighten(&mut h.requests, q(3));
        RateHeaders::tighten(&mut h.requests, q(5));
        let mut resp = ResponseHeader::build(200, None).unwrap();
        h.apply(&mut resp, Dialect::OpenAi).unwrap();
        assert_eq!(resp.headers["x-ratelimit-remaining-requests"], "3");
        assert_eq!(resp.headers["x-ratelimit-reset-requests"], "1.5s");
        assert!(resp.headers.get("x-ratelimit-limit-tokens").is_none());
        let mut resp = ResponseHeader::build(200, None).unwrap();
        h.apply(&mut resp, Dialect::Anthropic).unwrap();
        assert_eq!(resp.headers["anthropic-ratelimit-requests-remaining"], "3");
        assert_eq!(resp.headers["anthropic-ratelimit-requests-limit"], "10");
        let reset = resp.headers["anthropic-ratelimit-requests-reset"]
            .to_str()
            .unwrap();
        let reset: jiff::Timestamp = reset.parse().unwrap();
        let ahead = reset.duration_since(jiff::Timestamp::now()).as_secs_f64();
        assert!((0.0..=2.0).contains(&ahead), "{reset}");
        assert!(resp.headers.get("x-ratelimit-remaining-requests").is_none());
    }
}
