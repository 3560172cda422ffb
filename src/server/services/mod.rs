//! The background services that read the live [`crate::runtime::Runtime`]: provider name
//! re-resolution ([`dns`]), active health checks ([`health_checks`]), the Redis sync of
//! limits, usage and keys ([`store_sync`]) and the exit once a shutdown has drained ([`drain`]). They sit above the
//! stage modules in the module graph; `server` registers them with the others (SIGHUP reload,
//! access-log reopen, limit store sync, the built-in mock) in one place.

pub mod dns;
pub mod drain;
pub mod health_checks;
pub mod memory_trim;
pub mod store_sync;
pub mod trace_export;
