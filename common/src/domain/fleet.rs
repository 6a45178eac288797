//! The consumer registry: each consumer announces itself (queues, slots, busy slots, its
//! venv cache) every heartbeat and withdraws when it stops, so the API can show the fleet
//! without reaching into the pods.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use crate::db::DbError;

/// What a consumer says about itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsumerInfo {
    /// `consumer.worker_id` (the pod name).
    pub worker_id: String,
    /// Queues it consumes.
    pub queues: Vec<String>,
    /// Runs it executes at once.
    pub slots: i32,
    /// Slots executing a run now.
    pub busy: i32,
    /// Venvs in its cache.
    pub venv_entries: i32,
    /// Bytes its venv cache holds.
    pub venv_bytes: i64,
    /// Its build version.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Seconds between its announcements.
    pub every_seconds: i32,
}

/// A consumer as the registry shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsumerEntry {
    /// What it said last.
    #[serde(flatten)]
    pub info: ConsumerInfo,
    /// When it said it (Postgres clock).
    pub seen_at: DateTime<Utc>,
    /// Seconds since then.
    pub seen_seconds_ago: f64,
    /// False when it has missed [`STALE_ANNOUNCEMENTS`] announcements: most likely it died
    /// without withdrawing (kill -9, node lost).
    pub alive: bool,
}

/// Announcements a consumer may miss before it is shown as not alive.
pub const STALE_ANNOUNCEMENTS: f64 = 3.0;

/// Records (or refreshes) `info`.
pub async fn announce(client: &impl GenericClient, info: &ConsumerInfo) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO consumers (worker_id, queues, slots, busy, venv_entries, venv_bytes,
                                    version, started_at, every_seconds, seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
             ON CONFLICT (worker_id) DO UPDATE SET queues = EXCLUDED.queues,
                 slots = EXCLUDED.slots, busy = EXCLUDED.busy,
                 venv_entries = EXCLUDED.venv_entries, venv_bytes = EXCLUDED.venv_bytes,
                 version = EXCLUDED.version, started_at = EXCLUDED.started_at,
                 every_seconds = EXCLUDED.every_seconds, seen_at = now()",
            &[
                &info.worker_id,
                &info.queues,
                &info.slots,
                &info.busy,
                &info.venv_entries,
                &info.venv_bytes,
                &info.version,
                &info.started_at,
                &info.every_seconds,
            ],
        )
        .await?;
    Ok(())
}

/// Removes `worker_id` (a consumer that stopped cleanly).
pub async fn withdraw(client: &impl GenericClient, worker_id: &str) -> Result<(), DbError> {
    client
        .execute("DELETE FROM consumers WHERE worker_id = $1", &[&worker_id])
        .await?;
    Ok(())
}

/// Every consumer seen within `within_seconds`, by worker id. (A StatefulSet pod keeps
/// its name, so a restarted consumer refreshes its old row rather than adding one.)
pub async fn list(
    client: &impl GenericClient,
    within_seconds: f64,
) -> Result<Vec<ConsumerEntry>, DbError> {
    let rows = client
        .query(
            "SELECT worker_id, queues, slots, busy, venv_entries, venv_bytes, version,
                    started_at, every_seconds, seen_at,
                    extract(epoch FROM now() - seen_at)::float8
               FROM consumers WHERE seen_at > now() - make_interval(secs => $1)
              ORDER BY worker_id",
            &[&within_seconds],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let every: i32 = r.get(8);
            let ago: f64 = r.get(10);
            ConsumerEntry {
                info: ConsumerInfo {
                    worker_id: r.get(0),
                    queues: r.get(1),
                    slots: r.get(2),
                    busy: r.get(3),
                    venv_entries: r.get(4),
                    venv_bytes: r.get(5),
                    version: r.get(6),
                    started_at: r.get(7),
                    every_seconds: every,
                },
                seen_at: r.get(9),
                seen_seconds_ago: ago,
                // One extra second for the round trip of a late announcement.
                alive: ago <= STALE_ANNOUNCEMENTS * f64::from(every) + 1.0,
            }
        })
        .collect())
}
