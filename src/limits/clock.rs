//! Time for the limiter: an injectable wall clock, and the calendar facts (local minute of
//! day, day and month buckets) in the configured time zone.

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// Wall-clock time in Unix milliseconds.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        Timestamp::now().as_millisecond()
    }
}

/// A clock tests (and the admission fuzz target) move by hand.
#[derive(Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(ms))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Where an instant falls in the local calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    pub minute_of_day: u16,
    /// `YYYYMMDD`, the daily budget bucket.
    pub day: i64,
    /// `YYYYMM`, the monthly budget bucket.
    pub month: i64,
    /// Milliseconds to the next local midnight and to the next month.
    pub day_left_ms: i64,
    pub month_left_ms: i64,
}

pub fn calendar(tz: &TimeZone, now_ms: i64) -> Calendar {
    let ts = Timestamp::from_millisecond(now_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let z: Zoned = ts.to_zoned(tz.clone());
    let (y, m, d) = (z.year() as i64, z.month() as i64, z.day() as i64);
    let left = |end: Result<Zoned, jiff::Error>| {
        end.map(|e| e.timestamp().as_millisecond() - now_ms)
            .unwrap_or(0)
            .max(0)
    };
    let day_end = z.start_of_day().and_then(|s| s.tomorrow());
    let month_end = z
        .first_of_month()
        .and_then(|f| f.start_of_day())
        .and_then(|s| s.checked_add(jiff::Span::new().months(1)));
    Calendar {
        minute_of_day: (z.hour() as u16) * 60 + z.minute() as u16,
        day: y * 10_000 + m * 100 + d,
        month: y * 100 + m,
        day_left_ms: left(day_end),
        month_left_ms: left(month_end),
    }
}

/// [`calendar`] for the current wall-clock minute, computed once per minute.
pub struct CalendarCache {
    tz: TimeZone,
    cached: Mutex<Option<(i64, Calendar)>>,
}

impl CalendarCache {
    pub fn new(tz: TimeZone) -> CalendarCache {
        CalendarCache {
            tz,
            cached: Mutex::new(None),
        }
    }

    pub fn at(&self, now_ms: i64) -> Calendar {
        let minute = now_ms.div_euclid(60_000);
        let mut guard = match self.cached.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match *guard {
            Some((m, mut c)) if m == minute => {
                // Same minute: only the time left moves.
                let since = now_ms - minute * 60_000;
                let first = calendar_offset(&c, since);
                c.day_left_ms = first.0;
                c.month_left_ms = first.1;
                c
            }
            _ => {
                let at_start = calendar(&self.tz, minute * 60_000);
                *guard = Some((minute, at_start));
                let since = now_ms - minute * 60_000;
                let (day_left_ms, month_left_ms) = calendar_offset(&at_start, since);
                Calendar {
                    day_left_ms,
                    month_left_ms,
                    ..at_start
                }
            }
        }
    }
}

fn calendar_offset(at_minute_start: &Calendar, since_ms: i64) -> (i64, i64) {
    (
        (at_minute_start.day_left_ms - since_ms).max(0),
        (at_minute_start.month_left_ms - since_ms).max(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn buckets_follow_the_configured_zone() {
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        // 2026-11-22T16:30Z is 01:30 on the 23rd in Tokyo (UTC+9).
        let c = calendar(&tokyo, ms("2026-11-22T16:30:00Z"));
        assert_eq!(c.day, 20261123);
        assert_eq!(c.month, 202611);
        assert_eq!(c.minute_of_day, 90);
        assert_eq!(c.day_left_ms, 22 * 3_600_000 + 30 * 60_000);
        let utc = calendar(&TimeZone::UTC, ms("2026-11-30T23:59:00Z"));
        assert_eq!(
            (utc.day, utc.month, utc.minute_of_day),
            (20261130, 202611, 1439)
        );
        assert_eq!(utc.month_left_ms, 60_000);
    }

    #[test]
    fn cache_agrees_with_a_fresh_computation() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let cache = CalendarCache::new(tz.clone());
        let t = ms("2026-03-29T00:59:30Z"); // just before the DST switch
        assert_eq!(cache.at(t), calendar(&tz, t));
        assert_eq!(cache.at(t + 10_000), calendar(&tz, t + 10_000));
        assert_eq!(cache.at(t + 40_000), calendar(&tz, t + 40_000));
        assert_eq!(calendar(&tz, t + 40_000).minute_of_day, 3 * 60);
    }
}
