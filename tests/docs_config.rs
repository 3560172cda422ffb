//! The configuration reference and the config types agree: every key a table of
//! `docs/configuration.md` names (its first column, in backticks) is a field of a config
//! section type, and every field of every section type (`src/config/`, the structs that
//! derive `Deserialize`) is named, in backticks, somewhere in `docs/`.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed step is a failed run"
)]

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Field names (as the file spells them: `rename`s applied) of every struct in `text` that
/// derives `Deserialize`.
fn deserialized_fields(text: &str, out: &mut BTreeSet<String>) {
    let mut derives = false;
    let mut in_struct = false;
    let mut rename: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("#[derive(") {
            derives = t.contains("Deserialize");
            continue;
        }
        if t.starts_with("pub struct ") || t.starts_with("struct ") {
            in_struct = derives && t.ends_with('{');
            derives = false;
            continue;
        }
        if !in_struct {
            continue;
        }
        if t == "}" {
            in_struct = false;
            continue;
        }
        if let Some(r) = t.split("rename = \"").nth(1) {
            rename = r.split('"').next().map(str::to_string);
        }
        if t.starts_with("#[serde(") && t.contains("flatten") {
            rename = Some(String::new());
        }
        let field = t.strip_prefix("pub ").unwrap_or(t);
        if t.starts_with("//") || t.starts_with('#') {
            continue;
        }
        if let Some((name, _)) = field.split_once(':') {
            if name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            {
                match rename.take() {
                    Some(r) if r.is_empty() => {}
                    Some(r) => {
                        out.insert(r);
                    }
                    None => {
                        out.insert(name.to_string());
                    }
                }
            }
        }
    }
}

fn config_fields() -> BTreeSet<String> {
    let mut fields = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("src/config")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".rs") && !name.starts_with("tests") {
            deserialized_fields(&std::fs::read_to_string(&path).unwrap(), &mut fields);
        }
    }
    fields
}

/// Every word in backticks in `text` (a `key = value` keeps its key).
fn backticked(text: &str, out: &mut BTreeSet<String>) {
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let key = part.split([' ', '=', '.', '[', '{']).next().unwrap_or("");
            out.insert(key.to_string());
            for piece in part.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                out.insert(piece.to_string());
            }
        }
    }
}

/// The first column of every table row of the configuration reference.
fn table_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(|k| k.split([' ', '.']).next().unwrap_or(k).to_string())
        .collect()
}

#[test]
fn every_documented_key_exists_and_every_field_is_documented() {
    let fields = config_fields();
    assert!(fields.len() > 100, "read {} config fields", fields.len());
    let reference = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let unknown: Vec<_> = table_keys(&reference)
        .into_iter()
        .filter(|k| !fields.contains(k))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md names keys no config type has: {unknown:?}"
    );
    let mut documented = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        backticked(&std::fs::read_to_string(&path).unwrap(), &mut documented);
    }
    let undocumented: Vec<_> = fields.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "config fields no document in docs/ names: {undocumented:?}"
    );
}
