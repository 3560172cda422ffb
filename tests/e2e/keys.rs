//! Keys managed at run time: created, listed, narrowed to models, rotated with a grace
//! period, revoked, expiring, kept across a restart in the state file, and the
//! `tollgate keys` command line; all behind the admin token.

use crate::harness::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) const TOKEN: &str = ADMIN_TOKEN;

fn start(state_dir: &Path) -> Gateway {
    let rest = format!(
        "{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         [[models]]\nname = \"other\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n{}\n\
         [admin]\ntoken_env = \"TG_ADMIN_TOKENS\"\n[keys]\nstate_file = \"{}\"\n",
        "[[providers]]\nname = \"m\"\nkind = \"mock\"\n",
        consumers(),
        state_dir.join("keys.json").display()
    );
    Gateway::start_raw(
        "grace_period_seconds = 0\ngraceful_shutdown_timeout_seconds = 1",
        &rest,
    )
}

pub(crate) async fn admin(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client()
        .request(method, format!("{}{path}", gw.admin))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn chat_with(gw: &Gateway, key: &str, model: &str) -> u16 {
    client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body(model, false))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Poll until `key` on `model` answers `want` (bounded).
async fn wait_status(gw: &Gateway, key: &str, want: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if chat_with(gw, key, "chat").await == want {
            return;
        }
        assert!(Instant::now() < deadline, "never {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn keys_are_created_narrowed_rotated_revoked_and_kept_across_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let mut gw = start(state.path());
    let (status, made) = admin(&gw, reqwest::Method::POST, "/admin/keys",
        Some(json!({"consumer": "team-a", "name": "ci", "models": ["chat"], "tags": {"env": "test"}}))).await;
    assert_eq!(status, 201, "{made}");
    let secret = made["key"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("tg-") && secret.len() >= 35,
        "128+ bits: {secret}"
    );
    assert_eq!(chat_with(&gw, &secret, "chat").await, 200);
    assert_eq!(
        chat_with(&gw, &secret, "other").await,
        404,
        "narrowed to chat"
    );
    // Both requests settled (the access log is written after the usage is recorded).
    let lines = gw.wait_log_lines(2).await;
    assert_eq!(lines[0]["consumer"], "team-a");
    let (_, usage) = admin(&gw, reqwest::Method::GET, "/admin/usage?group_by=key", None).await;
    let row = usage["top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == id.as_str());
    assert_eq!(row.unwrap()["requests"], 2, "usage by key: {usage}");

    // Lists never show the secret or its digest; the config's keys are there, read-only.
    let (status, list) = admin(
        &gw,
        reqwest::Method::GET,
        "/admin/keys?consumer=team-a",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(!text.contains(&secret));
    assert!(!text.contains(&hex::encode(tollgate::auth::digest(&secret))));
    let mine = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert_eq!(mine["prefix"], &secret[..10]);
    assert_eq!(mine["state"], "active");
    assert!(mine["last_used_at"].as_i64().is_some());
    assert!(list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["source"] == "config"));

    // The table outlives the process.
    signal(gw.pid(), "TERM");
    gw.wait_exit(Duration::from_secs(30)).await;
    let gw = start(state.path());
    assert_eq!(
        chat_with(&gw, &secret, "chat").await,
        200,
        "after a restart"
    );

    // Rotation: the old secret works for the grace period, then not; the new one does.
    let (status, rotated) = admin(
        &gw,
        reqwest::Method::POST,
        &format!("/admin/keys/{id}/rotate"),
        Some(json!({"grace_seconds": 2})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["key"].as_str().unwrap().to_string();
    assert_eq!(
        chat_with(&gw, &secret, "chat").await,
        200,
        "in the grace period"
    );
    assert_eq!(chat_with(&gw, &new_secret, "chat").await, 200);
    wait_status(&gw, &secret, 401, Duration::from_secs(10)).await;
    assert_eq!(chat_with(&gw, &new_secret, "chat").await, 200);

    // Revocation is at once.
    let (status, _) = admin(
        &gw,
        reqwest::Method::DELETE,
        &format!("/admin/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(chat_with(&gw, &new_secret, "chat").await, 401);

    // An expiring key stops at its time.
    let expires = tollgate::feedback::budget::now_s() + 2;
    let (_, made) = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/keys",
        Some(json!({"consumer": "team-a", "expires_at": expires})),
    )
    .await;
    let short = made["key"].as_str().unwrap().to_string();
    assert_eq!(chat_with(&gw, &short, "chat").await, 200);
    wait_status(&gw, &short, 401, Duration::from_secs(10)).await;

    // Bad requests name what is wrong.
    for (body, want) in [
        (json!({"consumer": "nobody"}), "no consumer named `nobody`"),
        (
            json!({"consumer": "team-limited", "models": ["other"]}),
            "`other` is not a model",
        ),
        (
            json!({"consumer": "team-a", "secret": "x"}),
            "unknown field",
        ),
    ] {
        let (status, e) = admin(&gw, reqwest::Method::POST, "/admin/keys", Some(body)).await;
        assert_eq!(status, 400);
        assert!(
            e["error"]["message"].as_str().unwrap().contains(want),
            "{e}"
        );
    }
    // Without the admin token: 401.
    let r = client()
        .get(format!("{}/admin/keys", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_command_line_manages_keys_of_a_running_gateway() {
    let state = tempfile::tempdir().unwrap();
    let gw = start(state.path());
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("keys")
            .args(args)
            .args(["--admin", &gw.admin])
            .env("TOLLGATE_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = cli(&["create", "--consumer", "team-a", "--name", "cli", "--json"]);
    assert!(ok, "{err}");
    let made: Value = serde_json::from_str(out.trim()).unwrap();
    let secret = made["key"].as_str().unwrap();
    assert_eq!(chat_with(&gw, secret, "chat").await, 200);
    let (ok, table, _) = cli(&["list"]);
    assert!(ok);
    assert!(table.contains(made["id"].as_str().unwrap()), "{table}");
    assert!(
        table.contains("active") && !table.contains(secret),
        "{table}"
    );
    let (ok, _, _) = cli(&["revoke", made["id"].as_str().unwrap()]);
    assert!(ok);
    assert_eq!(chat_with(&gw, secret, "chat").await, 401);
    // A wrong token is refused, and says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["keys", "list", "--admin", &gw.admin, "--token", "tg-wrong"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}
