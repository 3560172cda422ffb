//! OpenAPI 3.0 / 3.1 documents (JSON or YAML) into MCP tools, at config load.
//!
//! Each operation becomes one [`Tool`]: its name from `operationId` (or method and path),
//! made valid (`[A-Za-z0-9_.-]`, at most 64 characters, unique); its description from
//! `summary` and `description`; its `inputSchema` an object whose properties are the path,
//! query and header parameters (under their names) and the JSON request body (under `body`);
//! its `outputSchema` the first 2xx response's JSON schema, wrapped as `{"result": …}` when it
//! is not an object (MCP's structured content is always an object).
//!
//! The document may say what the model sees: on an operation, `x-mcp-name` names its tool,
//! `x-mcp-description` replaces its summary and description, and `x-mcp-ignore: true` leaves it
//! out; on a parameter, `x-mcp-description` replaces its description. YAML is read with
//! `yaml_serde` (the YAML organization's maintained fork of `serde_yaml`) into the same JSON
//! value a JSON document gives.
//!
//! `$ref`s within the document are resolved by inlining the target (siblings of a `$ref`
//! override it, as in 3.1); a reference back into itself becomes `{}` (any value) at the point
//! of recursion; references to other files are refused. In 3.0 documents `nullable: true`
//! becomes a `"null"` member of `type`. Cookie parameters are not offered. Written here rather
//! than with an OpenAPI crate: the ones available model the whole specification as types and
//! would still need this walk to produce JSON Schema for tools.

use super::mcp::{BodyField, BodyParam, BodyShape, Location, Operation, Param, Tool};
use serde_json::{json, Map, Value};
use std::collections::HashSet;

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];
/// How deep references may nest before the document is refused.
const MAX_REF_DEPTH: usize = 64;
const MAX_TOOL_NAME: usize = 64;
/// How many JSON values resolving may produce in all: references used many times over, at
/// many levels, would otherwise multiply without bound.
const MAX_EXPANDED: usize = 1_000_000;

/// The tools of one document, filtered by `include` and `exclude`.
pub fn tools(text: &str, include: &[String], exclude: &[String]) -> Result<Vec<Tool>, String> {
    let doc = document(text)?;
    let version = doc
        .get("openapi")
        .and_then(Value::as_str)
        .ok_or("no `openapi` version field (only OpenAPI 3.0 and 3.1 are read)")?;
    let legacy_nullable = if version.starts_with("3.0") {
        true
    } else if version.starts_with("3.1") {
        false
    } else {
        return Err(format!("openapi {version} is not 3.0 or 3.1"));
    };
    let r = Resolver {
        doc: &doc,
        legacy_nullable,
        produced: std::cell::Cell::new(0),
    };
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("no `paths` object")?;
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut matched = HashSet::new();
    for (path, item) in paths {
        let item = r.resolve(item, &format!("/paths/{path}"), &mut Vec::new())?;
        let shared = item.get("parameters").cloned().unwrap_or(json!([]));
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            if op.get("x-mcp-ignore").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let at = format!("{} {path}", method.to_uppercase());
            let id = op.get("operationId").and_then(Value::as_str);
            let named = op.get("x-mcp-name").and_then(Value::as_str).or(id);
            let base = tool_name(named.unwrap_or(&format!("{method}_{path}")));
            let mut name = base.clone();
            let mut n = 2;
            while !names.insert(name.clone()) {
                name = format!("{}_{n}", &base[..base.len().min(MAX_TOOL_NAME - 4)]);
                n += 1;
            }
            let chosen = |list: &[String]| {
                list.iter()
                    .find(|x| Some(x.as_str()) == id || **x == name)
                    .cloned()
            };
            if let Some(x) = chosen(include) {
                matched.insert(x);
            } else if !include.is_empty() {
                continue;
            }
            if let Some(x) = chosen(exclude) {
                matched.insert(x);
                continue;
            }
            let tool = r
                .tool(name, method, path, op, &shared)
                .map_err(|e| format!("{at}: {e}"))?;
            out.push(tool);
        }
    }
    for x in include.iter().chain(exclude) {
        if !matched.contains(x) {
            return Err(format!(
                "include/exclude names `{x}`, which no operation has"
            ));
        }
    }
    Ok(out)
}

/// The document as a JSON value: JSON, else YAML (which JSON also is, but the JSON reader
/// names a JSON document's errors better).
fn document(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"));
    }
    yaml_serde::from_str::<Value>(text).map_err(|e| format!("neither JSON nor valid YAML: {e}"))
}

/// `[A-Za-z0-9_.-]`, at most 64 characters, never empty.
fn tool_name(raw: &str) -> String {
    let mut s = String::new();
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
            c
        } else {
            '_'
        };
        if !(c == '_' && s.ends_with('_')) {
            s.push(c);
        }
    }
    let s = s.trim_matches('_');
    let s: String = s.chars().take(MAX_TOOL_NAME).collect();
    if s.is_empty() {
        "operation".into()
    } else {
        s
    }
}

/// A tool's input schema as it is built: its properties and the required ones.
#[derive(Default)]
struct Arguments {
    properties: Map<String, Value>,
    required: Vec<Value>,
}

