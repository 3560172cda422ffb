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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut defaults = Script::default();
    if let Err(e) = defaults.apply(&cli.script) {
        eprintln!("tollgate-mock: --script: {e}");
        return ExitCode::FAILURE;
    }
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
                log::info!("tollgate-mock listening on {}", cli.listen);
                mock::serve(listener, mock::MockState::new(defaults)).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tollgate-mock: cannot listen on {}: {e}", cli.listen);
                ExitCode::FAILURE
            }
        }
    })
}
