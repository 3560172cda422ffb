//! Compatibility with the official `openai` Python SDK (tests/sdk/*.py, run with pytest).
//!
//! The interpreter is `$TOLLGATE_PYTHON`, else `.venv/bin/python` (made by `.ci/run`). Without
//! one the test says so and passes locally; under CI (`CI` set) a missing SDK fails it.

use crate::harness::*;
use std::process::Command;

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
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/test_openai_sdk.py"),
            ])
            .env("TOLLGATE_BASE_URL", format!("{}/v1", gw.api))
            .env("TOLLGATE_KEY", KEY)
            .output()
            .map(|o| (o, gw))
    })
    .await
    .unwrap()
    .expect("pytest runs");
    let (out, _gw) = out;
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "SDK tests failed:\n{report}");
    assert!(report.contains("7 passed"), "{report}");
}
