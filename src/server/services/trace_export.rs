//! The span exporter: takes spans from the trace queue ([`crate::telemetry::trace::submit`]), batches
//! them (`batch_spans`, or whatever arrived within `flush_interval_ms`) and posts each batch
//! to the collector as OTLP/HTTP protobuf, under the live config's `[tracing]` (a reload may
//! turn it on, move it or turn it off). A batch the collector does not accept within
//! `timeout_ms` is dropped and counted; the request path never waits on any of this.

use crate::config::tracing::TracingSettings;
use crate::metrics::METRICS;
use crate::runtime::Runtime;
use crate::telemetry::trace::otlp;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use std::sync::Arc;
use std::time::Duration;

pub struct TraceExport {
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub connector: Connector,
}

/// How long the exporter waits for spans when tracing is off.
const IDLE: Duration = Duration::from_secs(1);

impl TraceExport {
    async fn post(&self, t: &TracingSettings, body: Vec<u8>) -> Result<u16, String> {
        let addr = tokio::net::lookup_host((t.host.as_str(), t.port))
            .await
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("the collector's name has no address")?;
        let mut peer = HttpPeer::new(addr, t.tls, t.host.clone());
        peer.options.connection_timeout = Some(t.timeout);
        peer.options.read_timeout = Some(t.timeout);
        peer.options.write_timeout = Some(t.timeout);
        let mut req =
            RequestHeader::build("POST", t.path.as_bytes(), None).map_err(|e| e.to_string())?;
        let host = if (t.tls && t.port == 443) || (!t.tls && t.port == 80) {
            t.host.clone()
        } else {
            format!("{}:{}", t.host, t.port)
        };
        let header_error = |e: Box<pingora::Error>| e.to_string();
        req.insert_header("host", host).map_err(header_error)?;
        req.insert_header("content-type", "application/x-protobuf")
            .map_err(header_error)?;
        req.insert_header("content-length", body.len().to_string())
            .map_err(header_error)?;
        req.insert_header("user-agent", "tollgate-otlp")
            .map_err(header_error)?;
        let exchange = async {
            let (mut s, _) = self.connector.get_http_session(&peer).await?;
            s.write_request_header(Box::new(req)).await?;
            s.write_request_body(Bytes::from(body), true).await?;
            s.finish_request_body().await?;
            s.read_response_header().await?;
            let status = s.response_header().map_or(0, |h| h.status.as_u16());
            // Read the (small) answer so the connection can be reused.
            while s.read_response_body().await?.is_some() {}
            self.connector
                .release_http_session(s, &peer, Some(Duration::from_secs(30)))
                .await;
            Ok::<u16, Box<pingora::Error>>(status)
        };
        match tokio::time::timeout(t.timeout, exchange).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", t.timeout)),
        }
    }

    async fn export(&self, t: &TracingSettings, spans: Vec<otlp::Span>) {
        let n = spans.len() as u64;
        let body = otlp::encode(&t.service_name, spans);
        match self.post(t, body).await {
            Ok(status) if (200..300).contains(&status) => METRICS.trace_spans_exported.inc_by(n),
            outcome => {
                log::warn!("trace export of {n} spans failed: {outcome:?}");
                METRICS
                    .trace_spans_dropped
                    .with_label_values(&["export_failed"])
                    .inc_by(n);
            }
        }
    }
}

#[async_trait]
impl BackgroundService for TraceExport {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = crate::telemetry::trace::take_receiver() else {
            return;
        };
        loop {
            let settings = self.runtime.load().config.tracing.clone();
            let (batch_max, window) = settings
                .as_ref()
                .map_or((512, IDLE), |t| (t.batch_spans, t.flush_interval));
            let mut batch = Vec::new();
            let deadline = tokio::time::Instant::now() + window;
            while batch.len() < batch_max {
                tokio::select! {
                    span = rx.recv() => match span {
                        Some(s) => batch.push(s),
                        None => return,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = shutdown.changed() => {
                        if let Some(t) = &settings {
                            while let Ok(s) = rx.try_recv() {
                                batch.push(s);
                            }
                            if !batch.is_empty() {
                                self.export(t, batch).await;
                            }
                        }
                        return;
                    }
                }
            }
            match (&settings, batch.is_empty()) {
                (Some(t), false) => self.export(t, batch).await,
                (None, false) => METRICS
                    .trace_spans_dropped
                    .with_label_values(&["export_failed"])
                    .inc_by(batch.len() as u64),
                (_, true) => {}
            }
        }
    }
}
