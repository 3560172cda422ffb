//! The mock LLM upstream: OpenAI's, Anthropic's and Gemini's wire formats (JSON and SSE), with
//! timing and scripted faults, and a tool call when a request offers tools.
//!
//! It backs the built-in `mock` provider, the `tollgate-mock` binary, the tests and the
//! benchmarks. It is a deliberately small HTTP/1.1 server on raw tokio sockets so that faults
//! (refuse, hang, cut mid-stream, reset) are exact. Every request is recorded for tests.
//! Scripts: see [`script`]; exact answers split at chosen points: see [`reply`];
//! `POST /v1/moderations` flags any input containing `FLAG_ME`.

pub mod anthropic;
mod gemini;
mod http1;
pub mod openai;
pub mod replica;
mod reply;
mod responses;
pub mod script;
mod stream;

use bytes::Bytes;
use http1::{read_request, ChunkedWriter, RawRequest};
use script::{Fault, Script};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use stream::{write_stream, Ending};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without its query (and without a `/_mock/<script>` prefix).
    pub path: String,
    /// The query string, without `?` (empty when there is none).
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        http1::find_header(&self.headers, name)
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

const MAX_RECORDED: usize = 10_000;

/// Shared state of one mock server.
#[derive(Default)]
pub struct MockState {
    defaults: Script,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Requests seen per path prefix, for `times=N` scripts, and when the first came (for
    /// `outage_ms`).
    per_prefix: Mutex<HashMap<String, (u64, std::time::Instant)>>,
    next_id: AtomicU64,
    /// Client connections open now.
    open_connections: AtomicU64,
    /// Client connections accepted so far.
    accepted_connections: AtomicU64,
    /// As one replica of a fleet: prefix cache, prefill queue and `/metrics`.
    engine: Option<replica::Engine>,
}

impl MockState {
    pub fn new(defaults: Script) -> Arc<Self> {
        Arc::new(MockState {
            defaults,
            ..Default::default()
        })
    }

