//! `runfleet-producer`: the API server, and `runfleet-producer migrate`.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use runfleet_common::service::Service;
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
    let service = Service::<ProducerConfig>::start("runfleet-producer", args.config.as_deref());
    match args.command.unwrap_or(Command::Serve) {
        Command::Serve => Ok(service.serve(runfleet_producer::run).await?),
        Command::Migrate => service.once(migrate).await,
        Command::ReencryptSecrets => service.once(reencrypt_secrets).await,
    }
}

async fn migrate(config: ProducerConfig) -> anyhow::Result<()> {
    let pool = runfleet_common::db::pool(&config.database);
    let applied = runfleet_common::db::migrate(&pool)
        .await
        .context("migration failed")?;
    println!("migrations applied: {applied} (database is up to date)");
    Ok(())
}

async fn reencrypt_secrets(config: ProducerConfig) -> anyhow::Result<()> {
    let keyring = runfleet_common::secrets::Keyring::from_config(&config.secrets)?
        .context("no key: set RUNFLEET_SECRETS__KEYS (the new key first)")?;
    let pool = runfleet_common::db::pool(&config.database);
    let n = runfleet_common::secrets::reencrypt_all(&pool, &keyring)
        .await
        .context("re-encryption failed; nothing was changed")?;
    println!("re-encrypted {n} secrets with the current key");
    Ok(())
}
