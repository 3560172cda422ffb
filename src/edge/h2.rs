//! HTTP/2 at the edge. The h2 crate frames an HTTP/2 connection (Pingora's server), so its
//! requests reach the gateway already decoded; this module holds them to the same edge as
//! HTTP/1: the h2 settings bound streams per connection, the decoded header list and resets a
//! client may pile up (the rapid-reset defence), and [`admit`] checks each decoded head
//! against the head caps and takes its in-flight slot (memory shedding included) before the
//! request goes any further.

use super::slots::{EdgeSlots, RequestSlot};
use crate::config::edge::EdgeSettings;
use crate::error::GatewayError;
use crate::metrics::METRICS;
use crate::types::refusal::Rejection;
use pingora::http::RequestHeader;
use pingora::protocols::http::v2::server::H2Options;
use std::sync::Arc;

/// The h2 settings every HTTP/2 connection is served with.
pub fn options(edge: &EdgeSettings) -> H2Options {
    let mut options = H2Options::new();
    options
        .max_concurrent_streams(edge.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(edge.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(edge.h2_max_pending_resets)
        .max_local_error_reset_streams(Some(1024));
    options
}

/// The head caps of HTTP/1, on a decoded HTTP/2 head.
fn check(edge: &EdgeSettings, req: &RequestHeader) -> Result<(), Rejection> {
    let target = req.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let authority = req.uri.authority().map_or(0, |a| a.as_str().len());
    let line = req.method.as_str().len() + target + authority + 10;
    if line > edge.max_request_line {
        return Err(Rejection::RequestLineTooLong);
    }
    if req.headers.len() > edge.max_headers {
        return Err(Rejection::TooManyHeaders);
    }
    let bytes: usize = req
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if line + bytes > edge.max_header_bytes {
        return Err(Rejection::HeadTooLarge);
    }
    if !edge.allow_underscores && req.headers.keys().any(|k| k.as_str().contains('_')) {
        return Err(Rejection::UnderscoreInName);
    }
    Ok(())
}

/// Admit one HTTP/2 request at the edge: its in-flight slot (held until the request ends), or
/// the refusal HTTP/1 would have met, counted the same way.
pub fn admit(
    slots: &Arc<EdgeSlots>,
    edge: &EdgeSettings,
    req: &RequestHeader,
) -> Result<RequestSlot, GatewayError> {
    if let Err(r) = check(edge, req) {
        METRICS
            .edge_rejections
            .with_label_values(&[r.label()])
            .inc();
        return Err(GatewayError::MalformedHead(r));
    }
    slots.begin_request(edge).map_err(|shed| {
        METRICS.shed.with_label_values(&[shed.label()]).inc();
        GatewayError::Overloaded(shed)
    })
}
