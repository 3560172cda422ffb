//! The MCP bridge's runtime types: what `[mcp]` is built into ([`super::mcp`]) and what the
//! bridge ([`crate::mcp`]) serves from.

use super::mcp::ServerKind;
use super::{Secret, Upstream};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The bridge's runtime settings.
#[derive(Debug)]
pub struct McpSettings {
    pub servers: Vec<Arc<McpServer>>,
    pub keys: SessionKeys,
    pub session_ttl: Duration,
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
}

impl McpSettings {
    pub fn server(&self, name: &str) -> Option<&Arc<McpServer>> {
        self.servers.iter().find(|s| s.name == name)
    }
}

/// The keys that seal session ids: `current` seals and opens, `previous` only opens.
#[derive(Clone)]
pub struct SessionKeys {
    pub current: [u8; 32],
    pub previous: Option<[u8; 32]>,
    /// The key came from the environment (shared by instances), not made at start.
    pub shared: bool,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(***)")
    }
}

/// One MCP server: an HTTP API and the tools its operations became.
#[derive(Debug)]
pub struct McpServer {
    pub name: String,
    /// The API's base URL, or the remote server's MCP endpoint.
    pub upstream: Upstream,
    pub kind: ServerKind,
    /// An OpenAPI server's tools (a remote server's are asked for when listed).
    pub tools: Vec<Tool>,
    /// A remote server's tool filter (an OpenAPI server's is applied at load).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub tool_calls_per_minute: Option<u64>,
    pub forward_headers: Vec<http::HeaderName>,
    pub credential: Option<Credential>,
    pub instructions: Option<String>,
}

impl McpServer {
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Whether a remote server's tool `name` passes `include` and `exclude`.
    pub fn offers(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|i| i == name))
            && !self.exclude.iter().any(|x| x == name)
    }
}

#[derive(Debug)]
pub enum Credential {
    Bearer(Secret),
    Header(http::HeaderName, Secret),
    Query(String, Secret),
}

/// One tool: what clients see (`tools/list`) and the HTTP operation a call becomes.
#[derive(Debug)]
pub struct Tool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    /// The response schema is not an object: results are `{"result": …}`.
    pub wraps_output: bool,
    pub operation: Operation,
}

#[derive(Debug)]
pub struct Operation {
    pub method: http::Method,
    /// The document's path template, e.g. `/pets/{petId}`.
    pub path: String,
    pub params: Vec<Param>,
    /// A JSON request body, passed as the `body` argument.
    pub body: Option<BodyParam>,
}

#[derive(Debug)]
pub struct Param {
    /// The parameter's name on the wire.
    pub name: String,
    /// Its property in the tool's `inputSchema` (the name, unless two locations share it).
    pub argument: String,
    pub location: Location,
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Path,
    Query,
    Header,
}

#[derive(Debug)]
pub struct BodyParam {
    pub required: bool,
    pub content_type: String,
    /// How the tool's arguments carry the body: one `body` argument, or each property of an
    /// object body as an argument of its own.
    pub shape: BodyShape,
}

#[derive(Debug)]
pub enum BodyShape {
    /// The whole body is the `body` argument (a body that is not a plain object).
    Whole,
    /// Each property of the body is an argument beside the parameters.
    Flat(Vec<BodyField>),
}

/// One property of a flattened body.
#[derive(Debug)]
pub struct BodyField {
    /// Its name in the body.
    pub property: String,
    /// Its argument: the property's name, or `body_{name}` when a parameter has that name.
    pub argument: String,
    pub required: bool,
}
