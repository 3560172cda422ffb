//! `GET /admin/usage`: top-N and timelines per consumer, model and project, from one instance's
//! memory, and across two instances sharing a real Redis.

use crate::harness::*;
use crate::redis_server::RedisServer;
use serde_json::Value;
use std::time::{Duration, Instant};

const KEY_B: &str = "tg-test-key-usage-b";

fn config(mock_url: &str, redis: &str) -> String {
    format!(
        "{}\n{redis}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"up\" }}]\n\
         price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}\n\
         [[models]]\nname = \"embed\"\ntargets = [{{ provider = \"m\", model = \"up-embed\" }}]\n\
         [[consumers]]\nname = \"team-a\"\nkeys = [\"{}\"]\nproject = \"search\"\ntenant = \"acme\"\n\
         [[consumers]]\nname = \"team-b\"\nkeys = [\"{}\"]\nproject = \"ads\"\n",
        mock_provider("m", mock_url, ""),
        digest_line(KEY),
        digest_line(KEY_B)
    )
}

async fn ask(gw: &Gateway, key: &str, model: &str, script: &str) -> u16 {
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-mock", format!("prompt_tokens=10,tokens=5,{script}"))
        .json(&chat_body(model, false))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    r.bytes().await.unwrap();
    s
}

fn by_key<'a>(v: &'a Value, key: &str) -> &'a Value {
    v["top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("no `{key}` in {v}"))
}

#[tokio::test]
async fn usage_top_n_and_timeline_from_one_instance() {
    let mock = mock();
    let gw = Gateway::start_raw("", &config(&mock.url(), ""));
    for _ in 0..3 {
        assert_eq!(ask(&gw, KEY, "chat", "").await, 200);
    }
    assert_eq!(ask(&gw, KEY, "embed", "").await, 200);
    assert_eq!(ask(&gw, KEY_B, "chat", "").await, 200);
    assert_eq!(ask(&gw, KEY_B, "chat", "status=500").await, 500);
    gw.wait_log_lines(6).await;

    let v = gw
        .admin_json("/admin/usage?group_by=consumer&top=1&step=1m")
        .await;
    assert_eq!(v["source"], "local");
    assert_eq!(v["top"].as_array().unwrap().len(), 1);
    let a = by_key(&v, "team-a");
    assert_eq!(a["requests"], 4);
    assert_eq!(a["input_tokens"], 40);
    assert_eq!(a["output_tokens"], 20, "4 completions of 5 tokens");
    assert_eq!(a["errors"], 0);
    assert!(!v["timeline"].as_array().unwrap().is_empty());
    let first = &v["timeline"][0]["values"];
    assert!(
        first.get("team-b").is_none(),
        "the timeline keeps only the top N"
    );

    let v = gw.admin_json("/admin/usage?group_by=project").await;
    assert_eq!(by_key(&v, "search")["requests"], 4);
    let ads = by_key(&v, "ads");
    assert_eq!(ads["requests"], 2);
    assert_eq!(ads["errors"], 1);
    let v = gw.admin_json("/admin/usage?group_by=model").await;
    assert_eq!(by_key(&v, "chat")["requests"], 5);
    // 4 successful chats cost 10 + 2 x 5 = 20 µ$ each.
    assert!((by_key(&v, "chat")["cost_usd"].as_f64().unwrap() - 0.00008).abs() < 1e-12);

    // Consumers' tenant tags group too; team-b has none (its group is the empty name).
    let v = gw.admin_json("/admin/usage?group_by=tenant").await;
    assert_eq!(by_key(&v, "acme")["requests"], 4);
    assert_eq!(by_key(&v, "")["requests"], 2);
    // And by key: a config key is `config:<consumer>:<index>`.
    let v = gw.admin_json("/admin/usage?group_by=key").await;
    assert_eq!(by_key(&v, "config:team-a:0")["requests"], 4);
    assert_eq!(by_key(&v, "config:team-b:0")["requests"], 2);

    for bad in ["group_by=region", "top=0", "step=soon", "from=yesterday"] {
        let r = client()
            .get(format!("{}/admin/usage?{bad}", gw.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn usage_is_shared_by_two_instances_through_redis() {
    let redis = RedisServer::start();
    let mock = mock();
    let section = format!(
        "[redis]\nurl = \"{}\"\nsync_interval_ms = 100\n",
        redis.url()
    );
    let a = Gateway::start_raw("", &config(&mock.url(), &section));
    let b = Gateway::start_raw("", &config(&mock.url(), &section));
    // No consumer is limited here: the sync must still reach Redis (it once sent an empty
    // pipeline, which never answers).
    for gw in [&a, &b] {
        gw.wait_metric("tollgate_ratelimit_store_up", &[("store", "redis")], 1.0)
            .await;
    }
    for _ in 0..2 {
        assert_eq!(ask(&a, KEY, "chat", "").await, 200);
    }
    for _ in 0..3 {
        assert_eq!(ask(&b, KEY_B, "chat", "").await, 200);
    }
    for gw in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = gw.admin_json("/admin/usage?group_by=consumer").await;
            let req = |k: &str| {
                v["top"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["key"] == k)
                    .map(|e| e["requests"].as_u64().unwrap())
            };
            if req("team-a") == Some(2) && req("team-b") == Some(3) {
                assert_eq!(v["source"], "redis");
                assert_eq!(by_key(&v, "team-b")["output_tokens"], 15);
                break;
            }
            assert!(Instant::now() < deadline, "instances never agreed: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn a_full_bucket_adds_the_rest_to_other_and_a_month_is_asked_by_the_hour() {
    let mock = mock();
    let gw = Gateway::start_raw(
        "",
        &config(&mock.url(), "[usage]\nminute_rows = 1\nhour_rows = 5"),
    );
    assert_eq!(ask(&gw, KEY, "chat", "").await, 200);
    assert_eq!(ask(&gw, KEY_B, "chat", "").await, 200);
    gw.wait_log_lines(2).await;
    // The minute tier holds one row a minute; team-b's request went to (other) there (unless
    // the two fell in two minutes), while the hour tier holds both.
    let v = gw
        .admin_json("/admin/usage?group_by=consumer&step=1m")
        .await;
    assert_eq!(v["tier"], "minute", "{v}");
    let minute: Vec<&str> = v["top"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["key"].as_str())
        .collect();
    let overflowed = metric(
        &gw.metrics().await,
        "tollgate_usage_overflow_total",
        &[("tier", "minute")],
    );
    // (top lists (other) only if it ranks: ask for every group)
    let v = gw
        .admin_json("/admin/usage?group_by=consumer&step=1m&top=10")
        .await;
    let minutes = v["timeline"].as_array().unwrap().len();
    if minutes == 1 {
        assert_eq!(overflowed, 1.0, "{v}");
        assert!(by_key(&v, "(other)")["requests"] == 1, "{v}");
    } else {
        assert_eq!((minutes, overflowed), (2, 0.0), "{v}");
    }
    assert!(minute.len() <= 2, "{minute:?}");
    let since = "from=".to_string() + &(now_secs() - 20 * 86_400).to_string();
    let v = gw
        .admin_json(&format!("/admin/usage?group_by=consumer&step=1h&{since}"))
        .await;
    assert_eq!(v["tier"], "hour", "{v}");
    assert_eq!(by_key(&v, "team-a")["requests"], 1);
    assert_eq!(by_key(&v, "team-b")["requests"], 1);
    // A month by the minute is not kept: a clear 400.
    let r = client()
        .get(format!(
            "{}/admin/usage?group_by=consumer&step=5m&{since}",
            gw.admin
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("minutes for a day"));
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
