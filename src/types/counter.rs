//! What a limit scope counts ([`Counter`]). Named by the limiter, by errors (which limit
//! refused a request) and by metrics; a leaf of the module graph so an error can say which
//! limit refused without depending on the limiter.

/// What a scope counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Requests,
    Tokens,
    TokensDay,
    TokensMonth,
    UsdDay,
    UsdMonth,
    Inflight,
}

impl Counter {
    pub const ALL: [Counter; 7] = [
        Counter::Requests,
        Counter::Tokens,
        Counter::TokensDay,
        Counter::TokensMonth,
        Counter::UsdDay,
        Counter::UsdMonth,
        Counter::Inflight,
    ];

    /// The name in Redis keys, metrics and the admin view.
    pub fn label(self) -> &'static str {
        match self {
            Counter::Requests => "requests",
            Counter::Tokens => "tokens",
            Counter::TokensDay => "tokens_per_day",
            Counter::TokensMonth => "tokens_per_month",
            Counter::UsdDay => "usd_per_day",
            Counter::UsdMonth => "usd_per_month",
            Counter::Inflight => "concurrency",
        }
    }

    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }
}
