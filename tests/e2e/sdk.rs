//! Compatibility with the official `openai` and `anthropic` Python SDKs (tests/sdk/*.py, run
//! with pytest).
//!
//! The interpreter is `$TOLLGATE_PYTHON`, else `.venv/bin/python` (made by `.ci/run`). Without
//! one the test says so and passes locally; under CI (`CI` set) a missing SDK fails it.

use crate::harness::*;
use std::path::PathBuf;
use std::process::Command;

/// Run `tests/sdk/<file>` with pytest, the gateway's key and `vars` set. Returns
/// whether it passed and its output.
pub async fn pytest(
    python: PathBuf,
    file: &str,
    vars: &[(&'static str, String)],
) -> (bool, String) {
    let path = format!("{}/tests/sdk/{file}", env!("CARGO_MANIFEST_DIR"));
    let vars = vars.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", &path])
            .envs(vars)
            .env("TOLLGATE_KEY", KEY)
            .output()
    })
    .await
    .expect("pytest task")
    .expect("pytest runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

#[tokio::test]
async fn openai_python_sdk() {
    let Some(python) = python_with("openai, pytest") else {
        return;
    };
    let mock = mock();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let cfg = format!(
        "{}\n{}\n{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[models]]\nname = \"cut\"\ntargets = [{{ provider = \"cutting\", model = \"up\" }}]\n\
         [[models]]\nname = \"down\"\ntargets = [{{ provider = \"dead\", model = \"up\" }}]\n",
        mock_provider("m", &mock.url(), ""),
        mock_provider("cutting", &mock.url(), "fault=cut,cut_after=3"),
        mock_provider("dead", &dead, ""),
    );
    let gw = Gateway::start(&cfg);
    let base = format!("{}/v1", gw.api);
    let (ok, report) = pytest(python, "test_openai_sdk.py", &[("TOLLGATE_BASE_URL", base)]).await;
    assert!(ok, "SDK tests failed:\n{report}");
    assert!(report.contains("7 passed"), "{report}");
}

/// LangChain for Python against OpenAI-compatible, Anthropic and Gemini backends
/// (tests/sdk/test_langchain.py).
#[tokio::test]
async fn langchain_python() {
    let Some(python) = python_with("langchain_openai, langchain_anthropic, pytest") else {
        return;
    };
    let mock = mock();
    let url = mock.url();
    let cfg = format!(
        "{}{}{}         [[models]]\nname = \"chat\"\ntargets = [{{ provider = \"openai-chat\", model = \"gpt-up\" }}]\n\
         [[models]]\nname = \"claude\"\ntargets = [{{ provider = \"claude\", model = \"claude-up\" }}]\n\
         [[models]]\nname = \"gemini\"\ntargets = [{{ provider = \"gemini\", model = \"gemini-2.5-flash\" }}]\n",
        provider_toml("openai-chat", "openai", &format!("{url}/v1"), ""),
        provider_toml("claude", "anthropic", &format!("{url}/v1"), ""),
        provider_toml("gemini", "gemini", &format!("{url}/v1beta"), ""),
    );
    let gw = Gateway::start(&cfg);
    let root = gw.api.clone();
    let (ok, report) = pytest(python, "test_langchain.py", &[("TOLLGATE_ROOT_URL", root)]).await;
    assert!(ok, "LangChain tests failed:\n{report}");
    assert!(report.contains("12 passed"), "{report}");
}

/// The `anthropic` SDK on /v1/messages against Anthropic and OpenAI backends, and the `openai`
/// SDK against an Anthropic backend (tests/sdk/test_anthropic_sdk.py).
#[tokio::test]
async fn anthropic_python_sdk() {
    let Some(python) = python_with("anthropic, openai, pytest") else {
        return;
    };
    let mock = mock();
    let gw = Gateway::start(&crate::anthropic::config(&mock.url()));
    let root = gw.api.clone();
    let (ok, report) = pytest(
        python,
        "test_anthropic_sdk.py",
        &[("TOLLGATE_ROOT_URL", root)],
    )
    .await;
    assert!(ok, "SDK tests failed:\n{report}");
    assert!(report.contains("14 passed"), "{report}");

    // The image reached both kinds of backend, in each one's own shape.
    let with_image: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("IMAGE-CHECK"))
        .collect();
    assert_eq!(with_image.len(), 2);
    for r in &with_image {
        let body = r.json().unwrap();
        let parts = &body["messages"][0]["content"];
        match r.path.as_str() {
            "/v1/messages" => {
                assert_eq!(parts[0]["source"]["media_type"], "image/png");
                assert_eq!(parts[0]["source"]["type"], "base64");
            }
            _ => {
                let url = parts[0]["image_url"]["url"].as_str().unwrap();
                assert!(url.starts_with("data:image/png;base64,iVBOR"), "{url}");
            }
        }
    }
    let lines = gw.log_lines();
    assert!(lines
        .iter()
        .any(|l| l["client_dialect"] == "anthropic" && l["upstream_dialect"] == "openai"));
}
