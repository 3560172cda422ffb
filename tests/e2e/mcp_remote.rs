//! A remote MCP server proxied at `/mcp/{server}`: the MCP conformance suite's own reference
//! server (tests/mcp/everything-server, vendored with its licence) behind the gateway.
//!
//! - The official conformance suite (`@modelcontextprotocol/conformance`, pinned in
//!   tests/node) runs its server scenarios against the reference server directly and through
//!   the gateway; every scenario that passes directly must pass through the gateway.
//! - The official TypeScript and Python SDKs, as clients with sampling and elicitation
//!   handlers, go through two gateway instances behind a relay that sends each new
//!   connection to the other instance: a tool that asks the client for a completion (or for
//!   input) gets the client's answer whichever instance it reaches.
//!
//! `.ci/run` installs what these need (`npm ci` in tests/node and in the server's folder).

use crate::harness::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn node() -> Option<PathBuf> {
    let node = PathBuf::from(format!("{ROOT}/tests/node/node_modules/.bin/node"));
    let mut probe = Command::new(&node);
    probe.args([
        "-e",
        "require.resolve('@modelcontextprotocol/sdk/client/index.js'); \
         require('fs').statSync('../mcp/everything-server/node_modules/tsx')",
    ]);
    probe.current_dir(format!("{ROOT}/tests/node"));
    tool_present(
        "the MCP reference server and clients (npm ci in tests/node and tests/mcp/everything-server)",
        probe,
    )
    .then_some(node)
}

/// The conformance suite's reference server, stopped on drop.
struct Everything {
    child: Child,
    url: String,
}

