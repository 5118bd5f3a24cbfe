//! The `interbank` binary: parses the flags and hands them to [`cli`]; nothing else lives here.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// The allocator: the stream reader allocates per reply field, and mimalloc makes that cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::args::Cli::parse();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("interbank: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
