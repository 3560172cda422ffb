//! What past attempts teach the next requests: passive health per provider ([`health`]), the
//! retry budget per virtual model ([`budget`]) and time-to-first-token averages per target
//! ([`latency`]).
//!
//! This is shared, process-wide state that configs point into (so it survives reloads), kept
//! below `config` in the module graph: it knows nothing of configs, requests or I/O.

pub mod budget;
pub mod health;
pub mod latency;
