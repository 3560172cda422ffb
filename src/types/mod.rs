//! The small shared leaves every layer may name: the wall clock, what a limit counts, the wire
//! dialects, client key digests, admin query parameters, the edge's refusal reasons and a pool's picking strategy. Nothing
//! here depends on anything else in the crate.

pub mod clock;
pub mod counter;
pub mod dialect;
pub mod key_digest;
pub mod query;
pub mod refusal;
pub mod strategy;
