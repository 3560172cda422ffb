//! The background re-resolution of provider host names: every `server.resolve_interval_ms`,
//! each provider's named hosts (its base URL's and a pool's replicas) are resolved again on tokio's blocking pool (with a timeout, so a stuck
//! resolver cannot stop the others) and its endpoint takes the result
//! ([`crate::upstream::Endpoint::update`]: a failure keeps the last good set).

use crate::runtime::Runtime;
use crate::upstream::dns::resolve;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for one background resolution.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Re-resolves every provider's host on an interval.
pub struct Resolver {
    pub runtime: Arc<ArcSwap<Runtime>>,
}

#[async_trait]
impl BackgroundService for Resolver {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let runtime = self.runtime.load_full();
            let interval = runtime.config.server.resolve_interval;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            let runtime = self.runtime.load_full();
            let hosts_file = runtime.config.server.hosts_file.clone();
            for (provider, endpoint) in runtime.upstreams.named_hosts() {
                let mut results = Vec::new();
                for (host, port) in endpoint.sources().iter().cloned() {
                    let file = hosts_file.clone();
                    let lookup =
                        tokio::task::spawn_blocking(move || resolve(&host, port, file.as_deref()));
                    results.push(match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => Err(io::Error::other(e.to_string())),
                        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
                    });
                }
                endpoint.update(provider, results);
            }
        }
    }
}
