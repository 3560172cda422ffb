//! The `[server]`, `[log]` and `[admin]` sections: listeners, threads, body cap, process
//! files, re-resolution, the access and process logs, and the admin API's tokens.

use super::file;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The plain-HTTP API listener, `"off"` for none.
    pub listen: String,
    /// The HTTPS API listener and where its certificate lives.
    pub tls: Option<TlsListener>,
    pub admin_listen: String,
    pub threads: usize,
    pub max_body_bytes: usize,
    pub pid_file: String,
    pub upgrade_sock: String,
    pub grace_period_seconds: u64,
    pub graceful_shutdown_timeout_seconds: u64,
    pub resolve_interval: Duration,
    pub hosts_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccessLogTarget {
    Stdout,
    Off,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub access_log: AccessLogTarget,
    pub level: log::LevelFilter,
    pub payload_max_bytes: usize,
}

/// The HTTPS listener's address and certificate files.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsListener {
    pub listen: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The HTTPS listener's certificate, loaded when the config is (so a bad one fails the load
/// or the reload, and the old one keeps serving).
pub struct ServerCert {
    pub chain: Vec<pingora::tls::x509::X509>,
    pub key: pingora::tls::pkey::PKey<pingora::tls::pkey::Private>,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerCert({} certificates)", self.chain.len())
    }
}

/// Read and check `tls_cert_file` and `tls_key_file`: a chain, a key, and that they match.
pub(super) fn load_server_cert(t: &TlsListener, errs: &mut Vec<String>) -> Option<ServerCert> {
    use pingora::tls::pkey::PKey;
    use pingora::tls::x509::X509;
    let read = |field: &str, path: &PathBuf, errs: &mut Vec<String>| {
        std::fs::read(path)
            .map_err(|e| {
                errs.push(format!(
                    "server.{field}: cannot read {}: {e}",
                    path.display()
                ))
            })
            .ok()
    };
    let cert_pem = read("tls_cert_file", &t.cert_file, errs);
    let key_pem = read("tls_key_file", &t.key_file, errs);
    let (cert_pem, key_pem) = (cert_pem?, key_pem?);
    let chain = match X509::stack_from_pem(&cert_pem) {
        Ok(c) if !c.is_empty() => c,
        _ => {
            errs.push(format!(
                "server.tls_cert_file: {} holds no PEM certificate",
                t.cert_file.display()
            ));
            return None;
        }
    };
    let Ok(key) = PKey::private_key_from_pem(&key_pem) else {
        errs.push(format!(
            "server.tls_key_file: {} holds no PEM private key",
            t.key_file.display()
        ));
        return None;
    };
    let matches = chain[0]
        .public_key()
        .is_ok_and(|public| public.public_eq(&key));
    if !matches {
        errs.push("server.tls_key_file does not match the certificate in tls_cert_file".into());
        return None;
    }
    Some(ServerCert { chain, key })
}

