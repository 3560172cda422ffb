//! What the gateway reports about the traffic it carries, beside the metrics: the access log,
//! usage analytics (per-minute roll-ups), payload capture and distributed traces.

pub mod access_log;
pub mod analytics;
pub mod capture;
pub mod trace;
