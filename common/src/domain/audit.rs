//! The audit log: one row per change accepted through the API (who, which action on what,
//! the answer's status, the trace id).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::access::Caller;
use crate::db::DbPool;
use crate::error::Error;

/// One audited change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Increasing id (pass it as `before` to page back).
    pub id: i64,
    /// When it was answered.
    pub at: DateTime<Utc>,
    /// Token name of the caller.
    pub actor: String,
    /// The caller's role at the time.
    pub role: String,
    /// Method and route template, e.g. `POST /runs/{id}/cancel`.
    pub action: String,
    /// What it acted on: the request path, or the created resource (`run 0190…`).
    pub target: String,
    /// HTTP status of the answer.
    pub status: i32,
    /// Trace id of the request.
    pub trace_id: Option<String>,
}

/// One change to record.
#[derive(Debug, Clone)]
pub struct Change {
    /// Who made it.
    pub caller: Caller,
    /// Method and route template.
    pub action: String,
    /// What it acted on.
    pub target: String,
    /// HTTP status of the answer.
    pub status: u16,
    /// Trace id of the request.
    pub trace_id: Option<String>,
    /// When it was answered (kept when the record is written late).
    pub at: DateTime<Utc>,
}

/// Records one change.
pub async fn record(pool: &DbPool, change: &Change) -> Result<(), Error> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO audit_log (at, actor, role, action, target, status, trace_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &change.at,
                &change.caller.name,
                &change.caller.role.as_str(),
                &change.action,
                &change.target,
                &i32::from(change.status),
                &change.trace_id,
            ],
        )
        .await?;
    Ok(())
}

/// Longest a change's record is retried for when Postgres is away.
pub const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// Records `change`, or, when Postgres cannot take it now, keeps retrying in the
/// background (with backoff, for up to [`RETRY_FOR`]) so an outage does not drop it. The
/// first try is awaited, so a record is normally in place when the answer is sent.
pub async fn record_or_retry(pool: &DbPool, change: Change) {
    let Err(first) = record(pool, &change).await else {
        return;
    };
    tracing::warn!(error = %first, action = change.action, target = change.target,
        "cannot write the audit record yet; retrying in the background");
    let pool = pool.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut backoff = crate::retry::Backoff::new(
            std::time::Duration::from_millis(250),
            std::time::Duration::from_secs(5),
        );
        loop {
            tokio::time::sleep(backoff.next_wait()).await;
            match record(&pool, &change).await {
                Ok(()) => return,
                Err(e) if started.elapsed() >= RETRY_FOR => {
                    // Only after minutes of outage: the change is made, its record is not.
                    tracing::error!(error = %e, actor = change.caller.name, action = change.action,
                        target = change.target, "audit record lost after retrying");
                    return;
                }
                Err(_) => {}
            }
        }
    });
}

/// Newest entries first: at most `limit`, older than id `before`, of `actor` if given.
pub async fn list(
    pool: &DbPool,
    limit: i64,
    before: Option<i64>,
    actor: Option<&str>,
) -> Result<Vec<AuditEntry>, Error> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, at, actor, role, action, target, status, trace_id FROM audit_log
              WHERE ($2::bigint IS NULL OR id < $2) AND ($3::text IS NULL OR actor = $3)
              ORDER BY id DESC LIMIT $1",
            &[&limit, &before, &actor],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AuditEntry {
            id: r.get(0),
            at: r.get(1),
            actor: r.get(2),
            role: r.get(3),
            action: r.get(4),
            target: r.get(5),
            status: r.get(6),
            trace_id: r.get(7),
        })
        .collect())
}
