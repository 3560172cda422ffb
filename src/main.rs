//! The `tollgate` binary: command line, config loading, and running the server.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use tollgate::{auth, config, server};

/// An AI gateway on Pingora.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Config file (TOML). Default: conf/tollgate.toml if present, else the built-in quick start.
    #[arg(short = 'c', long = "conf")]
    conf: Option<PathBuf>,
    /// Check the config, print every error, and exit.
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Run in the background (Pingora daemon mode).
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    /// Take over the listeners of a running instance (Pingora graceful upgrade).
    #[arg(short = 'u', long = "upgrade")]
    upgrade: bool,
    /// Mint a client key and print the line to paste into a consumer's `keys`.
    #[arg(long = "new-key")]
    new_key: bool,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Manage the client keys of a running gateway (its admin API).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        /// The admin listener [env TOLLGATE_ADMIN_URL, default http://127.0.0.1:9090].
        #[arg(long, global = true)]
        admin: Option<String>,
        /// The admin token [env TOLLGATE_ADMIN_TOKEN].
        #[arg(long, global = true)]
        token: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
enum KeysAction {
    /// Create a key for a consumer; its secret is printed once.
    Create {
        #[arg(long)]
        consumer: String,
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated models the key narrows its consumer to.
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// Seconds until the key expires.
        #[arg(long)]
        expires_in: Option<i64>,
    },
    /// List keys (API-created and, read-only, the config file's).
    List {
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Give a key a new secret; the old one works for the grace period.
    Rotate {
        id: String,
        #[arg(long, default_value_t = 0)]
        grace_seconds: i64,
    },
    /// Revoke a key.
    Revoke { id: String },
}

/// `tollgate keys ...`: talk to a running gateway's admin API.
fn keys_command(
    action: &KeysAction,
    admin: Option<String>,
    token: Option<String>,
    json: bool,
) -> ExitCode {
    use tollgate::auth::keys::cli::{run, Command};
    let admin = admin
        .or_else(|| std::env::var("TOLLGATE_ADMIN_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:9090".into());
    let token = token.or_else(|| std::env::var("TOLLGATE_ADMIN_TOKEN").ok());
    let command = match action {
        KeysAction::Create {
            consumer,
            name,
            models,
            expires_in,
        } => Command::Create {
            consumer: consumer.clone(),
            name: name.clone(),
            models: models.clone(),
            expires_at: expires_in.map(|s| tollgate::feedback::budget::now_s() + s),
        },
        KeysAction::List { consumer } => Command::List {
            consumer: consumer.clone(),
        },
        KeysAction::Rotate { id, grace_seconds } => Command::Rotate {
            id: id.clone(),
            grace_seconds: *grace_seconds,
        },
        KeysAction::Revoke { id } => Command::Revoke { id: id.clone() },
    };
    match run(&command, &admin, token.as_deref(), json) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate keys: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The config file to use (`None`: the built-in quick start) and its contents.
fn load(cli: &Cli) -> Result<(Option<PathBuf>, config::Config), config::ConfigError> {
    let default = PathBuf::from("conf/tollgate.toml");
    let path = match &cli.conf {
        Some(path) => Some(path.clone()),
        None if default.exists() => Some(default),
        None => None,
    };
    let config = match &path {
        Some(p) => config::load(p)?,
        None => config::parse(tollgate::EMBEDDED_CONFIG)?,
    };
    // Reloads re-read the file from wherever the process runs (`-d` changes directory).
    let path = path.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
    Ok((path, config))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::Keys {
        action,
        admin,
        token,
        json,
    }) = &cli.command
    {
        return keys_command(action, admin.clone(), token.clone(), *json);
    }
    if cli.new_key {
        let (key, line) = auth::new_key();
        println!("client key (give to the application, shown once): {key}");
        println!("config line (add to a consumer's keys):           \"{line}\"");
        return ExitCode::SUCCESS;
    }
    let (path, config) = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tollgate: configuration is invalid:");
            for line in &e.errors {
                eprintln!("  - {line}");
            }
            return ExitCode::FAILURE;
        }
    };
    let source = path
        .as_ref()
        .map_or("built-in quick start".into(), |p| p.display().to_string());
    if cli.test {
        println!(
            "tollgate: configuration {source} is valid ({} providers, {} models, {} consumers)",
            config.providers.len(),
            config.models.len(),
            config.consumers.len()
        );
        return ExitCode::SUCCESS;
    }
    env_logger::Builder::new()
        .filter_level(config.log.level)
        .parse_env("RUST_LOG")
        .init();
    log::info!(
        "tollgate starting with {source}: api on {}{}, admin on {}",
        config.server.listen,
        config
            .server
            .tls
            .as_ref()
            .map_or(String::new(), |t| format!(", https on {}", t.listen)),
        config.server.admin_listen
    );
    let opt = pingora::server::configuration::Opt {
        upgrade: cli.upgrade,
        daemon: cli.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    match server::build_server(config, path, opt) {
        Ok(server) => server.run_forever(),
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::FAILURE
        }
    }
}
