//! Admission: what `request_filter` decides before any upstream is touched.
//!
//! In order: match the route, authenticate the key, read the body within `max_body_bytes`,
//! parse it, check the model exists and the consumer may use it, screen it with the
//! guardrails that apply ([`crate::request::screen`]), plan the candidates, and reserve the request
//! against the consumer's limits ([`crate::limits`]).
//! Every refusal is a [`GatewayError`]; nothing here talks to an upstream.

use crate::attempt::Attempts;
use crate::auth;
use crate::config::Model;
use crate::error::GatewayError;
use crate::limits::{Ask, KeyScope};
use crate::metrics::METRICS;
use crate::request::ctx::RequestCtx;
use crate::request::screen;
use crate::request::stored_responses;
use crate::routing::facts::Facts;
use crate::routing::{CostBasis, Plan};
use crate::runtime::Runtime;
use crate::telemetry::capture::Capture;
use crate::types::dialect::Dialect;
use crate::wire::protocol::{self, Operation, ParsedRequest};
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::proxy::Session;
use serde_json::json;
use std::sync::Arc;

/// What admission concluded.
pub enum Admitted {
    /// Proxy the request to its plan.
    Proxy,
    /// Answer locally with this JSON body (e.g. `GET /v1/models`).
    Local(Bytes),
}

pub async fn admit(
    session: &mut Session,
    ctx: &mut RequestCtx,
    runtime: &Runtime,
    connector: &Connector,
) -> Result<Admitted, GatewayError> {
    let full_path = session.req_header().uri.path();
    let (api_route, path) = runtime.config.routes.split(full_path);
    // Errors from here on speak the client's dialect (Anthropic's below /v1/messages).
    if path.starts_with("/v1/messages") {
        ctx.dialect = Dialect::Anthropic;
    }
    let operation = route(&session.req_header().method, path, full_path)?;
    let api_route = api_route.cloned();
    let consumer = authenticate(session, ctx, runtime)?;
    match &api_route {
        Some(r) if !r.admits(&consumer) => {
            return Err(GatewayError::RouteForbidden(r.path_prefix.clone()))
        }
        None if consumer.routes.is_some() => return Err(GatewayError::RouteForbidden("/".into())),
        Some(_) | None => {}
    }
    ctx.admission.route = api_route;
    // Kept only to redact it from captured payloads.
    let key_for_capture = runtime
        .captures_payloads
        .then(|| auth::presented_key(&session.req_header().headers).map(str::to_string))
        .flatten();
    let operation = match operation {
        Route::Call(op) => op,
        Route::Models => return Ok(Admitted::Local(list_models(runtime, &ctx.admission))),
        Route::StoredResponse { id, delete } => {
            let answer = stored_responses::answer(runtime, &consumer.name, &id, delete);
            return Ok(Admitted::Local(answer.await?));
        }
    };

    let body = read_body(session, runtime.config.server.max_body_bytes).await?;
    let request = protocol::parse(operation, body)?;
    // A Responses request's stored history joins its input before anything else reads it.
    let request = stored_responses::with_history(runtime, &consumer.name, request).await?;
    let model = ctx
        .admission
        .virtual_model(&request.model)
        .and_then(|name| runtime.config.model(name))
        .filter(|m| ctx.admission.may_use(&m.name))
        .ok_or_else(|| GatewayError::ModelNotFound(request.model.clone()))?;
    let headers = &session.req_header().headers;
    if operation == Operation::CountTokens {
        // The same count context-length routing uses (o200k_base: an estimate for Claude).
        let tokens = Facts::read(&request.body, headers, None, true).prompt_tokens;
        return Ok(Admitted::Local(Bytes::from(
            json!({"input_tokens": tokens}).to_string(),
        )));
    }
    // Guardrails screen the request before routing, limits or capture see it.
    ctx.admission.guard = runtime.config.guardrails.select(
        &consumer.name,
        ctx.admission.key_label.as_deref(),
        &model.name,
    );
    if operation == Operation::Responses && ctx.admission.guard.is_some() {
        // The screens read chat and Messages bodies and streams; a Responses body would pass
        // them unread.
        return Err(GatewayError::InvalidField {
            param: "model",
            message: format!(
                "content policies apply to `{}` and do not screen the Responses API yet: use /v1/chat/completions",
                request.model
            ),
        });
    }
    let request = screen::screen_request(ctx, runtime, connector, request).await?;
    let headers = &session.req_header().headers;
    let plan = plan(model, &request, headers)?;
    if consumer.log_payloads || model.log_payloads {
        ctx.admission.capture = Some(capture(runtime, &request, key_for_capture));
    }
    let reserved = reserve(ctx, runtime, &consumer, model, &request);
    ctx.admission.request = Some(request);
    ctx.attempts = Some(Attempts::new(plan));
    ctx.admission.reservation = Some(reserved?);
    Ok(Admitted::Proxy)
}

