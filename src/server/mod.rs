//! Wiring: Pingora's `Server` with the proxy service, the admin service and the background
//! services ([`crate::server::services`]). The top of the module graph: nothing imports it but `main`.

pub mod proxy;
pub mod services;

use crate::admin::Admin;
use crate::auth::keys::KeyStore;
use crate::config::{Config, Upstream};
use crate::edge::{EdgeApp, EdgeSlots};
use crate::limits::sync::{instance_name, StoreSync};
use crate::limits::Limiter;
use crate::mock;
use crate::runtime::conversations::Conversations;
use crate::runtime::reload::{Reloader, SighupReload};
use crate::runtime::Runtime;
use crate::server::proxy::Gateway;
use crate::server::services::store_sync::{KeyChanges, RedisSync};
use crate::telemetry::access_log::{AccessLog, ReopenOnSigusr1};
use crate::telemetry::analytics::Rollups;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot open the access log: {0}")]
    AccessLog(std::io::Error),
    #[error("cannot bind the built-in mock upstream: {0}")]
    Mock(std::io::Error),
    #[error("cannot set up the HTTPS listener: {0}")]
    Tls(Box<pingora::Error>),
    #[error("cannot open the key store: {0}")]
    Keys(String),
}

/// Pingora's process settings from the `[server]` section.
pub fn server_conf(config: &Config) -> ServerConf {
    let s = &config.server;
    ServerConf {
        threads: s.threads,
        pid_file: s.pid_file.clone(),
        upgrade_sock: s.upgrade_sock.clone(),
        grace_period_seconds: Some(s.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(s.graceful_shutdown_timeout_seconds),
        // Not `daemon_wait_for_ready`: in Pingora 0.9.1 the parent installs its SIGUSR1
        // listener only after the fork, so a fast child's signal can kill it (seen under load).
        // The upgrade does not need it: the old process retries the socket hand-over.
        ..ServerConf::default()
    }
}

/// Build the whole server, ready for `run_forever`. `config_path` is the file SIGHUP and
/// `POST /admin/reload` re-read (`None` for the built-in quick start).
pub fn build_server(
    config: Config,
    config_path: Option<PathBuf>,
    opt: Opt,
) -> Result<Server, BuildError> {
    let conf = server_conf(&config);
    let connector = Connector::new(Some(ConnectorOptions::from_server_conf(&conf)));
    let health_connector = Connector::new(Some(ConnectorOptions::from_server_conf(&conf)));
    let trace_connector = Connector::new(Some(ConnectorOptions::from_server_conf(&conf)));
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    // Bootstrap (taking over the listeners during an upgrade) runs as a service after any
    // daemon fork, so `-u -d` tells its parent it is ready before it waits for the sockets.
    let bootstrap = server.bootstrap_as_a_service();
    let mock_addr = builtin_mock(&mut server, &config)?;

    let listen = config.server.listen.clone();
    let tls_listen = config.server.tls.as_ref().map(|t| t.listen.clone());
    let admin_listen = config.server.admin_listen.clone();
    let access_log =
        Arc::new(AccessLog::open(&config.log.access_log).map_err(BuildError::AccessLog)?);
    let limiter = Limiter::for_config(&config);
    let rollups = Arc::new(Rollups::new(config.usage));
    let instance = instance_name();
    let redis = config.redis.clone();
    let api_keys = Arc::new(
        KeyStore::open(config.keys_state_file.clone(), config.redis.as_ref())
            .map_err(BuildError::Keys)?,
    );
    let health = Arc::new(crate::feedback::health::HealthTable::default());
    let conversations = Arc::new(Conversations::new(config.redis.as_ref()));
    let runtime = Arc::new(ArcSwap::from_pointee(Runtime::new(
        config,
        mock_addr,
        &limiter,
        &api_keys,
        &health,
        &conversations,
    )));
    let reloader = Arc::new(Reloader::new(
        config_path,
        Arc::clone(&runtime),
        Arc::clone(&limiter),
        mock_addr,
    ));
    let mcp = Arc::new(crate::mcp::Bridge::new(redis.as_ref()));
    add_background_services(
        &mut server,
        Background {
            mcp: &mcp,
            access_log: &access_log,
            limiter: &limiter,
            redis,
            instance: &instance,
            rollups: &rollups,
            api_keys: &api_keys,
            runtime: &runtime,
            reloader: &reloader,
            health_connector,
            trace_connector,
        },
    );

    let slots = Arc::new(EdgeSlots::default());
    let h2 = crate::edge::h2::options(&runtime.load().config.edge);
    let gateway = Gateway {
        runtime: Arc::clone(&runtime),
        access_log,
        connector,
        usage: Arc::clone(&rollups),
        mcp,
        slots: Arc::clone(&slots),
    };
    let inner = Arc::new({
        let mut proxy = pingora::proxy::http_proxy(&server.configuration, gateway);
        proxy.h2_options = Some(h2);
        proxy
    });
    let listeners = ApiListeners {
        listen,
        tls_listen,
        inner,
        runtime: &runtime,
        slots: &slots,
    };
    listeners.add_to(&mut server, &bootstrap)?;
    let mut admin = Service::new(
        "tollgate admin".into(),
        Admin {
            runtime,
            reloader,
            usage: rollups,
            instance,
        },
    );
    admin.add_tcp(&admin_listen);
    admin.threads = Some(1);
    server.add_service(admin).add_dependency(&bootstrap);
    Ok(server)
}

/// The API listeners: plain HTTP and HTTPS, each an edge in front of the one proxy.
struct ApiListeners<'a, A> {
    listen: String,
    tls_listen: Option<String>,
    inner: Arc<A>,
    runtime: &'a Arc<ArcSwap<Runtime>>,
    slots: &'a Arc<EdgeSlots>,
}

