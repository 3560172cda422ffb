//! The MCP bridge: a real HTTP API (tests/mcp/petstore_api.py, described by
//! conf/mcp-petstore.openapi.json) behind two gateway instances sharing a session key; the
//! official `mcp` SDK drives them (tests/sdk/test_mcp.py), and raw requests check every
//! refusal and that nothing refused reaches the API.

use crate::harness::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test API, stopped on drop.
pub struct PetStore {
    child: Child,
    pub url: String,
}

impl PetStore {
    pub async fn start(python: &Path) -> PetStore {
        Self::spawn(python, "petstore_api.py").await
    }

    /// The SDK's own MCP server (tests/mcp/remote_server.py), at `{url}/mcp`.
    pub async fn remote(python: &Path) -> PetStore {
        Self::spawn(python, "remote_server.py").await
    }

    async fn spawn(python: &Path, script: &str) -> PetStore {
        let port = free_port();
        let script = format!("{}/tests/mcp/{script}", env!("CARGO_MANIFEST_DIR"));
        let child = Command::new(python)
            .args([&script, &port.to_string(), PETSTORE_KEY])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a test server");
        let store = PetStore {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        // Any HTTP answer means it is up.
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}/_requests", store.url))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "{script} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store
    }

    /// What reached the API so far.
    pub async fn seen(&self) -> Vec<Value> {
        let r = reqwest::get(format!("{}/_requests", self.url))
            .await
            .unwrap();
        r.json().await.unwrap()
    }
}

impl Drop for PetStore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn mcp_config(api: &str, extra: &str) -> String {
    mcp_config_with(api, None, extra)
}

/// With a remote MCP server (`remote`: its base URL) named `calc` beside the OpenAPI ones.
pub fn mcp_config_with(api: &str, remote: Option<&str>, extra: &str) -> String {
    let calc = if remote.is_some() {
        ", \"calc/add\""
    } else {
        ""
    };
    let remote = remote.map_or(String::new(), |r| {
        format!(
            "[[mcp.servers]]\nname = \"calc\"\nkind = \"remote\"\nurl = \"{r}/mcp\"\n\
             exclude = [\"admin_reset\"]\n\
             [mcp.servers.credential]\nkind = \"bearer\"\nvalue_env = \"TG_PETSTORE_KEY\"\n"
        )
    });
    let doc = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/mcp-petstore.openapi.json"
    );
    let server = |name: &str, more: &str| {
        format!(
            "[[mcp.servers]]\nname = \"{name}\"\nopenapi = \"{doc}\"\nbase_url = \"{api}\"\n\
             forward_headers = [\"x-user\"]\n{more}\n\
             [mcp.servers.credential]\nkind = \"header\"\nname = \"X-Api-Key\"\nvalue_env = \"TG_PETSTORE_KEY\"\n"
        )
    };
    format!(
        "[mcp]\nsession_key_env = \"TG_MCP_SESSION_KEY\"\nmax_body_bytes = 16384\n\
         allowed_origins = [\"https://app.example\"]\n{extra}\n{}\n{}\n{remote}\n\
         [[consumers]]\nname = \"team-a\"\nkeys = [\"{}\"]\n\n\
         [[consumers]]\nname = \"team-limited\"\nkeys = [\"{}\"]\nmodels = []\n\
         mcp_tools = [\"pets/getPet\", \"pets/listPets\"{calc}]\n",
        server("pets", ""),
        server("metered", "tool_calls_per_minute = 2"),
        digest_line(KEY),
        digest_line(LIMITED_KEY),
    )
}

fn python() -> Option<PathBuf> {
    python_with("mcp, aiohttp, pytest, anyio")
}