    /// A mock that is one replica of a fleet ([`replica`]).
    pub fn replica(defaults: Script, engine: replica::EngineSettings) -> Arc<Self> {
        Arc::new(MockState {
            defaults,
            engine: Some(replica::Engine::new(engine)),
            ..Default::default()
        })
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Connections from clients (the gateway) that are open now.
    pub fn open_connections(&self) -> u64 {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// Connections from clients (the gateway) accepted since the mock started.
    pub fn accepted_connections(&self) -> u64 {
        self.accepted_connections.load(Ordering::Relaxed)
    }
}

/// Counts a connection as open while it lives.
struct OpenConnection<'a>(&'a AtomicU64);

impl<'a> OpenConnection<'a> {
    fn new(count: &'a AtomicU64) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        OpenConnection(count)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accept connections until the listener fails.
pub async fn serve(listener: TcpListener, state: Arc<MockState>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                state.accepted_connections.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = stream.set_nodelay(true) {
                    log::debug!("mock upstream: no TCP_NODELAY: {e}");
                }
                spawn_connection(serve_connection(stream, Arc::clone(&state)));
            }
            Err(e) => {
                log::warn!("mock upstream accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "the mock upstream serves each connection on a task of its own"
)]
fn spawn_connection(f: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(f);
}

async fn serve_connection(mut stream: TcpStream, state: Arc<MockState>) {
    let _open = OpenConnection::new(&state.open_connections);
    let mut buf = Vec::new();
    loop {
        let req = match read_request(&mut stream, &mut buf).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                let body = serde_json::json!({"error": {"message": e, "type": "invalid_request_error", "param": null, "code": null}});
                if http1::write_json(&mut stream, 400, &[], &body, true)
                    .await
                    .is_err()
                {
                    log::debug!("mock upstream: the client left before its 400");
                }
                return;
            }
        };
        let keep_alive = req.keep_alive;
        match handle(&mut stream, req, &state).await {
            Ok(true) if keep_alive => continue,
            _ => return,
        }
    }
}

/// The script a requested model name carries after `@` (`chat@status=500`), so one upstream
/// model of a backend can fail while its others answer.
/// The script after `@` in the requested model: the body's `model`, or the path's (Gemini).
fn model_script(path: &str, body: &[u8]) -> Option<String> {
    if let Some(call) = gemini::route(path) {
        return call.model.split_once('@').map(|(_, s)| s.to_string());
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let (_, script) = v.get("model")?.as_str()?.split_once('@')?;
    Some(script.to_string())
}

/// Answer one request. Returns whether the connection may be reused.
async fn handle(
    stream: &mut TcpStream,
    req: RawRequest,
    state: &MockState,
) -> std::io::Result<bool> {
    let (prefix, path) = script::split_path(&req.path);
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let (path, query) = (path.to_string(), query.to_string());
    let mut script = state.defaults.clone();
    let parsed = prefix
        .map_or(Ok(()), |p| script.apply(p))
        .and_then(|_| req.header("x-mock").map_or(Ok(()), |h| script.apply(h)))
        .and_then(|_| model_script(&path, &req.body).map_or(Ok(()), |s| script.apply(&s)));
    if let Err(e) = parsed {
        let body = serde_json::json!({"error": {"message": e, "type": "invalid_request_error", "param": null, "code": "bad_mock_script"}});
        return http1::write_json(stream, 400, &[], &body, req.keep_alive)
            .await
            .map(|_| true);
    }
    let (seen, since) = {
        let key = prefix.unwrap_or("").to_string();
        let mut counts = state
            .per_prefix
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        let entry = counts.entry(key).or_insert((0, std::time::Instant::now()));
        entry.0 += 1;
        *entry
    };
    if script.times.is_some_and(|t| seen > t) {
        script = script.healthy();
    }
    if let Some(outage) = script.outage {
        script.status = (since.elapsed() < outage).then_some(503);
    }
    if script.models_ok && req.method == "GET" && path == "/v1/models" {
        script = script.healthy();
    }
    let sse_query = query.split('&').any(|kv| kv == "alt=sse");
    if let Ok(mut r) = state.requests.lock() {
        if r.len() < MAX_RECORDED {
            r.push(RecordedRequest {
                method: req.method.clone(),
                path: path.clone(),
                query,
                headers: req.headers.clone(),
                body: req.body.clone(),
            });
        }
    }
    let id = format!(
        "chatcmpl-mock-{}",
        state.next_id.fetch_add(1, Ordering::Relaxed)
    );

    match script.fault {
        Some(Fault::Refuse) => return Ok(false),
        Some(Fault::Hang) => {
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            return Ok(false);
        }
        _ => {}
    }
    let anthropic = path == "/v1/messages";
    let gemini_call = gemini::route(&path);
    if script.fault == Some(Fault::ContextOverflow) {
        let body = if gemini_call.is_some() {
            gemini::context_overflow()
        } else if anthropic {
            anthropic::context_overflow()
        } else {
            openai::context_overflow()
        };
        return http1::write_json(stream, 400, &[], &body, req.keep_alive)
            .await
            .map(|_| true);
    }
    if let Some(status) = script.status {
        tokio::time::sleep(script.ttft).await;
        let wait = script.retry_after.or((status == 429).then_some(1));
        let (secs, ms) = wait.map_or((String::new(), String::new()), |s| {
            (s.to_string(), (s * 1000).to_string())
        });
        let extra: Vec<(&str, &str)> = if wait.is_some() {
            vec![("retry-after", &secs), ("retry-after-ms", &ms)]
        } else {
            Vec::new()
        };
        let mut body = if gemini_call.is_some() {
            gemini::error(status)
        } else if anthropic {
            anthropic::error(status)
        } else {
            openai::error(status)
        };
        if status == 401 {
            // As many providers do: the refused key, quoted back.
            let key = req
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .or_else(|| req.header("x-api-key"))
                .unwrap_or("");
            body["error"]["message"] = format!("Incorrect API key provided: {key}.").into();
        }
        return http1::write_json(stream, status, &extra, &body, req.keep_alive)
            .await
            .map(|_| true);
    }

    if let Some(call) = gemini_call.filter(|_| req.method == "POST") {
        return gemini::serve(stream, &req, &script, &call, sse_query).await;
    }
    if let (Some(engine), "GET", "/metrics") = (&state.engine, req.method.as_str(), path.as_str()) {
        let text = engine.metrics_text();
        return http1::write_text(stream, 200, &text, req.keep_alive)
            .await
            .map(|_| true);
    }
    if req.method == "GET" && path == "/v1/models" {
        let body = serde_json::json!({"object": "list", "data": [{"id": "mock-small", "object": "model", "created": 0, "owned_by": "tollgate-mock"}]});
        return http1::write_json(stream, 200, &[], &body, req.keep_alive)
            .await
            .map(|_| true);
    }
    // Azure OpenAI's deployment paths serve the same operations.
    let path = match path.strip_prefix("/openai/deployments/") {
        Some(rest) => rest
            .split_once('/')
            .map_or(path.clone(), |(_, op)| format!("/v1/{op}")),
        None => path,
    };
    let kind = match (req.method.as_str(), path.as_str()) {
        ("POST", "/v1/chat/completions") => Kind::Chat,
        ("POST", "/v1/completions") => Kind::Completion,
        ("POST", "/v1/messages") => Kind::Messages,
        ("POST", "/v1/embeddings") => return embeddings(stream, &req, &script).await,
        ("POST", "/v1/responses") => return responses::serve(stream, &req, &script, &id).await,
        ("POST", "/v1/moderations") => {
            tokio::time::sleep(script.ttft).await;
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            return http1::write_json(stream, 200, &[], &reply::moderation(&body), req.keep_alive)
                .await
                .map(|_| true);
        }
        _ => {
            let body = serde_json::json!({"error": {"message": format!("Unknown request URL: {} {}", req.method, path), "type": "invalid_request_error", "param": null, "code": "unknown_url"}});
            return http1::write_json(stream, 404, &[], &body, req.keep_alive)
                .await
                .map(|_| true);
        }
    };
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            let body = serde_json::json!({"error": {"message": format!("invalid JSON: {e}"), "type": "invalid_request_error", "param": null, "code": null}});
            return http1::write_json(stream, 400, &[], &body, req.keep_alive)
                .await
                .map(|_| true);
        }
    };
    let model = body["model"].as_str().unwrap_or("mock").to_string();
    let tokens = body["max_tokens"]
        .as_u64()
        .or(body["max_completion_tokens"].as_u64())
        .map_or(script.tokens, |m| m.min(script.tokens));
    let prompt = script
        .prompt_tokens
        .unwrap_or_else(|| (req.body.len() as u64 / 4).max(1));
    let scripted = match req.header("x-mock-reply").map(reply::Reply::parse) {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            let body = serde_json::json!({"error": {"message": e, "type": "invalid_request_error", "param": null, "code": "bad_mock_reply"}});
            return http1::write_json(stream, 400, &[], &body, req.keep_alive)
                .await
                .map(|_| true);
        }
        None => None,
    };
    if let Some(reply) = scripted {
        return scripted_reply(stream, &req, &script, kind, &body, &id, &reply).await;
    }
    if script.no_prefill && prefilled(&body, kind).is_some() {
        let error = serde_json::json!({"error": {"message": "continue_final_message is not supported by this model's chat template", "type": "BadRequestError", "param": null, "code": 400}});
        return http1::write_json(stream, 400, &[], &error, req.keep_alive)
            .await
            .map(|_| true);
    }
    let tool = ToolCall::wanted(&body, kind == Kind::Messages);
    // A partial assistant turn last (prefill): continue after the tokens it holds.
    let prefill = prefilled(&body, kind);
    let json_answer = (kind == Kind::Messages && tool.is_none())
        .then(|| anthropic::json_answer(&body, prefill.as_deref(), tokens))
        .flatten();
    let from = match (&prefill, &json_answer) {
        (Some(p), None) => openai::tokens_in(p, tokens),
        _ => 0,
    };
    // A fleet replica: the prefill queue and cache decide the wait; it runs until answered.
    let _running = match &state.engine {
        Some(engine) => Some(engine.prefill(&replica::prompt_of(&body)).await.0),
        None => None,
    };
    tokio::time::sleep(script.ttft).await;
    if body["stream"].as_bool() != Some(true) {
        let v = match kind {
            Kind::Messages => {
                let id = id.replace("chatcmpl-", "msg_");
                let usage = anthropic::usage(prompt, tool.as_ref().map_or(tokens, |_| 1));
                let mut m = anthropic::message(&id, &model, tokens, tool.as_ref(), usage);
                if let Some(text) = json_answer {
                    m["content"][0]["text"] = text.into();
                }
                m
            }
            Kind::Chat => {
                let usage = script.usage.then(|| openai::usage(prompt, tokens));
                let mut c = openai::chat_completion(&id, &model, tokens, tool.as_ref(), usage);
                if tool.is_none() && openai::wants_json(&body) {
                    openai::answer_as_json(&mut c, tokens);
                }
                c
            }
            Kind::Completion => {
                let usage = script.usage.then(|| openai::usage(prompt, tokens));
                openai::text_completion(&id, &model, tokens, usage)
            }
        };
        return http1::write_json(stream, 200, &[], &v, req.keep_alive)
            .await
            .map(|_| true);
    }
    let events = match kind {
        Kind::Messages => {
            let id = id.replace("chatcmpl-", "msg_");
            let mut events = anthropic::events(&id, &model, from, tokens, tool.as_ref(), prompt);
            if let Some(text) = json_answer {
                anthropic::events_as_json(&mut events, text);
            }
            events
        }
        Kind::Chat | Kind::Completion => {
            let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
            let usage =
                (include_usage && script.usage).then(|| openai::usage(prompt, tokens - from));
            let mut chunks = openai::stream(
                &id,
                &model,
                kind == Kind::Chat,
                from..tokens,
                tool.as_ref(),
                include_usage,
                usage,
            );
            if kind == Kind::Chat && tool.is_none() && openai::wants_json(&body) {
                openai::stream_as_json(&mut chunks, tokens);
            }
            chunks.into_iter().map(|v| (None, v)).collect()
        }
    };
    let (first_error, ending) = if kind == Kind::Messages {
        ((Some("error"), anthropic::error(529)), Ending::Plain)
    } else {
        ((None, openai::error(503)), Ending::Done)
    };
    let cut = write_stream(stream, &script, &events, first_error, ending).await?;
    Ok(req.keep_alive && !cut)
}

