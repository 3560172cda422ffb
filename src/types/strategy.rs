//! How a pool of replicas picks one per request (a provider's `strategy`); the picking itself
//! is [`crate::routing::pick`]'s.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Each replica in turn.
    RoundRobin,
    /// The fewest requests in flight.
    LeastRequest,
    /// Where the prompt's prefix is likely cached and the first token comes soonest.
    #[default]
    PrefixAffinity,
}

impl Strategy {
    /// The config word for it.
    pub fn parse(word: &str) -> Option<Strategy> {
        match word {
            "round_robin" => Some(Strategy::RoundRobin),
            "least_request" => Some(Strategy::LeastRequest),
            "prefix_affinity" => Some(Strategy::PrefixAffinity),
            _ => None,
        }
    }
}
