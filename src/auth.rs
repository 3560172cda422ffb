//! Client authentication: which consumer is calling.
//!
//! Client keys are never stored: the config holds their SHA-256 digests. A presented key is
//! hashed, looked up by digest, and the found digest is compared again in constant time, so
//! neither the table nor the comparison leaks how close a guess was.

use crate::config::Consumer;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// SHA-256 of a client key.
pub type KeyDigest = [u8; 32];

/// Prefix of keys minted by `tollgate --new-key`.
pub const KEY_PREFIX: &str = "tg-";

pub fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// Parse `sha256:<64 hex>` as written in the config.
pub fn parse_key_digest(text: &str) -> Result<KeyDigest, &'static str> {
    let hex_part = text
        .strip_prefix("sha256:")
        .ok_or("must be `sha256:<64 hex chars>` (run `tollgate --new-key` to mint one)")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out)
        .map_err(|_| "must be `sha256:` followed by exactly 64 hex chars")?;
    Ok(out)
}

/// A new random client key and the config line that admits it.
pub fn new_key() -> (String, String) {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    let line = format!("sha256:{}", hex::encode(digest(&key)));
    (key, line)
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

/// Digest → consumer, built once per config.
pub struct KeyTable {
    by_digest: HashMap<KeyDigest, Arc<Consumer>>,
}

impl KeyTable {
    pub fn new(consumers: &[Arc<Consumer>]) -> Self {
        let by_digest = consumers
            .iter()
            .flat_map(|c| c.keys.iter().map(move |k| (*k, Arc::clone(c))))
            .collect();
        KeyTable { by_digest }
    }

    /// The consumer owning `key`, if any.
    pub fn authenticate(&self, key: &str) -> Option<Arc<Consumer>> {
        let d = digest(key);
        let (stored, consumer) = self.by_digest.get_key_value(&d)?;
        bool::from(stored.ct_eq(&d)).then(|| Arc::clone(consumer))
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
            log_payloads: false,
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
            log_payloads: false,
        })]);
        assert_eq!(table.authenticate(&key).unwrap().name, "a");
        assert!(table.authenticate(&format!("{key}x")).is_none());
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
