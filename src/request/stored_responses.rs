//! The Responses API's stored state on translated routes, as one request meets it: the
//! history a request names (`previous_response_id`, `item_reference`) put into its input
//! before anything else reads it, the answered turn kept before its last bytes go out, and
//! `GET` / `DELETE /v1/responses/{id}`. The store is [`crate::runtime::conversations`]; what
//! is kept belongs to the consumer that made it.

use crate::error::GatewayError;
use crate::request::ctx::RequestCtx;
use crate::runtime::Runtime;
use crate::wire::protocol::{self, Operation, ParsedRequest};
use crate::wire::translate::responses::history::{self, Turn, Wanted};
use crate::wire::translate::JsonObject;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The request with the stored history it names in its input. What is not found here is left
/// as it was: a backend that serves Responses itself may know it, and translation refuses it
/// by name otherwise.
pub async fn with_history(
    runtime: &Runtime,
    owner: &str,
    request: ParsedRequest,
) -> Result<ParsedRequest, GatewayError> {
    // Most requests name no stored state: they are not parsed a second time.
    let names_state = |needle: &[u8]| memchr::memmem::find(&request.body, needle).is_some();
    if request.operation != Operation::Responses
        || !(names_state(b"previous_response_id") || names_state(b"item_reference"))
    {
        return Ok(request);
    }
    let Ok(mut body) = serde_json::from_slice::<JsonObject>(&request.body) else {
        return Ok(request);
    };
    let wanted = Wanted::of(&body);
    if wanted.is_empty() {
        return Ok(request);
    }
    let store = &runtime.conversations;
    let previous = match &wanted.previous {
        Some(id) => store.turn(id, owner).await,
        None => None,
    };
    let mut items = HashMap::new();
    for id in &wanted.references {
        if let Some(item) = store.item(id, owner).await {
            items.insert(id.clone(), item);
        }
    }
    if previous.is_none() && items.is_empty() {
        return Ok(request);
    }
    history::expand(&mut body, previous.as_deref(), |id| items.get(id).cloned());
    let body = Bytes::from(Value::Object(body).to_string());
    Ok(protocol::parse(Operation::Responses, body)?)
}

/// Keep the turn that just finished, if it is a translated Responses answer the client did
/// not ask to leave unstored.
pub async fn keep_turn(ctx: &RequestCtx) {
    let (Some(runtime), Some(request), Some(consumer)) = (
        ctx.runtime.as_ref(),
        ctx.admission.request.as_ref(),
        ctx.admission.consumer.as_ref(),
    ) else {
        return;
    };
    let response = ctx
        .response
        .as_ref()
        .and_then(|c| c.translator.as_ref())
        .and_then(|t| t.completed_response());
    let Some(response) = response.filter(|_| request.operation == Operation::Responses) else {
        return;
    };
    let Ok(body) = serde_json::from_slice::<JsonObject>(&request.body) else {
        return;
    };
    if !history::stores(&body) {
        return;
    }
    let turn = Turn {
        input: history::input_items(&body),
        response: response.clone(),
    };
    runtime.conversations.save(&consumer.name, turn).await;
}

/// `GET /v1/responses/{id}` (the stored response) or `DELETE` (forget it).
pub async fn answer(
    runtime: &Runtime,
    owner: &str,
    id: &str,
    delete: bool,
) -> Result<Bytes, GatewayError> {
    let store = &runtime.conversations;
    let not_found = || GatewayError::ResponseNotFound(id.to_string());
    if delete {
        if !store.delete(id, owner).await {
            return Err(not_found());
        }
        let body = json!({"id": id, "object": "response.deleted", "deleted": true});
        return Ok(Bytes::from(body.to_string()));
    }
    let turn = store.turn(id, owner).await.ok_or_else(not_found)?;
    Ok(Bytes::from(turn.response.to_string()))
}
