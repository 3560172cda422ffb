//! Screening: the guardrails ([`crate::guard`]) applied to the exchange. A request is
//! screened at admission, before any upstream or limit sees it (masked text is what goes
//! upstream, what the prompt estimate counts and what payload capture keeps); an answer is
//! screened on its way to the client — a stream event by event ([`StreamGuard`]), a JSON
//! body whole, before its header is sent, so a `block` can still be a 400 (the answer's
//! guard is [`crate::guard::answer::ResponseGuard`]).

use crate::error::GatewayError;
use crate::guard::answer::note_fired;
use crate::guard::{text, Blocked, Flow, Verdict};
use crate::request::ctx::RequestCtx;
use crate::request::moderation;
use crate::runtime::Runtime;
use crate::wire::protocol::{self, ParsedRequest};
use bytes::Bytes;
use pingora::connectors::http::Connector;

/// Screen a request under the policies admission selected: the request to send (masked and
/// parsed again when a mask changed it), or the refusal.
pub async fn screen_request(
    ctx: &mut RequestCtx,
    runtime: &Runtime,
    connector: &Connector,
    request: ParsedRequest,
) -> Result<ParsedRequest, GatewayError> {
    let Some(selected) = ctx.admission.guard.as_ref() else {
        return Ok(request);
    };
    if selected.request.is_empty() && selected.request_moderation.is_empty() {
        return Ok(request);
    }
    let selected = selected.clone();
    let mut body: serde_json::Value = serde_json::from_slice(&request.body)
        .map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let mut verdict = Verdict::default();
    let changed = text::scan_body(&selected.request, &mut body, &mut verdict);
    note_fired(&mut ctx.end.guardrails, &selected.request, &verdict);
    if let Some(rule) = verdict.blocked.and_then(|r| selected.request.rules.get(r)) {
        return Err(GatewayError::ContentBlocked(
            Blocked::of_rule(rule),
            Flow::Request,
        ));
    }
    if !selected.request_moderation.is_empty() {
        let input = text::joined(&mut body);
        for hook in &selected.request_moderation {
            let answer = moderation::ask(runtime, connector, hook, &input).await;
            if answer == moderation::Answer::Flagged {
                ctx.end
                    .guardrails
                    .push(format!("{}/{}", hook.policy, hook.name));
            }
            moderation::judge(hook, answer, Flow::Request)
                .map_err(|b| GatewayError::ContentBlocked(b, Flow::Request))?;
        }
    }
    if !changed {
        return Ok(request);
    }
    Ok(protocol::parse(
        request.operation,
        Bytes::from(body.to_string()),
    )?)
}

/// Moderate a whole answer's text (a JSON body) before it is sent.
pub async fn moderate_answer(
    ctx: &mut RequestCtx,
    runtime: &Runtime,
    connector: &Connector,
    body: &[u8],
) -> Result<(), GatewayError> {
    let Some(hooks) = ctx
        .admission
        .guard
        .as_ref()
        .map(|s| s.response_moderation.clone())
        .filter(|h| !h.is_empty())
    else {
        return Ok(());
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    let input = text::joined(&mut value);
    for hook in &hooks {
        let answer = moderation::ask(runtime, connector, hook, &input).await;
        if answer == moderation::Answer::Flagged {
            ctx.end
                .guardrails
                .push(format!("{}/{}", hook.policy, hook.name));
        }
        moderation::judge(hook, answer, Flow::Response)
            .map_err(|b| GatewayError::ContentBlocked(b, Flow::Response))?;
    }
    Ok(())
}