impl Everything {
    async fn start(node: &PathBuf) -> Everything {
        let port = free_port();
        let dir = format!("{ROOT}/tests/mcp/everything-server");
        let child = Command::new(node)
            // tsx as a loader, not its CLI: one process, so dropping it stops the server.
            .args([
                "--import",
                "./node_modules/tsx/dist/loader.mjs",
                "everything-server.ts",
            ])
            .current_dir(&dir)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the reference server");
        let server = Everything {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(&server.url).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the reference server did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(remote: &str) -> String {
    format!(
        "[mcp]\nsession_key_env = \"TG_MCP_SESSION_KEY\"\n\
         [[mcp.servers]]\nname = \"everything\"\nkind = \"remote\"\nurl = \"{remote}\"\n\
         exclude = [\"test_reconnection\"]\n\
         [[consumers]]\nname = \"team-a\"\nkeys = [\"{}\"]\n\
         [[consumers]]\nname = \"local-tools\"\nkeys = []\nkeyless_from = [\"127.0.0.0/8\"]\n",
        digest_line(KEY),
    )
}

/// Each scenario's verdict in the suite's summary (`✓ name: …` / `✗ name: …`).
fn verdicts(report: &str) -> BTreeMap<String, bool> {
    report
        .lines()
        .filter_map(|l| {
            let (mark, rest) = l.trim().split_once(' ')?;
            let name = rest.split_once(':')?.0.to_string();
            match mark {
                "✓" => Some((name, true)),
                "✗" => Some((name, false)),
                _ => None,
            }
        })
        .collect()
}

fn conformance(node: &PathBuf, url: &str, scenario: Option<&str>) -> String {
    let mut cmd = Command::new(node);
    cmd.args([
        "node_modules/@modelcontextprotocol/conformance/dist/index.js",
        "server",
        "--url",
        url,
    ]);
    if let Some(s) = scenario {
        cmd.args(["--scenario", s]);
    }
    let out = cmd
        .current_dir(format!("{ROOT}/tests/node"))
        .env("TMPDIR", std::env::temp_dir())
        .output()
        .expect("the conformance suite runs");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[tokio::test]
async fn the_conformance_suite_passes_through_the_gateway_whatever_passes_directly() {
    let Some(node) = node() else { return };
    let server = Everything::start(&node).await;
    let gw = Gateway::start_raw("", &config(&server.url));
    let (n, direct_url, via_url) = (node.clone(), server.url.clone(), gw.url("/mcp/everything"));
    let (direct, via) = tokio::task::spawn_blocking(move || {
        (
            conformance(&n, &direct_url, None),
            conformance(&n, &via_url, None),
        )
    })
    .await
    .expect("conformance task");
    let (direct, via) = (verdicts(&direct), verdicts(&via));
    assert!(
        direct.len() >= 25,
        "the suite ran too few scenarios:\n{direct:?}"
    );
    for (scenario, passed) in &direct {
        if !passed || via.get(scenario) == Some(&true) {
            continue;
        }
        // A scenario is run again alone, up to three times, before it counts as failed: the
        // reference server sends its sampling and elicitation requests on the session's GET
        // stream, which the suite's client opens while it already calls the tool; a request
        // sent before that stream reaches the server is lost, directly and (more often, the
        // GET having one hop more) through the gateway.
        let mut last = String::new();
        let mut passed_alone = false;
        for _ in 0..3 {
            let (n, url, s) = (node.clone(), gw.url("/mcp/everything"), scenario.clone());
            last = tokio::task::spawn_blocking(move || conformance(&n, &url, Some(&s)))
                .await
                .expect("conformance task");
            // A single scenario ends with `Passed: n/n, 0 failed` instead of the summary.
            passed_alone = verdicts(&last).get(scenario) == Some(&true)
                || (last.contains("Passed: ") && last.contains(", 0 failed"));
            if passed_alone {
                break;
            }
        }
        assert!(
            passed_alone,
            "`{scenario}` passes directly but not through the gateway:\n{last}"
        );
    }
    let passed = via.values().filter(|p| **p).count();
    eprintln!(
        "conformance through the gateway: {passed}/{} scenarios",
        via.len()
    );
}

#[tokio::test]
async fn sdk_clients_answer_sampling_and_elicitation_through_two_instances() {
    let Some(node) = node() else { return };
    let server = Everything::start(&node).await;
    let a = Gateway::start_raw("", &config(&server.url));
    let b = Gateway::start_raw("", &config(&server.url));
    let hosts = [&a, &b].map(|g| g.api.trim_start_matches("http://").to_string());
    let relay = alternating_relay(hosts.to_vec()).await;

    // The TypeScript SDK: Streamable HTTP through the relay.
    let (n, url) = (node.clone(), format!("{relay}/mcp/everything"));
    let legacy = a.url("/mcp/everything/sse");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(n)
            .arg("mcp_client.mjs")
            .current_dir(format!("{ROOT}/tests/node"))
            .env("MCP_URL", url)
            .env("MCP_LEGACY_URL", legacy)
            .env("TOLLGATE_KEY", KEY)
            .output()
    })
    .await
    .expect("client task")
    .expect("node runs");
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "TypeScript SDK client failed:\n{report}"
    );
    assert!(report.contains("ok 8 cases"), "{report}");

    // The Python SDK, the same way.
    if let Some(python) = python_with("mcp, pytest, anyio") {
        let (ok, report) = crate::sdk::pytest(
            python,
            "test_mcp_remote.py",
            &[("MCP_URL", format!("{relay}/mcp/everything"))],
        )
        .await;
        assert!(ok, "{report}");
        assert!(report.contains("4 passed"), "{report}");
    }

    // Both instances served the sessions, and nothing there named the client's key.
    for gw in [&a, &b] {
        let lines = gw.log_lines();
        assert!(
            lines.iter().any(|l| l["mcp_server"] == "everything"),
            "an instance served nothing: {lines:?}"
        );
        for l in &lines {
            assert!(!l.to_string().contains(KEY), "{l}");
        }
    }
}

/// One JSON-RPC request over raw HTTP; the answer's `result` (or `error`) and the session id.
async fn rpc(
    url: &str,
    key: &str,
    session: Option<&str>,
    method: &str,
    params: serde_json::Value,
) -> (serde_json::Value, Option<String>) {
    let mut req = client()
        .post(url)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-06-18");
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{method}");
    let sid = r
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let sse = r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream");
    let text = r.text().await.unwrap();
    let body = if sse {
        sse_data(&text).pop().unwrap_or_default()
    } else {
        text
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    (v, sid)
}

async fn open(url: &str, key: &str) -> String {
    let init = serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}});
    let (v, sid) = rpc(url, key, None, "initialize", init).await;
    assert!(v["result"]["capabilities"]["prompts"].is_object(), "{v}");
    sid.expect("a session id")
}

