//! Which headers cross the gateway, each on purpose: a client header reaches a backend only
//! when that backend needs it (content negotiation, its dialect's version and beta headers,
//! W3C trace context) or its provider's `forward_headers` names it; an upstream answer
//! reaches the client with its framing, content and retry hints only (no provider cookies,
//! organisation or project names, request ids or rate-limit headers: the gateway's own
//! `x-request-id` and rate headers stand in).

use crate::config::{Provider, ProviderKind};
use http::HeaderName;
use pingora::http::{RequestHeader, ResponseHeader};

/// Whether a client header goes on to `provider`: one every backend of its kind needs, or
/// one its `forward_headers` names.
fn client_header_passes(name: &HeaderName, provider: &Provider) -> bool {
    let needed = match name.as_str() {
        "content-type" | "accept" | "traceparent" | "tracestate" => true,
        "anthropic-version" | "anthropic-beta" => provider.kind == ProviderKind::Anthropic,
        "openai-beta" => matches!(provider.kind, ProviderKind::OpenAi | ProviderKind::Azure),
        // The built-in mock is scripted per request by these.
        "x-mock" | "x-mock-reply" => provider.kind == ProviderKind::Mock,
        _ => false,
    };
    needed || provider.forward_headers.contains(name)
}

/// Drop every client header `provider` is not meant to receive (the gateway's own are
/// inserted after).
pub fn keep_client_headers(req: &mut RequestHeader, provider: &Provider) {
    let dropped: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|name| !client_header_passes(name, provider))
        .cloned()
        .collect();
    for name in dropped {
        req.remove_header(&name);
    }
}

/// Whether an upstream response header goes on to the client.
fn upstream_header_passes(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-type"
            | "content-length"
            | "content-encoding"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "cache-control"
            | "date"
            | "retry-after"
            | "retry-after-ms"
    )
}

/// Drop every upstream response header the client is not meant to see.
pub fn keep_upstream_headers(header: &mut ResponseHeader) {
    let dropped: Vec<HeaderName> = header
        .headers
        .keys()
        .filter(|name| !upstream_header_passes(name))
        .cloned()
        .collect();
    for name in dropped {
        header.remove_header(&name);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn provider(kind: ProviderKind, forward: &[&str]) -> Provider {
        let mut p = Provider::for_tests("p");
        p.kind = kind;
        p.forward_headers = forward
            .iter()
            .map(|h| HeaderName::from_bytes(h.as_bytes()).unwrap())
            .collect();
        p
    }

    fn names(req: &RequestHeader) -> Vec<String> {
        let mut v: Vec<String> = req.headers.keys().map(|k| k.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn only_what_the_backend_needs_or_the_provider_names_goes_upstream() {
        let mut req = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        for (k, v) in [
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
            ("openai-organization", "org-attacker"),
            ("openai-project", "proj-attacker"),
            ("x-forwarded-for", "10.0.0.1"),
            ("anthropic-version", "2023-06-01"),
            ("openai-beta", "assistants=v2"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("x-tenant", "acme"),
            ("user-agent", "OpenAI/Python 1.0"),
        ] {
            req.insert_header(k, v).unwrap();
        }
        let mut openai = req.clone();
        keep_client_headers(&mut openai, &provider(ProviderKind::OpenAi, &["x-tenant"]));
        assert_eq!(
            names(&openai),
            [
                "accept",
                "content-type",
                "openai-beta",
                "traceparent",
                "x-tenant"
            ]
        );
        let mut claude = req.clone();
        keep_client_headers(&mut claude, &provider(ProviderKind::Anthropic, &[]));
        assert_eq!(
            names(&claude),
            ["accept", "anthropic-version", "content-type", "traceparent"]
        );
    }

    #[test]
    fn provider_cookies_org_names_and_rate_limits_never_reach_the_client() {
        let mut h = ResponseHeader::build(200, None).unwrap();
        for (k, v) in [
            ("content-type", "application/json"),
            ("set-cookie", "__cf_bm=abc"),
            ("openai-organization", "org-backend"),
            ("openai-project", "proj-backend"),
            ("x-ratelimit-remaining-requests", "99"),
            ("anthropic-ratelimit-tokens-remaining", "1"),
            ("x-request-id", "req_upstream"),
            ("retry-after", "2"),
        ] {
            h.insert_header(k, v).unwrap();
        }
        keep_upstream_headers(&mut h);
        let mut kept: Vec<String> = h.headers.keys().map(|k| k.to_string()).collect();
        kept.sort();
        assert_eq!(kept, ["content-type", "retry-after"]);
    }
}
