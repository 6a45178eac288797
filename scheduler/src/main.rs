//! `runfleet-scheduler`: reads config, sets up logging, runs until SIGTERM.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;
use runfleet_common::service::Service;
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
    let service = Service::<SchedulerConfig>::start("runfleet-scheduler", args.config.as_deref());
    Ok(service.serve(runfleet_scheduler::run).await?)
}
