//! The access log: one JSON line per request, written off the request path.
//!
//! `emit` serialises the line and appends it to a shared batch; a dedicated thread writes and
//! flushes the batch. The writer is woken only by the first line of a batch and then waits
//! [`COALESCE`] before taking it, so under load a worker pays one uncontended lock and a copy
//! per line, not a cross-thread wake-up (a channel send per line cost a futex wake and a
//! context switch each). The batch is bounded: when it is full, the caller waits instead of
//! the line being dropped (back-pressure beats losing audit lines). Lines never carry keys
//! or bodies.
//!
//! [`AccessLog::reopen`] (on SIGUSR1, for logrotate) marks its place in the same batch, so
//! every line emitted before it lands in the old file and every line after it in the new one.

use crate::attempt::AttemptEntry;
use crate::config::AccessLogTarget;
use crate::metrics::METRICS;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Serialize;
use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Bytes a batch may hold before emitters wait for the writer.
const MAX_BATCH: usize = 16 * 1024 * 1024;
/// How long the writer lets a batch fill after its first line.
const COALESCE: Duration = Duration::from_millis(5);

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
    /// The `[[routes]]` prefix the request came under, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'a str>,
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
    /// `policy/rule` of every guardrail that fired (any action).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub guardrails: &'a [String],
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
    writer: OnceLock<Option<Arc<Shared>>>,
}

type Output = Box<dyn Write + Send>;

/// Lines waiting for the writer, and where in them the file is to be reopened.
#[derive(Default)]
struct Batch {
    lines: Vec<u8>,
    reopen_at: Vec<usize>,
    /// The writer holds a taken batch it has not finished writing.
    writing: bool,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.reopen_at.is_empty()
    }
}

#[derive(Default)]
struct Shared {
    batch: Mutex<Batch>,
    /// The writer waits here for a batch to begin.
    begun: Condvar,
    /// Emitters wait here while the batch is full.
    room: Condvar,
    /// Signalled when the writer finished a batch ([`AccessLog::flush`] waits here).
    written: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add to the batch (waking the writer if this begins one), waiting while it is full.
    fn add(&self, f: impl FnOnce(&mut Batch)) {
        let mut batch = self.lock();
        while batch.lines.len() > MAX_BATCH {
            batch = self.room.wait(batch).unwrap_or_else(|p| p.into_inner());
        }
        let begins = batch.is_empty();
        f(&mut batch);
        drop(batch);
        if begins {
            self.begun.notify_one();
        }
    }
}

thread_local! {
    /// Each worker's serialisation buffer, reused line after line.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(2048));
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

fn write_out(out: &mut Output, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if let Err(e) = out.write_all(bytes).and_then(|_| out.flush()) {
        log::error!("access log write failed: {e}");
    }
}

fn reopen_output(out: &mut Output, target: &AccessLogTarget) {
    match open_target(target) {
        Ok(Some(new)) => {
            *out = new;
            METRICS.access_log_reopens.with_label_values(&["ok"]).inc();
            log::info!("access log reopened");
        }
        Ok(None) => {}
        Err(e) => {
            METRICS
                .access_log_reopens
                .with_label_values(&["error"])
                .inc();
            log::error!("access log reopen failed, still writing to the old file: {e}");
        }
    }
}

/// The writer thread: waits for a batch to begin, lets it fill for [`COALESCE`], takes it,
/// writes and flushes it, reopening the file where the batch says.
fn write_loop(mut out: Output, target: AccessLogTarget, shared: Arc<Shared>) {
    let mut taken = Batch::default();
    loop {
        {
            let mut batch = shared.lock();
            while batch.is_empty() {
                batch = shared.begun.wait(batch).unwrap_or_else(|p| p.into_inner());
            }
        }
        std::thread::sleep(COALESCE);
        {
            let mut batch = shared.lock();
            std::mem::swap(&mut *batch, &mut taken);
            batch.writing = true;
        }
        shared.room.notify_all();
        let mut from = 0;
        for &at in &taken.reopen_at {
            write_out(&mut out, &taken.lines[from..at]);
            reopen_output(&mut out, &target);
            from = at;
        }
        write_out(&mut out, &taken.lines[from..]);
        taken.lines.clear();
        taken.reopen_at.clear();
        if taken.lines.capacity() > 4 * 1024 * 1024 {
            taken.lines.shrink_to(64 * 1024);
        }
        shared.lock().writing = false;
        shared.written.notify_all();
    }
}

impl AccessLog {
    pub fn open(target: &AccessLogTarget) -> std::io::Result<AccessLog> {
        Ok(AccessLog {
            out: Mutex::new(open_target(target)?),
            target: target.clone(),
            writer: OnceLock::new(),
        })
    }

    /// Reopen the log file (after logrotate renamed it). Lines already emitted go to the old
    /// file; later ones to the new.
    pub fn reopen(&self) {
        if !matches!(self.target, AccessLogTarget::File(_)) {
            return;
        }
        if let Some(w) = self.writer() {
            w.add(|b| {
                let at = b.lines.len();
                b.reopen_at.push(at);
            });
        }
    }

    fn writer(&self) -> Option<&Arc<Shared>> {
        self.writer
            .get_or_init(|| {
                let out = self.out.lock().ok()?.take()?;
                let shared = Arc::new(Shared::default());
                let target = self.target.clone();
                let theirs = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("access-log".into())
                    .spawn(move || write_loop(out, target, theirs));
                match spawned {
                    Ok(_) => Some(shared),
                    Err(e) => {
                        log::error!("access log writer could not start: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Wait until every line emitted so far is written, for at most `within` (the process is
    /// about to end).
    pub fn flush(&self, within: Duration) {
        let Some(Some(w)) = self.writer.get() else {
            return;
        };
        let deadline = std::time::Instant::now() + within;
        let mut batch = w.lock();
        while !batch.is_empty() || batch.writing {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            batch = w
                .written
                .wait_timeout(batch, left)
                .map_or_else(|p| p.into_inner().0, |(b, _)| b);
        }
    }

    pub fn emit<T: Serialize>(&self, record: &T) {
        let Some(w) = self.writer() else { return };
        LINE.with_borrow_mut(|line| {
            line.clear();
            if let Err(e) = serde_json::to_writer(&mut *line, record) {
                return log::error!("access log record failed to serialise: {e}");
            }
            line.push(b'\n');
            w.add(|b| b.lines.extend_from_slice(line));
        });
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
    crate::types::clock::now_rfc3339()
}