#[tokio::test]
async fn the_combined_endpoint_names_remote_prompts_and_resources_by_server() {
    let Some(node) = node() else { return };
    let server = Everything::start(&node).await;
    let extra = format!(
        "[[consumers]]\nname = \"one-tool\"\nkeys = [\"{}\"]\nmcp_tools = [\"everything/test_simple_text\"]\n",
        digest_line(LIMITED_KEY)
    );
    let gw = Gateway::start_raw("", &(config(&server.url) + &extra));
    let combined = gw.url("/mcp");
    let sid = open(&combined, KEY).await;
    let s = Some(sid.as_str());
    let (v, _) = rpc(&combined, KEY, s, "resources/list", serde_json::json!({})).await;
    let uris: Vec<&str> = v["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert!(uris.contains(&"everything+test://static-text"), "{uris:?}");
    let (v, _) = rpc(
        &combined,
        KEY,
        s,
        "resources/templates/list",
        serde_json::json!({}),
    )
    .await;
    assert!(
        v.to_string()
            .contains("everything+test://template/{id}/data"),
        "{v}"
    );
    let read = serde_json::json!({"uri": "everything+test://template/7/data"});
    let (v, _) = rpc(&combined, KEY, s, "resources/read", read).await;
    assert_eq!(
        v["result"]["contents"][0]["uri"], "everything+test://template/7/data",
        "{v}"
    );
    let (v, _) = rpc(&combined, KEY, s, "prompts/list", serde_json::json!({})).await;
    assert!(
        v.to_string().contains("\"everything__test_simple_prompt\""),
        "{v}"
    );
    let get = serde_json::json!({"name": "everything__test_prompt_with_arguments",
        "arguments": {"arg1": "left", "arg2": "right"}});
    let (v, _) = rpc(&combined, KEY, s, "prompts/get", get).await;
    assert!(v["result"]["messages"].to_string().contains("left"), "{v}");
    let complete = serde_json::json!({"ref": {"type": "ref/prompt",
        "name": "everything__test_prompt_with_arguments"}, "argument": {"name": "arg1", "value": "x"}});
    let (v, _) = rpc(&combined, KEY, s, "completion/complete", complete).await;
    assert!(v["result"]["completion"]["values"].is_array(), "{v}");
    let (v, _) = rpc(
        &combined,
        KEY,
        s,
        "resources/subscribe",
        serde_json::json!({"uri": "everything+test://watched-resource"}),
    )
    .await;
    assert_eq!(v["error"]["code"], -32601, "{v}");

    // A consumer granted one tool sees none of the server's prompts or resources, here or at
    // the server's own path.
    for path in ["/mcp", "/mcp/everything"] {
        let url = gw.url(path);
        let sid = open(&url, LIMITED_KEY).await;
        let s = Some(sid.as_str());
        let (v, _) = rpc(&url, LIMITED_KEY, s, "prompts/list", serde_json::json!({})).await;
        assert_eq!(v["result"]["prompts"], serde_json::json!([]), "{path}: {v}");
        let read = serde_json::json!({"uri": if path == "/mcp" { "everything+test://static-text" } else { "test://static-text" }});
        let (v, _) = rpc(&url, LIMITED_KEY, s, "resources/read", read).await;
        assert_eq!(v["error"]["code"], -32602, "{path}: {v}");
        let (v, _) = rpc(&url, LIMITED_KEY, s, "tools/list", serde_json::json!({})).await;
        let names: Vec<&str> = v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 1, "{path}: {names:?}");
    }
}