#[tokio::test]
async fn official_sdk_lists_and_calls_tools_in_both_eras_across_instances() {
    let Some(python) = python() else { return };
    let api = PetStore::start(&python).await;
    let remote = PetStore::remote(&python).await;
    let config = mcp_config_with(&api.url, Some(&remote.url), "");
    let a = Gateway::start_raw("", &config);
    let b = Gateway::start_raw("", &config);
    let (ok, report) = crate::sdk::pytest(
        python,
        "test_mcp.py",
        &[
            ("MCP_URL_A", a.api.clone()),
            ("MCP_URL_B", b.api.clone()),
            ("TOLLGATE_LIMITED_KEY", LIMITED_KEY.to_string()),
            ("MCP_REMOTE", "1".to_string()),
        ],
    )
    .await;
    assert!(ok, "{report}");
    // Only the Redis relay test waits for its own run.
    assert!(report.contains("7 passed, 1 skipped"), "{report}");

    // The API got the stored credential and the forwarded header, never a gateway key.
    let seen = api.seen().await;
    assert!(seen.len() >= 20, "{seen:?}");
    for r in &seen {
        assert_eq!(r["x_api_key"], PETSTORE_KEY, "{r}");
        assert_eq!(r["authorization"], Value::Null, "{r}");
        assert_eq!(r["x_user"], "alice", "{r}");
    }
    assert!(seen
        .iter()
        .any(|r| r["path"] == "/pets/1" && r["x_trace_id"] == "t-1"));
    assert!(seen.iter().any(|r| r["query"] == "limit=1&tag=cat"));

    let ok_calls = &[("server", "pets"), ("tool", "getPet"), ("outcome", "ok")];
    let m = a.metrics().await;
    assert!(
        metric(&m, "tollgate_mcp_calls_total", ok_calls) >= 3.0,
        "{m}"
    );
    let errors = &[
        ("server", "pets"),
        ("tool", "getPet"),
        ("outcome", "tool_error"),
    ];
    assert!(metric(&m, "tollgate_mcp_calls_total", errors) >= 1.0);
    assert!(m.contains("tollgate_mcp_call_duration_seconds_bucket{server=\"pets\",tool=\"getPet\""));
    let remote_ok = &[("server", "calc"), ("tool", "add"), ("outcome", "ok")];
    let both = metric(&m, "tollgate_mcp_calls_total", remote_ok)
        + metric(&b.metrics().await, "tollgate_mcp_calls_total", remote_ok);
    assert!(both >= 2.0, "{m}");
    let lines = a.log_lines();
    let call = lines
        .iter()
        .find(|l| l["mcp_method"] == "tools/call" && l["mcp_tool"] == "getPet")
        .expect("a tools/call line");
    assert_eq!(call["kind"], "mcp");
    assert_eq!(call["consumer"], "team-a");
    assert_eq!(call["mcp_server"], "pets");
    for l in &lines {
        let text = l.to_string();
        assert!(
            !text.contains(PETSTORE_KEY) && !text.contains(KEY),
            "{text}"
        );
    }
}

async fn post(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &str) -> reqwest::Response {
    let mut r = client()
        .post(gw.url(path))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

const AUTH: (&str, &str) = ("authorization", "Bearer tg-test-key-0001");

fn modern(method: &str, params: Value) -> String {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string()
}

async fn error_of(r: reqwest::Response, status: u16, code: i64) -> Value {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["error"]["code"], code, "{v}");
    v
}

