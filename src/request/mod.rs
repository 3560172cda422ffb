//! One request's life, on both I/O paths: its context ([`ctx`]), admission ([`intake`]),
//! screening ([`screen`], with the [`moderation`] hook), the exchange with the backend
//! ([`exchange`], and the [`forward`]er where Pingora's proxy cannot carry the case), the
//! answers the gateway writes itself ([`respond`]) and what is reported when it ends
//! ([`report`]).

pub mod ctx;
pub mod exchange;
pub mod forward;
pub mod intake;
pub mod moderation;
pub mod report;
pub mod respond;
mod screen;
mod stored_responses;
