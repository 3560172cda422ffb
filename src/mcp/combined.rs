//! Remote servers' resources and prompts where the bridge answers itself: at `/mcp`, where
//! every server is combined, and on the legacy transport.
//!
//! Names are made unique the way tools are: a prompt is `{server}__{name}`, and a resource's URI
//! (and a template's) gets its server in front of the scheme, `{server}+{uri}` (so
//! `test://static-text` of `everything` is `everything+test://static-text`, still a URI). Reads,
//! `prompts/get` and `completion/complete` take the prefixed names and reach the right server
//! with the server's own. Lists gather every page of every remote (at most [`MAX_PAGES`]
//! each). Subscriptions and `logging/setLevel` need the server's own session with the client,
//! so they are served only where a remote is alone at its path.
//!
//! A consumer sees a server's prompts and resources when its `mcp_tools` grants the whole
//! server (`*` or `server/*`).

use super::catalog::PREFIX_SEPARATOR;
use super::remote;
use super::wire::{Code, RpcError};
use super::Caller;
use crate::config::mcp::McpServer;
use serde_json::{json, Value};
use std::sync::Arc;

/// Pages asked of one server for one list.
const MAX_PAGES: usize = 10;

/// Methods served here, and how each names what it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ListResources,
    ListTemplates,
    Read,
    ListPrompts,
    GetPrompt,
    Complete,
}

impl Method {
    pub fn of(name: &str) -> Option<Method> {
        Some(match name {
            "resources/list" => Method::ListResources,
            "resources/templates/list" => Method::ListTemplates,
            "resources/read" => Method::Read,
            "prompts/list" => Method::ListPrompts,
            "prompts/get" => Method::GetPrompt,
            "completion/complete" => Method::Complete,
            _ => return None,
        })
    }

    /// The list's field, and the field of each entry that carries its name.
    fn listed(self) -> Option<(&'static str, &'static str, Naming)> {
        match self {
            Method::ListResources => Some(("resources", "uri", Naming::Uri)),
            Method::ListTemplates => Some(("resourceTemplates", "uriTemplate", Naming::Uri)),
            Method::ListPrompts => Some(("prompts", "name", Naming::Name)),
            Method::Read | Method::GetPrompt | Method::Complete => None,
        }
    }

    fn wire_name(self) -> &'static str {
        match self {
            Method::ListResources => "resources/list",
            Method::ListTemplates => "resources/templates/list",
            Method::Read => "resources/read",
            Method::ListPrompts => "prompts/list",
            Method::GetPrompt => "prompts/get",
            Method::Complete => "completion/complete",
        }
    }
}

/// How a view names a server's resource or prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    Uri,
    Name,
}

/// The name `server`'s `own` one has in the combined view.
fn exposed(server: &str, own: &str, naming: Naming) -> String {
    match naming {
        Naming::Uri => format!("{server}+{own}"),
        Naming::Name => format!("{server}{PREFIX_SEPARATOR}{own}"),
    }
}

/// The server and its own name behind an exposed one.
fn split(exposed: &str, naming: Naming) -> Option<(&str, &str)> {
    match naming {
        Naming::Uri => exposed.split_once('+'),
        Naming::Name => exposed.split_once(PREFIX_SEPARATOR),
    }
}

/// Serve `method` over the view's remote servers.
pub async fn serve(caller: &Caller<'_>, method: Method, params: &Value) -> Result<Value, RpcError> {
    if let Some((field, key, naming)) = method.listed() {
        return Ok(list(caller, method, field, key, naming).await);
    }
    let (naming, pointer) = match method {
        Method::Read => (Naming::Uri, "/uri"),
        Method::GetPrompt => (Naming::Name, "/name"),
        Method::Complete if params.pointer("/ref/type") == Some(&json!("ref/resource")) => {
            (Naming::Uri, "/ref/uri")
        }
        Method::Complete => (Naming::Name, "/ref/name"),
        Method::ListResources | Method::ListTemplates | Method::ListPrompts => {
            return Err(RpcError::new(Code::Internal, "not a lookup"))
        }
    };
    let unknown = || RpcError::new(Code::InvalidParams, "Unknown prompt or resource");
    let name = params
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(unknown)?;
    let (server, own) = split(name, naming).ok_or_else(unknown)?;
    let server = visible(caller)
        .into_iter()
        .find(|s| s.name == server)
        .ok_or_else(unknown)?;
    let mut params = params.clone();
    if let Some(v) = params.pointer_mut(pointer) {
        *v = own.into();
    }
    let mut result = remote::ask(caller, server, method.wire_name(), params).await?;
    if method == Method::Read {
        for c in result
            .get_mut("contents")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(uri) = c.get("uri").and_then(Value::as_str) {
                c["uri"] = exposed(&server.name, uri, Naming::Uri).into();
            }
        }
    }
    Ok(result)
}

/// The remote servers of the view whose prompts and resources the consumer sees.
fn visible<'a>(caller: &Caller<'a>) -> Vec<&'a Arc<McpServer>> {
    caller
        .view
        .remotes()
        .filter(|s| caller.consumer.may_see_whole(&s.name))
        .collect()
}

async fn list(
    caller: &Caller<'_>,
    method: Method,
    field: &str,
    key: &str,
    naming: Naming,
) -> Value {
    let mut all = Vec::new();
    for server in visible(caller) {
        let mut cursor: Option<Value> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = match remote::ask(caller, server, method.wire_name(), params).await {
                Ok(p) => p,
                Err(e) => {
                    // A server without the feature (or down) is left out, as with tools.
                    log::debug!(
                        "mcp: `{}` left out of {}: {}",
                        server.name,
                        method.wire_name(),
                        e.message
                    );
                    break;
                }
            };
            for mut entry in page
                .get(field)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                if let Some(own) = entry.get(key).and_then(Value::as_str) {
                    entry[key] = exposed(&server.name, own, naming).into();
                    all.push(entry);
                }
            }
            cursor = page.get("nextCursor").filter(|c| !c.is_null()).cloned();
            if cursor.is_none() {
                break;
            }
        }
    }
    json!({ field: all })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_go_out_prefixed_and_come_back_split() {
        let uri = exposed("everything", "test://template/{id}/data", Naming::Uri);
        assert_eq!(uri, "everything+test://template/{id}/data");
        assert_eq!(
            split(&uri, Naming::Uri),
            Some(("everything", "test://template/{id}/data"))
        );
        let prompt = exposed("docs", "summarize", Naming::Name);
        assert_eq!(split(&prompt, Naming::Name), Some(("docs", "summarize")));
        assert_eq!(split("no-prefix", Naming::Name), None);
        assert_eq!(
            Method::of("resources/templates/list"),
            Some(Method::ListTemplates)
        );
        assert_eq!(Method::of("resources/subscribe"), None);
    }
}
