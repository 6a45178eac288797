//! `runfleet-consumer`: reads config, sets up logging, runs the worker until SIGTERM.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;
use runfleet_common::service::Service;
use runfleet_consumer::ConsumerConfig;

/// runfleet worker: runs scripts from RabbitMQ run messages.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Config file (TOML, YAML or JSON); RUNFLEET_* environment variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let service = Service::<ConsumerConfig>::start("runfleet-consumer", args.config.as_deref());
    Ok(service.serve(runfleet_consumer::run).await?)
}
