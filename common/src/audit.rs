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

/// Records one change.
pub async fn record(
    pool: &DbPool,
    caller: &Caller,
    action: &str,
    target: &str,
    status: u16,
    trace_id: Option<&str>,
) -> Result<(), Error> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO audit_log (actor, role, action, target, status, trace_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &caller.name,
                &caller.role.as_str(),
                &action,
                &target,
                &i32::from(status),
                &trace_id,
            ],
        )
        .await?;
    Ok(())
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
