//! Usage analytics: roll-ups of requests, tokens, cost and errors per (consumer, project,
//! tenant, model, key), and the top-N / timeline queries of `GET /admin/usage`. (Token counts of
//! one response are [`crate::wire::meter::Usage`]; this module adds them up.)
//!
//! Every instance counts in memory, in three tiers ([`rollups`]): minutes for a day, hours for 31
//! days, days for 366 days, each bucket holding at most `[usage]`'s rows (the rest is added to
//! one `(other)` row), so memory is bounded by configuration, not by traffic. With `[redis]`,
//! the limit-store sync also writes this instance's changed buckets to Redis, one hash per
//! bucket with a field per (instance, consumer, project, model, tenant, key) holding absolute
//! counts, so a repeated write never double counts; a query ([`query`]) then sums every
//! instance's fields, using this instance's live counts for its own. Without Redis the figures
//! are this instance's.

pub mod query;
pub mod rollups;

pub use query::{minute_rfc3339, query_api, summarize, GroupBy};
pub use rollups::{Rollups, Tier};

use serde::Serialize;
use serde_json::{json, Value};

/// Separates a Redis field's parts.
const SEP: char = '\u{1f}';

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub consumer: String,
    pub project: String,
    pub model: String,
    pub tenant: String,
    /// The key: an API key's id, or `config:<consumer>:<index>`.
    pub key: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micros: u64,
    pub errors: u64,
}

impl Counts {
    pub(crate) fn add(&mut self, o: &Counts) {
        // Saturating: a backend's reported usage is not bounded by the gateway.
        self.requests = self.requests.saturating_add(o.requests);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cost_micros = self.cost_micros.saturating_add(o.cost_micros);
        self.errors = self.errors.saturating_add(o.errors);
    }

    pub(crate) fn encode(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.requests, self.input_tokens, self.output_tokens, self.cost_micros, self.errors
        )
    }

    pub(crate) fn decode(v: &str) -> Option<Counts> {
        let mut it = v.split(',').map(|x| x.parse::<u64>().ok());
        Some(Counts {
            requests: it.next()??,
            input_tokens: it.next()??,
            output_tokens: it.next()??,
            cost_micros: it.next()??,
            errors: it.next()??,
        })
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.input_tokens + self.output_tokens,
            "cost_usd": self.cost_micros as f64 / 1e6,
            "errors": self.errors,
        })
    }
}

/// One bucket (its first minute) of one key.
pub type Row = (i64, Key, Counts);

impl Key {
    /// The row a full bucket adds the rest to.
    pub fn other() -> Key {
        let o = || "(other)".to_string();
        Key {
            consumer: o(),
            project: o(),
            model: o(),
            tenant: o(),
            key: o(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_through_their_redis_encoding() {
        let c = Counts {
            requests: 1,
            input_tokens: 7,
            output_tokens: 9,
            cost_micros: 25,
            errors: 0,
        };
        assert_eq!(Counts::decode(&c.encode()), Some(c));
        assert_eq!(Counts::decode("1,2"), None);
    }
}
