//! Virtual models: alias rewrite, weighted split, priority failover (small and 1 MiB bodies).

use crate::harness::*;
use serde_json::Value;

#[tokio::test]
async fn alias_is_rewritten_and_credentials_swapped() {
    let mock = mock();
    let cfg = format!(
        "{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"m\", model = \"gpt-upstream-name\" }}]\n",
        mock_provider("m", &mock.url(), "")
    );
    let gw = Gateway::start(&cfg);
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-api-key", KEY)
        .header("cookie", "session=1")
        .json(&chat_body("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-request-id").is_some());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["model"], "gpt-upstream-name");

    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.json().unwrap()["model"], "gpt-upstream-name");
    assert_eq!(r.json().unwrap()["messages"][0]["content"], "Say hello");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    assert_eq!(
        r.header("x-api-key"),
        None,
        "the client key never goes upstream"
    );
    assert_eq!(r.header("cookie"), None);
    assert_eq!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
}

#[tokio::test]
async fn weighted_split_follows_weights() {
    let mock = mock();
    let cfg = format!(
        "{}\n[[models]]\nname = \"chat\"\nstrategy = \"weighted\"\ntargets = [\
         {{ provider = \"m\", model = \"heavy\", weight = 3 }}, {{ provider = \"m\", model = \"light\", weight = 1 }}]\n",
        mock_provider("m", &mock.url(), "")
    );
    let gw = Gateway::start(&cfg);
    let n = 400;
    let mut heavy = 0;
    for _ in 0..n {
        let body: Value = post(&gw, "/v1/chat/completions", &chat_body("chat", false))
            .await
            .json()
            .await
            .unwrap();
        heavy += usize::from(body["model"] == "heavy");
    }
    let share = heavy as f64 / n as f64;
    // 3:1 → 0.75; with n = 400 the standard deviation is about 0.022.
    assert!((0.66..=0.84).contains(&share), "heavy share {share}");
}

/// Priority failover from a failing primary to the backup, for both I/O paths.
async fn failover_case(primary_script: Option<&str>, body_bytes: usize, stream: bool) {
    let mock = mock();
    let primary = match primary_script {
        Some(script) => mock_provider("primary", &mock.url(), script),
        // Nothing listens on a fresh free port: connection refused.
        None => mock_provider("primary", &format!("http://127.0.0.1:{}", free_port()), ""),
    };
    let cfg = format!(
        "{primary}\n{}\n[[models]]\nname = \"chat\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"primary\", model = \"p-model\" }}, {{ provider = \"backup\", model = \"b-model\" }}]\n",
        mock_provider("backup", &mock.url(), "")
    );
    let gw = Gateway::start(&cfg);
    let body = big_chat_body("chat", stream, body_bytes);
    let sent_len = serde_json::to_vec(&body).unwrap().len();
    let resp = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200, "{}", gw.stderr());
    let text = resp.text().await.unwrap();
    if stream {
        assert!(
            sse_data(&text).last().is_some_and(|d| d == "[DONE]"),
            "{text}"
        );
    } else {
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["model"],
            "b-model"
        );
    }

    let seen = mock.requests();
    let backup = seen.last().expect("backup was called");
    let backup_body = backup.json().expect("backup got the whole body");
    assert_eq!(backup_body["model"], "b-model");
    assert_eq!(backup_body["messages"], body["messages"]);
    assert!(
        backup.body.len() >= sent_len - 10,
        "{} vs {sent_len}",
        backup.body.len()
    );
    if primary_script.is_some() {
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].json().unwrap()["model"], "p-model");
    }

    let line = &gw.wait_log_lines(1).await[0];
    assert_eq!(line["attempts"], 2);
    assert_eq!(line["provider"], "backup");
    assert_eq!(line["upstream_model"], "b-model");
    assert_eq!(line["outcome"], "success");
    let first = line["attempt_log"][0]["outcome"]
        .as_str()
        .unwrap()
        .to_string();
    let expected = if primary_script.is_some() {
        "status_503"
    } else {
        "connect_refused"
    };
    assert_eq!(first, expected);
    assert_eq!(line["attempt_log"][1]["outcome"], "ok");
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_upstream_attempts_total",
            &[("provider", "primary"), ("outcome", expected)]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "tollgate_upstream_attempts_total",
            &[("provider", "backup"), ("outcome", "ok")]
        ),
        1.0
    );
}

#[tokio::test]
async fn failover_on_refused_small_body() {
    failover_case(None, 200, false).await;
}

#[tokio::test]
async fn failover_on_refused_1mib_body() {
    failover_case(None, 1024 * 1024, true).await;
}

#[tokio::test]
async fn failover_on_503_small_body() {
    failover_case(Some("status=503"), 200, true).await;
}

#[tokio::test]
async fn failover_on_503_1mib_body() {
    failover_case(Some("status=503"), 1024 * 1024, false).await;
}

