//! `runfleet-scheduler`: reads config, sets up logging, runs until SIGTERM.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;
use runfleet_scheduler::SchedulerConfig;

/// runfleet cron scheduler.
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
    let config: SchedulerConfig = match runfleet_common::config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("runfleet-scheduler: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = runfleet_common::telemetry::init(&config.log, "runfleet-scheduler");
    let shutdown = runfleet_common::shutdown::on_signals();
    let result = runfleet_scheduler::run(config, shutdown).await;
    telemetry.shutdown();
    Ok(result?)
}
