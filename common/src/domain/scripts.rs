//! Scripts: immutable, numbered versions of a named script.
//!
//! Registering the same content and requirements again returns the existing version, so
//! `scripts push` in a deploy pipeline is idempotent.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;

use crate::db::DbPool;
use crate::error::Error;
use crate::hash::sha256_hex;
use crate::names::{MAX_SCRIPT_NAME, is_valid_script_name};

/// Most requirement lines one script version may list.
pub const MAX_REQUIREMENTS: usize = 200;
/// Longest requirement line.
pub const MAX_REQUIREMENT_LEN: usize = 512;

/// A script version as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScriptVersion {
    /// Script name, e.g. `fetch_rss.py`.
    pub name: String,
    /// Version number, from 1.
    pub version: i32,
    /// `python` or `shell`.
    pub language: String,
    /// The source.
    pub content: String,
    /// pip requirement lines.
    pub requirements: Vec<String>,
    /// SHA-256 of the content.
    pub sha256: String,
    /// When this version was registered.
    pub created_at: DateTime<Utc>,
}

/// A version without its content, for listings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScriptVersionSummary {
    /// Version number.
    pub version: i32,
    /// SHA-256 of the content.
    pub sha256: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// One script in the list: its name, latest version and language.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScriptSummary {
    /// Script name.
    pub name: String,
    /// Highest version number.
    pub latest_version: i32,
    /// Language of the latest version.
    pub language: String,
    /// When the latest version was registered.
    pub updated_at: DateTime<Utc>,
}

/// A script with its latest version in full and every version's summary.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScriptDetail {
    /// The latest version.
    pub latest: ScriptVersion,
    /// Every version, newest first.
    pub versions: Vec<ScriptVersionSummary>,
}

/// A request to register a script version.
#[derive(Debug, Clone)]
pub struct NewScript {
    /// Name; the extension gives the language unless `language` is set.
    pub name: String,
    /// Source text.
    pub content: String,
    /// `python` or `shell`; inferred from the name when absent.
    pub language: Option<String>,
    /// pip requirement lines.
    pub requirements: Vec<String>,
}

const COLUMNS: &str = "name, version, language, content, requirements, sha256, created_at";

fn from_row(row: &Row) -> ScriptVersion {
    ScriptVersion {
        name: row.get(0),
        version: row.get(1),
        language: row.get(2),
        content: row.get(3),
        requirements: row.get(4),
        sha256: row.get(5),
        created_at: row.get(6),
    }
}

fn language_of(name: &str, given: Option<&str>) -> Result<String, Error> {
    match given {
        Some(l @ ("python" | "shell")) => Ok(l.to_string()),
        Some(other) => Err(Error::invalid(
            "invalid_language",
            "language",
            format!("unknown language '{other}': use python or shell"),
        )),
        None if name.ends_with(".py") => Ok("python".into()),
        None if name.ends_with(".sh") => Ok("shell".into()),
        None => Err(Error::invalid(
            "invalid_language",
            "language",
            format!(
                "cannot tell the language of '{name}' from its extension: name it .py or .sh, or give language: python | shell"
            ),
        )),
    }
}

/// Checks a name against the naming rule, reporting it as `field`.
pub fn check_name(field: &str, name: &str) -> Result<(), Error> {
    if is_valid_script_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_script_name",
            field,
            format!(
                "'{name}' is not a valid script name: start with a letter or digit, then letters, digits, _ . - (no '..', at most {MAX_SCRIPT_NAME} characters)"
            ),
        ))
    }
}

fn check_requirements(reqs: &[String]) -> Result<Vec<String>, Error> {
    if reqs.len() > MAX_REQUIREMENTS {
        return Err(Error::invalid(
            "invalid_requirements",
            "requirements",
            format!("at most {MAX_REQUIREMENTS} requirement lines"),
        ));
    }
    let mut out = Vec::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        let line = r.trim();
        if line.is_empty() || line.len() > MAX_REQUIREMENT_LEN || line.contains(['\n', '\r', '\0'])
        {
            return Err(Error::invalid(
                "invalid_requirements",
                format!("requirements[{i}]"),
                format!(
                    "each requirement is one non-empty line of at most {MAX_REQUIREMENT_LEN} characters, e.g. requests>=2"
                ),
            ));
        }
        if let Err(e) = crate::requirements::parse_line(line) {
            return Err(Error::invalid(
                "invalid_requirements",
                format!("requirements[{i}]"),
                format!(
                    "{}: {}; write a PEP 508 requirement such as requests>=2,<3",
                    e.line, e.reason
                ),
            ));
        }
        out.push(line.to_string());
    }
    Ok(out)
}

