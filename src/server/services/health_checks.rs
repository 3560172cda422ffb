//! Health probes, one background service:
//! - **active checks**: for each provider with a `health_check`, a `GET` on its interval. A
//!   failure (connect error, timeout, or an unexpected status) takes the provider out of
//!   rotation until a check succeeds. A pool's replicas are checked one by one (at once):
//!   a failing replica sits out its pool's picks until it passes, and the provider is out
//!   only when every replica is.
//! - **recovery probes**: a provider without an active check that passive health ejected is
//!   probed every [`RECOVERY_INTERVAL`] with a light `GET {base_url}/models`; an answer below
//!   500 ends its back-off, so a recovered backend does not wait it out, but it does not put
//!   the provider back: the next request to it is the half-open probe, and that real answer
//!   decides (a provider whose `/models` answers while its chat endpoint fails stays out,
//!   with one real request per interval). A failed probe changes nothing.
//! - **deployment recovery**: a deployment (one upstream model of a provider) that passive
//!   health ejected is probed the same way, with the same rule.
//!
//! The state is passive health's ([`crate::feedback::health::ProviderHealth`]), so routing
//! treats all three alike.

use crate::config::{Provider, Target, Upstream};
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct ActiveHealth {
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub connector: Connector,
}

/// How often the service looks for due checks.
const TICK: Duration = Duration::from_millis(50);

/// How often an ejected provider without an active check is probed.
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(3);

/// How long a recovery probe may take.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(2);

