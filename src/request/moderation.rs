//! The guardrails' moderation hook: one `POST` to a moderation service per checked text, over
//! the gateway's pooled connector, bounded by the hook's timeout, and the verdict it comes
//! to under the hook's `action` and `on_error`.
//!
//! `kind = "openai_moderation"` posts `{"model", "input"}` to `{base}/moderations` and reads
//! `results[*].flagged`; `kind = "http"` posts `{"input"}` to `{base}{path}` and reads a
//! top-level `flagged`.

use crate::guard::{Action, BlockReason, Blocked, Flow, Moderation, ModerationKind, OnError};
use crate::runtime::Runtime;
use pingora::connectors::http::Connector;
use serde_json::{json, Value};
use std::sync::Arc;

/// What the service said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allowed,
    Flagged,
    /// No usable answer in time (a connect error, a non-2xx, a timeout, unreadable JSON).
    Failed,
}

/// The most of a moderation answer that is read.
const MAX_ANSWER: usize = 1024 * 1024;

/// Ask the service about `text`.
pub async fn ask(
    runtime: &Runtime,
    connector: &Connector,
    hook: &Moderation,
    text: &str,
) -> Answer {
    match tokio::time::timeout(hook.timeout, exchange(runtime, connector, hook, text)).await {
        Ok(Some(v)) => read(hook.kind, &v),
        Ok(None) | Err(_) => Answer::Failed,
    }
}

async fn exchange(
    runtime: &Runtime,
    connector: &Connector,
    hook: &Moderation,
    text: &str,
) -> Option<Value> {
    let provider = runtime
        .config
        .providers
        .iter()
        .find(|p| p.name == hook.provider)?;
    let body = match hook.kind {
        ModerationKind::OpenAiModeration => match &hook.model {
            Some(m) => json!({"model": m, "input": text}),
            None => json!({"input": text}),
        },
        ModerationKind::Http => json!({"input": text}),
    };
    let body = bytes::Bytes::from(body.to_string());
    let (peer, req) = runtime
        .upstreams
        .side_request(provider, &hook.path, body.len())
        .ok()?;
    let (mut s, _) = connector.get_http_session(&*peer).await.ok()?;
    s.write_request_header(Box::new(req)).await.ok()?;
    s.write_request_body(body, true).await.ok()?;
    s.finish_request_body().await.ok()?;
    s.read_response_header().await.ok()?;
    let status = s.response_header().map_or(0, |h| h.status.as_u16());
    let mut answer = Vec::new();
    while let Some(chunk) = s.read_response_body().await.ok()? {
        if answer.len() + chunk.len() > MAX_ANSWER {
            return None;
        }
        answer.extend_from_slice(&chunk);
    }
    if !(200..300).contains(&status) {
        return None;
    }
    connector
        .release_http_session(s, &*peer, Some(std::time::Duration::from_secs(60)))
        .await;
    serde_json::from_slice(&answer).ok()
}

fn read(kind: ModerationKind, v: &Value) -> Answer {
    let flagged = match kind {
        ModerationKind::OpenAiModeration => v["results"]
            .as_array()
            .map(|r| r.iter().any(|x| x["flagged"] == true)),
        ModerationKind::Http => v["flagged"].as_bool(),
    };
    match flagged {
        Some(true) => Answer::Flagged,
        Some(false) => Answer::Allowed,
        None => Answer::Failed,
    }
}

/// What an answer means under the hook's settings: `Err` refuses the text. Counts the flag.
pub fn judge(hook: &Arc<Moderation>, answer: Answer, flow: Flow) -> Result<(), Blocked> {
    let blocked = |reason| Blocked {
        policy: Arc::clone(&hook.policy),
        rule: Arc::clone(&hook.name),
        reason,
    };
    match answer {
        Answer::Allowed => Ok(()),
        Answer::Flagged => {
            crate::guard::scan::count_action(&hook.policy, &hook.name, hook.action, flow);
            match hook.action {
                Action::Block => Err(blocked(BlockReason::Flagged)),
                Action::Log | Action::Mask => Ok(()),
            }
        }
        Answer::Failed => match hook.on_error {
            OnError::Allow => Ok(()),
            OnError::Block => Err(blocked(BlockReason::ModerationUnavailable)),
        },
    }
}
