//! Config hot reload, on SIGHUP or `POST /admin/reload`.
//!
//! The file is read and checked exactly as `tollgate -t` does; a bad file changes nothing (the
//! error is logged and counted), a good one becomes a new [`Runtime`] swapped in atomically.
//! Requests in flight keep the snapshot they started with; limiter counts live in the
//! process's [`Limiter`], so they carry over. Listeners, threads, the access-log target and
//! `[redis]` are bound at start: a change to them is reported and takes effect at the next
//! restart or graceful upgrade (`systemctl reload`).

use crate::config::{self, Config, Upstream};
use crate::limits::Limiter;
use crate::metrics::METRICS;
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Reloader {
    /// The file to re-read; `None` when running on the built-in quick start.
    path: Option<PathBuf>,
    runtime: Arc<ArcSwap<Runtime>>,
    limiter: Arc<Limiter>,
    builtin_mock: Option<SocketAddr>,
    /// One reload at a time.
    busy: tokio::sync::Mutex<()>,
}

/// A reload that took effect.
#[derive(Debug)]
pub struct Reloaded {
    pub models: usize,
    pub consumers: usize,
    /// Changed settings that wait for a restart or upgrade.
    pub pending_restart: Vec<String>,
}

impl Reloader {
    pub fn new(
        path: Option<PathBuf>,
        runtime: Arc<ArcSwap<Runtime>>,
        limiter: Arc<Limiter>,
        builtin_mock: Option<SocketAddr>,
    ) -> Reloader {
        Reloader {
            path,
            runtime,
            limiter,
            builtin_mock,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// Re-read the config file and swap it in if it is valid. `trigger` is for the log.
    pub async fn reload(&self, trigger: &str) -> Result<Reloaded, Vec<String>> {
        let _one_at_a_time = self.busy.lock().await;
        let result = self.try_reload().await;
        match &result {
            Ok(r) => {
                METRICS.config_reloads.with_label_values(&["ok"]).inc();
                log::info!(
                    "config reloaded ({trigger}): {} models, {} consumers",
                    r.models,
                    r.consumers
                );
                for p in &r.pending_restart {
                    log::warn!("config reload ({trigger}): {p}");
                }
            }
            Err(errors) => {
                METRICS.config_reloads.with_label_values(&["error"]).inc();
                log::error!(
                    "config reload ({trigger}) rejected, the running config stays: {}",
                    errors.join("; ")
                );
            }
        }
        result
    }

    async fn try_reload(&self) -> Result<Reloaded, Vec<String>> {
        let Some(path) = self.path.clone() else {
            return Err(vec![
                "running on the built-in quick start: there is no file to reload".into(),
            ]);
        };
        let config = tokio::task::spawn_blocking(move || config::load(&path))
            .await
            .map_err(|e| vec![format!("reload task failed: {e}")])?
            .map_err(|e| e.errors)?;
        let needs_mock = config
            .providers
            .iter()
            .any(|p| matches!(p.upstream, Upstream::BuiltinMock));
        if needs_mock && self.builtin_mock.is_none() {
            return Err(vec![
                "a provider now uses the built-in mock, which this process did not start; restart to use it".into(),
            ]);
        }
        let current = self.runtime.load_full();
        let pending_restart = bound_at_start(&current.config, &config);
        let (limiter, mock) = (Arc::clone(&self.limiter), self.builtin_mock);
        let (api_keys, health) = (Arc::clone(&current.api_keys), Arc::clone(&current.health));
        let conversations = Arc::clone(&current.conversations);
        // Building resolves provider hosts (blocking DNS): off the async workers.
        let runtime = tokio::task::spawn_blocking(move || {
            Runtime::new(config, mock, &limiter, &api_keys, &health, &conversations)
        })
        .await
        .map_err(|e| vec![format!("reload task failed: {e}")])?;
        let reloaded = Reloaded {
            models: runtime.config.models.len(),
            consumers: runtime.config.consumers.len(),
            pending_restart,
        };
        self.runtime.store(Arc::new(runtime));
        Ok(reloaded)
    }
}

/// Settings fixed at start that differ in the new file.
fn bound_at_start(old: &Config, new: &Config) -> Vec<String> {
    let (o, n) = (&old.server, &new.server);
    let checks = [
        ("server.listen", o.listen != n.listen),
        (
            "keys.state_file",
            old.keys_state_file != new.keys_state_file,
        ),
        (
            "server.tls_listen",
            o.tls.as_ref().map(|t| &t.listen) != n.tls.as_ref().map(|t| &t.listen),
        ),
        ("server.admin_listen", o.admin_listen != n.admin_listen),
        ("server.threads", o.threads != n.threads),
        ("server.pid_file", o.pid_file != n.pid_file),
        ("server.upgrade_sock", o.upgrade_sock != n.upgrade_sock),
        ("log.access_log", old.log.access_log != new.log.access_log),
        (
            "redis",
            old.redis.as_ref().map(|r| (&r.topology, r.sync_interval))
                != new.redis.as_ref().map(|r| (&r.topology, r.sync_interval)),
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(field, _)| {
            format!("{field} changed; it takes effect at the next restart or upgrade")
        })
        .collect()
}

/// Reloads the config on every SIGHUP.
pub struct SighupReload {
    pub reloader: Arc<Reloader>,
}

#[async_trait]
impl BackgroundService for SighupReload {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                return log::error!("cannot listen for SIGHUP, reload only via the admin API: {e}")
            }
        };
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    // The reloader logs and counts the outcome either way.
                    if let Err(errors) = self.reloader.reload("SIGHUP").await {
                        log::debug!("SIGHUP reload refused ({} errors)", errors.len());
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
