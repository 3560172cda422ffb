//! The fuzz corpora as regression tests: every committed input of every target
//! (`fuzz/corpus/<target>/*`) goes through the same check the fuzzer runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed run"
)]

#[path = "../fuzz/checks.rs"]
mod checks;

#[test]
fn every_corpus_input_passes_its_targets_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, check) in checks::TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(
            inputs.len() >= 4,
            "{target}: a seed corpus of {} inputs",
            inputs.len()
        );
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let run = std::panic::catch_unwind(|| check(&data));
            assert!(run.is_ok(), "{target}: {} fails its check", input.display());
        }
    }
}
