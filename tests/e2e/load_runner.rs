//! The load-test runner (`load-tests/run.py`) on the CI profile against a spawned gateway, and
//! every shipped profile is well formed.

use crate::harness::python_with;
use std::process::Command;

#[test]
fn runner_reports_the_ci_profile() {
    let Some(python) = python_with("aiohttp") else {
        return;
    };
    let out_dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(python)
        .arg(format!("{root}/load-tests/run.py"))
        .arg(format!("{root}/load-tests/profiles/ci-smoke.toml"))
        .args(["--spawn", "--bin", env!("CARGO_BIN_EXE_tollgate"), "--out"])
        .arg(out_dir.path())
        .output()
        .expect("run the load runner");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("p99 ms") && text.contains("ttft p50"),
        "{text}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("report.json")).unwrap())
            .unwrap();
    let totals = &report["totals"];
    assert!(totals["ok"].as_u64().unwrap() >= 30, "{totals}");
    assert_eq!(totals["errors"], 0, "{totals}");
    assert!(totals["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(totals["ttft_ms"]["p50"].as_f64().unwrap() > 0.0);
    let html = std::fs::read_to_string(out_dir.path().join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 4);
}

#[test]
fn every_profile_is_well_formed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/load-tests/profiles");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let p: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let mode = p.get("mode").and_then(|m| m.as_str()).unwrap_or("rate");
        let stages = p["stages"].as_array().expect("stages");
        assert!(!stages.is_empty(), "{path:?}");
        for s in stages {
            assert!(s["duration_s"].as_integer().unwrap_or(0) > 0, "{path:?}");
            let key = if mode == "rate" {
                "rate"
            } else {
                "concurrency"
            };
            assert!(s.get(key).is_some(), "{path:?}: a {mode} stage needs {key}");
        }
        assert!(p["mix"]["models"].as_array().is_some(), "{path:?}");
        names.push(p["name"].as_str().unwrap().to_string());
    }
    for required in ["steady", "ramp", "spike", "soak", "streaming-heavy"] {
        assert!(
            names.iter().any(|n| n == required),
            "missing profile {required}"
        );
    }
}