pub(super) fn build_server(s: file::ServerSection, errs: &mut Vec<String>) -> ServerSettings {
    let tls = match (&s.tls_listen, &s.tls_cert_file, &s.tls_key_file) {
        (None, None, None) => None,
        (Some(listen), Some(cert), Some(key)) => Some(TlsListener {
            listen: listen.clone(),
            cert_file: PathBuf::from(cert),
            key_file: PathBuf::from(key),
        }),
        _ => {
            errs.push("server.tls_listen, tls_cert_file and tls_key_file go together".to_string());
            None
        }
    };
    let plain = s.listen != "off";
    if !plain && tls.is_none() {
        errs.push("server.listen = \"off\" needs server.tls_listen".into());
    }
    let mut addresses = vec![("admin_listen", &s.admin_listen)];
    if plain {
        addresses.push(("listen", &s.listen));
    }
    if let Some(t) = &s.tls_listen {
        addresses.push(("tls_listen", t));
        if t == &s.listen || t == &s.admin_listen {
            errs.push("server.tls_listen must differ from listen and admin_listen".into());
        }
    }
    for (field, value) in addresses {
        if value.parse::<SocketAddr>().is_err() {
            errs.push(format!(
                "server.{field} must be an address like 127.0.0.1:8080, not \"{value}\""
            ));
        }
    }
    if s.listen == s.admin_listen {
        errs.push("server.admin_listen must differ from server.listen".into());
    }
    if s.threads == 0 {
        errs.push("server.threads must be > 0".into());
    }
    if s.max_body_bytes == 0 {
        errs.push("server.max_body_bytes must be > 0".into());
    }
    if s.resolve_interval_ms == 0 {
        errs.push("server.resolve_interval_ms must be > 0".into());
    }
    ServerSettings {
        listen: s.listen,
        tls,
        admin_listen: s.admin_listen,
        threads: s.threads.max(1),
        max_body_bytes: s.max_body_bytes,
        pid_file: s.pid_file,
        upgrade_sock: s.upgrade_sock,
        grace_period_seconds: s.grace_period_seconds,
        graceful_shutdown_timeout_seconds: s.graceful_shutdown_timeout_seconds,
        resolve_interval: Duration::from_millis(s.resolve_interval_ms.max(1)),
        hosts_file: s.hosts_file.map(PathBuf::from),
    }
}

pub(super) fn build_log(l: file::LogSection, errs: &mut Vec<String>) -> LogSettings {
    let access_log = match l.access_log.as_str() {
        "stdout" => AccessLogTarget::Stdout,
        "off" => AccessLogTarget::Off,
        "" => {
            errs.push("log.access_log must be \"stdout\", \"off\" or a file path".into());
            AccessLogTarget::Off
        }
        path => AccessLogTarget::File(PathBuf::from(path)),
    };
    let level = l.level.parse().unwrap_or_else(|_| {
        errs.push(format!(
            "log.level must be one of error, warn, info, debug, trace, not \"{}\"",
            l.level
        ));
        log::LevelFilter::Info
    });
    if l.payload_max_bytes == 0 {
        errs.push("log.payload_max_bytes must be > 0".into());
    }
    LogSettings {
        access_log,
        level,
        payload_max_bytes: l.payload_max_bytes.max(1),
    }
}

/// Who may use the admin API: the SHA-256 digests of its tokens (never the tokens).
#[derive(Debug, Clone, Default)]
pub struct AdminSettings {
    pub token_digests: Vec<[u8; 32]>,
    pub metrics_require_token: bool,
}

impl AdminSettings {
    /// Whether `presented` is one of the tokens (constant time per token).
    pub fn admits(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        let d = crate::types::key_digest::digest(presented);
        self.token_digests
            .iter()
            .fold(false, |ok, t| ok | bool::from(t.ct_eq(&d)))
    }

    pub fn requires_token(&self) -> bool {
        !self.token_digests.is_empty()
    }
}

/// `[admin]`; `admin_listen` is checked here: without a token it must be a loopback address.
pub(super) fn build_admin(
    a: &file::AdminSection,
    admin_listen: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Vec<String>,
) -> AdminSettings {
    let mut token_digests = Vec::new();
    if let Some(var) = &a.token_env {
        match env(var) {
            Some(v) if !v.trim().is_empty() => {
                for token in v.split(|c: char| c == ',' || c.is_whitespace()) {
                    if !token.is_empty() {
                        token_digests.push(crate::types::key_digest::digest(token));
                    }
                }
            }
            _ => errs.push(format!(
                "admin.token_env: environment variable {var} is not set"
            )),
        }
    }
    let loopback = admin_listen
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if a.token_env.is_none() && !loopback {
        errs.push(format!(
            "server.admin_listen `{admin_listen}` is not a loopback address: set [admin] token_env so the admin API requires a token"
        ));
    }
    if a.metrics_require_token && a.token_env.is_none() {
        errs.push("admin.metrics_require_token needs admin.token_env".into());
    }
    AdminSettings {
        token_digests,
        metrics_require_token: a.metrics_require_token,
    }
}