/// Answer with a scripted reply ([`reply`]), JSON or streamed.
async fn scripted_reply(
    stream: &mut TcpStream,
    req: &RawRequest,
    script: &Script,
    kind: Kind,
    body: &Value,
    id: &str,
    reply: &reply::Reply,
) -> std::io::Result<bool> {
    let model = body["model"].as_str().unwrap_or("mock");
    let prompt = (req.body.len() as u64 / 4).max(1);
    let output = reply.tokens();
    tokio::time::sleep(script.ttft).await;
    let anthropic = kind == Kind::Messages;
    if body["stream"].as_bool() != Some(true) {
        let v = if anthropic {
            reply.anthropic_message(id, model, anthropic::usage(prompt, output))
        } else {
            let logprobs = body["logprobs"].as_bool() == Some(true);
            reply.openai_message(id, model, Some(openai::usage(prompt, output)), logprobs)
        };
        return http1::write_json(stream, 200, &[], &v, req.keep_alive)
            .await
            .map(|_| true);
    }
    let events: Vec<(Option<&str>, Value)> = if anthropic {
        reply.anthropic_events(id, model, anthropic::usage(prompt, 1))
    } else {
        let include = body["stream_options"]["include_usage"].as_bool() == Some(true);
        let usage = include.then(|| openai::usage(prompt, output));
        let logprobs = body["logprobs"].as_bool() == Some(true);
        reply
            .openai_chunks(id, model, usage, logprobs)
            .into_iter()
            .map(|v| (None, v))
            .collect()
    };
    let mut w = ChunkedWriter::start(stream, script.split).await?;
    for (sent, (name, ev)) in events.iter().enumerate() {
        if sent > 0 && !script.itl.is_zero() {
            tokio::time::sleep(script.itl).await;
        }
        w.event(*name, ev).await?;
    }
    if anthropic {
        w.end().await?;
    } else {
        w.done().await?;
    }
    Ok(req.keep_alive)
}

