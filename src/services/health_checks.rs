//! Active health checks: for each provider with a `health_check`, a `GET` on an interval. A
//! failure (connect error, timeout, or an unexpected status) takes the provider out of
//! rotation until a check succeeds; the state is the same as passive health's
//! ([`super::health::ProviderHealth`]), so routing treats both alike.

use crate::config::{Provider, Target, Upstream};
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct ActiveHealth {
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub connector: Connector,
}

/// How often the service looks for due checks.
const TICK: Duration = Duration::from_millis(50);

impl ActiveHealth {
    /// One check: whether the provider answered `expected_status` in time.
    async fn check(&self, runtime: &Runtime, p: &Arc<Provider>) -> Result<(), String> {
        let Some(hc) = &p.health_check else {
            return Ok(());
        };
        let target = Target {
            provider: Arc::clone(p),
            model: String::new(),
            weight: 1,
            context_window: None,
        };
        let peer = runtime.upstreams.peer(&target).map_err(|e| e.to_string())?;
        let (host, base) = match &p.upstream {
            Upstream::Url {
                host, base_path, ..
            } => (host.clone(), base_path.clone()),
            Upstream::BuiltinMock => ("127.0.0.1".to_string(), "/v1".to_string()),
        };
        let mut req = RequestHeader::build("GET", format!("{base}{}", hc.path).as_bytes(), None)
            .map_err(|e| e.to_string())?;
        let header_error = |e: Box<pingora::Error>| e.to_string();
        req.insert_header("host", host).map_err(header_error)?;
        req.insert_header("user-agent", "tollgate-health-check")
            .map_err(header_error)?;
        if let Some(key) = &p.api_key {
            // The key is the provider's, checked at config load; never in the error text.
            req.insert_header("authorization", format!("Bearer {}", key.expose()))
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
        match tokio::time::timeout(hc.timeout, exchange).await {
            Ok(Ok(status)) if status == hc.expected_status => Ok(()),
            Ok(Ok(status)) => Err(format!("status {status}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", hc.timeout)),
        }
    }
}

#[async_trait]
impl BackgroundService for ActiveHealth {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut next_due: HashMap<String, Instant> = HashMap::new();
        let mut last_ok: HashMap<String, bool> = HashMap::new();
        loop {
            let runtime = self.runtime.load_full();
            let now = Instant::now();
            for p in &runtime.config.providers {
                let Some(hc) = &p.health_check else { continue };
                if next_due.get(&p.name).is_some_and(|t| now < *t) {
                    continue;
                }
                next_due.insert(p.name.clone(), now + hc.interval);
                let result = self.check(&runtime, p).await;
                let ok = result.is_ok();
                if last_ok.insert(p.name.clone(), ok) != Some(ok) {
                    match &result {
                        Ok(()) => log::info!("health check: provider {} is up", p.name),
                        Err(e) => log::warn!("health check: provider {} is down ({e})", p.name),
                    }
                }
                // Down until the next verdict can arrive (interval + its timeout + a tick),
                // so passive probing does not reopen it between checks.
                p.health
                    .mark(ok, hc.interval + hc.timeout + TICK, Instant::now());
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