impl<A> ApiListeners<'_, A>
where
    A: pingora::apps::HttpServerApp + pingora::apps::ServerApp + Send + Sync + 'static,
{
    fn add_to(
        self,
        server: &mut Server,
        bootstrap: &pingora::services::ServiceHandle,
    ) -> Result<(), BuildError> {
        let edge_app = |tls: Option<Arc<crate::edge::https::TlsEdge>>| EdgeApp {
            inner: Arc::clone(&self.inner),
            runtime: Arc::clone(self.runtime),
            slots: Arc::clone(self.slots),
            tls,
        };
        if self.listen != "off" {
            let mut proxy = Service::new("tollgate".into(), edge_app(None));
            proxy.add_tcp(&self.listen);
            server.add_service(proxy).add_dependency(bootstrap);
        }
        if let Some(addr) = &self.tls_listen {
            // TLS is accepted by the edge (its deadline, its connection count): a TCP listener.
            let tls = crate::edge::https::TlsEdge::new(Arc::clone(self.runtime)).map_err(|e| {
                BuildError::Tls(pingora::Error::because(
                    pingora::ErrorType::InternalError,
                    "TLS acceptor",
                    e,
                ))
            })?;
            let mut https = Service::new("tollgate https".into(), edge_app(Some(Arc::new(tls))));
            https.add_tcp(addr);
            server.add_service(https).add_dependency(bootstrap);
        }
        Ok(())
    }
}

/// What the background services share with the rest of the server.
struct Background<'a> {
    mcp: &'a Arc<crate::mcp::Bridge>,
    access_log: &'a Arc<AccessLog>,
    limiter: &'a Arc<Limiter>,
    redis: Option<crate::config::RedisSettings>,
    instance: &'a str,
    rollups: &'a Arc<Rollups>,
    api_keys: &'a Arc<KeyStore>,
    runtime: &'a Arc<ArcSwap<Runtime>>,
    reloader: &'a Arc<Reloader>,
    health_connector: Connector,
    trace_connector: Connector,
}

/// Every background service, registered in one place: access-log reopen (SIGUSR1), config
/// reload (SIGHUP), the limit store sync (with `[redis]`), active health checks and provider
/// name re-resolution (always running, idle without work: a reload may add some).
fn add_background_services(server: &mut Server, b: Background<'_>) {
    server.add_service(background_service(
        "exit when drained",
        crate::server::services::drain::ExitWhenDrained {
            access_log: Arc::clone(b.access_log),
        },
    ));
    server.add_service(background_service(
        "access log reopen on SIGUSR1",
        ReopenOnSigusr1 {
            log: Arc::clone(b.access_log),
        },
    ));
    server.add_service(background_service(
        "config reload on SIGHUP",
        SighupReload {
            reloader: Arc::clone(b.reloader),
        },
    ));
    if let Some(redis) = b.redis {
        let wake = Arc::new(tokio::sync::Notify::new());
        let retry = redis.sync_interval.max(std::time::Duration::from_secs(1));
        server.add_service(background_service(
            "mcp legacy SSE relay",
            crate::mcp::relay::RelayListener {
                bridge: Arc::clone(b.mcp),
                retry,
            },
        ));
        server.add_service(background_service(
            "store sync",
            RedisSync {
                limits: StoreSync {
                    limiter: Arc::clone(b.limiter),
                    settings: redis,
                    instance: b.instance.to_string(),
                },
                usage: Arc::clone(b.rollups),
                keys: Arc::clone(b.api_keys),
                wake: Arc::clone(&wake),
            },
        ));
        server.add_service(background_service(
            "key change listener",
            KeyChanges {
                keys: Arc::clone(b.api_keys),
                wake,
                retry,
            },
        ));
    }
    server.add_service(background_service(
        "memory trim after bursts",
        crate::server::services::memory_trim::MemoryTrim,
    ));
    server.add_service(background_service(
        "active health checks",
        crate::server::services::health_checks::ActiveHealth {
            runtime: Arc::clone(b.runtime),
            connector: b.health_connector,
        },
    ));
    server.add_service(background_service(
        "trace export",
        crate::server::services::trace_export::TraceExport {
            runtime: Arc::clone(b.runtime),
            connector: b.trace_connector,
        },
    ));
    server.add_service(background_service(
        "provider name resolution",
        crate::server::services::dns::Resolver {
            runtime: Arc::clone(b.runtime),
        },
    ));
}

/// Bind the built-in mock upstream when a provider uses it; its address.
fn builtin_mock(server: &mut Server, config: &Config) -> Result<Option<SocketAddr>, BuildError> {
    let needs_mock = config
        .providers
        .iter()
        .any(|p| matches!(p.upstream, Upstream::BuiltinMock));
    if !needs_mock {
        return Ok(None);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(BuildError::Mock)?;
    let addr = listener.local_addr().map_err(BuildError::Mock)?;
    listener.set_nonblocking(true).map_err(BuildError::Mock)?;
    server.add_service(background_service(
        "builtin mock upstream",
        BuiltinMock {
            listener: Mutex::new(Some(listener)),
        },
    ));
    Ok(Some(addr))
}

/// The in-process mock upstream serving `kind = "mock"` providers without a `base_url`.
struct BuiltinMock {
    listener: Mutex<Option<std::net::TcpListener>>,
}

#[async_trait]
impl BackgroundService for BuiltinMock {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(std_listener) = self.listener.lock().ok().and_then(|mut l| l.take()) else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => return log::error!("built-in mock upstream cannot start: {e}"),
        };
        let state = mock::MockState::new(mock::script::Script::default());
        tokio::select! {
            _ = mock::serve(listener, state) => {}
            _ = shutdown.changed() => {}
        }
    }
}