/// The text of a last assistant message the client wants continued: always on Anthropic's
/// API, with vLLM's `continue_final_message` on OpenAI's.
fn prefilled(body: &Value, kind: Kind) -> Option<String> {
    let last = body["messages"].as_array()?.last()?;
    if last["role"] != "assistant" {
        return None;
    }
    if kind != Kind::Messages && body["continue_final_message"] != true {
        return None;
    }
    match &last["content"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(parts.iter().filter_map(|p| p["text"].as_str()).collect()),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
    Messages,
}

/// The tool call the mock makes when a request offers tools and the user spoke last: the
/// first tool, with an argument for each property of its schema.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub input: Value,
}

/// The arguments the mock calls a tool with: a value of each property's type.
pub(crate) fn arguments_for(schema: &Value) -> Value {
    let mut input = serde_json::Map::new();
    for (key, prop) in schema["properties"].as_object().into_iter().flatten() {
        let value = match prop["type"].as_str() {
            Some("number") | Some("integer") => Value::from(1),
            Some("boolean") => Value::from(true),
            Some("array") => Value::Array(vec![]),
            Some("object") => Value::Object(Default::default()),
            _ => Value::from("mock"),
        };
        input.insert(key.clone(), value);
    }
    Value::Object(input)
}

impl ToolCall {
    pub(crate) fn wanted(body: &Value, anthropic: bool) -> Option<ToolCall> {
        let tool = body["tools"].as_array()?.first()?;
        if body["tool_choice"] == "none" || body["tool_choice"]["type"] == "none" {
            return None;
        }
        let last = body["messages"].as_array()?.last()?;
        if last["role"] != "user" {
            return None;
        }
        let answers_a_tool = last["content"]
            .as_array()
            .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"));
        if answers_a_tool {
            return None;
        }
        let (name, schema) = if anthropic {
            (&tool["name"], &tool["input_schema"])
        } else {
            (&tool["function"]["name"], &tool["function"]["parameters"])
        };
        let input = arguments_for(schema);
        Some(ToolCall {
            id: if anthropic {
                "toolu_mock_1"
            } else {
                "call_mock_1"
            }
            .to_string(),
            name: name.as_str().unwrap_or("tool").to_string(),
            input,
        })
    }

