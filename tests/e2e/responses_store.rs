//! The Responses API's stored state on translated routes: two gateways on one Redis continue
//! each other's conversations (`previous_response_id`, `item_reference`), what the backend
//! then reads is the whole history, and another consumer can neither read nor continue them.

use crate::harness::*;
use crate::redis_server::RedisServer;
use serde_json::{json, Value};

fn start(mock: &MockServer, redis: &RedisServer) -> Gateway {
    let rest = format!(
        "{}[[models]]\nname = \"chat\"\ntargets = [{{ provider = \"openai-chat\", model = \"gpt-up\" }}]\n{}\n\
         [redis]\nurl = \"{}\"\n",
        provider_toml("openai-chat", "openai", &format!("{}/v1", mock.url()), ""),
        consumers(),
        redis.url()
    );
    Gateway::start_raw(
        "grace_period_seconds = 0\ngraceful_shutdown_timeout_seconds = 1",
        &rest,
    )
}

async fn create(gw: &Gateway, key: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(gw.url("/v1/responses"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn get(gw: &Gateway, key: &str, id: &str) -> u16 {
    let r = client()
        .get(gw.url(&format!("/v1/responses/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// The chat messages the backend read last.
fn last_messages(mock: &MockServer) -> Vec<Value> {
    let sent = mock.requests();
    let body = sent.last().and_then(|r| r.json()).unwrap();
    body["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn two_instances_continue_each_others_conversations_and_keep_them_apart() {
    let mock = mock();
    let redis = RedisServer::start();
    let (a, b) = (start(&mock, &redis), start(&mock, &redis));

    let (status, first) = create(
        &a,
        KEY,
        json!({"model": "chat", "input": "My name is Ada."}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    let answer = first["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();

    // On the other instance, by previous_response_id: the backend reads the whole history.
    let (status, second) = create(
        &b,
        KEY,
        json!({"model": "chat", "previous_response_id": id, "input": "What is my name?"}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let read = last_messages(&mock);
    assert_eq!(read.len(), 3, "{read:?}");
    assert_eq!(read[0]["content"], "My name is Ada.");
    assert_eq!(read[1], json!({"role": "assistant", "content": answer}));
    assert_eq!(read[2]["content"], "What is my name?");

    // By item reference (the Vercel AI SDK's way), again on the other instance.
    let item = first["output"][0]["id"].as_str().unwrap();
    let (status, third) = create(
        &b,
        KEY,
        json!({"model": "chat", "input": [
            {"role": "user", "content": "My name is Ada."},
            {"type": "item_reference", "id": item},
            {"role": "user", "content": "Spell it."}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(last_messages(&mock)[1]["content"], answer.as_str());

    // A chain: the second turn's id carries the first turn too.
    let (status, _) = create(
        &a,
        KEY,
        json!({"model": "chat", "previous_response_id": second["id"], "input": "Thanks."}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(last_messages(&mock).len(), 5);

    // Another consumer can neither read nor continue it, on either instance.
    assert_eq!(get(&b, KEY, &id).await, 200);
    for gw in [&a, &b] {
        assert_eq!(get(gw, LIMITED_KEY, &id).await, 404);
        let (status, refused) = create(
            gw,
            LIMITED_KEY,
            json!({"model": "chat", "previous_response_id": id, "input": "Who am I?"}),
        )
        .await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(refused["error"]["param"], "previous_response_id");
        let r = client()
            .delete(gw.url(&format!("/v1/responses/{id}")))
            .bearer_auth(LIMITED_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }

    // `store: false` keeps nothing.
    let (_, unstored) = create(
        &a,
        KEY,
        json!({"model": "chat", "input": "hi", "store": false}),
    )
    .await;
    assert_eq!(get(&a, KEY, unstored["id"].as_str().unwrap()).await, 404);

    // Deleted on one instance, gone on both.
    let r = client()
        .delete(a.url(&format!("/v1/responses/{id}")))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["deleted"], true);
    assert_eq!(get(&b, KEY, &id).await, 404);
}
