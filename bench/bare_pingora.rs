//! The floor: a Pingora 0.9 proxy with no gateway in it — one `ProxyHttp` whose
//! `upstream_peer` returns one fixed plain-HTTP peer and whose other phases are Pingora's
//! defaults, on one worker thread, with Pingora's pooled upstream keep-alive.
//!
//! It answers "what does Pingora itself cost per request here?", so the gateway's own cost
//! can be read as Tollgate minus this, side by side with nginx in one run:
//!
//!   cargo build --release --example bare_pingora
//!   BARE_LISTEN=127.0.0.1:18500 BARE_UPSTREAM=127.0.0.1:18000 target/release/examples/bare_pingora
//!
//! Not part of the gateway; nothing in `src/` uses it.
#![allow(
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a benchmark fixture: a bad address is a failed run"
)]

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let listen = std::env::var("BARE_LISTEN").unwrap_or_else(|_| "127.0.0.1:18500".into());
    let upstream: SocketAddr = std::env::var("BARE_UPSTREAM")
        .unwrap_or_else(|_| "127.0.0.1:18000".into())
        .parse()
        .expect("BARE_UPSTREAM is host:port");
    let conf = ServerConf {
        threads: 1,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