    /// The arguments as JSON text in three pieces (streamed as separate deltas).
    pub fn argument_parts(&self) -> Vec<String> {
        let text = self.input.to_string();
        let chars: Vec<char> = text.chars().collect();
        let third = chars.len().div_ceil(3).max(1);
        chars.chunks(third).map(|c| c.iter().collect()).collect()
    }
}

async fn embeddings(
    stream: &mut TcpStream,
    req: &RawRequest,
    script: &Script,
) -> std::io::Result<bool> {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let inputs = body["input"].as_array().map_or(1, Vec::len);
    let prompt = script
        .prompt_tokens
        .unwrap_or_else(|| (req.body.len() as u64 / 4).max(1));
    tokio::time::sleep(script.ttft).await;
    let model = body["model"].as_str().unwrap_or("mock");
    let v = openai::embeddings(model, inputs, prompt, script.usage);
    http1::write_json(stream, 200, &[], &v, req.keep_alive)
        .await
        .map(|_| true)
}

/// A mock server on its own thread and runtime, for tests and benchmarks.
pub struct MockServer {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
}

impl MockServer {
    /// Start on 127.0.0.1 with an OS-chosen port.
    pub fn start(defaults: Script) -> std::io::Result<MockServer> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), defaults)
    }

    /// Start on `addr` (port 0: chosen by the OS).
    pub fn start_at(addr: SocketAddr, defaults: Script) -> std::io::Result<MockServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let state = MockState::new(defaults);
        let served = Arc::clone(&state);
        std::thread::Builder::new()
            .name("mock-upstream".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return log::error!("mock runtime: {e}"),
                };
                rt.block_on(async move {
                    match TcpListener::from_std(std_listener) {
                        Ok(l) => serve(l, served).await,
                        Err(e) => log::error!("mock listener: {e}"),
                    }
                });
            })?;
        Ok(MockServer { addr, state })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }
}