/// Reserve the request against every limit that applies (its rate headers kept for the
/// answer, the decision noted on the trace).
fn reserve(
    ctx: &mut RequestCtx,
    runtime: &Runtime,
    consumer: &crate::config::Consumer,
    model: &Arc<Model>,
    request: &ParsedRequest,
) -> Result<crate::limits::Reservation, GatewayError> {
    // Embeddings generate nothing; the others reserve their output cap (or the configured
    // default) for each completion they ask for.
    let ask = Ask {
        prompt_tokens: request.prompt_tokens_estimate,
        max_tokens: match request.operation {
            Operation::Embeddings | Operation::CountTokens => Some(0),
            Operation::Chat
            | Operation::Completion
            | Operation::Messages
            | Operation::Responses => request.max_tokens,
        },
        choices: request.choices,
    };
    let key = ctx.admission.key.as_ref().map(|k| KeyScope {
        id: &k.record.id,
        limits: &k.limits,
    });
    let (headers, reserved) = runtime.limits.reserve(consumer, model, key, ask);
    if let Some(t) = ctx.trace.as_mut() {
        use crate::telemetry::trace::otlp::KeyValue;
        let decision = if reserved.is_ok() {
            "allowed"
        } else {
            "refused"
        };
        let mut attributes = vec![KeyValue::str("tollgate.limits.decision", decision)];
        if let Some(limit) = reserved.as_ref().err().and_then(GatewayError::limit_label) {
            attributes.push(KeyValue::str("tollgate.limits.limit", limit));
        }
        t.event("tollgate.limits", attributes);
    }
    ctx.admission.rate_headers = headers;
    reserved
}

/// Who is calling: the client's address against the access rules, the key against the
/// config's and the API-created keys, and the consumer's and key's address rules. Fills the
/// admission's client address, consumer, key and key label.
pub fn authenticate(
    session: &Session,
    ctx: &mut RequestCtx,
    runtime: &Runtime,
) -> Result<Arc<crate::config::Consumer>, GatewayError> {
    let access = &runtime.config.access;
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let ip = auth::client_ip(peer, &session.req_header().headers, &access.trusted_proxies);
    ctx.admission.client_ip = ip;
    let admitted =
        |rules: &crate::config::IpRules| rules.is_empty() || ip.is_some_and(|ip| rules.admits(ip));
    if !admitted(&access.rules) {
        return Err(GatewayError::PermissionDenied);
    }
    let Some(key) = auth::presented_key(&session.req_header().headers) else {
        let (consumer, label) = runtime.keys.keyless(ip).ok_or(GatewayError::MissingKey)?;
        if !admitted(&consumer.ip_rules) {
            return Err(GatewayError::PermissionDenied);
        }
        ctx.admission.key_label = Some(label);
        ctx.admission.consumer = Some(consumer.clone());
        return Ok(consumer);
    };
    let consumer = match runtime.keys.authenticate_key(key) {
        Some((c, label)) => {
            ctx.admission.key_label = Some(label);
            c
        }
        None => {
            // An API-created key: the table in memory, no store on the request path.
            let now_s = crate::feedback::budget::now_s();
            let grant = runtime
                .api_keys
                .authenticate(key, now_s)
                .ok_or(GatewayError::InvalidKey)?;
            let consumer = runtime
                .keys
                .consumer(&grant.record.consumer)
                .ok_or(GatewayError::InvalidKey)?;
            ctx.admission.key_label = Some(Arc::clone(&grant.label));
            ctx.admission.key = Some(grant);
            consumer
        }
    };
    ctx.admission.consumer = Some(consumer.clone());
    let key_admits = ctx
        .admission
        .key
        .as_ref()
        .is_none_or(|k| admitted(&k.ip_rules));
    if !admitted(&consumer.ip_rules) || !key_admits {
        return Err(GatewayError::PermissionDenied);
    }
    Ok(consumer)
}

/// The operation a method and path (below any route prefix) ask for (`None`: the model
/// list); errors name the path as the client sent it.
/// What a request's method and path ask for.
enum Route {
    /// `GET /v1/models`.
    Models,
    /// `GET` (or `DELETE`) `/v1/responses/{id}`: a stored response.
    StoredResponse { id: String, delete: bool },
    /// A model call.
    Call(Operation),
}

