//! Postgres: the connection pool every component uses, and the schema migrations.
//!
//! Migrations are the SQL files in `migrations/`, compiled into the binary and applied in
//! order under an advisory lock, so two `migrate` commands at once (two Helm hook retries,
//! two developers) apply each file once.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::DatabaseConfig;

/// Errors talking to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The pool could not hand out a connection (database down, pool exhausted).
    #[error("cannot reach Postgres (check database.url / RUNFLEET_DATABASE__URL): {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A query failed.
    #[error("Postgres query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// A migration file's contents changed after it was applied.
    #[error(
        "migration {version} ({name}) was changed after it was applied; add a new migration instead"
    )]
    MigrationChanged {
        /// Version number of the changed migration.
        version: i32,
        /// Its file name.
        name: &'static str,
    },
}

impl DbError {
    /// True when Postgres itself is unreachable or went away (pool could not connect, the
    /// connection dropped, the server is shutting down or restarting), as opposed to a
    /// query Postgres answered with an error. Callers answer 503 / retry on these.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Pool(_) => true,
            DbError::Query(e) => {
                if e.is_closed() {
                    return true;
                }
                if let Some(code) = e.code() {
                    // Class 08: connection exception; 57P01-03: admin shutdown, crash
                    // shutdown, cannot connect now (a restart in progress).
                    let code = code.code();
                    return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
                }
                std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            DbError::MigrationChanged { .. } => false,
        }
    }
}

/// A pool of Postgres connections.
pub type DbPool = Pool;

/// Builds the pool; connections are opened lazily, so this succeeds with Postgres down.
pub fn pool(config: &DatabaseConfig) -> DbPool {
    let pg: tokio_postgres::Config = config.url.parse().expect("database.url was validated");
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let timeout = Duration::from_secs(config.connect_timeout_seconds);
    Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .expect("pool with a runtime set builds")
}

/// True when a `SELECT 1` answers.
pub async fn ping(pool: &DbPool) -> bool {
    match pool.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    }
}

/// One versioned SQL file from `migrations/`.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. Add new files here; never edit an applied one.
/// One entry of [`MIGRATIONS`]: the file `migrations/<file>`, compiled in.
macro_rules! migration {
    ($version:expr, $file:literal) => {
        Migration {
            version: $version,
            name: $file,
            sql: include_str!(concat!("../../../migrations/", $file)),
        }
    };
}

const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_runs_and_scripts.sql"),
    migration!(2, "0002_run_venv_signature.sql"),
    migration!(3, "0003_run_heartbeat.sql"),
    migration!(4, "0004_run_cancel.sql"),
    migration!(5, "0005_retries.sql"),
    migration!(6, "0006_tasks_and_schedules.sql"),
    migration!(7, "0007_run_queue_time_and_trace.sql"),
    migration!(8, "0008_tokens_and_audit.sql"),
    migration!(9, "0009_run_limits.sql"),
    migration!(10, "0010_secrets.sql"),
    migration!(11, "0011_consumers_and_live_logs.sql"),
];

/// Applies the migrations not yet applied; returns how many it applied.
pub async fn migrate(pool: &DbPool) -> Result<usize, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // One lock for the whole run: concurrent migrators wait, then find nothing to do.
    tx.execute("SELECT pg_advisory_xact_lock(7262771)", &[])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS runfleet_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             checksum   text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let mut applied = 0;
    for m in MIGRATIONS {
        let checksum = crate::hash::sha256_hex(m.sql.as_bytes());
        let row = tx
            .query_opt(
                "SELECT checksum FROM runfleet_migrations WHERE version = $1",
                &[&m.version],
            )
            .await?;
        match row {
            Some(row) if row.get::<_, String>(0) == checksum => continue,
            Some(_) => {
                return Err(DbError::MigrationChanged {
                    version: m.version,
                    name: m.name,
                });
            }
            None => {
                tx.batch_execute(m.sql).await?;
                tx.execute(
                    "INSERT INTO runfleet_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    &[&m.version, &m.name, &checksum],
                )
                .await?;
                applied += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(applied)
}
