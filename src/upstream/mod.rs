//! Upstreams: where a target lives, the peer Pingora connects to, and the request it
//! receives. (How a failed attempt is classified is [`crate::attempt::Failure`]'s.)
//!
//! Both I/O paths (Pingora's proxy phases and the large-body forwarder) call these functions,
//! so a target is reached, authenticated and judged the same way whichever path carries it.

pub mod dns;
pub mod headers;
pub mod pool;
pub mod redact;

use crate::config::mcp::McpServer;
use crate::config::{Config, Provider, ProviderKind, Target, Upstream};
use crate::error::GatewayError;
use crate::wire::protocol::Operation;
use arc_swap::ArcSwap;
use pingora::http::RequestHeader;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Keep-alive pool idle time for upstream connections.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Concurrent streams on one HTTP/2 upstream connection.
const H2_STREAMS: usize = 100;

/// How one provider is reached: its addresses (re-resolved in the background) and the
/// connection settings every peer for it shares.
#[derive(Debug)]
pub struct Endpoint {
    addrs: ArcSwap<Vec<SocketAddr>>,
    next: AtomicUsize,
    /// Where its addresses come from: the base URL's host and a pool's `replicas`, each
    /// with the addresses it last resolved to (a failed resolution keeps them).
    sources: Vec<(String, u16)>,
    found: std::sync::Mutex<Vec<Vec<SocketAddr>>>,
    /// A source is a name, resolved again in the background (not a literal or the built-in mock).
    named: bool,
    tls: bool,
    sni: String,
    host_header: String,
    base_path: String,
    /// Separates connection pools per provider (Pingora's pool key ignores the CA and the key).
    group_key: u64,
    /// The provider's `strategy`: its addresses as a pool of replicas, picked per request.
    pooled: Option<ArcSwap<pool::Pooled>>,
}

impl Endpoint {
    /// The host names (or literals) and ports this endpoint's addresses come from.
    pub fn sources(&self) -> &[(String, u16)] {
        &self.sources
    }

    /// The next of its addresses in turn.
    fn next_addr(&self) -> Result<SocketAddr, GatewayError> {
        let addrs = self.addrs.load();
        if addrs.is_empty() {
            return Err(GatewayError::UpstreamConnect);
        }
        Ok(addrs[self.next.fetch_add(1, Ordering::Relaxed) % addrs.len()])
    }

    /// Take one resolution of each source (in [`Endpoint::sources`] order): a new set
    /// replaces a source's old one, a failure keeps it; the endpoint's addresses are all
    /// sources' together, and a pool follows them (survivors keep their state, joiners ramp
    /// up, leavers are purged).
    pub fn update(&self, provider: &str, results: Vec<std::io::Result<Vec<SocketAddr>>>) {
        let mut found = self.found.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = false;
        for ((source, result), previous) in self.sources.iter().zip(results).zip(found.iter_mut()) {
            if let Some(addrs) = dns::settle(provider, &source.0, previous, result) {
                *previous = addrs;
                changed = true;
            }
        }
        let mut addrs: Vec<SocketAddr> = found.iter().flatten().copied().collect();
        drop(found);
        addrs.sort();
        addrs.dedup();
        crate::metrics::METRICS
            .upstream_addresses
            .with_label_values(&[provider])
            .set(i64::try_from(addrs.len()).unwrap_or(i64::MAX));
        if !changed || addrs.as_slice() == self.addrs.load().as_slice() {
            return;
        }
        if let Some(p) = &self.pooled {
            let now = p.load();
            let next = now.rebuilt(addrs.clone());
            now.drop_gone_labels(&next);
            p.store(Arc::new(next));
        }
        self.addrs.store(Arc::new(addrs));
    }

    /// Resolve every source now (blocking).
    fn resolve_all(&self, provider: &str, hosts_file: Option<&std::path::Path>) {
        let results = self
            .sources
            .iter()
            .map(|(host, port)| dns::resolve(host, *port, hosts_file))
            .collect();
        self.update(provider, results);
    }
}

/// The parts of an `http(s)://host:port/prefix` base URL.
struct UrlParts<'a> {
    tls: bool,
    host: &'a String,
    port: u16,
    base_path: &'a String,
}