#[tokio::test]
async fn last_candidate_status_is_passed_through_and_400_is_never_retried() {
    let mock = mock();
    let cfg = format!(
        "{}\n{}\n[[models]]\nname = \"chat\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"bad\", model = \"a\" }}, {{ provider = \"worse\", model = \"b\" }}]\n\
         [[models]]\nname = \"invalid\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"reject\", model = \"a\" }}, {{ provider = \"bad\", model = \"b\" }}]\n{}",
        mock_provider("bad", &mock.url(), "status=503"),
        mock_provider("worse", &mock.url(), "status=502"),
        mock_provider("reject", &mock.url(), "status=400"),
    );
    let gw = Gateway::start(&cfg);
    let resp = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    assert_eq!(resp.status(), 502);
    assert!(
        resp.headers().get("x-tollgate-error").is_none(),
        "the provider's own error"
    );
    let resp = post(&gw, "/v1/chat/completions", &chat_body("invalid", false)).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(mock.requests().len(), 3);
    let lines = gw.wait_log_lines(2).await;
    assert_eq!(lines[0]["attempts"], 2);
    assert_eq!(lines[0]["outcome"], "upstream_status");
    assert_eq!(lines[1]["attempts"], 1);
}

#[tokio::test]
async fn all_candidates_unreachable_is_502_in_openai_shape() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let cfg = format!(
        "{}\n[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"dead\", model = \"a\" }}]\n",
        mock_provider("dead", &dead, "")
    );
    let gw = Gateway::start(&cfg);
    let resp = post(&gw, "/v1/chat/completions", &chat_body("chat", false)).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-tollgate-error"], "true");
    assert_eq!(resp.headers()["x-should-retry"], "true");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_connect_error");
    let line = &gw.wait_log_lines(1).await[0];
    assert_eq!(line["outcome"], "upstream_connect_error");
}

#[tokio::test]
async fn least_cost_sends_each_request_to_its_cheapest_target_and_charges_that_price() {
    let mock = mock();
    // `reader` is cheap to read and dear to write, `writer` the other way round; `broken`
    // is the cheapest of all but answers 503, so its request fails over to the next.
    let cfg = format!(
        "{}\n{}\n[[models]]\nname = \"chat\"\nstrategy = \"least_cost\"\ntargets = [\
         {{ provider = \"m\", model = \"reader\", price = {{ input_per_mtok = 0.1, output_per_mtok = 30.0 }} }}, \
         {{ provider = \"m\", model = \"writer\", price = {{ input_per_mtok = 30.0, output_per_mtok = 0.1 }} }}]\n\
         [[models]]\nname = \"cheap\"\nstrategy = \"least_cost\"\n\
         price = {{ input_per_mtok = 1.0, output_per_mtok = 1.0 }}\ntargets = [\
         {{ provider = \"m\", model = \"middle\" }}, \
         {{ provider = \"down\", model = \"broken\", price = {{ input_per_mtok = 0.01, output_per_mtok = 0.01 }} }}]\n",
        mock_provider("m", &mock.url(), ""),
        mock_provider("down", &mock.url(), "status=503")
    );
    let gw = Gateway::start(&cfg);
    let long_prompt = serde_json::json!({
        "model": "chat", "max_tokens": 4,
        "messages": [{"role": "user", "content": "lorem ipsum ".repeat(2000)}],
    });
    let long_answer = serde_json::json!({
        "model": "chat", "max_tokens": 4000,
        "messages": [{"role": "user", "content": "hi"}],
    });
    for (body, want) in [(&long_prompt, "reader"), (&long_answer, "writer")] {
        let r: Value = post(&gw, "/v1/chat/completions", body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(r["model"], want);
    }
    let r = post(&gw, "/v1/chat/completions", &chat_body("cheap", false)).await;
    assert_eq!(r.status(), 200);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["model"], "middle", "the cheapest failed over to the next");

    let lines = gw.wait_log_lines(3).await;
    let cost = |l: &Value| l["cost_usd"].as_f64().unwrap();
    let tokens = |l: &Value, k: &str| l[k].as_f64().unwrap();
    // Each is charged at the price of the target that answered.
    let reader = &lines[0];
    let want =
        (tokens(reader, "input_tokens") * 0.1 + tokens(reader, "output_tokens") * 30.0) / 1e6;
    assert!((cost(reader) - want).abs() < 2e-6, "{reader}");
    let writer = &lines[1];
    let want =
        (tokens(writer, "input_tokens") * 30.0 + tokens(writer, "output_tokens") * 0.1) / 1e6;
    assert!((cost(writer) - want).abs() < 2e-6, "{writer}");
    let middle = &lines[2];
    assert_eq!(middle["attempts"], 2, "{middle}");
    let want = (tokens(middle, "input_tokens") + tokens(middle, "output_tokens")) / 1e6;
    assert!((cost(middle) - want).abs() < 2e-6, "{middle}");
}
