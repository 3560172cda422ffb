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
        limits: None,
        project: None,
        allow_ips: Vec::new(),
        deny_ips: Vec::new(),
    }
}

fn store(dir: &tempfile::TempDir) -> KeyStore {
    KeyStore::open(Some(dir.path().join("keys.json")), None).unwrap()
}

#[tokio::test]
async fn keys_authenticate_until_revoked_or_expired_and_rotation_has_a_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    s.change(Change::Insert(Box::new(record("k1", "tg-one"))))
        .await
        .unwrap();
    let expiring = KeyRecord {
        expires_at: Some(2_000),
        ..record("k2", "tg-two")
    };
    s.change(Change::Insert(Box::new(expiring))).await.unwrap();
    assert!(matches!(
        s.change(Change::Insert(Box::new(record("k1", "tg-other"))))
            .await,
        Err(StoreError::Exists(_))
    ));
    assert_eq!(s.authenticate("tg-one", 1_500).unwrap().record.id, "k1");
    assert!(s.authenticate("tg-onE", 1_500).is_none());
    assert!(s.authenticate("tg-two", 1_999).is_some());
    assert!(s.authenticate("tg-two", 2_000).is_none(), "expired");
    let rotate = Change::Rotate {
        id: "k1".into(),
        digest: digest("tg-one-new"),
        until: 1_600,
    };
    s.change(rotate).await.unwrap();
    assert!(s.authenticate("tg-one", 1_599).is_some(), "grace");
    assert!(s.authenticate("tg-one", 1_600).is_none(), "grace over");
    assert!(s.authenticate("tg-one-new", 1_700).is_some());
    let revoke = |id: &str, at| Change::Revoke { id: id.into(), at };
    s.change(revoke("k1", 1_800)).await.unwrap();
    assert!(s.authenticate("tg-one-new", 1_801).is_none());
    assert_eq!(s.get("k1").unwrap().record.state(1_801), KeyState::Revoked);
    assert!(matches!(
        s.change(revoke("nope", 1)).await,
        Err(StoreError::UnknownKey(_))
    ));
}

#[tokio::test]
async fn the_table_survives_a_restart_and_an_interrupted_write() {
    let dir = tempfile::tempdir().unwrap();
    store(&dir)
        .change(Change::Insert(Box::new(record(
            "k1",
            "tg-one-0123456789abcdef",
        ))))
        .await
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
    assert!(KeyStore::open(Some(dir.path().join("keys.json")), None).is_err());
}

#[tokio::test]
async fn without_a_state_file_nothing_can_be_created() {
    let s = KeyStore::open(None, None).unwrap();
    assert!(matches!(
        s.change(Change::Insert(Box::new(record("k", "tg-x"))))
            .await,
        Err(StoreError::Unconfigured)
    ));
    assert!(s.authenticate("tg-x", 1).is_none());
}
