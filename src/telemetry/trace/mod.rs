//! OpenTelemetry traces (`[tracing]`): each proxied request is a server span with GenAI
//! semantic-convention attributes, each upstream attempt a client span under it, and the
//! limiter's decision and failovers are its events. W3C `traceparent` is read from clients
//! ([`context`]) and written upstream with the attempt's span id.
//!
//! Spans are made in `logging` ([`crate::request::report`]) and handed to a bounded queue
//! ([`submit`]): the request path never waits on the collector. The exporter service
//! ([`crate::server::services::trace_export`]) batches them into OTLP/HTTP protobuf ([`otlp`]) posts;
//! a full queue or a failed export drops spans, counted in
//! `tollgate_trace_spans_dropped_total{reason}`.

pub mod context;
pub mod otlp;

use crate::metrics::METRICS;
use context::SpanContext;
use once_cell::sync::Lazy;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// Spans waiting for export, at most.
pub const QUEUE_SPANS: usize = 8192;

/// A traced request: its span context, its parent's span id (the client's), when it began,
/// and the events recorded along the way.
#[derive(Debug, Clone)]
pub struct RequestTrace {
    pub context: SpanContext,
    pub parent: Option<[u8; 8]>,
    /// The client's `tracestate`, carried into the spans.
    pub trace_state: String,
    pub start_unix_nanos: u64,
    pub events: Vec<otlp::Event>,
}

impl RequestTrace {
    pub fn start(traceparent: Option<&str>, tracestate: Option<&str>, ratio: f64) -> RequestTrace {
        let (context, parent) = context::start(traceparent, ratio, &mut rand::rng());
        RequestTrace {
            context,
            parent,
            trace_state: tracestate.unwrap_or("").to_string(),
            start_unix_nanos: crate::types::clock::unix_nanos(),
            events: Vec::new(),
        }
    }

    /// Record an event now (only when the trace is sampled: nothing else will read it).
    pub fn event(&mut self, name: &str, attributes: Vec<otlp::KeyValue>) {
        if self.context.sampled {
            self.events.push(otlp::Event {
                time_unix_nano: crate::types::clock::unix_nanos(),
                name: name.to_string(),
                attributes,
            });
        }
    }

    /// The `traceparent` attempt `k` sends upstream.
    pub fn attempt_header(&self, k: usize) -> String {
        self.context
            .child(context::attempt_span_id(self.context.span_id, k))
            .header()
    }
}

struct Queue {
    tx: mpsc::Sender<otlp::Span>,
    rx: Mutex<Option<mpsc::Receiver<otlp::Span>>>,
}

static QUEUE: Lazy<Queue> = Lazy::new(|| {
    let (tx, rx) = mpsc::channel(QUEUE_SPANS);
    Queue {
        tx,
        rx: Mutex::new(Some(rx)),
    }
});

/// Hand spans to the exporter without waiting; a full queue drops them (counted).
pub fn submit(spans: Vec<otlp::Span>) {
    for span in spans {
        if QUEUE.tx.try_send(span).is_err() {
            METRICS
                .trace_spans_dropped
                .with_label_values(&["queue_full"])
                .inc();
        }
    }
}

/// The queue's receiving end, for the one exporter service (`None` once taken).
pub fn take_receiver() -> Option<mpsc::Receiver<otlp::Span>> {
    QUEUE.rx.lock().ok()?.take()
}
