//! Who may use the API: bearer tokens with a role.
//!
//! Only a token's SHA-256 is stored. Tokens are 256 random bits, so a fast hash is enough
//! (no password-style stretching); the token itself is returned once, at creation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::DbPool;
use crate::error::Error;
use crate::hash::sha256_hex;

/// What a token may do; each role includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything (runs, logs, scripts, tasks, schedules).
    Viewer,
    /// Also submit, cancel and retry runs, and trigger schedules.
    Operator,
    /// Also change scripts, tasks, schedules and tokens, and read the audit log.
    Admin,
}

impl Role {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role named `s`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Token name (`bootstrap` for the bootstrap token, `anonymous` with auth disabled).
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// A token as the API lists it (never the token itself).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    /// Token id.
    pub id: Uuid,
    /// Unique name, e.g. `ci-deploy`.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// When it was created, and by whom.
    pub created_at: DateTime<Utc>,
    /// The caller that created it.
    pub created_by: String,
    /// Last request made with it (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked token is refused.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new token: the secret is in `token`, shown only now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The token's listing.
    #[serde(flatten)]
    pub info: ApiToken,
    /// The bearer token: send it as `Authorization: Bearer <token>`. It cannot be shown
    /// again.
    pub token: String,
}

/// A fresh random token, `rft_` and 64 hex digits.
pub fn generate_token() -> String {
    format!("rft_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

const COLUMNS: &str = "id, name, role, created_at, created_by, last_used_at, revoked_at";

fn from_row(row: &tokio_postgres::Row) -> ApiToken {
    let role: String = row.get(2);
    ApiToken {
        id: row.get(0),
        name: row.get(1),
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created_at: row.get(3),
        created_by: row.get(4),
        last_used_at: row.get(5),
        revoked_at: row.get(6),
    }
}

fn is_valid_token_name(name: &str) -> bool {
    crate::names::is_valid_task_name(name) && name != "bootstrap" && name != "anonymous"
}

/// Creates a token named `name` with `role`, on behalf of `by`.
pub async fn create(
    pool: &DbPool,
    name: &str,
    role: Role,
    by: &str,
) -> Result<CreatedToken, Error> {
    if !is_valid_token_name(name) {
        return Err(Error::invalid(
            "invalid_name",
            "name",
            "a token name is 1-128 of A-Z a-z 0-9 _ . - (starting with a letter or digit), not 'bootstrap' or 'anonymous'",
        ));
    }
    let token = generate_token();
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO api_tokens (id, name, role, token_sha256, created_by)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &name,
                &role.as_str(),
                &token_hash(&token),
                &by,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Err(Error::Conflict {
            code: "token_name_taken",
            field: "name".into(),
            message: format!("a token named '{name}' exists; pick another name or revoke it first"),
        });
    };
    Ok(CreatedToken {
        info: from_row(&row),
        token,
    })
}

/// Every token, newest first (revoked ones included).
pub async fn list(pool: &DbPool) -> Result<Vec<ApiToken>, Error> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Revokes a token; revoking it again changes nothing.
pub async fn revoke(pool: &DbPool, id: Uuid) -> Result<ApiToken, Error> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!(
                "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
                  WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id],
        )
        .await?;
    row.map(|r| from_row(&r)).ok_or_else(|| Error::NotFound {
        code: "token_not_found",
        message: format!("no token with id {id}"),
    })
}

/// The caller the token with hash `token_sha256` ([`token_hash`]) stands for: None when
/// it is unknown or revoked.
pub async fn authenticate(pool: &DbPool, token_sha256: &str) -> Result<Option<Caller>, Error> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            // A read per request; the row is written only when last_used_at is over a
            // minute old.
            "WITH t AS (SELECT id, name, role, last_used_at FROM api_tokens
                         WHERE token_sha256 = $1 AND revoked_at IS NULL),
                  touched AS (UPDATE api_tokens SET last_used_at = now() FROM t
                               WHERE api_tokens.id = t.id
                                 AND (t.last_used_at IS NULL
                                      OR t.last_used_at < now() - interval '1 minute'))
             SELECT name, role FROM t",
        )
        .await?;
    let row = client.query_opt(&statement, &[&token_sha256]).await?;
    Ok(row.map(|r| Caller {
        name: r.get(0),
        role: Role::parse(r.get(1)).unwrap_or(Role::Viewer),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_round_trip() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for r in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 68);
        assert!(a.starts_with("rft_"));
        assert_eq!(token_hash(&a).len(), 64);
        assert!(!token_hash(&a).contains(&a[4..]));
    }
}
