//! Ending the process as soon as it is drained. On SIGTERM (and after a graceful upgrade's
//! hand-over) Pingora stops accepting and then sleeps its whole grace period before stopping,
//! even with nothing in flight, so `systemctl stop` and every restart paid
//! `grace_period_seconds`. This service waits for that shutdown, then for the requests in
//! flight and the open client connections (idle keep-alive connections close at shutdown) to
//! reach zero, writes out the access log, and ends the process with status 0. The grace period
//! still bounds a drain that does not finish: Pingora's own timer ends the process then.
//! Written by hand: Pingora's shutdown sequence has no hook for it.

use crate::metrics::METRICS;
use crate::telemetry::access_log::AccessLog;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

/// How often the drain looks.
const EVERY: Duration = Duration::from_millis(20);
/// The longest the access log may take to be written out.
const LOG_FLUSH: Duration = Duration::from_secs(2);

pub struct ExitWhenDrained {
    pub access_log: Arc<AccessLog>,
}

#[async_trait]
impl BackgroundService for ExitWhenDrained {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        while METRICS.inflight.get() > 0 || METRICS.client_connections.get() > 0 {
            tokio::time::sleep(EVERY).await;
        }
        log::info!("drained: nothing in flight, no client connection open; exiting");
        self.access_log.flush(LOG_FLUSH);
        #[allow(
            clippy::disallowed_methods,
            reason = "the one exit outside main: Pingora's shutdown would otherwise sleep out its grace period"
        )]
        std::process::exit(0);
    }
}
