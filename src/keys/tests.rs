use super::*;

fn record(id: &str, secret: &str) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        consumer: "team-a".into(),
        name: id.into(),
        digest: digest(secret),
        prefix: secret.chars().take(10).collect(),
        models: None,
        tags: Default::default(),
        created_at: 1_000,
        expires_at: None,
        revoked_at: None,
        previous: None,
    }
}

fn store(dir: &tempfile::TempDir) -> KeyStore {
    KeyStore::open(Some(dir.path().join("keys.json"))).unwrap()
}

#[test]
fn keys_authenticate_until_revoked_or_expired_and_rotation_has_a_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    s.insert(record("k1", "tg-one")).unwrap();
    s.insert(KeyRecord {
        expires_at: Some(2_000),
        ..record("k2", "tg-two")
    })
    .unwrap();
    assert_eq!(s.authenticate("tg-one", 1_500).unwrap().record.id, "k1");
    assert!(s.authenticate("tg-onE", 1_500).is_none());
    assert!(s.authenticate("tg-two", 1_999).is_some());
    assert!(s.authenticate("tg-two", 2_000).is_none(), "expired");
    s.rotate("k1", digest("tg-one-new"), 1_600).unwrap();
    assert!(s.authenticate("tg-one", 1_599).is_some(), "grace");
    assert!(s.authenticate("tg-one", 1_600).is_none(), "grace over");
    assert!(s.authenticate("tg-one-new", 1_700).is_some());
    s.revoke("k1", 1_800).unwrap();
    assert!(s.authenticate("tg-one-new", 1_801).is_none());
    assert_eq!(s.get("k1").unwrap().record.state(1_801), KeyState::Revoked);
    assert!(matches!(
        s.revoke("nope", 1),
        Err(StoreError::UnknownKey(_))
    ));
}

#[test]
fn the_table_survives_a_restart_and_an_interrupted_write() {
    let dir = tempfile::tempdir().unwrap();
    store(&dir)
        .insert(record("k1", "tg-one-0123456789abcdef"))
        .unwrap();
    // A crash mid-write leaves only a partial temp file beside the table.
    std::fs::write(
        dir.path().join("keys.tmp.99999"),
        "{\"version\":1,\"keys\":[{\"id\":",
    )
    .unwrap();
    let reopened = store(&dir);
    assert!(reopened
        .authenticate("tg-one-0123456789abcdef", 1_100)
        .is_some());
    assert_eq!(reopened.list().len(), 1);
    // The file holds digests, never secrets.
    let text = std::fs::read_to_string(dir.path().join("keys.json")).unwrap();
    assert!(!text.contains("tg-one-0123456789abcdef"));
    assert!(text.contains(&hex::encode(digest("tg-one-0123456789abcdef"))));
    // A damaged table is refused, not replaced by an empty one.
    std::fs::write(dir.path().join("keys.json"), "{\"version\":1,\"keys\":[").unwrap();
    assert!(KeyStore::open(Some(dir.path().join("keys.json"))).is_err());
}

#[test]
fn without_a_state_file_nothing_can_be_created() {
    let s = KeyStore::open(None).unwrap();
    assert!(matches!(
        s.insert(record("k", "tg-x")),
        Err(StoreError::Unconfigured)
    ));
    assert!(s.authenticate("tg-x", 1).is_none());
}
