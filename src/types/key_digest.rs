//! Client key digests: the SHA-256 form the config and the key table store, the config's
//! `sha256:<hex>` syntax, and minting new keys. A leaf of the module graph, so the config can
//! parse digests without depending on authentication.

use rand::RngCore;
use sha2::{Digest, Sha256};

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