/// The endpoints map's key for an MCP server, apart from the providers' names.
fn mcp_key(server: &str) -> String {
    format!("mcp:{server}")
}

/// An endpoint at a URL (and a pool's other replicas), resolved once now (blocking) and
/// again in the background.
fn url_endpoint(
    name: &str,
    at: UrlParts<'_>,
    (sni, group_key): (String, u64),
    pool: Option<&crate::config::pools::PoolSpec>,
    config: &Config,
) -> Endpoint {
    let UrlParts {
        tls,
        host,
        port,
        base_path,
    } = at;
    let default_port = if tls { 443 } else { 80 };
    let host_header = if port == default_port {
        host.clone()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut sources = vec![(host.clone(), port)];
    sources.extend(pool.iter().flat_map(|p| p.replicas.iter().cloned()));
    let ep = Endpoint {
        addrs: ArcSwap::from_pointee(Vec::new()),
        next: AtomicUsize::new(0),
        named: sources.iter().any(|(h, _)| h.parse::<IpAddr>().is_err()),
        found: std::sync::Mutex::new(vec![Vec::new(); sources.len()]),
        sources,
        tls,
        sni,
        host_header,
        base_path: base_path.clone(),
        group_key,
        pooled: pool.map(|p| ArcSwap::from_pointee(pool::Pooled::new(name, Vec::new(), p))),
    };
    ep.resolve_all(name, config.server.hosts_file.as_deref());
    ep
}

/// Every provider's endpoint, built once per config.
#[derive(Debug, Default)]
pub struct Upstreams {
    endpoints: HashMap<String, Endpoint>,
}

impl Upstreams {
    /// Resolve every provider (blocking: runs at startup or in a reload's blocking task, never
    /// on a request). A name that does not resolve leaves an endpoint with no address: its
    /// attempts fail over until a background resolution succeeds.
    pub fn resolve(config: &Config, builtin_mock: Option<SocketAddr>) -> Upstreams {
        let mut endpoints = HashMap::new();
        for p in &config.providers {
            let mut hasher = DefaultHasher::new();
            p.name.hash(&mut hasher);
            let group_key = hasher.finish();
            let ep = match &p.upstream {
                Upstream::BuiltinMock => {
                    let addrs: Vec<SocketAddr> = builtin_mock.into_iter().collect();
                    let host = addrs.first().map_or("localhost".into(), |a| a.to_string());
                    Endpoint {
                        addrs: ArcSwap::from_pointee(addrs),
                        next: AtomicUsize::new(0),
                        sources: Vec::new(),
                        found: std::sync::Mutex::new(Vec::new()),
                        named: false,
                        tls: false,
                        sni: String::new(),
                        host_header: host,
                        base_path: "/v1".into(),
                        group_key,
                        pooled: None,
                    }
                }
                Upstream::Url {
                    tls,
                    host,
                    port,
                    base_path,
                } => {
                    let sni = p.tls.sni.clone().unwrap_or_else(|| host.clone());
                    let at = UrlParts {
                        tls: *tls,
                        host,
                        port: *port,
                        base_path,
                    };
                    url_endpoint(&p.name, at, (sni, group_key), p.pool.as_ref(), config)
                }
            };
            endpoints.insert(p.name.clone(), ep);
        }
        for m in &config.mcp.servers {
            let key = mcp_key(&m.name);
            let mut hasher = DefaultHasher::new();
            key.hash(&mut hasher);
            let ep = match &m.upstream {
                Upstream::Url {
                    tls,
                    host,
                    port,
                    base_path,
                } => {
                    let at = UrlParts {
                        tls: *tls,
                        host,
                        port: *port,
                        base_path,
                    };
                    url_endpoint(&key, at, (host.clone(), hasher.finish()), None, config)
                }
                Upstream::BuiltinMock => continue,
            };
            endpoints.insert(key, ep);
        }
        Upstreams { endpoints }
    }

    /// A request to an MCP server's API: its peer (with the server's timeouts) and a header
    /// for `method` at `path_and_query` below its base URL, with its host.
    pub fn mcp_request(
        &self,
        server: &McpServer,
        method: &http::Method,
        path_and_query: &str,
    ) -> Result<(Box<HttpPeer>, RequestHeader), GatewayError> {
        let ep = self
            .endpoints
            .get(&mcp_key(&server.name))
            .ok_or(GatewayError::Internal)?;
        let addr = ep.next_addr()?;
        let mut peer = HttpPeer::new(addr, ep.tls, ep.sni.clone());
        peer.options.connection_timeout = Some(server.connect_timeout);
        peer.options.read_timeout = Some(server.timeout);
        peer.options.write_timeout = Some(server.timeout);
        peer.options.idle_timeout = Some(POOL_IDLE);
        peer.group_key = ep.group_key;
        let mut uri = format!("{}{path_and_query}", ep.base_path);
        if !uri.starts_with('/') {
            uri.insert(0, '/');
        }
        let mut req = RequestHeader::build(method.clone(), uri.as_bytes(), None)
            .map_err(|_| GatewayError::Internal)?;
        req.insert_header("host", &ep.host_header)
            .map_err(|_| GatewayError::Internal)?;
        Ok((Box::new(peer), req))
    }

    /// A pooled provider's replicas and picker, as now.
    pub fn pooled(&self, provider: &str) -> Option<Arc<pool::Pooled>> {
        let ep = self.endpoints.get(provider)?;
        ep.pooled.as_ref().map(ArcSwap::load_full)
    }

    /// The endpoints whose host is a name, by provider.
    pub fn named_hosts(&self) -> impl Iterator<Item = (&str, &Endpoint)> {
        self.endpoints
            .iter()
            .filter(|(_, ep)| ep.named)
            .map(|(name, ep)| (name.as_str(), ep))
    }

    /// The peer for one attempt at `target`: the provider's addresses take turns.
    pub fn peer(&self, target: &Target) -> Result<Box<HttpPeer>, GatewayError> {
        let ep = self
            .endpoints
            .get(&target.provider.name)
            .ok_or(GatewayError::Internal)?;
        Ok(Self::peer_at(ep, ep.next_addr()?, target))
    }

    /// The peer for one attempt at `target` carrying `body`: a pooled provider's replica is
    /// picked ([`pool`]), and the pick is held for the attempt; other providers' addresses
    /// take turns.
    pub fn peer_for(
        &self,
        target: &Target,
        body: &[u8],
        client_headers: &http::HeaderMap,
    ) -> Result<(Box<HttpPeer>, Option<pool::Picked>), GatewayError> {
        let ep = self
            .endpoints
            .get(&target.provider.name)
            .ok_or(GatewayError::Internal)?;
        let Some(pooled) = &ep.pooled else {
            return Ok((Self::peer_at(ep, ep.next_addr()?, target), None));
        };
        let pooled = pooled.load_full();
        let (addr, picked) = pool::pick(&pooled, body, &target.model, client_headers)
            .ok_or(GatewayError::UpstreamConnect)?;
        Ok((Self::peer_at(ep, addr, target), Some(picked)))
    }

    /// The peer for `target` at one of its addresses (a pooled replica's health check).
    pub fn peer_to(
        &self,
        target: &Target,
        addr: SocketAddr,
    ) -> Result<Box<HttpPeer>, GatewayError> {
        let ep = self
            .endpoints
            .get(&target.provider.name)
            .ok_or(GatewayError::Internal)?;
        Ok(Self::peer_at(ep, addr, target))
    }

    fn peer_at(ep: &Endpoint, addr: SocketAddr, target: &Target) -> Box<HttpPeer> {
        let mut peer = HttpPeer::new(addr, ep.tls, ep.sni.clone());
        let p: &Provider = &target.provider;
        peer.options.connection_timeout = Some(p.connect_timeout);
        // Per read. Streams run through the forwarder, which applies the first-byte, idle and
        // total timeouts exactly; for the others a read waits the longer of the first two.
        peer.options.read_timeout = Some(p.first_byte_timeout.max(p.idle_timeout));
        peer.options.write_timeout = Some(p.read_timeout);
        peer.options.idle_timeout = Some(POOL_IDLE);
        peer.options.ca = p.tls.ca.clone();
        if p.tls.http2 {
            // Over TLS, ALPN decides; in plain text, h2 is spoken with prior knowledge (h2c).
            peer.options.alpn = if ep.tls { ALPN::H2H1 } else { ALPN::H2 };
            peer.options.max_h2_streams = H2_STREAMS;
        }
        peer.group_key = ep.group_key;
        Box::new(peer)
    }

    /// A gateway-made `POST` below a provider's base URL (the moderation hook): its peer and
    /// header, with the provider's host, key and headers.
    pub fn side_request(
        &self,
        provider: &Arc<Provider>,
        path: &str,
        body_len: usize,
    ) -> Result<(Box<HttpPeer>, RequestHeader), GatewayError> {
        let target = Target::side(provider);
        let peer = self.peer(&target)?;
        let ep = self
            .endpoints
            .get(&provider.name)
            .ok_or(GatewayError::Internal)?;
        let uri = format!("{}{path}", ep.base_path);
        let build = || -> Result<RequestHeader, Box<Error>> {
            let mut req = RequestHeader::build("POST", uri.as_bytes(), None)?;
            req.insert_header("host", &ep.host_header)?;
            req.insert_header("content-type", "application/json")?;
            req.insert_header("content-length", body_len.to_string())?;
            req.insert_header("user-agent", "tollgate-guardrails")?;
            if let Some(key) = &provider.api_key {
                let (name, value) = provider.kind.key_header(key);
                req.insert_header(name, value)?;
            }
            for (k, v) in &provider.headers {
                req.insert_header(k.clone(), v.clone())?;
            }
            Ok(req)
        };
        let req = build().map_err(|_| GatewayError::Internal)?;
        Ok((peer, req))
    }

    /// Turn the client's request header into the one `target` receives.
    pub fn prepare_request(
        &self,
        req: &mut RequestHeader,
        target: &Target,
        operation: Operation,
        stream: bool,
        body_len: usize,
        request_id: &str,
    ) -> Result<(), Box<Error>> {
        let ep = self
            .endpoints
            .get(&target.provider.name)
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "provider has no endpoint"))?;
        let p: &Provider = &target.provider;
        headers::keep_client_headers(req, p);
        let path = upstream_path(p, &ep.base_path, &target.model, operation, stream);
        let uri = path
            .parse()
            .map_err(|_| Error::explain(ErrorType::InternalError, "bad upstream path"))?;
        req.set_uri(uri);
        req.set_method(http::Method::POST);
        req.insert_header("host", &ep.host_header)?;
        req.insert_header("content-length", body_len.to_string())?;
        req.insert_header("content-type", "application/json")?;
        req.insert_header("accept-encoding", "identity")?;
        req.insert_header("x-request-id", request_id)?;
        // A client speaking Anthropic chose its version (and betas); others get ours.
        if p.kind == ProviderKind::Anthropic && req.headers.get("anthropic-version").is_none() {
            req.insert_header("anthropic-version", &p.anthropic_version)?;
        }
        if let Some(key) = &p.api_key {
            let (name, value) = p.kind.key_header(key);
            req.insert_header(name, value)?;
        }
        for (k, v) in &target.provider.headers {
            req.insert_header(k.clone(), v.clone())?;
        }
        Ok(())
    }
}

/// The path below `base_path` that serves `operation` for `model` at provider `p`.
fn upstream_path(
    p: &Provider,
    base_path: &str,
    model: &str,
    operation: Operation,
    stream: bool,
) -> String {
    let operation = operation.served_by(p.wire_for(operation));
    match (p.kind, &p.api_version) {
        (ProviderKind::Azure, Some(version)) => format!(
            "{base_path}/openai/deployments/{model}{}?api-version={version}",
            operation.upstream_path()
        ),
        (ProviderKind::Gemini, _) => {
            let model = percent_encode_segment(model);
            if stream {
                format!("{base_path}/models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("{base_path}/models/{model}:generateContent")
            }
        }
        _ => format!("{base_path}{}", operation.upstream_path()),
    }
}

/// A model name as one path segment: bytes outside RFC 3986's unreserved set and `@=,+`
/// are percent-encoded.
fn percent_encode_segment(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    const SEGMENT: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'@')
        .remove(b'=')
        .remove(b',')
        .remove(b'+');
    utf8_percent_encode(s, SEGMENT).to_string()
}