/// Registers a version; returns it and whether it is new (false: same content and
/// requirements were registered before under this name).
pub async fn register(
    pool: &DbPool,
    new: NewScript,
    max_bytes: usize,
) -> Result<(ScriptVersion, bool), Error> {
    check_name("name", &new.name)?;
    let language = language_of(&new.name, new.language.as_deref())?;
    if new.content.trim().is_empty() {
        return Err(Error::invalid(
            "invalid_content",
            "content",
            "content is empty",
        ));
    }
    if new.content.len() > max_bytes {
        return Err(Error::invalid(
            "script_too_large",
            "content",
            format!(
                "content is {} bytes; the limit is {max_bytes} bytes",
                new.content.len()
            ),
        ));
    }
    if new.content.contains('\0') {
        return Err(Error::invalid(
            "invalid_content",
            "content",
            "content contains a NUL byte; scripts are text",
        ));
    }
    let requirements = check_requirements(&new.requirements)?;
    if language == "python" {
        let inline = crate::requirements::pep723_dependencies(&new.content).map_err(|e| {
            Error::invalid(
                "invalid_requirements",
                "content",
                format!("the script's PEP 723 block is invalid: {e}"),
            )
        })?;
        let mut set = crate::requirements::RequirementSet::new();
        set.extend(requirements.iter().chain(&inline).map(String::as_str))
            .map_err(|e| Error::invalid("invalid_requirements", "requirements", e.to_string()))?;
    }
    let sha256 = sha256_hex(new.content.as_bytes());
    let fingerprint =
        sha256_hex(format!("{language}\n{sha256}\n{}", requirements.join("\n")).as_bytes());

    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Serializes registrations of one name so version numbers are dense and unique.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('runfleet.script:' || $1))",
        &[&new.name],
    )
    .await?;
    let existing = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM scripts WHERE name = $1 AND fingerprint = $2"),
            &[&new.name, &fingerprint],
        )
        .await?;
    if let Some(row) = existing {
        return Ok((from_row(&row), false));
    }
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO scripts (name, version, language, content, requirements, sha256, fingerprint)
                 SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6
                   FROM scripts WHERE name = $1
                 RETURNING {COLUMNS}"
            ),
            &[
                &new.name,
                &language,
                &new.content,
                &requirements,
                &sha256,
                &fingerprint,
            ],
        )
        .await?;
    tx.commit().await?;
    Ok((from_row(&row), true))
}

/// Every script with its latest version.
pub async fn list(pool: &DbPool) -> Result<Vec<ScriptSummary>, Error> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT DISTINCT ON (name) name, version, language, created_at
               FROM scripts ORDER BY name, version DESC",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ScriptSummary {
            name: r.get(0),
            latest_version: r.get(1),
            language: r.get(2),
            updated_at: r.get(3),
        })
        .collect())
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        code: "script_not_found",
        message: format!("no script named '{name}'; register it with POST /scripts"),
    }
}

/// The latest version in full and all versions' summaries.
pub async fn detail(pool: &DbPool, name: &str) -> Result<ScriptDetail, Error> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM scripts WHERE name = $1 ORDER BY version DESC"),
            &[&name],
        )
        .await?;
    let mut versions = rows.iter().map(from_row);
    let latest = versions.next().ok_or_else(|| not_found(name))?;
    let summaries = std::iter::once(&latest)
        .cloned()
        .chain(versions)
        .map(|v| ScriptVersionSummary {
            version: v.version,
            sha256: v.sha256,
            created_at: v.created_at,
        })
        .collect();
    Ok(ScriptDetail {
        latest,
        versions: summaries,
    })
}

/// One version in full.
pub async fn version(pool: &DbPool, name: &str, version: i32) -> Result<ScriptVersion, Error> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM scripts WHERE name = $1 AND version = $2"),
            &[&name, &version],
        )
        .await?;
    match row {
        Some(row) => Ok(from_row(&row)),
        None => Err(Error::NotFound {
            code: "script_version_not_found",
            message: format!("script '{name}' has no version {version}"),
        }),
    }
}

/// Resolves `name` and an optional pinned version to an existing (name, version).
/// Errors name the request fields `script_field` / `version_field`.
pub async fn resolve(
    client: &impl deadpool_postgres::GenericClient,
    name: &str,
    version: Option<i32>,
    script_field: &str,
) -> Result<i32, Error> {
    check_name(script_field, name)?;
    let latest: Option<i32> = client
        .query_one("SELECT MAX(version) FROM scripts WHERE name = $1", &[&name])
        .await?
        .get(0);
    let Some(latest) = latest else {
        return Err(Error::invalid(
            "unknown_script",
            script_field,
            format!("no script named '{name}'; register it first with POST /scripts"),
        ));
    };
    match version {
        None => Ok(latest),
        Some(v) if (1..=latest).contains(&v) => Ok(v),
        Some(v) => Err(Error::invalid(
            "unknown_script_version",
            "version",
            format!("script '{name}' has no version {v}; its latest is {latest}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_from_extension_or_given() {
        assert_eq!(language_of("a.py", None).unwrap(), "python");
        assert_eq!(language_of("a.sh", None).unwrap(), "shell");
        assert_eq!(language_of("a.txt", Some("shell")).unwrap(), "shell");
        assert!(language_of("a.txt", None).is_err());
        assert!(language_of("a.py", Some("ruby")).is_err());
    }

    #[test]
    fn requirements_are_trimmed_lines() {
        assert_eq!(
            check_requirements(&[" requests>=2 ".into()]).unwrap(),
            vec!["requests>=2"]
        );
        match check_requirements(&["ok".into(), "a\nb".into()]) {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "requirements[1]"),
            other => panic!("{other:?}"),
        }
        assert!(check_requirements(&["".into()]).is_err());
        assert!(check_requirements(&["requests>>2".into()]).is_err());
        assert!(check_requirements(&["-r other.txt".into()]).is_err());
    }
}
