//! Name resolution for providers: a host name becomes the set of addresses that share the
//! provider's traffic. Resolution never runs on a request: [`resolve`] runs when a config is
//! built (startup, or a reload's blocking task), and a background service re-resolves every
//! `server.resolve_interval_ms` on tokio's blocking pool
//! ([`crate::server::services::dns`]). A failed or empty re-resolution keeps
//! the last good set.
//!
//! `server.hosts_file` (in `/etc/hosts` format) is read first, at every resolution, then the
//! system resolver (`getaddrinfo`, which honours `/etc/hosts`, DNS and nsswitch).

use crate::metrics::METRICS;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;

/// The addresses of `host:port`, sorted and without duplicates. Blocking.
pub fn resolve(host: &str, port: u16, hosts_file: Option<&Path>) -> io::Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        let from_file = match hosts_file {
            Some(path) => lookup_hosts_file(&std::fs::read_to_string(path)?, host),
            None => Vec::new(),
        };
        if from_file.is_empty() {
            (host, port).to_socket_addrs()?.collect()
        } else {
            from_file
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect()
        }
    };
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    Ok(addrs)
}

/// Every address a hosts-format text gives `host` (names are case-insensitive).
fn lookup_hosts_file(text: &str, host: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let ip: IpAddr = fields.next()?.parse().ok()?;
            fields.any(|n| n.eq_ignore_ascii_case(host)).then_some(ip)
        })
        .collect()
}

/// Record a resolution's result for `provider` (metrics and a log line on change). Returns
/// the addresses to use: the new set, or `None` to keep the last good one.
pub fn settle(
    provider: &str,
    host: &str,
    previous: &[SocketAddr],
    result: io::Result<Vec<SocketAddr>>,
) -> Option<Vec<SocketAddr>> {
    match result {
        Ok(addrs) => {
            METRICS
                .dns_resolutions
                .with_label_values(&[provider, "ok"])
                .inc();
            if addrs.as_slice() == previous {
                return None;
            }
            log::info!("provider {provider}: {host} resolves to {addrs:?}");
            Some(addrs)
        }
        Err(e) => {
            METRICS
                .dns_resolutions
                .with_label_values(&[provider, "error"])
                .inc();
            if previous.is_empty() {
                log::warn!("provider {provider}: cannot resolve {host}: {e}");
            } else {
                log::warn!(
                    "provider {provider}: cannot resolve {host} ({e}); keeping {previous:?}"
                );
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lines_give_every_matching_address() {
        let text =
            "# comment\n127.0.0.2 llm.test other\n\n::1 LLM.test # six\n127.0.0.3 llm.tester\n";
        let found = lookup_hosts_file(text, "llm.test");
        assert_eq!(
            found,
            vec![
                "127.0.0.2".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert!(lookup_hosts_file(text, "absent").is_empty());
    }

    #[test]
    fn literals_need_no_lookup_and_results_are_sorted() {
        assert_eq!(
            resolve("127.0.0.1", 80, None).unwrap(),
            vec!["127.0.0.1:80".parse().unwrap()]
        );
        let dir = std::env::temp_dir().join(format!("tollgate-hosts-{}", std::process::id()));
        std::fs::write(
            &dir,
            "127.0.0.3 a.test\n127.0.0.2 a.test\n127.0.0.2 a.test\n",
        )
        .unwrap();
        assert_eq!(
            resolve("a.test", 8000, Some(&dir)).unwrap(),
            vec![
                "127.0.0.2:8000".parse().unwrap(),
                "127.0.0.3:8000".parse().unwrap()
            ]
        );
        std::fs::remove_file(&dir).unwrap();
    }
}