impl Arguments {
    fn add(&mut self, name: &str, schema: Value, required: bool) {
        self.properties.insert(name.to_string(), schema);
        if required {
            self.required.push(Value::from(name));
        }
    }
}

/// The fields of an object body with named properties, each with its argument name, or `None`
/// for a body that stays one argument (not a plain object, free-form, or a composition).
fn flat_fields(schema: &Value, body_required: bool, args: &Arguments) -> Option<Vec<BodyField>> {
    let plain = schema.get("type").is_none_or(|t| t == "object")
        && ["allOf", "anyOf", "oneOf", "not"]
            .iter()
            .all(|k| schema.get(*k).is_none())
        && schema
            .get("additionalProperties")
            .is_none_or(|a| a == false);
    let properties = schema.get("properties")?.as_object()?;
    if !plain || properties.is_empty() {
        return None;
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut fields: Vec<BodyField> = Vec::new();
    for name in properties.keys() {
        let taken =
            |n: &str| args.properties.contains_key(n) || fields.iter().any(|f| f.argument == n);
        let argument = if taken(name) {
            format!("body_{name}")
        } else {
            name.clone()
        };
        if taken(&argument) {
            return None; // two renames collide: the body stays one argument
        }
        fields.push(BodyField {
            property: name.clone(),
            required: body_required && required.contains(&name.as_str()),
            argument,
        });
    }
    Some(fields)
}

/// `x-mcp-description`, else the operation's summary and description, else its method and
/// path.
fn description(op: &Value, method: &str, path: &str) -> String {
    if let Some(d) = op.get("x-mcp-description").and_then(Value::as_str) {
        return d.to_string();
    }
    let summary = op.get("summary").and_then(Value::as_str).unwrap_or("");
    let detail = op.get("description").and_then(Value::as_str).unwrap_or("");
    match (summary.is_empty(), detail.is_empty()) {
        (true, true) => format!("{} {path}", method.to_uppercase()),
        (false, true) => summary.to_string(),
        (true, false) => detail.to_string(),
        (false, false) => format!("{summary}\n\n{detail}"),
    }
}

struct Resolver<'a> {
    doc: &'a Value,
    legacy_nullable: bool,
    /// Values produced so far, against [`MAX_EXPANDED`].
    produced: std::cell::Cell<usize>,
}

