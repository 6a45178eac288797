//! `runfleet-consumer`: reads config, sets up logging, runs the worker until SIGTERM.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;
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
    let config: ConsumerConfig = match runfleet_common::config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("runfleet-consumer: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = runfleet_common::telemetry::init(&config.log, "runfleet-consumer");
    let shutdown = runfleet_common::shutdown::on_signals();
    let result = runfleet_consumer::run(config, shutdown).await;
    telemetry.shutdown();
    Ok(result?)
}
