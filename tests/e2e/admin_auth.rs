//! The admin API's authentication: with `[admin] token_env`, `/admin/*` needs a bearer token
//! (several accepted during a rotation), `/healthz` and `/readyz` stay open, `/metrics` too
//! unless `metrics_require_token`; without a token the admin listener must be loopback. The
//! token never reaches a log.

use crate::harness::*;
use serde_json::Value;

const CURRENT: &str = "tg-admin-current-7f3a9c";
const PREVIOUS: &str = "tg-admin-previous-2b8e41";

fn config(extra: &str) -> String {
    format!(
        "{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n{}\n\
         [admin]\ntoken_env = \"TG_ADMIN_TOKENS\"\n{extra}\n",
        mock_provider("m", "http://127.0.0.1:9", ""),
        consumers(),
    )
}

async fn get(gw: &Gateway, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = client().get(format!("{}{path}", gw.admin));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn admin_routes_need_one_of_the_tokens() {
    assert!(ADMIN_TOKENS.contains(CURRENT) && ADMIN_TOKENS.contains(PREVIOUS));
    let mut gw = Gateway::start_raw(
        "grace_period_seconds = 0\ngraceful_shutdown_timeout_seconds = 1",
        &config(""),
    );
    for path in [
        "/admin/usage",
        "/admin/limits?consumer=test",
        "/admin/reload",
    ] {
        for token in [None, Some("tg-admin-wrong"), Some("")] {
            let r = get(&gw, path, token).await;
            assert_eq!(r.status(), 401, "{path} with {token:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "invalid_admin_token");
        }
    }
    let r = client()
        .post(format!("{}/admin/reload", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a reload without the token is refused");
    for token in [CURRENT, PREVIOUS] {
        let r = get(&gw, "/admin/usage", Some(token)).await;
        assert_eq!(r.status(), 200, "{token}");
    }
    let r = client()
        .post(format!("{}/admin/reload", gw.admin))
        .bearer_auth(CURRENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            get(&gw, path, None).await.status(),
            200,
            "{path} stays open"
        );
    }
    // The tokens never reach a log.
    signal(gw.pid(), "TERM");
    assert_eq!(
        gw.wait_exit(std::time::Duration::from_secs(30)).await,
        Some(0)
    );
    let logs = format!(
        "{}\n{}",
        gw.stderr(),
        std::fs::read_to_string(&gw.access_log).unwrap_or_default()
    );
    assert!(
        !logs.contains(CURRENT) && !logs.contains(PREVIOUS),
        "{logs}"
    );
}

#[tokio::test]
async fn metrics_can_require_the_token_too() {
    let gw = Gateway::start_raw("", &config("metrics_require_token = true"));
    assert_eq!(get(&gw, "/metrics", None).await.status(), 401);
    let r = get(&gw, "/metrics", Some(CURRENT)).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("tollgate_"));
    assert_eq!(get(&gw, "/healthz", None).await.status(), 200);
}

#[test]
fn without_a_token_the_admin_listener_must_be_loopback() {
    let cfg = |listen: &str, admin: &str| {
        format!(
            "[server]\nadmin_listen = \"{listen}\"\n{admin}\n[[providers]]\nname = \"m\"\nkind = \"mock\"\n\
             [[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"x\" }}]\n"
        )
    };
    let errors = tollgate::config::parse(&cfg("0.0.0.0:9090", ""))
        .unwrap_err()
        .errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("server.admin_listen"), "{errors:?}");
    assert!(errors[0].contains("token_env"), "{errors:?}");
    assert!(tollgate::config::parse(&cfg("127.0.0.1:9090", "")).is_ok());
    assert!(tollgate::config::parse(&cfg("[::1]:9090", "")).is_ok());
    let with_token = tollgate::config::parse_with_env(
        &cfg("0.0.0.0:9090", "[admin]\ntoken_env = \"T\"\n"),
        &|v| (v == "T").then(|| "secret-token".to_string()),
    );
    assert!(with_token.is_ok(), "{:?}", with_token.err());
    let unset = tollgate::config::parse(&cfg(
        "0.0.0.0:9090",
        "[admin]\ntoken_env = \"TG_NOT_SET\"\n",
    ))
    .unwrap_err()
    .errors;
    assert!(
        unset[0].contains("admin.token_env: environment variable TG_NOT_SET is not set"),
        "{unset:?}"
    );
}
