//! The access log: one JSON line per request, written off the request path.
//!
//! `emit` only queues the line; a dedicated thread writes and flushes, so a slow disk never
//! stalls a worker. The queue is bounded: when it is full, the line is written by the caller
//! instead of being dropped (back-pressure beats losing audit lines). Lines never carry keys or
//! bodies.

use crate::config::AccessLogTarget;
use serde::Serialize;
use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};

const QUEUE: usize = 16 * 1024;

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    pub ts: String,
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub consumer: Option<&'a str>,
    pub model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub upstream_model: Option<&'a str>,
    pub status: u16,
    pub stream: bool,
    pub attempts: usize,
    pub attempt_log: &'a [AttemptEntry],
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub usage_source: Option<&'a str>,
    /// From the model's price table, when it has one.
    pub cost_usd: Option<f64>,
    pub ttft_ms: Option<f64>,
    /// Time per output token after the first (streams).
    pub tpot_ms: Option<f64>,
    /// Time spent in the gateway itself (duration minus upstream waits).
    pub overhead_ms: f64,
    pub duration_ms: f64,
    pub outcome: &'a str,
}

/// One upstream attempt within a request.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptEntry {
    pub provider: String,
    pub upstream_model: String,
    /// `ok`, or why the attempt was abandoned (`connect_refused`, `status_503`, ...).
    pub outcome: String,
    pub status: Option<u16>,
}

/// The access-log writer. The output is opened at startup (so errors show then), but the
/// writer thread starts on the first line: Pingora may fork to daemonize after startup, and
/// threads do not survive a fork.
pub struct AccessLog {
    out: Mutex<Option<Box<dyn Write + Send>>>,
    tx: OnceLock<Option<SyncSender<String>>>,
}

impl AccessLog {
    pub fn open(target: &AccessLogTarget) -> std::io::Result<AccessLog> {
        let out: Option<Box<dyn Write + Send>> = match target {
            AccessLogTarget::Off => None,
            AccessLogTarget::Stdout => Some(Box::new(std::io::stdout())),
            AccessLogTarget::File(path) => Some(Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
        };
        Ok(AccessLog {
            out: Mutex::new(out),
            tx: OnceLock::new(),
        })
    }

    fn sender(&self) -> Option<&SyncSender<String>> {
        self.tx
            .get_or_init(|| {
                let mut out = self.out.lock().ok()?.take()?;
                let (tx, rx) = sync_channel::<String>(QUEUE);
                let spawned =
                    std::thread::Builder::new()
                        .name("access-log".into())
                        .spawn(move || {
                            let mut buf = Vec::with_capacity(64 * 1024);
                            while let Ok(line) = rx.recv() {
                                buf.extend_from_slice(line.as_bytes());
                                buf.push(b'\n');
                                while let Ok(more) = rx.try_recv() {
                                    buf.extend_from_slice(more.as_bytes());
                                    buf.push(b'\n');
                                    if buf.len() > 1024 * 1024 {
                                        break;
                                    }
                                }
                                if let Err(e) = out.write_all(&buf).and_then(|_| out.flush()) {
                                    log::error!("access log write failed: {e}");
                                }
                                buf.clear();
                            }
                        });
                match spawned {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        log::error!("access log writer could not start: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }

    pub fn emit(&self, record: &AccessRecord) {
        let Some(tx) = self.sender() else { return };
        let line = match serde_json::to_string(record) {
            Ok(l) => l,
            Err(e) => return log::error!("access log record failed to serialise: {e}"),
        };
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(line)) => {
                if tx.send(line).is_err() {
                    log::error!("access log writer has stopped");
                }
            }
            Err(TrySendError::Disconnected(_)) => log::error!("access log writer has stopped"),
        }
    }
}

/// Now, as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
