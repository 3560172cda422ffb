//! `[mcp]`: the MCP bridge's file shapes, checked and built into [`McpSettings`].
//!
//! Each `[[mcp.servers]]` entry becomes one MCP server at `/mcp/{name}`: an HTTP API whose
//! OpenAPI document is read here, at load, into its tools ([`super::openapi`]). Every error names
//! its field (`mcp.servers[0].openapi: …`); a document that cannot be read, parsed or resolved
//! is an error at load, never at request time.

pub use super::mcp_runtime::*;
use super::openapi;
use super::{parse_base_url, Secret};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// `[mcp]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpSection {
    /// Environment variable holding the session-sealing key (32 bytes: 64 hex digits or
    /// base64). Every instance given the same key serves every session. Without it, a random
    /// key per process: sessions then live on the instance that opened them.
    pub session_key_env: Option<String>,
    /// The key before a rotation, still accepted (never used to seal).
    pub previous_session_key_env: Option<String>,
    /// How long a session lasts after it is opened.
    pub session_ttl_seconds: Option<u64>,
    /// `Origin` values browsers may call from; a request with any other `Origin` gets 403.
    /// Requests without `Origin` (SDKs, servers) are not affected.
    pub allowed_origins: Vec<String>,
    /// Largest JSON-RPC message accepted (default: `server.max_body_bytes`).
    pub max_body_bytes: Option<usize>,
    pub servers: Vec<McpServerSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSection {
    pub name: String,
    /// `openapi` (an HTTP API and its document) or `remote` (a Streamable HTTP MCP server).
    #[serde(default)]
    pub kind: ServerKind,
    /// The OpenAPI 3.0 or 3.1 document (JSON or YAML) describing the API (`openapi`).
    #[serde(default)]
    pub openapi: Option<String>,
    /// Where the API is (`http(s)://host[:port][/prefix]`); the document's paths go below it.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The MCP endpoint of a `remote` server, e.g. `http://tools.internal:8000/mcp`.
    #[serde(default)]
    pub url: Option<String>,
    /// Operations (or a remote server's tools) to offer; empty: all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Operations never offered.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Calls per minute of one consumer to one tool (on top of the consumer's own limits).
    #[serde(default)]
    pub tool_calls_per_minute: Option<u64>,
    /// Client headers passed on to the API (e.g. a user's own token); never the gateway key.
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// A stored credential the gateway adds to every call.
    #[serde(default)]
    pub credential: Option<CredentialSection>,
    /// Shown to clients in `initialize` / `server/discover`.
    #[serde(default)]
    pub instructions: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerKind {
    #[default]
    Openapi,
    Remote,
}

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSection {
    pub kind: CredentialKind,
    /// The header or query parameter name (`header`, `query`).
    #[serde(default)]
    pub name: Option<String>,
    /// Environment variable holding the value.
    pub value_env: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `Authorization: Bearer <value>`.
    Bearer,
    Header,
    Query,
}

pub(super) fn build(
    section: &McpSection,
    default_max_body: usize,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Vec<String>,
) -> McpSettings {
    let keys = SessionKeys {
        current: key_from_env(
            "mcp.session_key_env",
            section.session_key_env.as_deref(),
            env,
            errs,
        )
        .unwrap_or_else(random_key),
        previous: key_from_env(
            "mcp.previous_session_key_env",
            section.previous_session_key_env.as_deref(),
            env,
            errs,
        ),
        shared: section.session_key_env.is_some(),
    };
    let mut names = HashSet::new();
    let mut servers = Vec::new();
    for (i, s) in section.servers.iter().enumerate() {
        let at = format!("mcp.servers[{i}]");
        if !valid_server_name(&s.name) {
            errs.push(format!(
                "{at}.name `{}` must be 1-64 of [A-Za-z0-9_-] (it is a path segment and a tool prefix)",
                s.name
            ));
        }
        if !names.insert(s.name.as_str()) {
            errs.push(format!("{at}.name `{}` is defined twice", s.name));
        }
        if let Some(server) = build_server(&at, s, env, errs) {
            servers.push(Arc::new(server));
        }
    }
    let ttl = section.session_ttl_seconds.unwrap_or(24 * 3600);
    if ttl == 0 {
        errs.push("mcp.session_ttl_seconds must be > 0".into());
    }
    McpSettings {
        servers,
        keys,
        session_ttl: Duration::from_secs(ttl),
        allowed_origins: section.allowed_origins.clone(),
        max_body_bytes: section.max_body_bytes.unwrap_or(default_max_body),
    }
}

fn valid_server_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn build_server(
    at: &str,
    s: &McpServerSection,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Vec<String>,
) -> Option<McpServer> {
    let (url_field, url) = match (s.kind, &s.base_url, &s.url) {
        (ServerKind::Openapi, Some(u), None) => ("base_url", u),
        (ServerKind::Remote, None, Some(u)) => ("url", u),
        (ServerKind::Openapi, _, _) => {
            errs.push(format!(
                "{at}: kind = \"openapi\" needs base_url (and no url)"
            ));
            return None;
        }
        (ServerKind::Remote, _, _) => {
            errs.push(format!(
                "{at}: kind = \"remote\" needs url (and no base_url)"
            ));
            return None;
        }
    };
    let upstream = parse_base_url(url)
        .map_err(|e| errs.push(format!("{at}.{url_field} {e}")))
        .ok();
    if s.timeout_ms == 0 {
        errs.push(format!("{at}.timeout_ms must be > 0"));
    }
    if s.connect_timeout_ms == 0 {
        errs.push(format!("{at}.connect_timeout_ms must be > 0"));
    }
    if s.tool_calls_per_minute == Some(0) {
        errs.push(format!(
            "{at}.tool_calls_per_minute must be > 0 (omit it for no limit)"
        ));
    }
    let forward_headers = super::forward_headers(at, &s.forward_headers, errs);
    let credential = s
        .credential
        .as_ref()
        .and_then(|c| build_credential(&format!("{at}.credential"), c, env, errs));
    let tools = match (s.kind, &s.openapi) {
        (ServerKind::Remote, None) => Vec::new(),
        (ServerKind::Remote, Some(_)) => {
            errs.push(format!("{at}.openapi is not used with kind = \"remote\""));
            return None;
        }
        (ServerKind::Openapi, None) => {
            errs.push(format!("{at}.openapi is required with kind = \"openapi\""));
            return None;
        }
        (ServerKind::Openapi, Some(path)) => match std::fs::read_to_string(path) {
            Err(e) => {
                errs.push(format!("{at}.openapi: cannot read {path}: {e}"));
                return None;
            }
            Ok(text) => match openapi::tools(&text, &s.include, &s.exclude) {
                Ok(tools) => tools,
                Err(e) => {
                    errs.push(format!("{at}.openapi ({path}): {e}"));
                    return None;
                }
            },
        },
    };
    let (include, exclude) = match s.kind {
        ServerKind::Remote => (s.include.clone(), s.exclude.clone()),
        ServerKind::Openapi => (Vec::new(), Vec::new()),
    };
    Some(McpServer {
        name: s.name.clone(),
        upstream: upstream?,
        kind: s.kind,
        tools,
        include,
        exclude,
        timeout: Duration::from_millis(s.timeout_ms),
        connect_timeout: Duration::from_millis(s.connect_timeout_ms),
        tool_calls_per_minute: s.tool_calls_per_minute,
        forward_headers,
        credential,
        instructions: s.instructions.clone(),
    })
}

/// Headers that carry a client's credentials (the gateway key): never forwarded.
fn build_credential(
    at: &str,
    c: &CredentialSection,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Vec<String>,
) -> Option<Credential> {
    let Some(value) = env(&c.value_env).filter(|v| !v.is_empty()) else {
        errs.push(format!(
            "{at}.value_env: environment variable {} is not set",
            c.value_env
        ));
        return None;
    };
    let value = Secret(value);
    match (c.kind, c.name.as_deref()) {
        (CredentialKind::Bearer, None) => Some(Credential::Bearer(value)),
        (CredentialKind::Bearer, Some(_)) => {
            errs.push(format!("{at}.name is not used with kind = \"bearer\""));
            None
        }
        (CredentialKind::Header, Some(n)) => match http::HeaderName::from_bytes(n.as_bytes()) {
            Ok(h) if http::HeaderValue::from_str(value.expose()).is_ok() => {
                Some(Credential::Header(h, value))
            }
            Ok(_) => {
                errs.push(format!(
                    "{at}.value_env: the value is not a valid header value"
                ));
                None
            }
            Err(_) => {
                errs.push(format!("{at}.name `{n}` is not a header name"));
                None
            }
        },
        (CredentialKind::Query, Some(n)) if !n.is_empty() => {
            Some(Credential::Query(n.to_string(), value))
        }
        (CredentialKind::Header | CredentialKind::Query, _) => {
            errs.push(format!("{at}.name is required with this kind"));
            None
        }
    }
}

fn key_from_env(
    field: &str,
    var: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Vec<String>,
) -> Option<[u8; 32]> {
    let var = var?;
    let Some(text) = env(var) else {
        errs.push(format!("{field}: environment variable {var} is not set"));
        return None;
    };
    match decode_key(text.trim()) {
        Some(k) => Some(k),
        None => {
            errs.push(format!(
                "{field}: {var} must hold 32 bytes as 64 hex digits or base64 (`openssl rand -hex 32`)"
            ));
            None
        }
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let bytes = hex::decode(text).ok().or_else(|| {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .or_else(|| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text)
                    .ok()
            })
    })?;
    bytes.try_into().ok()
}

fn random_key() -> [u8; 32] {
    rand::random()
}

/// `consumers[i].mcp_tools`: `*`, `server/*` or `server/tool`, checked against the servers.
pub(super) fn check_tool_patterns(
    at: &str,
    patterns: &[String],
    mcp: &McpSettings,
    errs: &mut Vec<String>,
) {
    for (j, p) in patterns.iter().enumerate() {
        if p == "*" {
            continue;
        }
        let Some((server, tool)) = p.split_once('/') else {
            errs.push(format!(
                "{at}.mcp_tools[{j}] `{p}` must be `*`, `server/*` or `server/tool`"
            ));
            continue;
        };
        match mcp.server(server) {
            None => errs.push(format!(
                "{at}.mcp_tools[{j}] names unknown MCP server `{server}`"
            )),
            Some(s) if tool != "*" && s.kind == ServerKind::Openapi && s.tool(tool).is_none() => {
                errs.push(format!(
                    "{at}.mcp_tools[{j}]: MCP server `{server}` has no tool `{tool}`"
                ))
            }
            Some(_) => {}
        }
    }
}
