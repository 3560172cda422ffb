//! One API key as it is stored: never the secret, only its digest (hex in the state file).

use crate::config::{build_nets, IpRules, LimitSet, ScopeLimits};
use crate::types::key_digest::KeyDigest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    pub consumer: String,
    pub name: String,
    #[serde(with = "hex_digest")]
    pub digest: KeyDigest,
    /// The secret's first characters, to tell keys apart in lists.
    pub prefix: String,
    /// Narrows the consumer's models (`None`: all of the consumer's).
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// A per-key limiter scope on top of its consumer's (and tenant's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ScopeLimits>,
    /// Client addresses it works from (empty: any), and never from (CIDRs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_ips: Vec<String>,
    /// Its project in usage analytics (`None`: the consumer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The secret a rotation replaced, while it still works.
    pub previous: Option<PreviousSecret>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PreviousSecret {
    #[serde(with = "hex_digest")]
    pub digest: KeyDigest,
    /// Unix seconds: the old secret stops working then.
    pub until: i64,
}

/// Whether a key works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

impl KeyState {
    pub fn label(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        }
    }
}

impl KeyRecord {
    /// Where it works from. Like its limits, checked when created.
    pub fn ip_rules(&self, errs: &mut Vec<String>) -> IpRules {
        IpRules {
            allow: build_nets("allow_ips", &self.allow_ips, errs),
            deny: build_nets("deny_ips", &self.deny_ips, errs),
        }
    }

    /// Its limits as the limiter reads them (empty: none of its own). Records are checked
    /// when created, so a bad field here only comes from a hand-edited store: it is dropped.
    pub fn limit_set(&self) -> LimitSet {
        let Some(l) = &self.limits else {
            return LimitSet::default();
        };
        let mut errs = Vec::new();
        let set = crate::config::limits::build_scope_limits("limits", l, &mut errs);
        if !errs.is_empty() {
            log::warn!(
                "keys: `{}` has unusable limits ({}); ignored",
                self.id,
                errs.join("; ")
            );
        }
        set
    }

    pub fn state(&self, now_s: i64) -> KeyState {
        if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|e| now_s >= e) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}

mod hex_digest {
    use super::*;

    pub fn serialize<S: Serializer>(d: &KeyDigest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<KeyDigest, D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}
