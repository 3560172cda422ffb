//! Giving memory back after a burst. glibc's malloc keeps freed memory in its arenas, so
//! after 512 streams end the process stays at its peak RSS. Looking every [`EVERY`] at the
//! requests in flight: once they have fallen under a quarter of their most since the last
//! trim (at least [`BURST`]), a burst has ended and glibc is asked to return free pages to
//! the kernel (`malloc_trim`).
//! Only on glibc targets; elsewhere it does nothing. Written by hand: no crate wraps this one
//! call.

use crate::metrics::METRICS;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(500);
/// Requests in flight at once that count as a burst worth trimming after.
const BURST: i64 = 16;

pub struct MemoryTrim;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes a plain integer, touches only the allocator's own state
    // under its own locks, and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[async_trait]
impl BackgroundService for MemoryTrim {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // The most requests in flight seen since the last trim.
        let mut high = 0i64;
        loop {
            let inflight = METRICS.inflight.get();
            high = high.max(inflight);
            if high >= BURST && inflight * 4 < high {
                trim();
                METRICS.memory_trims.inc();
                high = inflight;
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
