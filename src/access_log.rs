//! The access log: one JSON line per request, written off the request path.
//!
//! `emit` only queues the line; a dedicated thread writes and flushes, so a slow disk never
//! stalls a worker. The queue is bounded: when it is full, the caller waits instead of the line
//! being dropped (back-pressure beats losing audit lines). Lines never carry keys or bodies.
//!
//! [`AccessLog::reopen`] (on SIGUSR1, for logrotate) travels through the same queue, so every
//! line emitted before it lands in the old file and every line after it in the new one.

use crate::attempt::AttemptEntry;
use crate::config::AccessLogTarget;
use crate::metrics::METRICS;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Serialize;
use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

const QUEUE: usize = 16 * 1024;

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    pub ts: String,
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// The client's address (after trusted proxies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    pub consumer: Option<&'a str>,
    pub model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub upstream_model: Option<&'a str>,
    /// The wire dialect the client spoke (`openai`, `anthropic`).
    pub client_dialect: &'a str,
    /// The dialect of the backend that answered last (absent without an attempt).
    pub upstream_dialect: Option<&'a str>,
    /// The routing rule that chose the targets (absent: the model's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    /// Targets skipped because their context window is too small.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub skipped_targets: &'a [String],
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
    /// Request and response bodies, redacted and capped (`log_payloads` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    pub duration_ms: f64,
    pub outcome: &'a str,
    /// The stream broke off and was finished on another candidate (`continue`, `restart`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_recovery: Option<&'a str>,
}

/// The access-log writer. The output is opened at startup (so errors show then), but the
/// writer thread starts on the first line: Pingora may fork to daemonize after startup, and
/// threads do not survive a fork.
pub struct AccessLog {
    target: AccessLogTarget,
    out: Mutex<Option<Output>>,
    tx: OnceLock<Option<SyncSender<Msg>>>,
}

type Output = Box<dyn Write + Send>;

enum Msg {
    Line(String),
    Reopen,
}

fn open_target(target: &AccessLogTarget) -> std::io::Result<Option<Output>> {
    Ok(match target {
        AccessLogTarget::Off => None,
        AccessLogTarget::Stdout => Some(Box::new(std::io::stdout())),
        AccessLogTarget::File(path) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        )),
    })
}

/// The writer thread: batches lines, writes and flushes; reopens the file when asked.
fn write_loop(mut out: Output, target: AccessLogTarget, rx: std::sync::mpsc::Receiver<Msg>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let flush = |out: &mut Output, buf: &mut Vec<u8>| {
        if let Err(e) = out.write_all(buf).and_then(|_| out.flush()) {
            log::error!("access log write failed: {e}");
        }
        buf.clear();
    };
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(line) => {
                    buf.extend_from_slice(line.as_bytes());
                    buf.push(b'\n');
                }
                Msg::Reopen => {
                    flush(&mut out, &mut buf);
                    match open_target(&target) {
                        Ok(Some(new)) => {
                            out = new;
                            METRICS.access_log_reopens.with_label_values(&["ok"]).inc();
                            log::info!("access log reopened");
                        }
                        Ok(None) => {}
                        Err(e) => {
                            METRICS
                                .access_log_reopens
                                .with_label_values(&["error"])
                                .inc();
                            log::error!(
                                "access log reopen failed, still writing to the old file: {e}"
                            );
                        }
                    }
                }
            }
            if buf.len() < 1024 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        flush(&mut out, &mut buf);
    }
}

impl AccessLog {
    pub fn open(target: &AccessLogTarget) -> std::io::Result<AccessLog> {
        Ok(AccessLog {
            out: Mutex::new(open_target(target)?),
            target: target.clone(),
            tx: OnceLock::new(),
        })
    }

    /// Reopen the log file (after logrotate renamed it). Lines already emitted go to the old
    /// file; later ones to the new.
    pub fn reopen(&self) {
        if !matches!(self.target, AccessLogTarget::File(_)) {
            return;
        }
        if let Some(tx) = self.sender() {
            if tx.send(Msg::Reopen).is_err() {
                log::error!("access log writer has stopped");
            }
        }
    }

    fn sender(&self) -> Option<&SyncSender<Msg>> {
        self.tx
            .get_or_init(|| {
                let out = self.out.lock().ok()?.take()?;
                let (tx, rx) = sync_channel::<Msg>(QUEUE);
                let target = self.target.clone();
                let spawned = std::thread::Builder::new()
                    .name("access-log".into())
                    .spawn(move || write_loop(out, target, rx));
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
        match tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) => {
                if tx.send(msg).is_err() {
                    log::error!("access log writer has stopped");
                }
            }
            Err(TrySendError::Disconnected(_)) => log::error!("access log writer has stopped"),
        }
    }
}

/// Reopens the access log on every SIGUSR1 (logrotate's `postrotate`).
pub struct ReopenOnSigusr1 {
    pub log: Arc<AccessLog>,
}

#[async_trait]
impl BackgroundService for ReopenOnSigusr1 {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut usr1 = match signal(SignalKind::user_defined1()) {
            Ok(s) => s,
            Err(e) => return log::error!("cannot listen for SIGUSR1 (access-log reopen): {e}"),
        };
        loop {
            tokio::select! {
                got = usr1.recv() => match got {
                    Some(()) => self.log.reopen(),
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Now, as RFC 3339 with microseconds (the line's `ts`: when the request finished).
pub fn now_rfc3339() -> String {
    crate::clock::now_rfc3339()
}