impl ActiveHealth {
    /// One `GET` below the provider's base URL with its key and headers: the status, or why
    /// there was none within `timeout`.
    async fn probe(
        &self,
        runtime: &Runtime,
        p: &Arc<Provider>,
        path: &str,
        timeout: Duration,
        replica: Option<SocketAddr>,
    ) -> Result<u16, String> {
        let target = Target::side(p);
        let peer = match replica {
            Some(addr) => runtime.upstreams.peer_to(&target, addr),
            None => runtime.upstreams.peer(&target),
        }
        .map_err(|e| e.to_string())?;
        let (host, base) = match &p.upstream {
            Upstream::Url {
                host, base_path, ..
            } => (host.clone(), base_path.clone()),
            Upstream::BuiltinMock => ("127.0.0.1".to_string(), "/v1".to_string()),
        };
        let mut req = RequestHeader::build("GET", format!("{base}{path}").as_bytes(), None)
            .map_err(|e| e.to_string())?;
        let header_error = |e: Box<pingora::Error>| e.to_string();
        req.insert_header("host", host).map_err(header_error)?;
        req.insert_header("user-agent", "tollgate-health-check")
            .map_err(header_error)?;
        if let Some(key) = &p.api_key {
            // The key is the provider's, checked at config load; never in the error text.
            let (name, value) = p.kind.key_header(key);
            req.insert_header(name, value)
                .map_err(|_| "the provider key is not a valid header value".to_string())?;
        }
        for (k, v) in &p.headers {
            req.insert_header(k.clone(), v.clone())
                .map_err(header_error)?;
        }
        let exchange = async {
            let (mut s, _) = self.connector.get_http_session(&*peer).await?;
            s.write_request_header(Box::new(req)).await?;
            s.finish_request_body().await?;
            s.read_response_header().await?;
            Ok::<u16, Box<pingora::Error>>(s.response_header().map_or(0, |h| h.status.as_u16()))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    /// The active check of one provider, if it has one and it is due.
    async fn active_check(
        &self,
        runtime: &Runtime,
        p: &Arc<Provider>,
        due: &mut HashMap<String, Instant>,
        last_ok: &mut HashMap<String, bool>,
    ) {
        let Some(hc) = &p.health_check else { return };
        let now = Instant::now();
        if due.get(&p.name).is_some_and(|t| now < *t) {
            return;
        }
        due.insert(p.name.clone(), now + hc.interval);
        let verdict = |r: Result<u16, String>| match r {
            Ok(status) if status == hc.expected_status => Ok(()),
            Ok(status) => Err(format!("status {status}")),
            Err(e) => Err(e),
        };
        // Until the next verdict can arrive (interval + its timeout + a tick), so passive
        // probing does not reopen it between checks.
        let hold = hc.interval + hc.timeout + TICK;
        let result = match runtime.upstreams.pooled(&p.name) {
            Some(pooled) if !pooled.addrs.is_empty() => {
                let checks = pooled.addrs.iter().map(|addr| async move {
                    let r = self
                        .probe(runtime, p, &hc.path, hc.timeout, Some(*addr))
                        .await;
                    (*addr, verdict(r))
                });
                let results = futures_util::future::join_all(checks).await;
                let mut any = Err(String::new());
                for (addr, r) in results {
                    let ok = r.is_ok();
                    let key = format!("{} {addr}", p.name);
                    if last_ok.insert(key, ok) != Some(ok) {
                        match &r {
                            Ok(()) => {
                                log::info!("health check: provider {} replica {addr} is up", p.name)
                            }
                            Err(e) => log::warn!(
                                "health check: provider {} replica {addr} is down ({e})",
                                p.name
                            ),
                        }
                    }
                    pooled.checked(addr, ok, hold.as_secs_f64());
                    any = match (any, r) {
                        (Ok(()), _) | (_, Ok(())) => Ok(()),
                        (Err(_), Err(e)) => Err(e),
                    };
                }
                any.map_err(|e| format!("every replica failed, the last: {e}"))
            }
            _ => verdict(self.probe(runtime, p, &hc.path, hc.timeout, None).await),
        };
        let ok = result.is_ok();
        if last_ok.insert(p.name.clone(), ok) != Some(ok) {
            match &result {
                Ok(()) => log::info!("health check: provider {} is up", p.name),
                Err(e) => log::warn!("health check: provider {} is down ({e})", p.name),
            }
        }
        p.health.mark(ok, hold, Instant::now());
    }

    /// The recovery probe of an ejected provider without an active check, when due.
    async fn recovery_probe(
        &self,
        runtime: &Runtime,
        p: &Arc<Provider>,
        due: &mut HashMap<String, Instant>,
    ) {
        if p.health_check.is_some() || !p.health.is_ejected() {
            due.remove(&p.name);
            return;
        }
        let now = Instant::now();
        // The first probe one interval after the ejection, then every interval.
        let next = *due.entry(p.name.clone()).or_insert(now + RECOVERY_INTERVAL);
        if now < next {
            return;
        }
        due.insert(p.name.clone(), now + RECOVERY_INTERVAL);
        match self
            .probe(runtime, p, "/models", RECOVERY_TIMEOUT, None)
            .await
        {
            Ok(status) if status < 500 => {
                log::info!(
                    "recovery probe: provider {} answered {status}; the next request is its half-open probe",
                    p.name
                );
                p.health.half_open(Instant::now());
            }
            Ok(status) => log::debug!("recovery probe: provider {} answered {status}", p.name),
            Err(e) => log::debug!("recovery probe: provider {}: {e}", p.name),
        }
    }
}

impl ActiveHealth {
    /// The recovery probes of ejected deployments, when due (see the module doc).
    async fn deployment_probes(
        &self,
        runtime: &Runtime,
        due: &mut HashMap<(String, String), Instant>,
    ) {
        let ejected: Vec<&Target> = runtime
            .config
            .models
            .iter()
            .flat_map(|m| {
                let ruled = m.rules.iter().flat_map(|r| r.targets.iter());
                m.targets.iter().chain(&m.fallbacks).chain(ruled)
            })
            .filter(|t| t.health.is_ejected())
            .collect();
        due.retain(|k, _| {
            ejected
                .iter()
                .any(|t| t.provider.name == k.0 && t.model == k.1)
        });
        for t in ejected {
            let key = (t.provider.name.clone(), t.model.clone());
            let now = Instant::now();
            let next = *due.entry(key.clone()).or_insert(now + RECOVERY_INTERVAL);
            if now < next {
                continue;
            }
            due.insert(key, now + RECOVERY_INTERVAL);
            if let Ok(status) = self
                .probe(runtime, &t.provider, "/models", RECOVERY_TIMEOUT, None)
                .await
            {
                if status < 500 {
                    t.health.half_open(Instant::now());
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for ActiveHealth {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut check_due: HashMap<String, Instant> = HashMap::new();
        let mut probe_due: HashMap<String, Instant> = HashMap::new();
        let mut deployment_due: HashMap<(String, String), Instant> = HashMap::new();
        let mut last_ok: HashMap<String, bool> = HashMap::new();
        loop {
            let runtime = self.runtime.load_full();
            for p in &runtime.config.providers {
                self.active_check(&runtime, p, &mut check_due, &mut last_ok)
                    .await;
                self.recovery_probe(&runtime, p, &mut probe_due).await;
            }
            self.deployment_probes(&runtime, &mut deployment_due).await;
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
