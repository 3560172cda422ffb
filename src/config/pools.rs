//! A provider as a pool of replicas: `strategy`, `replicas`, `session_header`,
//! `kv_cache_tokens` and `slow_start_ms` of a `[[providers]]` table into a [`PoolSpec`].

use super::file::ProviderSection;
use super::Upstream;
use crate::types::strategy::Strategy;
use http::HeaderName;

/// The largest KV cache a replica's index is sized for: 2^19 blocks (8,388,608 tokens), of
/// which the index keeps every eighth; measured at ~190 bytes each (an LRU entry and a holders
/// map entry, with the maps' spare room): ~12 MB a replica, under the 16 MB budget.
pub const MAX_KV_CACHE_TOKENS: u64 = (1 << 19) * 16;

/// How a pooled provider's replicas are found and picked.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub strategy: Strategy,
    /// Replicas listed beside the base URL's name: host (a name or an address) and port.
    pub replicas: Vec<(String, u16)>,
    /// A client header naming the conversation: its requests stay on one replica while that
    /// stays near the best.
    pub session_header: Option<HeaderName>,
    /// Prompt tokens one replica's KV cache holds (sizes the picker's index); `None`: the
    /// picker's default.
    pub kv_cache_tokens: Option<u64>,
    /// How long a joining replica ramps up; `None`: the picker's default.
    pub slow_start: Option<std::time::Duration>,
}

/// The pool a provider table declares, if any: with `strategy` or `replicas` it is a pool
/// (picked by `prefix_affinity` unless `strategy` says otherwise).
pub(super) fn build_pool(
    at: &str,
    p: &ProviderSection,
    upstream: &Upstream,
    errs: &mut Vec<String>,
) -> Option<PoolSpec> {
    let pooled = p.strategy.is_some() || !p.replicas.is_empty();
    if !pooled {
        for (set, field) in [
            (p.session_header.is_some(), "session_header"),
            (p.kv_cache_tokens.is_some(), "kv_cache_tokens"),
            (p.slow_start_ms.is_some(), "slow_start_ms"),
        ] {
            if set {
                errs.push(format!(
                    "{at}.{field} applies to a pool of replicas: set strategy or replicas"
                ));
            }
        }
        return None;
    }
    let strategy = match p.strategy.as_deref() {
        None => Strategy::PrefixAffinity,
        Some(w) => Strategy::parse(w).unwrap_or_else(|| {
            errs.push(format!(
                "{at}.strategy must be \"round_robin\", \"least_request\" or \"prefix_affinity\", not \"{w}\""
            ));
            Strategy::RoundRobin
        }),
    };
    let tls = match upstream {
        Upstream::Url { tls, .. } => *tls,
        Upstream::BuiltinMock => {
            if !p.replicas.is_empty() {
                errs.push(format!("{at}.replicas needs a base_url"));
            }
            false
        }
    };
    let replicas = p
        .replicas
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match replica(r, tls) {
            Ok(hp) => Some(hp),
            Err(why) => {
                errs.push(format!("{at}.replicas[{i}] {why}"));
                None
            }
        })
        .collect();
    let session_header = p.session_header.as_deref().and_then(|h| {
        HeaderName::try_from(h)
            .map_err(|_| errs.push(format!("{at}.session_header \"{h}\" is not a header name")))
            .ok()
    });
    if let Some(tokens) = p.kv_cache_tokens {
        if !(16..=MAX_KV_CACHE_TOKENS).contains(&tokens) {
            errs.push(format!(
                "{at}.kv_cache_tokens must be from 16 to {MAX_KV_CACHE_TOKENS} (the index stays under 16 MB a replica)"
            ));
        }
    }
    Some(PoolSpec {
        strategy,
        replicas,
        session_header,
        kv_cache_tokens: p.kv_cache_tokens.map(|t| t.min(MAX_KV_CACHE_TOKENS)),
        slow_start: p.slow_start_ms.map(std::time::Duration::from_millis),
    })
}

/// One `replicas` entry: `host:port`, or a URL of the base URL's scheme with nothing after
/// its authority (read as a base URL is).
fn replica(entry: &str, tls: bool) -> Result<(String, u16), String> {
    let scheme = if tls { "https" } else { "http" };
    let url = if entry.contains("://") {
        entry.to_string()
    } else {
        format!("{scheme}://{entry}")
    };
    match super::providers::parse_base_url(&url) {
        Ok(Upstream::Url {
            tls: t,
            host,
            port,
            base_path,
        }) => {
            if t != tls {
                Err(format!(
                    "\"{entry}\" must use the base URL's scheme ({scheme})"
                ))
            } else if !base_path.is_empty() {
                Err(format!(
                    "\"{entry}\" must not carry a path: the base URL's is used"
                ))
            } else {
                Ok((host, port))
            }
        }
        Ok(Upstream::BuiltinMock) => Err(format!("\"{entry}\" is not host:port or a URL")),
        Err(why) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_host_port_or_urls_of_the_base_scheme() {
        assert_eq!(
            replica("10.0.0.2:8000", false),
            Ok(("10.0.0.2".into(), 8000))
        );
        assert_eq!(
            replica("http://gpu-b.internal:8001", false),
            Ok(("gpu-b.internal".into(), 8001))
        );
        assert_eq!(replica("[::1]:9", false), Ok(("::1".into(), 9)));
        assert_eq!(replica("gpu-c", true), Ok(("gpu-c".into(), 443)));
        assert!(replica("https://a:1", false)
            .unwrap_err()
            .contains("scheme"));
        assert!(replica("http://a:1/v1", false)
            .unwrap_err()
            .contains("path"));
        assert!(replica("a b", false).is_err());
    }
}
