//! Session ids as sealed tokens: the session's facts (protocol version, server, consumer,
//! key, expiry) encrypted and authenticated with AES-256-GCM under a key every instance shares,
//! so any instance serves a session another opened, with no store.
//!
//! A token is `s1.` + base64url(nonce ‖ ciphertext ‖ tag). The current key seals; the current
//! and the previous key open, so a key can be rotated without ending sessions.

use crate::config::mcp::SessionKeys;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use serde::{Deserialize, Serialize};

const PREFIX: &str = "s1.";
const NONCE: usize = 12;
const TAG: usize = 16;
/// Bound on what is opened at all (a session id is a few hundred bytes).
const MAX_TOKEN: usize = 2048;
/// Binds the ciphertext to this use of the key.
const AAD: &[u8] = b"tollgate mcp session v1";

/// What a session id says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The negotiated protocol version.
    pub v: String,
    /// The server path it was opened on (`""`: the combined `/mcp`).
    pub s: String,
    /// The consumer and key label that opened it.
    pub c: String,
    pub k: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// The legacy SSE stream the session's answers go to (empty on Streamable HTTP).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub l: String,
    /// The remote server's own session for this client (a proxied remote; empty when the
    /// remote issued none, or the path is the bridge's own).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub r: String,
}

/// Why a session id was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a token, or sealed with no key we hold (a forgery, a rotated-out key).
    Unreadable,
    Expired,
}

pub fn seal(keys: &SessionKeys, session: &Session) -> Option<String> {
    let plain = serde_json::to_vec(session).ok()?;
    let nonce: [u8; NONCE] = rand::random();
    let mut tag = [0u8; TAG];
    let sealed = encrypt_aead(
        Cipher::aes_256_gcm(),
        &keys.current,
        Some(&nonce),
        AAD,
        &plain,
        &mut tag,
    )
    .ok()?;
    let mut raw = Vec::with_capacity(NONCE + sealed.len() + TAG);
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&sealed);
    raw.extend_from_slice(&tag);
    Some(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
}

pub fn open(keys: &SessionKeys, token: &str, now_s: u64) -> Result<Session, Refused> {
    if token.len() > MAX_TOKEN {
        return Err(Refused::Unreadable);
    }
    let raw = token
        .strip_prefix(PREFIX)
        .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        .filter(|r| r.len() > NONCE + TAG)
        .ok_or(Refused::Unreadable)?;
    let (nonce, rest) = raw.split_at(NONCE);
    let (sealed, tag) = rest.split_at(rest.len() - TAG);
    let plain = std::iter::once(&keys.current)
        .chain(keys.previous.as_ref())
        .find_map(|key| {
            decrypt_aead(Cipher::aes_256_gcm(), key, Some(nonce), AAD, sealed, tag).ok()
        })
        .ok_or(Refused::Unreadable)?;
    let session: Session = serde_json::from_slice(&plain).map_err(|_| Refused::Unreadable)?;
    if session.exp <= now_s {
        return Err(Refused::Expired);
    }
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(current: u8, previous: Option<u8>) -> SessionKeys {
        SessionKeys {
            current: [current; 32],
            previous: previous.map(|p| [p; 32]),
            shared: true,
        }
    }

    fn session() -> Session {
        Session {
            v: "2025-11-25".into(),
            s: "pets".into(),
            c: "team-a".into(),
            k: "config:team-a:0".into(),
            exp: 1_000,
            l: String::new(),
            r: "remote-7f3a".into(),
        }
    }

    #[test]
    fn sealed_sessions_open_under_the_current_or_previous_key_only() {
        let token = seal(&keys(1, None), &session()).unwrap();
        assert!(token.starts_with("s1.") && token.is_ascii());
        assert_eq!(open(&keys(1, None), &token, 10), Ok(session()));
        // Rotated: the old key is now the previous one.
        assert_eq!(open(&keys(2, Some(1)), &token, 10), Ok(session()));
        assert_eq!(open(&keys(2, None), &token, 10), Err(Refused::Unreadable));
        assert_eq!(open(&keys(1, None), &token, 1_000), Err(Refused::Expired));
        // Two seals of one session differ (fresh nonce) and say nothing in the clear.
        let again = seal(&keys(1, None), &session()).unwrap();
        assert_ne!(token, again);
        assert!(!token.contains("team") && !token.contains("remote"));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_unreadable() {
        let token = seal(&keys(1, None), &session()).unwrap();
        let mut bytes = token.clone().into_bytes();
        let i = bytes.len() - 5;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        for t in [
            &tampered[..],
            "s1.",
            "s1.AAAA",
            "nope",
            &token[..token.len() - 2],
        ] {
            assert_eq!(open(&keys(1, None), t, 10), Err(Refused::Unreadable), "{t}");
        }
        assert_eq!(
            open(&keys(1, None), &"s1.".repeat(1000), 10),
            Err(Refused::Unreadable)
        );
    }
}
