//! Every file in `conf/` passes `tollgate -t`; a broken file fails it with every error listed.

use std::process::Command;

fn check(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("-t")
        .arg("-c")
        .arg(path)
        .env("OPENAI_API_KEY", "sk-test")
        .env("VLLM_API_KEY", "token-test")
        .env("GEMINI_API_KEY", "gemini-test")
        .env("PETSTORE_API_KEY", "petstore-test")
        .env("TOLLGATE_MCP_SESSION_KEY", "ab".repeat(32))
        .output()
        .expect("run tollgate -t")
}

#[test]
fn every_shipped_config_passes_the_check() {
    let mut checked = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/conf")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = check(&path);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "conf/ holds the quick start and an example");
}

#[test]
fn a_broken_config_lists_every_error_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[providers]]\nname = \"p\"\nkind = \"mock\"\n\n[[models]]\nname = \"a\"\ntargets = [{ provider = \"p\", model = \"x\", weight = 0 }]\n\n\
         [[models]]\nname = \"b\"\ntargets = [{ provider = \"q\", model = \"y\" }]\n",
    )
    .unwrap();
    let out = check(&path);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("models[0].targets[0].weight must be > 0"),
        "{err}"
    );
    assert!(
        err.contains("models[1].targets[0].provider names unknown provider `q`"),
        "{err}"
    );
}

#[test]
fn new_key_prints_a_key_and_its_config_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("--new-key")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let key = text
        .split_whitespace()
        .find(|w| w.starts_with("tg-"))
        .expect("a key");
    let line = text.split('"').nth(1).expect("a quoted config line");
    assert_eq!(
        tollgate::auth::parse_key_digest(line).unwrap(),
        tollgate::auth::digest(key)
    );
}

/// The metric names an expression mentions (`tollgate_*`, `gen_ai_*`), without histogram suffixes.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in expr.match_indices(['t', 'g']) {
        let rest = &expr[i..];
        if !(rest.starts_with("tollgate_") || rest.starts_with("gen_ai_"))
            || expr[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_string();
        out.push(base);
    }
    out
}

#[test]
fn dashboard_and_alerts_use_only_metrics_the_gateway_exports() {
    let root = env!("CARGO_MANIFEST_DIR");
    let defined = format!(
        "{}{}",
        std::fs::read_to_string(format!("{root}/src/metrics/mod.rs")).unwrap(),
        std::fs::read_to_string(format!("{root}/src/metrics/genai.rs")).unwrap()
    );
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/conf/grafana-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 15);
    let rules = std::fs::read_to_string(format!("{root}/conf/prometheus-alerts.yml")).unwrap();
    exprs.push(rules);
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                defined.contains(&format!("\"{name}\"")),
                "`{name}` is not a metric the gateway exports (in {expr})"
            );
        }
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut probe = Command::new("promtool");
    probe.arg("--version");
    if !crate::harness::tool_present("promtool", probe) {
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(format!("{root}/conf/prometheus-alerts.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(format!("{root}/tests/promtool/alerts_test.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
