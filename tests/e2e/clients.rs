//! The client matrix (tests/node/matrix.mjs): the official OpenAI and Anthropic SDKs for
//! Node, the Vercel AI SDK (its OpenAI Responses, OpenAI-compatible and Anthropic providers)
//! and LangChain (OpenAI and Anthropic), unchanged, through the gateway to an
//! OpenAI-compatible, an Anthropic and a Gemini backend: text, streams with usage, tool round
//! trips, a reasoning model's tool loop, JSON mode and structured output, multi-turn with each
//! client's own history mechanism. `.ci/run` installs the pinned clients (`npm ci` in
//! tests/node).

use crate::harness::*;
use std::path::PathBuf;
use std::process::Command;

fn node() -> Option<PathBuf> {
    let node = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/node/node_modules/.bin/node"
    ));
    let mut probe = Command::new(&node);
    probe.args(["-e", "import('openai').then(() => import('ai'))"]);
    probe.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node"));
    tool_present("the Node client matrix (npm ci in tests/node)", probe).then_some(node)
}

fn config(url: &str) -> String {
    format!(
        "{}{}{}\
         [[models]]\nname = \"chat\"\ntargets = [{{ provider = \"openai-chat\", model = \"gpt-up\" }}]\n\
         [[models]]\nname = \"claude\"\ntargets = [{{ provider = \"claude\", model = \"claude-up\" }}]\n\
         [[models]]\nname = \"gemini\"\ntargets = [{{ provider = \"gemini\", model = \"gemini-2.5-flash\" }}]\n",
        provider_toml("openai-chat", "openai", &format!("{url}/v1"), ""),
        provider_toml("claude", "anthropic", &format!("{url}/v1"), ""),
        provider_toml("gemini", "gemini", &format!("{url}/v1beta"), ""),
    )
}

/// The number of cases in the matrix: 15 per backend.
const CASES: usize = 45;

#[tokio::test]
async fn every_client_in_the_matrix_works_unchanged_against_every_backend() {
    let Some(node) = node() else { return };
    let mock = mock();
    let gw = Gateway::start(&config(&mock.url()));
    let root = gw.api.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(node)
            .arg("matrix.mjs")
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node"))
            .env("TOLLGATE_ROOT_URL", root)
            .env("TOLLGATE_KEY", KEY)
            .env("AI_SDK_LOG_WARNINGS", "false")
            .output()
    })
    .await
    .expect("matrix task")
    .expect("node runs");
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client matrix failed:\n{report}");
    assert!(
        report.contains(&format!("{CASES} passed, 0 failed")),
        "{report}"
    );
    // Every answered model call was metered from the backend's own usage.
    let lines = gw.log_lines();
    let calls: Vec<_> = lines
        .iter()
        .filter(|l| l["status"] == 200 && l["method"] == "POST")
        .collect();
    assert!(calls.len() >= CASES, "{} calls", calls.len());
    for l in &calls {
        assert_eq!(l["usage_source"], "provider", "{l}");
    }
}