impl Resolver<'_> {
    fn tool(
        &self,
        name: String,
        method: &str,
        path: &str,
        op: &Value,
        shared: &Value,
    ) -> Result<Tool, String> {
        let op = self.resolve(op, path, &mut Vec::new())?;
        let mut args = Arguments::default();
        let params = self.params(&op, shared, path, &mut args)?;
        let body = self.body(&op, path, &mut args)?;
        let mut input = json!({"type": "object", "properties": args.properties});
        if !args.required.is_empty() {
            input["required"] = Value::Array(args.required);
        }
        let (output_schema, wraps_output) = match self.output_schema(&op, path)? {
            Some(s) if is_object_schema(&s) => (Some(s), false),
            Some(s) => (
                Some(
                    json!({"type": "object", "properties": {"result": s}, "required": ["result"]}),
                ),
                true,
            ),
            None => (None, false),
        };
        Ok(Tool {
            name,
            description: description(&op, method, path),
            input_schema: input,
            output_schema,
            wraps_output,
            operation: Operation {
                method: method
                    .to_uppercase()
                    .parse::<http::Method>()
                    .map_err(|_| "bad method".to_string())?,
                path: path.to_string(),
                params,
                body,
            },
        })
    }

    /// The operation's parameters (overriding the path item's by name and location) as
    /// arguments; cookies are left out.
    fn params(
        &self,
        op: &Value,
        shared: &Value,
        path: &str,
        args: &mut Arguments,
    ) -> Result<Vec<Param>, String> {
        let own = op.get("parameters").cloned().unwrap_or(json!([]));
        let listed = |v: &Value| v.as_array().cloned().unwrap_or_default();
        let mut all: Vec<Value> = listed(&own);
        for p in listed(shared) {
            let key = |x: &Value| (x.get("name").cloned(), x.get("in").cloned());
            if !all.iter().any(|o| key(o) == key(&p)) {
                all.push(p);
            }
        }
        let mut params = Vec::new();
        for p in all {
            let p = self.resolve(&p, path, &mut Vec::new())?;
            let pname = p
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a parameter has no name")?;
            let location = match p.get("in").and_then(Value::as_str) {
                Some("path") => Location::Path,
                Some("query") => Location::Query,
                Some("header") => Location::Header,
                Some("cookie") => continue,
                other => return Err(format!("parameter `{pname}` has `in` {other:?}")),
            };
            if location == Location::Header
                && http::HeaderName::from_bytes(pname.as_bytes()).is_err()
            {
                return Err(format!("header parameter `{pname}` is not a header name"));
            }
            let req = location == Location::Path
                || p.get("required").and_then(Value::as_bool).unwrap_or(false);
            let mut schema = p.get("schema").cloned().unwrap_or(json!({}));
            if let (Some(d), Some(obj)) = (p.get("x-mcp-description"), schema.as_object_mut()) {
                obj.insert("description".into(), d.clone());
            } else if let (Some(d), Some(obj)) = (p.get("description"), schema.as_object_mut()) {
                obj.entry("description").or_insert(d.clone());
            }
            let argument = if args.properties.contains_key(pname) || pname == "body" {
                format!("{}_{pname}", location_word(location))
            } else {
                pname.to_string()
            };
            args.add(&argument, schema, req);
            params.push(Param {
                name: pname.to_string(),
                argument,
                location,
                required: req,
            });
        }
        Ok(params)
    }

    /// The JSON request body: an object body's properties as arguments of their own (what
    /// models call most reliably; a property whose name a parameter has is `body_{name}`), any
    /// other body as the one `body` argument.
    fn body(
        &self,
        op: &Value,
        path: &str,
        args: &mut Arguments,
    ) -> Result<Option<BodyParam>, String> {
        let Some(rb) = op.get("requestBody") else {
            return Ok(None);
        };
        let rb = self.resolve(rb, path, &mut Vec::new())?;
        let req = rb.get("required").and_then(Value::as_bool).unwrap_or(false);
        let Some((content_type, media)) = json_media(&rb) else {
            return if req {
                Err("its request body is not JSON".into())
            } else {
                Ok(None)
            };
        };
        let schema = media.get("schema").cloned().unwrap_or(json!({}));
        let shape = match flat_fields(&schema, req, args) {
            Some(fields) => {
                for f in &fields {
                    let property = schema["properties"][&f.property].clone();
                    args.add(&f.argument, property, f.required);
                }
                BodyShape::Flat(fields)
            }
            None => {
                args.add("body", schema, req);
                BodyShape::Whole
            }
        };
        Ok(Some(BodyParam {
            required: req,
            content_type,
            shape,
        }))
    }

    /// The first 2xx response's JSON schema (`200` before `201`..., then `2XX`).
    fn output_schema(&self, op: &Value, at: &str) -> Result<Option<Value>, String> {
        let Some(responses) = op.get("responses").and_then(Value::as_object) else {
            return Ok(None);
        };
        let mut codes: Vec<&String> = responses.keys().filter(|k| k.starts_with('2')).collect();
        codes.sort();
        for code in codes {
            let r = self.resolve(&responses[code], at, &mut Vec::new())?;
            if let Some((_, media)) = json_media(&r) {
                return Ok(media.get("schema").cloned());
            }
        }
        Ok(None)
    }

    /// `value` with every `$ref` inlined. `seen` holds the references being expanded.
    fn resolve(&self, value: &Value, at: &str, seen: &mut Vec<String>) -> Result<Value, String> {
        if seen.len() > MAX_REF_DEPTH {
            return Err(format!(
                "references nest deeper than {MAX_REF_DEPTH} at {at}"
            ));
        }
        self.produced.set(self.produced.get() + 1);
        if self.produced.get() > MAX_EXPANDED {
            return Err(format!(
                "resolving its references makes more than {MAX_EXPANDED} values"
            ));
        }
        match value {
            Value::Object(obj) => {
                if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
                    if seen.iter().any(|s| s == r) {
                        return Ok(json!({}));
                    }
                    let target = self.target(r)?;
                    seen.push(r.to_string());
                    let mut resolved = self.resolve(target, r, seen)?;
                    seen.pop();
                    if let Value::Object(t) = &mut resolved {
                        for (k, v) in obj.iter().filter(|(k, _)| *k != "$ref") {
                            t.insert(k.clone(), self.resolve(v, at, seen)?);
                        }
                    }
                    return Ok(resolved);
                }
                let mut out = Map::new();
                for (k, v) in obj {
                    out.insert(k.clone(), self.resolve(v, at, seen)?);
                }
                if self.legacy_nullable && out.get("nullable") == Some(&Value::Bool(true)) {
                    out.remove("nullable");
                    if let Some(Value::String(t)) = out.get("type").cloned() {
                        out.insert("type".into(), json!([t, "null"]));
                    }
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => items
                .iter()
                .map(|v| self.resolve(v, at, seen))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    fn target(&self, r: &str) -> Result<&Value, String> {
        let pointer = r
            .strip_prefix('#')
            .ok_or_else(|| format!("$ref `{r}` points outside the document (not supported)"))?;
        self.doc
            .pointer(pointer)
            .ok_or_else(|| format!("$ref `{r}` points at nothing"))
    }
}

fn location_word(l: Location) -> &'static str {
    match l {
        Location::Path => "path",
        Location::Query => "query",
        Location::Header => "header",
    }
}

/// The JSON media type of a request body or response (`application/json`, `…+json`).
fn json_media(v: &Value) -> Option<(String, &Value)> {
    let content = v.get("content")?.as_object()?;
    content
        .iter()
        .find(|(k, _)| {
            let k = k.split(';').next().unwrap_or("").trim();
            k == "application/json" || k.ends_with("+json")
        })
        .map(|(k, m)| (k.clone(), m))
}

fn is_object_schema(s: &Value) -> bool {
    match s.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(_) => false,
        None => s.get("properties").is_some(),
    }
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
