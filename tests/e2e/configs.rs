//! Every file in `conf/` passes `tollgate -t`; a broken file fails it with every error listed.

use std::process::Command;

fn check(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("-t")
        .arg("-c")
        .arg(path)
        .env("OPENAI_API_KEY", "sk-test")
        .env("VLLM_API_KEY", "token-test")
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
