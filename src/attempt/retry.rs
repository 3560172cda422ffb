//! Same-target retries: which failures a model's `retries` cover, the jittered exponential
//! back-off, and the provider's own `retry-after-ms` / `Retry-After` (seconds or an HTTP
//! date), which wins when it is within the model's cap.

use crate::attempt::{Clock, Failure};
use crate::config::Retries;
use std::time::{Duration, SystemTime};

/// Whether `retries` covers this failure.
pub fn covers(r: &Retries, failure: Failure) -> bool {
    match failure {
        Failure::Status(s) => r.on_status.contains(&s),
        Failure::ConnectTimeout
        | Failure::ConnectRefused
        | Failure::ConnectNoRoute
        | Failure::Connect
        | Failure::Tls => r.on_connect,
        Failure::Reset | Failure::Protocol => r.on_reset,
        Failure::TimedOut(Clock::FirstByte | Clock::FirstToken) => r.on_timeout,
        // The total clock is the request's, and a stall is mid-stream: retrying cannot help.
        Failure::TimedOut(Clock::Idle | Clock::Total) => false,
        Failure::Unresolved
        | Failure::FirstFrameError
        | Failure::ContextOverflow
        | Failure::StaleConnection
        | Failure::Other => false,
    }
}

/// The back-off before retry number `n` (1-based): `backoff × 2^(n-1)` capped at
/// `max_backoff`, then "equal jitter" (half fixed, half random, `jitter` in [0, 1)), so
/// retries of many requests spread out instead of arriving together.
pub fn backoff(r: &Retries, n: u32, jitter: f64) -> Duration {
    let exp = r
        .backoff
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(r.max_backoff);
    exp / 2 + exp.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

/// The wait the provider asked for: `retry-after-ms` (milliseconds, possibly fractional),
/// else `retry-after` in seconds or as an HTTP date.
pub fn retry_after(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let v = text("retry-after")?;
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate_parse(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn httpdate_parse(v: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(v)
        .ok()
        .or_else(|| parse_imf_fixdate(v))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`, the one date form RFC 9110 requires senders to use.
fn parse_imf_fixdate(v: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let text = format!("{year}-{month:02}-{day:0>2}T{time}Z");
    humantime::parse_rfc3339(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retries() -> Retries {
        Retries {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(10),
            on_status: vec![429, 500],
            on_connect: true,
            on_reset: false,
            on_timeout: false,
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let r = retries();
        assert_eq!(backoff(&r, 1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(&r, 1, 0.999_999).as_millis(), 99);
        assert_eq!(backoff(&r, 2, 0.0), Duration::from_millis(100));
        assert_eq!(
            backoff(&r, 3, 0.0),
            Duration::from_millis(150),
            "capped at 300"
        );
        assert_eq!(backoff(&r, 30, 0.0), Duration::from_millis(150));
    }

    #[test]
    fn retries_cover_what_they_list() {
        let r = retries();
        assert!(covers(&r, Failure::Status(429)));
        assert!(!covers(&r, Failure::Status(503)));
        assert!(covers(&r, Failure::ConnectRefused));
        assert!(!covers(&r, Failure::Reset));
        assert!(!covers(&r, Failure::TimedOut(Clock::Total)));
    }

    #[test]
    fn retry_after_in_milliseconds_seconds_and_dates() {
        let now = humantime::parse_rfc3339("2026-12-02T10:00:00Z").unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "1500.5".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_micros(1_500_500)));
        let mut h = http::HeaderMap::new();
        h.insert(
            "retry-after",
            "Wed, 02 Dec 2026 10:00:07 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }
}
