//! `runfleet`: parses the command line and runs it (see the `runfleet_cli` crate).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use runfleet_cli::{Cli, CliError, execute};

#[tokio::main]
async fn main() -> ExitCode {
    match execute(Cli::parse()).await {
        Ok(code) => code,
        Err(CliError(line)) => {
            eprintln!("runfleet: {line}");
            ExitCode::from(2)
        }
    }
}
