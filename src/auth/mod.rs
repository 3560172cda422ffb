//! Client authentication: which consumer is calling, and from which address.
//!
//! Client keys are never stored: the config holds their SHA-256 digests. A presented key is
//! hashed, looked up by digest, and the found digest is compared again in constant time, so
//! neither the table nor the comparison leaks how close a guess was.

pub mod keys;

use crate::config::Consumer;
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::config::canonical_ip;
pub use crate::types::key_digest::{digest, new_key, parse_key_digest, KeyDigest, KEY_PREFIX};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The client's address: the socket peer, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` entry that is not a trusted proxy itself (entries to its left are the
/// client's own claims and are never believed). An unreadable entry stops the walk at the
/// last trusted hop.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &http::HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = canonical_ip(peer?);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut hop = peer;
    // Later header lines were appended by later proxies: walk them, and each, right to left.
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(text) = value.to_str() else {
            return Some(hop);
        };
        for entry in text.rsplit(',').map(str::trim) {
            let parsed = entry
                .parse::<IpAddr>()
                .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()));
            let Ok(ip) = parsed.map(canonical_ip) else {
                return Some(hop);
            };
            if !is_trusted(&ip) {
                return Some(ip);
            }
            hop = ip;
        }
    }
    Some(hop)
}

/// The client key from `Authorization: Bearer <key>` or `x-api-key: <key>`.
pub fn presented_key(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, rest) = v.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            let key = rest.trim();
            return (!key.is_empty()).then_some(key);
        }
        return None;
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Digest → consumer (and the key's name in usage analytics), built once per config.
pub struct KeyTable {
    by_digest: HashMap<KeyDigest, (Arc<Consumer>, Arc<str>)>,
    /// For keys made at run time, which name their consumer.
    by_name: HashMap<String, Arc<Consumer>>,
    /// Networks whose keyless requests are a consumer, with the analytics label they get.
    keyless: Vec<(IpNet, Arc<Consumer>, Arc<str>)>,
}

impl KeyTable {
    pub fn new(consumers: &[Arc<Consumer>]) -> Self {
        let by_digest = consumers
            .iter()
            .flat_map(|c| {
                c.keys.iter().enumerate().map(move |(i, k)| {
                    let label: Arc<str> = format!("config:{}:{i}", c.name).into();
                    (*k, (Arc::clone(c), label))
                })
            })
            .collect();
        let by_name = consumers
            .iter()
            .map(|c| (c.name.clone(), Arc::clone(c)))
            .collect();
        let keyless = consumers
            .iter()
            .flat_map(|c| {
                let label: Arc<str> = format!("keyless:{}", c.name).into();
                c.keyless_from
                    .iter()
                    .map(move |n| (*n, Arc::clone(c), Arc::clone(&label)))
            })
            .collect();
        KeyTable {
            by_digest,
            by_name,
            keyless,
        }
    }

    /// The consumer a request without a key from `ip` is (`keyless_from`), and its label.
    pub fn keyless(&self, ip: Option<IpAddr>) -> Option<(Arc<Consumer>, Arc<str>)> {
        let ip = ip?;
        self.keyless
            .iter()
            .find(|(net, _, _)| net.contains(&ip))
            .map(|(_, c, label)| (Arc::clone(c), Arc::clone(label)))
    }

    /// The consumer named `name` in this config.
    pub fn consumer(&self, name: &str) -> Option<Arc<Consumer>> {
        self.by_name.get(name).cloned()
    }

    /// The consumer owning `key`, if any.
    pub fn authenticate(&self, key: &str) -> Option<Arc<Consumer>> {
        self.authenticate_key(key).map(|(c, _)| c)
    }

    /// The consumer owning `key` and the key's label (`config:<consumer>:<index>`).
    pub fn authenticate_key(&self, key: &str) -> Option<(Arc<Consumer>, Arc<str>)> {
        let d = digest(key);
        let (stored, (consumer, label)) = self.by_digest.get_key_value(&d)?;
        bool::from(stored.ct_eq(&d)).then(|| (Arc::clone(consumer), Arc::clone(label)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(name: &str, key: &str) -> Arc<Consumer> {
        Arc::new(Consumer {
            name: name.into(),
            keys: vec![digest(key)],
            models: None,
            limits: Default::default(),
            project: None,
            tenant: None,
            ip_rules: Default::default(),
            log_payloads: false,
            mcp_tools: vec!["*".into()],
            routes: None,
            keyless_from: Vec::new(),
        })
    }

    #[test]
    fn minted_key_authenticates_through_its_config_line() {
        let (key, line) = new_key();
        assert!(key.starts_with(KEY_PREFIX));
        let d = parse_key_digest(&line).unwrap();
        let table = KeyTable::new(&[Arc::new(Consumer {
            name: "a".into(),
            keys: vec![d],
            models: None,
            limits: Default::default(),
            project: None,
            tenant: None,
            ip_rules: Default::default(),
            log_payloads: false,
            mcp_tools: vec!["*".into()],
            routes: None,
            keyless_from: Vec::new(),
        })]);
        assert_eq!(table.authenticate(&key).unwrap().name, "a");
        assert!(table.authenticate(&format!("{key}x")).is_none());
    }

    #[test]
    fn a_keyless_request_is_the_consumer_of_its_network_only() {
        let mut open = consumer("local", "secret-l");
        if let Some(c) = Arc::get_mut(&mut open) {
            c.keyless_from = vec!["127.0.0.0/8".parse().unwrap()];
        }
        let table = KeyTable::new(&[consumer("a", "secret-a"), open]);
        let (c, label) = table.keyless("127.0.0.9".parse().ok()).unwrap();
        assert_eq!((c.name.as_str(), &*label), ("local", "keyless:local"));
        assert!(table.keyless("10.0.0.1".parse().ok()).is_none());
        assert!(table.keyless(None).is_none());
    }

    #[test]
    fn wrong_and_empty_keys_are_rejected() {
        let table = KeyTable::new(&[consumer("a", "secret-a"), consumer("b", "secret-b")]);
        assert_eq!(table.authenticate("secret-b").unwrap().name, "b");
        assert!(table.authenticate("secret-c").is_none());
        assert!(table.authenticate("").is_none());
    }

    #[test]
    fn digest_syntax_errors_are_explained() {
        assert!(parse_key_digest("abc").is_err());
        assert!(parse_key_digest("sha256:zz").is_err());
        assert!(parse_key_digest(&format!("sha256:{}", "a".repeat(63))).is_err());
        assert!(parse_key_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }

    #[test]
    fn key_is_read_from_bearer_or_x_api_key() {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "Bearer  k1 ".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k1"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented_key(&h), None);
        let mut h = http::HeaderMap::new();
        h.insert("x-api-key", "k2".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k2"));
        assert_eq!(presented_key(&http::HeaderMap::new()), None);
    }
}
