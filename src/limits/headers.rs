//! The rate-limit headers of every admitted or limited response, as the client's API sends
//! them. OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, resets as durations
//! (`6s`, `1m30s`). Anthropic: `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`,
//! resets as RFC 3339 times.

use crate::dialect::Dialect;
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
        for (name, q) in [("requests", self.requests), ("tokens", self.tokens)] {
            let Some(q) = q else { continue };
            if dialect == Dialect::Anthropic {
                let reset = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_millis(q.reset_ms.max(0)))
                    .unwrap_or_else(|_| jiff::Timestamp::now());
                let prefix = format!("anthropic-ratelimit-{name}");
                h.insert_header(format!("{prefix}-limit"), q.limit.to_string())?;
                h.insert_header(format!("{prefix}-remaining"), q.remaining.to_string())?;
                h.insert_header(format!("{prefix}-reset"), format!("{reset:.0}"))?;
                continue;
            }
            h.insert_header(format!("x-ratelimit-limit-{name}"), q.limit.to_string())?;
            h.insert_header(
                format!("x-ratelimit-remaining-{name}"),
                q.remaining.to_string(),
            )?;
            h.insert_header(format!("x-ratelimit-reset-{name}"), duration(q.reset_ms))?;
        }
        Ok(())
    }
}

/// A duration the way OpenAI writes it: `250ms`, `6s`, `6.5s`, `1m30s`, `2h0m0s`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let s = rest as f64 / 1000.0;
    let secs = format!("{s:.3}");
    let secs = secs.trim_end_matches('0').trim_end_matches('.');
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
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
