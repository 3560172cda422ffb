//! `tollgate-mock`: the mock LLM upstream as a standalone server (OpenAI JSON and SSE with
//! timing and scripted faults; see `tollgate::mock::script`).

use clap::Parser;
use std::process::ExitCode;
use tollgate::mock::{self, script::Script};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A mock OpenAI-compatible upstream with timing and scripted faults"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: String,
    /// Default script for every request, e.g. "ttft_ms=200,itl_ms=20,tokens=64".
    #[arg(long, default_value = "")]
    script: String,
    /// Serve as one replica of a self-hosted fleet: a prefix cache, a prefill queue and a
    /// vLLM-style `/metrics`, e.g. "prefill_tok_s=20000,cache_tokens=65536,fixed_ms=5"
    /// ("" for the defaults).
    #[arg(long)]
    replica: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut defaults = Script::default();
    if let Err(e) = defaults.apply(&cli.script) {
        eprintln!("tollgate-mock: --script: {e}");
        return ExitCode::FAILURE;
    }
    let engine = match cli
        .replica
        .as_deref()
        .map(mock::replica::EngineSettings::parse)
    {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(e)) => {
            eprintln!("tollgate-mock: --replica: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate-mock: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        match tokio::net::TcpListener::bind(&cli.listen).await {
            Ok(listener) => {
                let at = listener
                    .local_addr()
                    .map_or(cli.listen.clone(), |a| a.to_string());
                // On stdout, for whoever started it with port 0.
                println!("listening on {at}");
                log::info!("tollgate-mock listening on {at}");
                let state = match engine {
                    Some(e) => mock::MockState::replica(defaults, e),
                    None => mock::MockState::new(defaults),
                };
                mock::serve(listener, state).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tollgate-mock: cannot listen on {}: {e}", cli.listen);
                ExitCode::FAILURE
            }
        }
    })
}
