//! Providers and targets: `[[providers]]` into [`Provider`] (base URL, key, timeouts, health),
//! and a model's `targets`/`fallbacks` into [`Target`]s.

use super::file::{self, TargetSection};
use super::{HealthCheck, Provider, ProviderKind, Secret, Target, TlsSettings, Upstream};
use http::{HeaderName, HeaderValue};
use pingora::tls::x509::X509;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn build_provider(
    at: &str,
    p: file::ProviderSection,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Vec<String>,
) -> Provider {
    if p.name.is_empty() {
        errs.push(format!("{at}.name must not be empty"));
    }
    let kind = build_kind(at, &p, errs);
    let upstream = match (&p.base_url, kind) {
        (None, ProviderKind::Mock) => Upstream::BuiltinMock,
        (None, _) => {
            errs.push(format!("{at}.base_url is required for kind \"{}\"", p.kind));
            Upstream::BuiltinMock
        }
        (Some(url), _) => match parse_base_url(url) {
            Ok(u) => u,
            Err(why) => {
                errs.push(format!("{at}.base_url {why}"));
                Upstream::BuiltinMock
            }
        },
    };
    let api_key = match &p.api_key_env {
        None => None,
        Some(var) => match env(var) {
            Some(v) if !v.is_empty() => Some(Secret(v)),
            _ => {
                errs.push(format!(
                    "{at}.api_key_env: environment variable {var} is not set"
                ));
                None
            }
        },
    };
    check_timeouts_and_health(at, &p, errs);
    let mut headers = Vec::new();
    for (k, v) in &p.headers {
        match (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            (Ok(name), Ok(value)) => headers.push((name, value)),
            _ => errs.push(format!("{at}.headers.{k} is not a valid HTTP header")),
        }
    }
    let forward_headers = forward_headers(at, &p.forward_headers, errs);
    let tls = build_tls(at, &p, errs);
    // Built even when a field is wrong (the load fails anyway), so its targets still name a
    // known provider and only the root cause is reported.
    let pool = super::pools::build_pool(at, &p, &upstream, errs);
    Provider {
        pool,
        tls,
        anthropic_version: p
            .anthropic_version
            .unwrap_or_else(|| "2023-06-01".to_string()),
        api_version: p.api_version,
        health: crate::feedback::health::HealthSlot::provider(&p.name),
        name: p.name,
        kind,
        upstream,
        api_key,
        connect_timeout: Duration::from_millis(p.connect_timeout_ms),
        read_timeout: Duration::from_millis(p.read_timeout_ms),
        first_byte_timeout: Duration::from_millis(
            p.first_byte_timeout_ms.unwrap_or(p.read_timeout_ms).max(1),
        ),
        idle_timeout: Duration::from_millis(p.idle_timeout_ms.unwrap_or(p.read_timeout_ms).max(1)),
        total_timeout: p.total_timeout_ms.map(|t| Duration::from_millis(t.max(1))),
        first_token_timeout: p
            .first_token_timeout_ms
            .map(|t| Duration::from_millis(t.max(1))),
        prefill: p.prefill || kind == ProviderKind::Anthropic,
        responses: p.responses,
        headers,
        forward_headers,
        health_check: p.health_check.as_ref().map(|hc| HealthCheck {
            path: hc.path.clone(),
            interval: Duration::from_millis(hc.interval_ms.max(1)),
            timeout: Duration::from_millis(hc.timeout_ms.max(1)),
            expected_status: hc.expected_status,
        }),
        outlier: crate::feedback::health::OutlierSettings {
            consecutive_failures: p.outlier.consecutive_failures.max(1),
            base_ejection: Duration::from_millis(p.outlier.base_ejection_ms.max(1)),
            max_ejection: Duration::from_millis(
                p.outlier
                    .max_ejection_ms
                    .max(p.outlier.base_ejection_ms)
                    .max(1),
            ),
        },
    }
}

/// Headers no `forward_headers` list may name: credentials (the gateway injects its own),
/// hop-by-hop headers and the framing the gateway writes itself.
pub fn never_forwarded(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "authorization"
            | "x-api-key"
            | "api-key"
            | "x-goog-api-key"
            | "proxy-authorization"
            | "cookie"
            | "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
    )
}

/// A `forward_headers` list (`at.forward_headers[j]` names a bad entry).
pub(super) fn forward_headers(
    at: &str,
    names: &[String],
    errs: &mut Vec<String>,
) -> Vec<HeaderName> {
    let mut out = Vec::new();
    for (j, h) in names.iter().enumerate() {
        match HeaderName::from_bytes(h.as_bytes()) {
            Ok(name) if never_forwarded(&name) => errs.push(format!(
                "{at}.forward_headers[{j}] `{h}` carries a credential or is the gateway's own and is never forwarded"
            )),
            Ok(name) => out.push(name),
            Err(_) => errs.push(format!(
                "{at}.forward_headers[{j}] `{h}` is not a header name"
            )),
        }
    }
    out
}

