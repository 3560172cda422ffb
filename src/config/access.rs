//! `[access]` and the consumers' `allow_ips` / `deny_ips`: which client addresses may call
//! the API, and which peers are proxies whose `X-Forwarded-For` is believed.

use super::file;
use ipnet::IpNet;
use std::net::IpAddr;

/// Allow and deny CIDR lists: a denied address is refused; with an allow list, so is any
/// address outside it.
#[derive(Debug, Clone, Default)]
pub struct IpRules {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl IpRules {
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        !self.deny.iter().any(|n| n.contains(&ip))
            && (self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip)))
    }

    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`) is matched as the IPv4 one.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The global rules and the trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct AccessSettings {
    pub rules: IpRules,
    pub trusted_proxies: Vec<IpNet>,
    /// Connections from `trusted_proxies` begin with a PROXY protocol (v1 or v2) header.
    pub proxy_protocol: bool,
}

impl AccessSettings {
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = canonical_ip(peer);
        self.trusted_proxies.iter().any(|n| n.contains(&peer))
    }
}

/// A list of CIDRs (a bare address is a /32 or /128), each error naming its entry.
pub fn build_nets(at: &str, list: &[String], errs: &mut Vec<String>) -> Vec<IpNet> {
    let mut out = Vec::new();
    for (i, text) in list.iter().enumerate() {
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
        match net {
            Ok(n) => out.push(n.trunc()),
            Err(_) => errs.push(format!(
                "{at}[{i}] must be an IP address or CIDR like 10.0.0.0/8, not \"{text}\""
            )),
        }
    }
    out
}

pub(super) fn build_access(a: &file::AccessSection, errs: &mut Vec<String>) -> AccessSettings {
    if a.proxy_protocol && a.trusted_proxies.is_empty() {
        errs.push(
            "access.proxy_protocol needs access.trusted_proxies: the load balancers whose PROXY headers are believed"
                .into(),
        );
    }
    AccessSettings {
        rules: IpRules {
            allow: build_nets("access.allow", &a.allow, errs),
            deny: build_nets("access.deny", &a.deny, errs),
        },
        trusted_proxies: build_nets("access.trusted_proxies", &a.trusted_proxies, errs),
        proxy_protocol: a.proxy_protocol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_allow_narrows_and_mapped_v4_matches() {
        let mut errs = Vec::new();
        let rules = IpRules {
            allow: build_nets("a", &["10.0.0.0/8".into(), "::1".into()], &mut errs),
            deny: build_nets("d", &["10.9.0.0/16".into()], &mut errs),
        };
        assert!(errs.is_empty());
        assert!(rules.admits("10.1.2.3".parse().unwrap()));
        assert!(!rules.admits("10.9.2.3".parse().unwrap()));
        assert!(!rules.admits("192.168.1.1".parse().unwrap()));
        assert!(rules.admits("::ffff:10.1.2.3".parse().unwrap()));
        assert!(rules.admits("::1".parse().unwrap()));
        build_nets("x", &["10.0.0.0/33".into(), "nope".into()], &mut errs);
        assert_eq!(errs.len(), 2);
        assert!(errs[0].starts_with("x[0] must be an IP address or CIDR"));
        assert!(IpRules::default().admits("1.2.3.4".parse().unwrap()));
    }
}
