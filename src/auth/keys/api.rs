//! `/admin/keys` on the admin listener: create (the secret is shown once), list (never the
//! secret or its digest), rotate with a grace period, revoke. Plain functions from a request
//! to a status and a JSON body, so the admin service only moves bytes.

use super::{Change, KeyRecord, KeyStore, StoreError};
use crate::config::{Config, ScopeLimits};
use crate::types::key_digest::{digest, new_key};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Characters of a secret shown in lists.
const PREFIX_LEN: usize = 10;
/// Longest grace period a rotation may give the old secret.
const MAX_GRACE_S: i64 = 30 * 86_400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    consumer: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    models: Option<Vec<String>>,
    /// Unix seconds.
    #[serde(default)]
    expires_at: Option<i64>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    limits: Option<ScopeLimits>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
    #[serde(default)]
    deny_ips: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    grace_seconds: i64,
}

fn error(status: u16, message: impl Into<String>) -> (u16, Value) {
    (status, json!({"error": {"message": message.into()}}))
}

fn store_error(e: StoreError) -> (u16, Value) {
    match e {
        StoreError::Unconfigured => error(503, e.to_string()),
        StoreError::UnknownKey(_) => error(404, e.to_string()),
        StoreError::Exists(_) => error(409, e.to_string()),
        StoreError::Write(_) | StoreError::Unavailable(_) => error(503, e.to_string()),
    }
}

/// Answer one `/admin/keys...` request.
pub async fn handle(
    store: &KeyStore,
    config: &Config,
    method: &http::Method,
    path: &str,
    query: &str,
    body: &[u8],
    now_s: i64,
) -> (u16, Value) {
    let rest = path.trim_start_matches("/admin/keys").trim_matches('/');
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", []) => (200, list(store, config, query, now_s)),
        ("POST", []) => create(store, config, body, now_s).await,
        ("POST", [id, "rotate"]) => rotate(store, id, body, now_s).await,
        ("DELETE", [id]) => match store
            .change(Change::Revoke {
                id: id.to_string(),
                at: now_s,
            })
            .await
        {
            Ok(()) => (200, json!({"id": id, "state": "revoked"})),
            Err(e) => store_error(e),
        },
        ("GET", [id]) => match store.get(id) {
            Some(e) => (200, view(&e, now_s)),
            None => error(404, format!("no key with id `{id}`")),
        },
        _ => error(
            405,
            "use GET/POST /admin/keys, POST /admin/keys/{id}/rotate, DELETE /admin/keys/{id}",
        ),
    }
}

fn view(e: &super::Entry, now_s: i64) -> Value {
    let r = &e.record;
    let last = e.last_used.load(std::sync::atomic::Ordering::Relaxed);
    json!({
        "id": r.id, "name": r.name, "consumer": r.consumer, "prefix": r.prefix,
        "models": r.models, "tags": r.tags, "limits": r.limits, "project": r.project,
        "allow_ips": r.allow_ips, "deny_ips": r.deny_ips,
        "created_at": r.created_at,
        "expires_at": r.expires_at, "revoked_at": r.revoked_at,
        "last_used_at": (last > 0).then_some(last),
        "rotated_until": r.previous.as_ref().map(|p| p.until).filter(|u| *u > now_s),
        "state": r.state(now_s).label(), "source": "api",
    })
}

fn list(store: &KeyStore, config: &Config, query: &str, now_s: i64) -> Value {
    let wanted = crate::types::query::param(query, "consumer");
    let matches = |consumer: &str| wanted.as_deref().is_none_or(|w| w == consumer);
    let mut keys: Vec<Value> = store
        .list()
        .iter()
        .filter(|e| matches(&e.record.consumer))
        .map(|e| view(e, now_s))
        .collect();
    // Keys from the config file: read-only here, known by their place in it.
    for c in config.consumers.iter().filter(|c| matches(&c.name)) {
        for i in 0..c.keys.len() {
            keys.push(
                json!({"id": format!("config:{}:{i}", c.name), "consumer": c.name,
                "prefix": null, "models": null, "state": "active", "source": "config"}),
            );
        }
    }
    json!({"keys": keys})
}

async fn create(store: &KeyStore, config: &Config, body: &[u8], now_s: i64) -> (u16, Value) {
    if !store.configured() {
        return store_error(StoreError::Unconfigured);
    }
    let req: CreateBody = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(400, format!("invalid body: {e}")),
    };
    let Some(consumer) = config.consumers.iter().find(|c| c.name == req.consumer) else {
        return error(400, format!("no consumer named `{}`", req.consumer));
    };
    if let Some(models) = &req.models {
        if let Some(m) = models
            .iter()
            .find(|m| !consumer.may_use(m) || config.model(m).is_none())
        {
            return error(
                400,
                format!("`{m}` is not a model consumer `{}` may use", consumer.name),
            );
        }
    }
    if let Some(l) = &req.limits {
        let mut errs = Vec::new();
        crate::config::limits::build_scope_limits("limits", l, &mut errs);
        if !errs.is_empty() {
            return error(400, errs.join("; "));
        }
    }
    if req.expires_at.is_some_and(|e| e <= now_s) {
        return error(400, "expires_at must be in the future");
    }
    let (secret, _) = new_key();
    let id = format!("key_{}", random_hex(6));
    let record = KeyRecord {
        id: id.clone(),
        consumer: req.consumer,
        name: req.name.unwrap_or_else(|| id.clone()),
        digest: digest(&secret),
        prefix: secret.chars().take(PREFIX_LEN).collect(),
        models: req.models,
        tags: req.tags,
        created_at: now_s,
        expires_at: req.expires_at,
        revoked_at: None,
        previous: None,
        limits: req.limits,
        project: req.project,
        allow_ips: req.allow_ips,
        deny_ips: req.deny_ips,
    };
    let mut errs = Vec::new();
    record.ip_rules(&mut errs);
    if !errs.is_empty() {
        return error(400, errs.join("; "));
    }
    let shown = json!({"id": id, "key": secret, "prefix": record.prefix, "consumer": record.consumer,
        "name": record.name, "models": record.models, "expires_at": record.expires_at,
        "limits": record.limits, "project": record.project});
    match store.change(Change::Insert(Box::new(record))).await {
        Ok(()) => (201, shown),
        Err(e) => store_error(e),
    }
}

async fn rotate(store: &KeyStore, id: &str, body: &[u8], now_s: i64) -> (u16, Value) {
    let req: RotateBody = if body.is_empty() {
        RotateBody::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return error(400, format!("invalid body: {e}")),
        }
    };
    if !(0..=MAX_GRACE_S).contains(&req.grace_seconds) {
        return error(400, format!("grace_seconds must be in [0, {MAX_GRACE_S}]"));
    }
    let (secret, _) = new_key();
    let until = now_s + req.grace_seconds;
    let change = Change::Rotate {
        id: id.to_string(),
        digest: digest(&secret),
        until,
    };
    match store.change(change).await {
        Ok(()) => (
            200,
            json!({"id": id, "key": secret, "prefix": secret.chars().take(PREFIX_LEN).collect::<String>(),
                "previous_valid_until": until}),
        ),
        Err(e) => store_error(e),
    }
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}