/// `kind`, and the version fields that go with it.
fn build_kind(at: &str, p: &file::ProviderSection, errs: &mut Vec<String>) -> ProviderKind {
    let kind = match p.kind.as_str() {
        "openai" => ProviderKind::OpenAi,
        "mock" => ProviderKind::Mock,
        "anthropic" => ProviderKind::Anthropic,
        "azure" => ProviderKind::Azure,
        "gemini" => ProviderKind::Gemini,
        other => {
            errs.push(format!(
                "{at}.kind must be \"openai\", \"anthropic\", \"azure\", \"gemini\" or \"mock\", not \"{other}\""
            ));
            ProviderKind::OpenAi
        }
    };
    match (kind, &p.api_version) {
        (ProviderKind::Azure, None) => {
            errs.push(format!("{at}.api_version is required for kind \"azure\""))
        }
        (ProviderKind::Azure, Some(v))
            if v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
        {
            errs.push(format!("{at}.api_version must look like \"2024-10-21\""))
        }
        (ProviderKind::Azure, _) => {}
        (_, Some(_)) => errs.push(format!("{at}.api_version applies only to kind \"azure\"")),
        (_, None) => {}
    }
    if p.responses && !matches!(kind, ProviderKind::OpenAi | ProviderKind::Mock) {
        errs.push(format!(
            "{at}.responses applies only to kinds \"openai\" and \"mock\" (others are translated)"
        ));
    }
    if p.anthropic_version.is_some() && kind != ProviderKind::Anthropic {
        errs.push(format!(
            "{at}.anthropic_version applies only to kind \"anthropic\""
        ));
    }
    kind
}

/// The timeout, health-check and outlier fields.
fn check_timeouts_and_health(at: &str, p: &file::ProviderSection, errs: &mut Vec<String>) {
    if p.connect_timeout_ms == 0 {
        errs.push(format!("{at}.connect_timeout_ms must be > 0"));
    }
    if p.read_timeout_ms == 0 {
        errs.push(format!("{at}.read_timeout_ms must be > 0"));
    }
    for (field, v) in [
        ("first_byte_timeout_ms", p.first_byte_timeout_ms),
        ("idle_timeout_ms", p.idle_timeout_ms),
        ("total_timeout_ms", p.total_timeout_ms),
        ("first_token_timeout_ms", p.first_token_timeout_ms),
    ] {
        if v == Some(0) {
            errs.push(format!("{at}.{field} must be > 0"));
        }
    }
    if let Some(hc) = &p.health_check {
        if !hc.path.starts_with('/') {
            errs.push(format!("{at}.health_check.path must start with `/`"));
        }
        if hc.interval_ms == 0 || hc.timeout_ms == 0 {
            errs.push(format!(
                "{at}.health_check.interval_ms and timeout_ms must be > 0"
            ));
        }
        if !(100..=599).contains(&hc.expected_status) {
            errs.push(format!(
                "{at}.health_check.expected_status must be an HTTP status"
            ));
        }
    }
    if p.outlier.consecutive_failures == 0 {
        errs.push(format!("{at}.outlier.consecutive_failures must be > 0"));
    }
    if p.outlier.base_ejection_ms == 0 {
        errs.push(format!("{at}.outlier.base_ejection_ms must be > 0"));
    }
    if p.outlier.max_ejection_ms < p.outlier.base_ejection_ms {
        errs.push(format!(
            "{at}.outlier.max_ejection_ms must be >= base_ejection_ms"
        ));
    }
}

fn build_tls(at: &str, p: &file::ProviderSection, errs: &mut Vec<String>) -> TlsSettings {
    let ca = p.tls_ca_file.as_ref().and_then(|path| {
        let pem = std::fs::read(path)
            .map_err(|e| errs.push(format!("{at}.tls_ca_file: cannot read {path}: {e}")))
            .ok()?;
        match X509::stack_from_pem(&pem) {
            Ok(certs) if !certs.is_empty() => Some(Arc::new(certs.into_boxed_slice())),
            _ => {
                errs.push(format!("{at}.tls_ca_file: {path} holds no PEM certificate"));
                None
            }
        }
    });
    if let Some(sni) = &p.tls_sni {
        if sni.is_empty() || sni.contains(|c: char| c.is_whitespace() || c == '/') {
            errs.push(format!("{at}.tls_sni must be a host name, not \"{sni}\""));
        }
    }
    TlsSettings {
        ca,
        sni: p.tls_sni.clone(),
        http2: p.http2,
    }
}

/// Split `http(s)://host[:port][/prefix]` into its parts.
pub(super) fn parse_base_url(url: &str) -> Result<Upstream, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("\"{url}\" is not a valid URL"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("\"{url}\" must start with http:// or https://")),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("\"{url}\" has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if uri.query().is_some() {
        return Err(format!("\"{url}\" must not carry a query string"));
    }
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let base_path = uri.path().trim_end_matches('/').to_string();
    Ok(Upstream::Url {
        tls,
        host,
        port,
        base_path,
    })
}

pub(super) fn build_targets(
    at: &str,
    targets: &[TargetSection],
    providers: &HashMap<&str, &Arc<Provider>>,
    errs: &mut Vec<String>,
) -> Vec<Target> {
    let mut out = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let here = format!("{at}[{i}]");
        if t.weight <= 0 {
            errs.push(format!("{here}.weight must be > 0"));
        } else if t.weight > u32::MAX as i64 {
            errs.push(format!("{here}.weight must be at most {}", u32::MAX));
        }
        if t.model.is_empty() {
            errs.push(format!("{here}.model must not be empty"));
        }
        if t.context_window.is_some_and(|w| w <= 0) {
            errs.push(format!("{here}.context_window must be > 0"));
        }
        match providers.get(t.provider.as_str()) {
            None => errs.push(format!(
                "{here}.provider names unknown provider `{}`",
                t.provider
            )),
            Some(p) => out.push(Target {
                provider: Arc::clone(p),
                model: t.model.clone(),
                health: crate::feedback::health::HealthSlot::deployment(&p.name, &t.model),
                weight: t.weight.clamp(1, u32::MAX as i64) as u32,
                context_window: t.context_window.map(|w| w.max(1) as u64),
                price: t
                    .price
                    .as_ref()
                    .map(|p| super::limits::build_price(&here, p, errs)),
            }),
        }
    }
    out
}
