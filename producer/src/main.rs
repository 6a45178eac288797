//! `runfleet-producer`: the API server, and `runfleet-producer migrate`.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use runfleet_producer::ProducerConfig;

/// runfleet API: submit and inspect script runs.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Config file (TOML, YAML or JSON); RUNFLEET_* environment variables override it.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit (idempotent).
    Migrate,
    /// Re-encrypt every script secret with the first key of secrets.keys (after a key
    /// rotation), then exit.
    ReencryptSecrets,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config: ProducerConfig = match runfleet_common::config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("runfleet-producer: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = runfleet_common::telemetry::init(&config.log, "runfleet-producer");
    let result = match args.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let pool = runfleet_common::db::pool(&config.database);
            let applied = runfleet_common::db::migrate(&pool)
                .await
                .context("migration failed")?;
            println!("migrations applied: {applied} (database is up to date)");
            Ok(())
        }
        Command::ReencryptSecrets => {
            let keyring = runfleet_common::secrets::Keyring::from_config(&config.secrets)?
                .context("no key: set RUNFLEET_SECRETS__KEYS (the new key first)")?;
            let pool = runfleet_common::db::pool(&config.database);
            let n = runfleet_common::secrets::reencrypt_all(&pool, &keyring)
                .await
                .context("re-encryption failed; nothing was changed")?;
            println!("re-encrypted {n} secrets with the current key");
            Ok(())
        }
        Command::Serve => {
            let shutdown = runfleet_common::shutdown::on_signals();
            runfleet_producer::run(config, shutdown)
                .await
                .map_err(anyhow::Error::from)
        }
    };
    telemetry.shutdown();
    result
}
