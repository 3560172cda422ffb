//! `[usage]`: how much usage history an instance keeps in memory (and mirrors to Redis).
//!
//! Three tiers: minutes for a day, hours for 31 days, days for 366 days. Each bucket of a tier
//! keeps at most its `*_rows` distinct (consumer, project, model, tenant, key) rows; what
//! arrives beyond them is added to one `(other)` row. Memory is bounded by these numbers times
//! the buckets kept, whatever the traffic: at most 1,440 × `minute_rows` + 744 × `hour_rows` +
//! 366 × `day_rows` rows, measured at ~390 bytes a row (~400 MB at the defaults, reached only
//! by 1,000 distinct rows every day for a year).

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageSection {
    pub minute_rows: usize,
    pub hour_rows: usize,
    pub day_rows: usize,
}

impl Default for UsageSection {
    fn default() -> Self {
        UsageSection {
            minute_rows: 200,
            hour_rows: 500,
            day_rows: 1_000,
        }
    }
}

/// Rows a bucket of each tier keeps at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageSettings {
    pub minute_rows: usize,
    pub hour_rows: usize,
    pub day_rows: usize,
}

pub fn build(u: &UsageSection, errs: &mut Vec<String>) -> UsageSettings {
    for (v, field) in [
        (u.minute_rows, "minute_rows"),
        (u.hour_rows, "hour_rows"),
        (u.day_rows, "day_rows"),
    ] {
        if !(1..=1_000_000).contains(&v) {
            errs.push(format!("usage.{field} must be from 1 to 1000000"));
        }
    }
    UsageSettings {
        minute_rows: u.minute_rows.clamp(1, 1_000_000),
        hour_rows: u.hour_rows.clamp(1, 1_000_000),
        day_rows: u.day_rows.clamp(1, 1_000_000),
    }
}
