//! Conversation state of the Responses API where the backend keeps none (a translated
//! route): what a request asks of the stored history (`previous_response_id`, `item_reference`
//! items), the request rewritten to carry that history itself, and what a finished turn
//! leaves behind. The store itself is [`crate::runtime::conversations`].

use super::super::JsonObject;
use serde_json::{json, Value};

/// One answered turn as it is kept: the whole input the model read (history included) and
/// the response object the client got.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    pub input: Vec<Value>,
    pub response: Value,
}

impl Turn {
    /// The conversation so far, in order: what the model read, then what it answered.
    pub fn items(&self) -> impl Iterator<Item = &Value> {
        self.input.iter().chain(output(&self.response))
    }
}

/// The output items of a response object.
pub fn output(response: &Value) -> impl Iterator<Item = &Value> {
    response["output"].as_array().into_iter().flatten()
}

/// What a request needs from the store.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub previous: Option<String>,
    pub references: Vec<String>,
}

impl Wanted {
    pub fn of(body: &JsonObject) -> Wanted {
        let previous = body
            .get("previous_response_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let references = body
            .get("input")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|i| i["type"] == "item_reference")
            .filter_map(|i| i["id"].as_str().map(str::to_string))
            .collect();
        Wanted {
            previous,
            references,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.previous.is_none() && self.references.is_empty()
    }
}

/// The request's own input as items (a string is one user message).
pub fn input_items(body: &JsonObject) -> Vec<Value> {
    match body.get("input") {
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user", "content": s})],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// The request carrying its history: the previous turn's items, then its own input with each
/// reference replaced by the item it names (`resolve`: `None` leaves the reference, which
/// translation then refuses by name). `previous_response_id` is gone afterwards.
pub fn expand(
    body: &mut JsonObject,
    previous: Option<&Turn>,
    resolve: impl Fn(&str) -> Option<Value>,
) {
    let mut input: Vec<Value> = previous.map_or_else(Vec::new, |t| t.items().cloned().collect());
    for item in input_items(body) {
        let referenced = (item["type"] == "item_reference")
            .then(|| item["id"].as_str().and_then(&resolve))
            .flatten();
        input.push(referenced.unwrap_or(item));
    }
    body.insert("input".into(), Value::Array(input));
    body.remove("previous_response_id");
}

/// Whether the client wants the answer kept (`store` defaults to true, as on OpenAI's API).
pub fn stores(body: &JsonObject) -> bool {
    body.get("store") != Some(&Value::Bool(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_request_is_expanded_with_its_history_and_references() {
        let turn = Turn {
            input: vec![json!({"type": "message", "role": "user", "content": "hi"})],
            response: json!({"id": "resp_1", "output": [
                {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]}
            ]}),
        };
        let mut body =
            obj(json!({"model": "m", "previous_response_id": "resp_1", "input": "again"}));
        assert_eq!(
            Wanted::of(&body),
            Wanted {
                previous: Some("resp_1".into()),
                references: vec![]
            }
        );
        expand(&mut body, Some(&turn), |_| None);
        let input = body["input"].as_array().unwrap();
        assert_eq!(input.len(), 3);
        assert_eq!(input[1]["id"], "msg_1");
        assert_eq!(input[2]["content"], "again");
        assert!(!body.contains_key("previous_response_id"));

        let mut body = obj(json!({"model": "m", "input": [
            {"type": "item_reference", "id": "msg_1"},
            {"type": "item_reference", "id": "unknown"},
            {"type": "message", "role": "user", "content": "more"}
        ]}));
        assert_eq!(Wanted::of(&body).references, ["msg_1", "unknown"]);
        let resolve = |id: &str| (id == "msg_1").then(|| turn.response["output"][0].clone());
        expand(&mut body, None, resolve);
        let input = body["input"].as_array().unwrap();
        assert_eq!(input[0]["role"], "assistant");
        assert_eq!(input[1]["type"], "item_reference", "unknown ones stay");
        assert!(stores(&body));
        body.insert("store".into(), false.into());
        assert!(!stores(&body));
    }
}