fn route(method: &http::Method, path: &str, full_path: &str) -> Result<Route, GatewayError> {
    let path = path.trim_end_matches('/');
    if let Some(id) = path
        .strip_prefix("/v1/responses/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
    {
        return match method.as_str() {
            "GET" | "DELETE" => Ok(Route::StoredResponse {
                id: id.to_string(),
                delete: method == http::Method::DELETE,
            }),
            _ => Err(not_allowed(method, full_path)),
        };
    }
    match (method.as_str(), path) {
        ("GET", "/v1/models") => Ok(Route::Models),
        (_, "/v1/models") => Err(not_allowed(method, full_path)),
        (m, _) => match Operation::from_path(path) {
            Some(op) if m == "POST" => Ok(Route::Call(op)),
            Some(_) => Err(not_allowed(method, full_path)),
            None => Err(GatewayError::UnknownRoute {
                method: method.to_string(),
                path: full_path.to_string(),
            }),
        },
    }
}

/// `GET /v1/models`: the models this consumer (and key) may use, by the names the client
/// uses (a route's own names under its prefix).
fn list_models(runtime: &Runtime, admission: &crate::request::ctx::Admission) -> Bytes {
    let names: Vec<&str> = match &admission.route {
        Some(r) => r
            .models
            .iter()
            .filter(|(_, model)| admission.may_use(model))
            .map(|(alias, _)| alias.as_str())
            .collect(),
        None => runtime
            .config
            .models
            .iter()
            .filter(|m| admission.may_use(&m.name))
            .map(|m| m.name.as_str())
            .collect(),
    };
    let data: Vec<_> = names
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "tollgate"}))
        .collect();
    Bytes::from(json!({"object": "list", "data": data}).to_string())
}

/// The request's candidates: the model's rules and context windows, when it has any.
fn plan(
    model: &Arc<Model>,
    request: &ParsedRequest,
    headers: &http::HeaderMap,
) -> Result<Plan, GatewayError> {
    let basis = CostBasis::new(request.prompt_tokens_estimate, request.max_tokens);
    let plan = if model.rules.is_empty() && !model.needs_prompt_tokens() {
        Plan::new(model.clone(), basis, &mut rand::rng())
    } else {
        let facts = Facts::read(
            &request.body,
            headers,
            request.max_tokens,
            model.needs_prompt_tokens(),
        );
        Plan::route(model.clone(), &facts, basis, &mut rand::rng()).map_err(|e| {
            GatewayError::ContextTooLong {
                tokens: e.tokens,
                largest_window: e.largest_window,
            }
        })?
    };
    METRICS
        .route_decisions
        .with_label_values(&[&model.name, plan.rule.as_deref().unwrap_or("default")])
        .inc();
    model.retry_budget.deposit(crate::feedback::budget::now_s());
    if plan.is_empty() {
        return Err(GatewayError::NoCandidate(request.model.clone()));
    }
    Ok(plan)
}

/// Payload capture for this request, with every secret it must redact.
fn capture(runtime: &Runtime, request: &ParsedRequest, client_key: Option<String>) -> Capture {
    let mut secrets: Vec<String> = client_key.into_iter().collect();
    secrets.extend(runtime.config.secrets().map(str::to_string));
    Capture {
        request: request.body.clone(),
        secrets,
        ..Capture::default()
    }
}

fn not_allowed(method: &http::Method, path: &str) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: path.to_string(),
    }
}

/// Read the whole body, refusing anything over `limit` before buffering it. Keeps Pingora's
/// retry buffer on so bodies up to 64 KiB can be replayed by the proxy phases.
/// The most of an oversized body read and thrown away before the 413, so a client still
/// writing reads the answer instead of a reset; past it the connection is simply closed.
const DRAIN_MAX: usize = 16 * 1024 * 1024;

/// Read and drop the rest of a body that is over its limit (`read` bytes already seen), up to
/// [`DRAIN_MAX`] and within the body deadline.
async fn discard_rest(session: &mut Session, mut read: usize) {
    while read <= DRAIN_MAX {
        match session.read_request_body().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) | Err(_) => return,
        }
    }
}

pub async fn read_body(session: &mut Session, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        session.set_keepalive(None);
        if declared.is_some_and(|n| n <= DRAIN_MAX) {
            discard_rest(session, 0).await;
        }
        return Err(GatewayError::BodyTooLarge { limit });
    }
    session.enable_retry_buffering();
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    session.set_keepalive(None);
                    discard_rest(session, buf.len() + chunk.len()).await;
                    return Err(GatewayError::BodyTooLarge { limit });
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => {
                session.set_keepalive(None);
                if matches!(e.etype(), pingora::ErrorType::ReadTimedout) {
                    return Err(GatewayError::BodyTimeout);
                }
                return Err(GatewayError::InvalidJson(
                    "the request body could not be read".into(),
                ));
            }
        }
    }
}
