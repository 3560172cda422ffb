//! The mock's own Responses API (`POST /v1/responses`), for providers with `responses = true`.
//!
//! The answer is made the way the mock makes a chat answer (same text, tool call and usage)
//! and written in the Responses format by the gateway's own Responses writer
//! ([`crate::wire::translate::responses`]), which the official SDK tests check against the SDK's
//! strict stream accumulator. A JSON `text.format` gets `{"answer": <text>}`.

use super::http1::{self, ChunkedWriter, RawRequest};
use super::openai;
use super::script::Script;
use super::ToolCall;
use crate::wire::translate::responses::stream::ChunksToResponses;
use crate::wire::translate::responses::{
    request::responses_to_chat, response::completion_to_response,
};
use serde_json::{json, Value};
use tokio::net::TcpStream;

pub(super) async fn serve(
    stream: &mut TcpStream,
    req: &RawRequest,
    script: &Script,
    id: &str,
) -> std::io::Result<bool> {
    let mut body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    // A backend serving Responses keeps state; the mock accepts the fields and keeps none.
    if let Some(b) = body.as_object_mut() {
        for stateful in [
            "store",
            "previous_response_id",
            "conversation",
            "background",
        ] {
            b.remove(stateful);
        }
    }
    let model = body["model"].as_str().unwrap_or("mock").to_string();
    let chat = match body.as_object().map(|b| responses_to_chat(b, &model)) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            let v = json!({"error": {"message": e.to_string(), "type": "invalid_request_error", "param": null, "code": null}});
            return http1::write_json(stream, 400, &[], &v, req.keep_alive)
                .await
                .map(|_| true);
        }
        None => {
            let v = json!({"error": {"message": "the body must be a JSON object", "type": "invalid_request_error", "param": null, "code": null}});
            return http1::write_json(stream, 400, &[], &v, req.keep_alive)
                .await
                .map(|_| true);
        }
    };
    let tokens = chat["max_completion_tokens"]
        .as_u64()
        .map_or(script.tokens, |m| m.min(script.tokens));
    let prompt = script
        .prompt_tokens
        .unwrap_or_else(|| (req.body.len() as u64 / 4).max(1));
    let tool = ToolCall::wanted(&chat, false);
    let json_text = openai::wants_json(&chat);
    tokio::time::sleep(script.ttft).await;
    let usage = openai::usage(prompt, tool.as_ref().map_or(tokens, |_| 1));
    if body["stream"].as_bool() != Some(true) {
        let mut completion =
            openai::chat_completion(id, &model, tokens, tool.as_ref(), Some(usage));
        if json_text && tool.is_none() {
            openai::answer_as_json(&mut completion, tokens);
        }
        let v = completion_to_response(&completion);
        return http1::write_json(stream, 200, &[], &v, req.keep_alive)
            .await
            .map(|_| true);
    }
    let mut chunks = openai::stream(
        id,
        &model,
        true,
        0..tokens,
        tool.as_ref(),
        true,
        Some(usage),
    );
    if json_text && tool.is_none() {
        openai::stream_as_json(&mut chunks, tokens);
    }
    let mut writer = ChunksToResponses::new();
    let mut w = ChunkedWriter::start(stream, script.split).await?;
    for (sent, c) in chunks.iter().enumerate() {
        if sent > 0 && !script.itl.is_zero() {
            tokio::time::sleep(script.itl).await;
        }
        let out = writer.feed(format!("data: {c}\n\n").as_bytes());
        if !out.is_empty() {
            w.raw(&out).await?;
        }
    }
    let mut out = writer.feed(b"data: [DONE]\n\n");
    out.extend(writer.finish());
    if !out.is_empty() {
        w.raw(&out).await?;
    }
    w.end().await?;
    Ok(req.keep_alive)
}
