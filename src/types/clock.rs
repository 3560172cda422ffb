//! The wall clock, read in one place. Everything else asks here (or uses the limiter's
//! injectable [`crate::limits::clock`]), so tests and lints can see every wall-clock read.

use std::time::{SystemTime, UNIX_EPOCH};

#[expect(clippy::disallowed_methods, reason = "the one wall-clock read")]
fn wall() -> SystemTime {
    SystemTime::now()
}

/// Now, on the wall clock.
pub fn now() -> SystemTime {
    wall()
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_nanos() -> u64 {
    wall()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_seconds() -> u64 {
    wall().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Now, as RFC 3339 with microseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_micros(wall()).to_string()
}