#[tokio::test]
async fn bad_input_gets_its_documented_answer_and_never_reaches_the_api() {
    let Some(python) = python() else { return };
    let api = PetStore::start(&python).await;
    let gw = Gateway::start_raw("", &mcp_config(&api.url, ""));
    let v = ("mcp-protocol-version", "2026-07-28");
    let call = modern(
        "tools/call",
        json!({"name": "getPet", "arguments": {"petId": 1}}),
    );
    let routed = [
        AUTH,
        v,
        ("mcp-method", "tools/call"),
        ("mcp-name", "getPet"),
    ];

    // No key, a wrong key.
    let r = post(&gw, "/mcp/pets", &routed[1..], &call).await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    error_of(r, 401, -32000).await;
    let bad = [
        ("authorization", "Bearer nope"),
        v,
        ("mcp-method", "tools/call"),
        ("mcp-name", "getPet"),
    ];
    error_of(post(&gw, "/mcp/pets", &bad, &call).await, 401, -32000).await;
    // Not JSON, a batch, not JSON-RPC.
    error_of(
        post(&gw, "/mcp/pets", &[AUTH, v], "{nope").await,
        400,
        -32700,
    )
    .await;
    error_of(post(&gw, "/mcp/pets", &[AUTH, v], "[]").await, 400, -32600).await;
    error_of(
        post(&gw, "/mcp/pets", &[AUTH, v], r#"{"id":1,"method":"x"}"#).await,
        400,
        -32600,
    )
    .await;
    // A protocol version nobody speaks.
    let e = error_of(
        post(
            &gw,
            "/mcp/pets",
            &[AUTH, ("mcp-protocol-version", "1999-01-01")],
            &call,
        )
        .await,
        400,
        -32022,
    )
    .await;
    assert!(e["error"]["data"]["supported"].as_array().unwrap().len() >= 4);
    // Headers that disagree with the body.
    let wrong_method = [
        AUTH,
        v,
        ("mcp-method", "tools/list"),
        ("mcp-name", "getPet"),
    ];
    error_of(
        post(&gw, "/mcp/pets", &wrong_method, &call).await,
        400,
        -32020,
    )
    .await;
    let wrong_name = [
        AUTH,
        v,
        ("mcp-method", "tools/call"),
        ("mcp-name", "addPet"),
    ];
    error_of(
        post(&gw, "/mcp/pets", &wrong_name, &call).await,
        400,
        -32020,
    )
    .await;
    let no_meta = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    error_of(
        post(
            &gw,
            "/mcp/pets",
            &[AUTH, v, ("mcp-method", "tools/list")],
            &no_meta,
        )
        .await,
        400,
        -32602,
    )
    .await;
    // An unknown method, server, tool; a tool this key may not use.
    let nope = modern("resources/list", json!({}));
    error_of(
        post(
            &gw,
            "/mcp/pets",
            &[AUTH, v, ("mcp-method", "resources/list")],
            &nope,
        )
        .await,
        404,
        -32601,
    )
    .await;
    error_of(post(&gw, "/mcp/nope", &routed, &call).await, 404, -32000).await;
    let add = modern(
        "tools/call",
        json!({"name": "addPet", "arguments": {"name": "x"}}),
    );
    let limited = [
        ("authorization", "Bearer tg-test-key-limited"),
        v,
        ("mcp-method", "tools/call"),
        ("mcp-name", "addPet"),
    ];
    let e = error_of(post(&gw, "/mcp/pets", &limited, &add).await, 400, -32602).await;
    assert_eq!(e["error"]["message"], "Unknown tool: addPet");
    // Handshake era: no session, a forged one, one from another path.
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    error_of(post(&gw, "/mcp/pets", &[AUTH], list).await, 400, -32000).await;
    error_of(
        post(
            &gw,
            "/mcp/pets",
            &[
                AUTH,
                (
                    "mcp-session-id",
                    "s1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                ),
            ],
            list,
        )
        .await,
        404,
        -32000,
    )
    .await;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = post(&gw, "/mcp/metered", &[AUTH], init).await;
    assert_eq!(r.status(), StatusCode::OK);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["result"]["protocolVersion"], "2025-06-18");
    let other_path = [AUTH, ("mcp-session-id", sid.as_str())];
    error_of(post(&gw, "/mcp/pets", &other_path, list).await, 404, -32000).await;
    let other_key = [
        ("authorization", "Bearer tg-test-key-limited"),
        ("mcp-session-id", sid.as_str()),
    ];
    error_of(
        post(&gw, "/mcp/metered", &other_key, list).await,
        404,
        -32000,
    )
    .await;
    // A version served here but not the negotiated one is accepted (400 is for invalid or
    // unsupported versions only).
    let other_version = [
        AUTH,
        ("mcp-session-id", sid.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let r = post(&gw, "/mcp/metered", &other_version, list).await;
    assert_eq!(r.status(), StatusCode::OK);
    let listed: Value = r.json().await.unwrap();
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    let unsupported = [
        AUTH,
        ("mcp-session-id", sid.as_str()),
        ("mcp-protocol-version", "1999-01-01"),
    ];
    error_of(
        post(&gw, "/mcp/metered", &unsupported, list).await,
        400,
        -32022,
    )
    .await;
    // In a session a JSON-RPC error is an answer (HTTP 200): a 404 would end the session.
    let in_session = [AUTH, ("mcp-session-id", sid.as_str())];
    let unknown = r#"{"jsonrpc":"2.0","id":3,"method":"nope/nothing"}"#;
    error_of(
        post(&gw, "/mcp/metered", &in_session, unknown).await,
        200,
        -32601,
    )
    .await;
    // Batches: refused at 2025-06-18, answered in order at 2025-03-26.
    let batch = r#"[{"jsonrpc":"2.0","id":4,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":5,"method":"tools/list"}]"#;
    error_of(
        post(&gw, "/mcp/metered", &in_session, batch).await,
        400,
        -32600,
    )
    .await;
    let init_old = init.replace("2025-06-18", "2025-03-26");
    let r = post(&gw, "/mcp/metered", &[AUTH], &init_old).await;
    let old_sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let old_session = [AUTH, ("mcp-session-id", old_sid.as_str())];
    let r = post(&gw, "/mcp/metered", &old_session, batch).await;
    assert_eq!(r.status(), StatusCode::OK);
    let answers: Value = r.json().await.unwrap();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0]["id"], 4);
    assert_eq!(answers[1]["id"], 5);
    assert!(answers[1]["result"]["tools"].is_array());
    // A body over the cap, an Origin not allowed, GET on the stateless revision.
    let big = modern("tools/list", json!({"pad": "x".repeat(20_000)}));
    error_of(
        post(
            &gw,
            "/mcp/pets",
            &[AUTH, v, ("mcp-method", "tools/list")],
            &big,
        )
        .await,
        413,
        -32000,
    )
    .await;
    let evil = [
        AUTH,
        v,
        ("mcp-method", "tools/call"),
        ("mcp-name", "getPet"),
        ("origin", "https://evil.example"),
    ];
    error_of(post(&gw, "/mcp/pets", &evil, &call).await, 403, -32000).await;
    let r = client()
        .get(gw.url("/mcp/pets"))
        .header(AUTH.0, AUTH.1)
        .header(v.0, v.1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");
    // A missing required argument is the tool's error; nothing is sent.
    let r = post(
        &gw,
        "/mcp/pets",
        &routed,
        &modern("tools/call", json!({"name": "getPet", "arguments": {}})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v2: Value = r.json().await.unwrap();
    assert_eq!(v2["result"]["isError"], true);
    assert!(v2["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("`petId`"));
    assert!(api.seen().await.is_empty(), "{:?}", api.seen().await);

    // The allowed Origin works; the metered server allows two calls a minute per tool.
    let fine = [
        AUTH,
        v,
        ("mcp-method", "tools/call"),
        ("mcp-name", "getPet"),
        ("origin", "https://app.example"),
    ];
    assert_eq!(
        post(&gw, "/mcp/metered", &fine, &call).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&gw, "/mcp/metered", &fine, &call).await.status(),
        StatusCode::OK
    );
    let r = post(&gw, "/mcp/metered", &fine, &call).await;
    assert!(r.headers().contains_key("retry-after"));
    error_of(r, 429, -32000).await;
    assert_eq!(api.seen().await.len(), 2);
    gw.wait_metric(
        "tollgate_mcp_calls_total",
        &[
            ("server", "metered"),
            ("tool", "getPet"),
            ("outcome", "rate_limited"),
        ],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn sessions_are_served_by_any_instance_and_end_on_delete() {
    let Some(python) = python() else { return };
    let api = PetStore::start(&python).await;
    let config = mcp_config(&api.url, "");
    let a = Gateway::start_raw("", &config);
    let b = Gateway::start_raw("", &config);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = post(&a, "/mcp/pets", &[AUTH], init).await;
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let s = [
        AUTH,
        ("mcp-session-id", sid.as_str()),
        ("mcp-protocol-version", "2025-03-26"),
    ];
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(
        post(&b, "/mcp/pets", &s, note).await.status(),
        StatusCode::ACCEPTED
    );
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"getPet","arguments":{"petId":2}}}"#;
    let r = post(&b, "/mcp/pets", &s, call).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["structuredContent"]["name"], "Tom");
    // The GET stream opens on either instance.
    let r = client()
        .get(b.url("/mcp/pets"))
        .header(AUTH.0, AUTH.1)
        .header("mcp-session-id", &sid)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    drop(r);
    // Ended where it is deleted.
    let r = client()
        .delete(a.url("/mcp/pets"))
        .header(AUTH.0, AUTH.1)
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    error_of(post(&a, "/mcp/pets", &s, call).await, 404, -32000).await;
}

/// Read a legacy SSE stream until `want` appears in it; what was read.
async fn read_until(stream: &mut reqwest::Response, want: &str) -> String {
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains(want) {
        assert!(Instant::now() < deadline, "no {want:?} in {text:?}");
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("the stream goes on")
            .unwrap()
            .expect("the stream is open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn legacy_sse_crosses_instances_through_redis_and_fails_clearly_without_it() {
    let Some(python) = python() else { return };
    let mut redis = crate::redis_server::RedisServer::start();
    let api = PetStore::start(&python).await;
    let remote = PetStore::remote(&python).await;
    let extra = format!("[redis]\nurl = \"{}\"\ntimeout_ms = 500\n", redis.url());
    let config = format!(
        "{extra}\n{}",
        mcp_config_with(&api.url, Some(&remote.url), "")
    );
    let a = Gateway::start_raw("", &config);
    let b = Gateway::start_raw("", &config);
    let (ok, report) = crate::sdk::pytest(
        python,
        "test_mcp.py",
        &[
            ("MCP_URL_A", a.api.clone()),
            ("MCP_URL_B", b.api.clone()),
            ("TOLLGATE_LIMITED_KEY", LIMITED_KEY.to_string()),
            ("MCP_RELAY", "1".to_string()),
            ("MCP_REMOTE", "1".to_string()),
        ],
    )
    .await;
    assert!(ok, "{report}");
    assert!(
        report.contains("8 passed") && !report.contains("skipped"),
        "{report}"
    );

    // Redis gone: a message posted to the instance without the stream is refused at once,
    // clearly; the instance holding the stream still takes its own.
    let mut stream = client()
        .get(a.url("/mcp/pets/sse"))
        .header(AUTH.0, AUTH.1)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let text = read_until(&mut stream, "\n\n").await;
    let endpoint = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("an endpoint event")
        .to_string();
    assert!(text.starts_with("event: endpoint\n"), "{text}");
    assert!(
        endpoint.starts_with("/mcp/pets/messages?sessionId=s1."),
        "{endpoint}"
    );
    redis.kill();
    let ping = r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#;
    let started = Instant::now();
    let r = post(&b, &endpoint, &[AUTH], ping).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let e = error_of(r, 503, -32000).await;
    assert!(
        e["error"]["message"].as_str().unwrap().contains("Redis"),
        "{e}"
    );
    let r = post(&a, &endpoint, &[AUTH], ping).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let text = read_until(&mut stream, "\"id\":9").await;
    assert!(text.contains(r#""result":{}"#), "{text}");
    // Another key cannot post to the session: 404, as if it did not exist.
    drop(stream);
    let other = [("authorization", "Bearer tg-test-key-limited")];
    error_of(post(&a, &endpoint, &other, ping).await, 404, -32000).await;
}

/// A client still writing an oversized MCP message reads the 413 instead of a reset: the rest
/// of the body is read and dropped before the answer, as on the model path.
#[tokio::test]
async fn a_client_still_writing_an_oversized_message_reads_the_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = Gateway::start_raw("", &mcp_config("http://127.0.0.1:9", ""));
    let addr = gw.api.trim_start_matches("http://").to_string();
    for declared in [true, false] {
        let body = vec![b' '; 12 * 1024 * 1024];
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let length = if declared {
            format!("content-length: {}\r\n", body.len())
        } else {
            "transfer-encoding: chunked\r\n".to_string()
        };
        let head = format!(
            "POST /mcp/pets HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
             content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
             mcp-protocol-version: 2025-06-18\r\n{length}\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let sent = if declared {
            s.write_all(&body).await
        } else {
            let mut r = Ok(());
            for piece in body.chunks(256 * 1024) {
                let frame = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
                r = s.write_all(&frame).await;
                if r.is_err() {
                    break;
                }
            }
            if r.is_ok() {
                r = s.write_all(b"0\r\n\r\n").await;
            }
            r
        };
        sent.expect("the whole message is taken, not refused mid-write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            s.read_to_end(&mut answer),
        )
        .await;
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 413"),
            "declared {declared}: {text}"
        );
    }
}
