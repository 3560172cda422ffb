//! What one caller sees at one MCP path: the servers behind it and the tools its consumer may
//! use, as `tools/list` shows them, and the results of the methods that need no I/O.
//!
//! `/mcp/{server}` shows that server's tools under their own names; `/mcp` combines every
//! server under `{server}__{tool}`. A tool the consumer may not use is neither listed nor
//! callable: calling it is the same error as calling a tool that does not exist.

use super::wire::{MODERN_VERSIONS, SERVER_INFO_META};
use crate::config::mcp::{McpServer, McpSettings, ServerKind, Tool};
use crate::config::Consumer;
use serde_json::{json, Value};
use std::sync::Arc;

/// Separates the server from the tool in the combined view's names.
pub const PREFIX_SEPARATOR: &str = "__";

/// The servers at one path, for one consumer.
pub struct View<'a> {
    servers: Vec<&'a Arc<McpServer>>,
    combined: bool,
    consumer: &'a Consumer,
}

impl<'a> View<'a> {
    /// The view at `/mcp/{server}` (`Some`) or `/mcp` (`None`); `None` if no such server.
    pub fn at(
        settings: &'a McpSettings,
        server: Option<&str>,
        consumer: &'a Consumer,
    ) -> Option<View<'a>> {
        let servers = match server {
            Some(name) => vec![settings.server(name)?],
            None => settings.servers.iter().collect(),
        };
        Some(View {
            servers,
            combined: server.is_none(),
            consumer,
        })
    }

    /// Every tool the consumer may use, with the name this view gives it.
    pub fn tools(&self) -> impl Iterator<Item = (String, &'a Arc<McpServer>, &'a Tool)> + '_ {
        self.servers.iter().flat_map(move |s| {
            s.tools
                .iter()
                .filter(|t| self.consumer.may_use_tool(&s.name, &t.name))
                .map(move |t| (self.exposed_name(s, &t.name), *s, t))
        })
    }

    /// The name this view gives `server`'s tool `name`.
    pub fn exposed_name(&self, server: &McpServer, name: &str) -> String {
        if self.combined {
            format!("{}{PREFIX_SEPARATOR}{name}", server.name)
        } else {
            name.to_string()
        }
    }

    /// The remote servers in this view.
    pub fn remotes(&self) -> impl Iterator<Item = &'a Arc<McpServer>> + '_ {
        self.servers
            .iter()
            .copied()
            .filter(|s| s.kind == ServerKind::Remote)
    }

    pub fn combined(&self) -> bool {
        self.combined
    }

    /// Whether a remote server is in this view (its prompts and resources are then served
    /// here: [`super::combined`]).
    pub fn has_remotes(&self) -> bool {
        self.remotes().next().is_some()
    }

    /// The capabilities this view serves.
    fn capabilities(&self) -> Value {
        let mut c = json!({"tools": {"listChanged": false}});
        if self.has_remotes() {
            c["resources"] = json!({"subscribe": false, "listChanged": false});
            c["prompts"] = json!({"listChanged": false});
            c["completions"] = json!({});
        }
        c
    }

    /// The remote server and tool name a call names, if the consumer may use it.
    pub fn find_remote(&self, name: &str) -> Option<(&'a Arc<McpServer>, String)> {
        let (server, tool) = if self.combined {
            let (s, t) = name.split_once(PREFIX_SEPARATOR)?;
            (*self.servers.iter().find(|x| x.name == s)?, t)
        } else {
            (*self.servers.first()?, name)
        };
        (server.kind == ServerKind::Remote
            && server.offers(tool)
            && self.consumer.may_use_tool(&server.name, tool))
        .then(|| (server, tool.to_string()))
    }

    /// The tool a call names, if the consumer may use it.
    pub fn find(&self, name: &str) -> Option<(&'a Arc<McpServer>, &'a Tool)> {
        let (server, tool) = if self.combined {
            let (s, t) = name.split_once(PREFIX_SEPARATOR)?;
            let server = self.servers.iter().find(|x| x.name == s)?;
            (*server, server.tool(t)?)
        } else {
            let server = self.servers.first()?;
            (*server, server.tool(name)?)
        };
        self.consumer
            .may_use_tool(&server.name, &tool.name)
            .then_some((server, tool))
    }

    fn server_info(&self) -> Value {
        let name = match (self.combined, self.servers.first()) {
            (false, Some(s)) => s.name.as_str(),
            _ => "tollgate",
        };
        json!({"name": name, "version": env!("CARGO_PKG_VERSION")})
    }

    fn instructions(&self) -> Option<String> {
        let parts: Vec<&str> = self
            .servers
            .iter()
            .filter_map(|s| s.instructions.as_deref())
            .collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }

    /// `initialize`'s result at `version`.
    pub fn initialize(&self, version: &str) -> Value {
        let mut r = json!({
            "protocolVersion": version,
            "capabilities": self.capabilities(),
            "serverInfo": self.server_info(),
        });
        if let Some(i) = self.instructions() {
            r["instructions"] = i.into();
        }
        r
    }

    /// `server/discover`'s result (2026-07-28).
    pub fn discover(&self) -> Value {
        let mut r = self.modern(json!({
            "supportedVersions": MODERN_VERSIONS,
            "capabilities": self.capabilities(),
            "cacheScope": "private",
            "ttlMs": 0,
        }));
        if let Some(i) = self.instructions() {
            r["instructions"] = i.into();
        }
        r
    }

    /// `tools/list`'s result: every tool at once (no pagination), with the remote servers'
    /// tools already listed (`remote`, named as this view names them).
    pub fn list(&self, modern: bool, remote: Vec<Value>) -> Value {
        let tools: Vec<Value> = self
            .tools()
            .map(|(name, _, t)| {
                let mut v = json!({
                    "name": name,
                    "description": t.description,
                    "inputSchema": t.input_schema,
                });
                if let Some(o) = &t.output_schema {
                    v["outputSchema"] = o.clone();
                }
                v
            })
            .chain(remote)
            .collect();
        let r = json!({"tools": tools});
        if modern {
            let mut r = self.modern(r);
            r["cacheScope"] = "private".into();
            r["ttlMs"] = 0.into();
            r
        } else {
            r
        }
    }

    /// A 2026-07-28 result: `resultType` and the server's info in `_meta`.
    pub fn modern(&self, mut result: Value) -> Value {
        result["resultType"] = "complete".into();
        result["_meta"] = json!({SERVER_INFO_META: self.server_info()});
        result
    }
}
