//! `[[routes]]`: the API served again under a path prefix (`/team-a/v1/chat/completions`)
//! with its own model map and its own consumers, as a gateway gives each team its own path.
//!
//! Under a prefix only the route's model names exist (`/team-a/v1/models` lists them, and a
//! name outside the map is `model_not_found`); each name maps to a virtual model of
//! `[[models]]`, whose routing, limits and pricing apply unchanged. A consumer with `routes`
//! may call only under those prefixes; a route with `consumers` admits only those.

use super::Consumer;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// `[[routes]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Its name in consumers' `routes` and in the access log.
    pub name: String,
    /// `/team-a`: the API answers at `/team-a/v1/...`.
    pub path_prefix: String,
    /// The model names offered under the prefix, each naming a virtual model.
    pub models: BTreeMap<String, String>,
    /// Consumers that may call under the prefix (empty: any consumer).
    #[serde(default)]
    pub consumers: Vec<String>,
}

/// A validated route.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub path_prefix: String,
    /// Client-facing name → virtual model name.
    pub models: BTreeMap<String, String>,
    /// `None`: every consumer.
    pub consumers: Option<HashSet<String>>,
}

impl Route {
    /// Whether `consumer` may call under this prefix: the route admits it, and the consumer
    /// is not limited to other routes.
    pub fn admits(&self, consumer: &Consumer) -> bool {
        self.consumers
            .as_ref()
            .is_none_or(|c| c.contains(&consumer.name))
            && consumer
                .routes
                .as_ref()
                .is_none_or(|r| r.contains(&self.name))
    }
}

/// The routes, and the path below the prefix that matched (the whole path without one).
#[derive(Debug, Default)]
pub struct Routes(Vec<Arc<Route>>);

impl Routes {
    /// The route whose prefix `path` starts with (at a segment boundary), and the rest.
    pub fn split<'p>(&self, path: &'p str) -> (Option<&Arc<Route>>, &'p str) {
        for route in &self.0 {
            if let Some(rest) = path.strip_prefix(route.path_prefix.as_str()) {
                if rest.starts_with('/') {
                    return (Some(route), rest);
                }
            }
        }
        (None, path)
    }

    pub fn names(&self) -> HashSet<&str> {
        self.0.iter().map(|r| r.name.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Paths the gateway answers itself at the root; a prefix may not shadow them.
const RESERVED: [&str; 2] = ["/v1", "/mcp"];

fn prefix_problem(prefix: &str) -> Option<&'static str> {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if !prefix.starts_with('/') || prefix.len() < 2 {
        return Some("must start with `/` and name at least one path segment");
    }
    if !prefix[1..].split('/').all(segment_ok) {
        return Some(
            "must be `/`-separated segments of letters, digits, `-`, `.`, `_` or `~` (no trailing `/`)",
        );
    }
    let first = prefix.split('/').nth(1).map(|s| format!("/{s}"));
    if first.is_some_and(|f| RESERVED.contains(&f.as_str())) {
        return Some("may not begin with `/v1` or `/mcp`, which the gateway serves at the root");
    }
    None
}

/// Validate `[[routes]]` against the models and consumers.
pub(super) fn build_routes(
    sections: Vec<RouteSection>,
    model_names: &HashSet<String>,
    consumers: &[Arc<Consumer>],
    errs: &mut Vec<String>,
) -> Routes {
    let consumer_names: HashSet<&str> = consumers.iter().map(|c| c.name.as_str()).collect();
    let mut names = HashSet::new();
    let mut routes: Vec<Arc<Route>> = Vec::new();
    for (i, r) in sections.into_iter().enumerate() {
        let at = format!("routes[{i}]");
        if r.name.is_empty() {
            errs.push(format!("{at}.name must not be empty"));
        } else if !names.insert(r.name.clone()) {
            errs.push(format!("{at}.name `{}` is defined twice", r.name));
        }
        if let Some(why) = prefix_problem(&r.path_prefix) {
            errs.push(format!("{at}.path_prefix `{}` {why}", r.path_prefix));
        }
        let nested = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        if let Some(other) = routes.iter().find(|o| {
            nested(&r.path_prefix, &o.path_prefix) || nested(&o.path_prefix, &r.path_prefix)
        }) {
            errs.push(format!(
                "{at}.path_prefix `{}` overlaps route `{}` (`{}`)",
                r.path_prefix, other.name, other.path_prefix
            ));
        }
        if r.models.is_empty() {
            errs.push(format!("{at}.models must map at least one model name"));
        }
        for (alias, model) in &r.models {
            if alias.is_empty() {
                errs.push(format!("{at}.models has an empty model name"));
            }
            if !model_names.contains(model) {
                errs.push(format!("{at}.models.{alias} names unknown model `{model}`"));
            }
        }
        for (j, c) in r.consumers.iter().enumerate() {
            if !consumer_names.contains(c.as_str()) {
                errs.push(format!("{at}.consumers[{j}] names unknown consumer `{c}`"));
            }
        }
        routes.push(Arc::new(Route {
            name: r.name,
            path_prefix: r.path_prefix,
            models: r.models,
            consumers: (!r.consumers.is_empty()).then(|| r.consumers.into_iter().collect()),
        }));
    }
    let routes = Routes(routes);
    let route_names = routes.names();
    for (i, c) in consumers.iter().enumerate() {
        for name in c.routes.iter().flatten() {
            if !route_names.contains(name.as_str()) {
                errs.push(format!(
                    "consumers[{i}].routes names unknown route `{name}`"
                ));
            }
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(prefix_problem("/team-a"), None);
        assert_eq!(prefix_problem("/org/team_a.1"), None);
        for bad in [
            "team-a", "/", "/team-a/", "/a//b", "/a b", "/v1", "/v1/x", "/mcp", "/a/..",
        ] {
            assert!(prefix_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(prefix_problem("/v10"), None);
    }

    #[test]
    fn split_matches_at_a_segment_boundary() {
        let route = Arc::new(Route {
            name: "a".into(),
            path_prefix: "/team-a".into(),
            models: BTreeMap::new(),
            consumers: None,
        });
        let routes = Routes(vec![route]);
        let (r, rest) = routes.split("/team-a/v1/models");
        assert_eq!(
            (r.map(|r| r.name.as_str()), rest),
            (Some("a"), "/v1/models")
        );
        assert!(routes.split("/team-ab/v1/models").0.is_none());
        assert!(routes.split("/team-a").0.is_none());
        assert_eq!(routes.split("/v1/models").1, "/v1/models");
    }
}
