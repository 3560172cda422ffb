//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/admin/limits?consumer=NAME`,
//! `/admin/usage?group_by=..` and `POST /admin/reload`. Never exposed on the API port.
//!
//! With `[admin] token_env`, every `/admin/*` route (and `/metrics` with
//! `metrics_require_token`) needs `Authorization: Bearer <token>`, compared by digest in
//! constant time; without it the listener may only bind a loopback address (a config error
//! otherwise). `/healthz` and `/readyz` stay open for probes.

use crate::config::AdminSettings;
use crate::limits::describe::store_view;
use crate::metrics::METRICS;
use crate::runtime::reload::Reloader;
use crate::runtime::Runtime;
use crate::telemetry::analytics::{self, Rollups};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::sync::Arc;

pub struct Admin {
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub reloader: Arc<Reloader>,
    pub usage: Arc<Rollups>,
    /// This process's name in the shared store.
    pub instance: String,
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

impl Admin {
    /// `GET /admin/limits?consumer=NAME`: the consumer's limits, usage and remaining.
    fn limits(&self, query: &str) -> Response<Vec<u8>> {
        let name = crate::types::query::param(query, "consumer");
        let Some(name) = name else {
            return reply(
                400,
                "application/json",
                br#"{"error":"pass ?consumer=NAME"}"#.to_vec(),
            );
        };
        let runtime = self.runtime.load();
        match runtime.config.consumers.iter().find(|c| c.name == name) {
            Some(c) => reply(
                200,
                "application/json",
                runtime.limits.describe(c).to_string().into_bytes(),
            ),
            None => reply(
                404,
                "application/json",
                json!({"error": format!("no consumer named `{name}`")})
                    .to_string()
                    .into_bytes(),
            ),
        }
    }
}

/// Largest body the keys API reads.
const MAX_ADMIN_BODY: usize = 64 * 1024;

impl Admin {
    /// `/admin/keys...`: read the (small) body, answer from [`crate::auth::keys::api`].
    async fn keys(&self, session: &mut ServerSession, path: &str) -> Response<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ADMIN_BODY => {
                    body.extend_from_slice(&chunk);
                }
                Ok(Some(_)) => {
                    return reply(
                        413,
                        "application/json",
                        br#"{"error":{"message":"body over 64 KiB"}}"#.to_vec(),
                    )
                }
                Ok(None) => break,
                Err(_) => {
                    return reply(
                        400,
                        "application/json",
                        br#"{"error":{"message":"unreadable body"}}"#.to_vec(),
                    )
                }
            }
        }
        let runtime = self.runtime.load_full();
        let req = session.req_header();
        let (status, value) = crate::auth::keys::api::handle(
            &runtime.api_keys,
            &runtime.config,
            &req.method,
            path,
            req.uri.query().unwrap_or(""),
            &body,
            crate::feedback::budget::now_s(),
        )
        .await;
        reply(status, "application/json", value.to_string().into_bytes())
    }
}

/// Whether the request carries an admin token the config admits.
fn authorized(admin: &AdminSettings, headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, token)| admin.admits(token.trim()))
}

fn unauthorized() -> Response<Vec<u8>> {
    let body = json!({"error": {"message": "The admin API needs `Authorization: Bearer <admin token>`.",
        "type": "authentication_error", "code": "invalid_admin_token"}});
    let body = body.to_string().into_bytes();
    Response::builder()
        .status(401)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .header("www-authenticate", "Bearer")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let guarded = path.starts_with("/admin/") || path == "/admin";
        {
            let runtime = self.runtime.load();
            let admin = &runtime.config.admin;
            let needs = admin.requires_token()
                && (guarded || (path == "/metrics" && admin.metrics_require_token));
            if needs && !authorized(admin, &session.req_header().headers) {
                return unauthorized();
            }
        }
        if path == "/admin/keys" || path.starts_with("/admin/keys/") {
            return self.keys(session, &path).await;
        }
        match path.as_str() {
            "/metrics" => reply(200, "text/plain; version=0.0.4", METRICS.render()),
            "/healthz" => reply(200, "application/json", br#"{"status":"ok"}"#.to_vec()),
            "/readyz" => {
                // A down limit store degrades decisions but does not stop serving: still 200.
                let runtime = self.runtime.load();
                let limiter = runtime.limits.limiter();
                let degraded = limiter.store_configured() && !limiter.store_up();
                let body = json!({
                    "status": if degraded { "degraded" } else { "ready" },
                    "models": runtime.config.models.len(),
                    "providers": runtime.config.providers.len(),
                    "ratelimit_store": store_view(limiter),
                });
                reply(200, "application/json", body.to_string().into_bytes())
            }
            "/admin/reload" if session.req_header().method != http::Method::POST => reply(
                405,
                "application/json",
                br#"{"error":"use POST /admin/reload"}"#.to_vec(),
            ),
            "/admin/reload" => match self.reloader.reload("POST /admin/reload").await {
                Ok(r) => {
                    let body = json!({"status": "reloaded", "models": r.models,
                        "consumers": r.consumers, "pending_restart": r.pending_restart});
                    reply(200, "application/json", body.to_string().into_bytes())
                }
                Err(errors) => {
                    let body = json!({"status": "rejected", "errors": errors});
                    reply(422, "application/json", body.to_string().into_bytes())
                }
            },
            "/admin/usage" => {
                let query = session.req_header().uri.query().unwrap_or("").to_string();
                let runtime = self.runtime.load_full();
                let now = jiff::Timestamp::now().as_millisecond();
                let redis = runtime.config.redis.as_ref();
                match analytics::query_api(&self.usage, redis, &self.instance, &query, now).await {
                    Ok(v) => reply(200, "application/json", v.to_string().into_bytes()),
                    Err(e) => reply(
                        400,
                        "application/json",
                        json!({"error": e}).to_string().into_bytes(),
                    ),
                }
            }
            "/admin/limits" => {
                let query = session.req_header().uri.query().unwrap_or("");
                self.limits(query)
            }
            _ => reply(
                404,
                "application/json",
                br#"{"error":"not found"}"#.to_vec(),
            ),
        }
    }
}
