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
}

fn load(cli: &Cli) -> Result<(String, config::Config), config::ConfigError> {
    let default = PathBuf::from("conf/tollgate.toml");
    match &cli.conf {
        Some(path) => Ok((path.display().to_string(), config::load(path)?)),
        None if default.exists() => Ok((default.display().to_string(), config::load(&default)?)),
        None => Ok((
            "built-in quick start".into(),
            config::parse(tollgate::EMBEDDED_CONFIG)?,
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.new_key {
        let (key, line) = auth::new_key();
        println!("client key (give to the application, shown once): {key}");
        println!("config line (add to a consumer's keys):           \"{line}\"");
        return ExitCode::SUCCESS;
    }
    let (source, config) = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tollgate: configuration is invalid:");
            for line in &e.errors {
                eprintln!("  - {line}");
            }
            return ExitCode::FAILURE;
        }
    };
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
        "tollgate starting with {source}: api on {}, admin on {}",
        config.server.listen,
        config.server.admin_listen
    );
    let opt = pingora::server::configuration::Opt {
        upgrade: cli.upgrade,
        daemon: cli.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    match server::build_server(config, opt) {
        Ok(server) => server.run_forever(),
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::FAILURE
        }
    }
}
