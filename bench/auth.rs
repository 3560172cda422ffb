//! Authentication with 100,000 keys: the config's digest table and the run-time key table,
//! against a naive baseline that compares the presented key with every stored one (what a
//! "list of keys" in a first gateway often does), for a hit and for a miss.
//!
//!   cargo bench --bench auth
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::let_underscore_must_use,
    clippy::disallowed_methods,
    reason = "test and benchmark code: a failed step is a failed run, and the gateway's rules for clocks, tasks and results are the gateway's"
)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::Arc;
use tollgate::auth::keys::{KeyRecord, KeyStore};
use tollgate::auth::{digest, KeyTable};
use tollgate::config::Consumer;

const KEYS: usize = 100_000;

fn secret(i: usize) -> String {
    format!("tg-bench-{i:06}-0123456789abcdef0123456789abcdef")
}

fn config_table() -> KeyTable {
    let consumers: Vec<Arc<Consumer>> = (0..KEYS / 10)
        .map(|c| {
            Arc::new(Consumer {
                name: format!("c{c}"),
                keys: (0..10).map(|k| digest(&secret(c * 10 + k))).collect(),
                models: None,
                limits: Default::default(),
                project: None,
                tenant: None,
                log_payloads: false,
                ip_rules: Default::default(),
                mcp_tools: vec!["*".into()],
                routes: None,
                keyless_from: Vec::new(),
            })
        })
        .collect();
    KeyTable::new(&consumers)
}

fn api_store(dir: &tempfile::TempDir) -> KeyStore {
    let path = dir.path().join("keys.json");
    let records: Vec<KeyRecord> = (0..KEYS)
        .map(|i| KeyRecord {
            id: format!("key_{i:06}"),
            consumer: "c0".into(),
            name: String::new(),
            digest: digest(&secret(i)),
            prefix: secret(i)[..10].to_string(),
            models: None,
            tags: Default::default(),
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            previous: None,
            limits: None,
            project: None,
            allow_ips: Vec::new(),
            deny_ips: Vec::new(),
        })
        .collect();
    std::fs::write(
        &path,
        serde_json::json!({"version": 1, "keys": records}).to_string(),
    )
    .unwrap();
    KeyStore::open(Some(path), None).unwrap()
}

fn bench(c: &mut Criterion) {
    let table = config_table();
    let dir = tempfile::tempdir().unwrap();
    let store = api_store(&dir);
    let naive: Vec<(String, String)> = (0..KEYS)
        .map(|i| (secret(i), format!("c{}", i / 10)))
        .collect();
    let hit = secret(KEYS / 2);
    let miss = "tg-bench-none-0123456789abcdef0123456789abcdef".to_string();
    let mut g = c.benchmark_group("auth_100k_keys");
    g.bench_function("config_table_hit", |b| {
        b.iter(|| black_box(table.authenticate(black_box(&hit))))
    });
    g.bench_function("config_table_miss", |b| {
        b.iter(|| black_box(table.authenticate(black_box(&miss))))
    });
    g.bench_function("api_table_hit", |b| {
        b.iter(|| black_box(store.authenticate(black_box(&hit), 1)))
    });
    g.bench_function("naive_scan_hit", |b| {
        b.iter(|| {
            black_box(
                naive
                    .iter()
                    .find(|(k, _)| k == black_box(&hit))
                    .map(|(_, c)| c),
            )
        })
    });
    g.bench_function("naive_scan_miss", |b| {
        b.iter(|| {
            black_box(
                naive
                    .iter()
                    .find(|(k, _)| k == black_box(&miss))
                    .map(|(_, c)| c),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
