//! The `[server]` and `[log]` sections: listeners, threads, body cap, process files,
//! re-resolution, and the access and process logs.

use super::file;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: String,
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

pub(super) fn build_server(s: file::ServerSection, errs: &mut Vec<String>) -> ServerSettings {
    for (field, value) in [("listen", &s.listen), ("admin_listen", &s.admin_listen)] {
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
