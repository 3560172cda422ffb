//! The mock's Gemini API: `POST …/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, with Gemini's response, stream and error shapes.
//!
//! The model name in the path may carry a script after `@`, as a body's `model` does for the
//! other dialects. A request offering function declarations, whose last turn is the user's
//! own words (not a function response), gets a call of the first function.

use super::http1::{self, RawRequest};
use super::openai::{full_text, token};
use super::script::Script;
use super::stream::{write_stream, Ending};
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// A Gemini call: the model in the path, and whether it streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub model: String,
    pub stream: bool,
}

/// The call a path asks for (`/v1beta/models/gemini-2.0-flash:generateContent`).
pub fn route(path: &str) -> Option<Call> {
    let (_, rest) = path.rsplit_once("/models/")?;
    let (model, method) = rest.rsplit_once(':')?;
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    (!model.is_empty() && !model.contains('/')).then(|| Call {
        model: model.to_string(),
        stream,
    })
}

/// The function call the mock makes, if the request wants one: name and arguments.
pub fn wanted_call(body: &Value) -> Option<(String, Value)> {
    let f = body["tools"][0]["functionDeclarations"].get(0)?;
    if body["toolConfig"]["functionCallingConfig"]["mode"] == "NONE" {
        return None;
    }
    let last = body["contents"].as_array()?.last()?;
    let parts = last["parts"].as_array()?;
    if last["role"] != "user" || parts.iter().any(|p| p.get("functionResponse").is_some()) {
        return None;
    }
    let schema = f
        .get("parametersJsonSchema")
        .or_else(|| f.get("parameters"))
        .unwrap_or(&Value::Null);
    Some((
        f["name"].as_str().unwrap_or("tool").to_string(),
        super::arguments_for(schema),
    ))
}

pub fn usage(prompt: u64, output: u64) -> Value {
    json!({"promptTokenCount": prompt, "candidatesTokenCount": output,
           "totalTokenCount": prompt + output})
}

fn response(id: &str, model: &str, parts: Value, finish: Option<&str>, usage: Value) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = f.into();
    }
    json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model,
           "responseId": id})
}

/// A whole answer: `tokens` of text, or the function call. JSON output (a
/// `responseMimeType` of `application/json`) is an object naming the mock.
pub fn answer(
    id: &str,
    model: &str,
    tokens: u64,
    call: Option<&(String, Value)>,
    json_out: bool,
    prompt: u64,
) -> Value {
    match call {
        Some((name, args)) => response(
            id,
            model,
            json!([{"functionCall": {"name": name, "args": args}}]),
            Some("STOP"),
            usage(prompt, 1),
        ),
        None if json_out => response(
            id,
            model,
            json!([{"text": super::openai::json_text(tokens)}]),
            Some("STOP"),
            usage(prompt, tokens),
        ),
        None => response(
            id,
            model,
            json!([{"text": full_text(tokens)}]),
            Some("STOP"),
            usage(prompt, tokens),
        ),
    }
}

/// The stream: one response per token (running usage), the last with `finishReason`.
pub fn stream_events(
    id: &str,
    model: &str,
    tokens: u64,
    call: Option<&(String, Value)>,
    prompt: u64,
) -> Vec<Value> {
    if let Some((name, args)) = call {
        return vec![response(
            id,
            model,
            json!([{"functionCall": {"name": name, "args": args}}]),
            Some("STOP"),
            usage(prompt, 1),
        )];
    }
    if tokens == 0 {
        return vec![response(
            id,
            model,
            json!([{"text": ""}]),
            Some("STOP"),
            usage(prompt, 0),
        )];
    }
    (0..tokens)
        .map(|i| {
            let last = i + 1 == tokens;
            response(
                id,
                model,
                json!([{"text": token(i)}]),
                last.then_some("STOP"),
                usage(prompt, i + 1),
            )
        })
        .collect()
}

/// Gemini's 400 for a prompt over the context window.
pub fn context_overflow() -> Value {
    json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
        "message": "The input token count (9000) exceeds the maximum number of tokens allowed (4096)."}})
}

pub fn error(status: u16) -> Value {
    let (kind, message) = match status {
        400 => (
            "INVALID_ARGUMENT",
            "Request contains an invalid argument (mock).",
        ),
        401 => ("UNAUTHENTICATED", "API key not valid (mock)."),
        403 => ("PERMISSION_DENIED", "Permission denied (mock)."),
        404 => ("NOT_FOUND", "models/x is not found (mock)."),
        429 => ("RESOURCE_EXHAUSTED", "Resource has been exhausted (mock)."),
        503 => ("UNAVAILABLE", "The model is overloaded (mock)."),
        _ => ("INTERNAL", "An internal error has occurred (mock)."),
    };
    json!({"error": {"code": status, "message": message, "status": kind}})
}

/// Answer a Gemini call: a whole response, or an `alt=sse` stream.
pub(super) async fn serve(
    stream: &mut TcpStream,
    req: &RawRequest,
    script: &Script,
    call: &Call,
    sse_query: bool,
) -> std::io::Result<bool> {
    let bad = |message: String| serde_json::json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}});
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            let body = bad(format!("Invalid JSON payload received: {e}"));
            return http1::write_json(stream, 400, &[], &body, req.keep_alive)
                .await
                .map(|_| true);
        }
    };
    if call.stream && !sse_query {
        let body = bad("the mock streams only with alt=sse".into());
        return http1::write_json(stream, 400, &[], &body, req.keep_alive)
            .await
            .map(|_| true);
    }
    let config = &body["generationConfig"];
    let tokens = config["maxOutputTokens"]
        .as_u64()
        .map_or(script.tokens, |m| m.min(script.tokens));
    let prompt = script
        .prompt_tokens
        .unwrap_or_else(|| (req.body.len() as u64 / 4).max(1));
    let wanted = wanted_call(&body);
    let json_out = config["responseMimeType"] == "application/json";
    let model = call.model.split('@').next().unwrap_or("gemini-mock");
    let id = format!("gemini-mock-{prompt}-{tokens}");
    tokio::time::sleep(script.ttft).await;
    // A scripted reply (`x-mock-reply`): reasoning as thought parts, text, a function call.
    if let Some(reply) = req
        .header("x-mock-reply")
        .and_then(|h| super::reply::Reply::parse(h).ok())
    {
        let responses = reply.gemini_responses(&id, model, prompt, call.stream);
        if !call.stream {
            let v = responses.into_iter().next().unwrap_or(Value::Null);
            return http1::write_json(stream, 200, &[], &v, req.keep_alive)
                .await
                .map(|_| true);
        }
        let events: Vec<(Option<&str>, Value)> = responses.into_iter().map(|v| (None, v)).collect();
        let first_error = (None, error(503));
        let cut = write_stream(stream, script, &events, first_error, Ending::Plain).await?;
        return Ok(req.keep_alive && !cut);
    }
    if !call.stream {
        let v = answer(&id, model, tokens, wanted.as_ref(), json_out, prompt);
        return http1::write_json(stream, 200, &[], &v, req.keep_alive)
            .await
            .map(|_| true);
    }
    let events: Vec<(Option<&str>, Value)> =
        stream_events(&id, model, tokens, wanted.as_ref(), prompt)
            .into_iter()
            .map(|v| (None, v))
            .collect();
    let first_error = (None, error(503));
    let cut = write_stream(stream, script, &events, first_error, Ending::Plain).await?;
    Ok(req.keep_alive && !cut)
}
