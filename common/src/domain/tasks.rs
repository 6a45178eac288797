//! Tasks: named run templates (script, default parameters, queue, timeout, retry policy,
//! env) that runs and schedules refer to by name.
//!
//! A task is stored with every default resolved against the API's [`SubmitPolicy`] at the
//! time it is saved, so the scheduler can make runs from it without the API's config.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::DbPool;
use crate::error::Error;
use crate::limits::RunLimits;
use crate::names::is_valid_task_name;
use crate::runs::{NewRun, RetryPolicy, RunSettings, RunSpec, SubmitPolicy, Trigger};
use crate::scripts;

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Task {
    /// Unique name, used in URLs and by schedules.
    pub name: String,
    /// Script name.
    pub script: String,
    /// Pinned script version; null: the latest version when each run is made.
    pub version: Option<i32>,
    /// Default parameters; a run's own parameters override them key by key.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Worker queue.
    pub queue: String,
    /// Seconds before the script is killed.
    pub timeout_seconds: i32,
    /// Attempts in all.
    pub max_attempts: i32,
    /// Delay before the first retry (seconds).
    pub retry_backoff_seconds: f64,
    /// Longest delay between attempts (seconds).
    pub retry_backoff_max_seconds: f64,
    /// Extra environment variables for the script.
    #[schema(value_type = Object)]
    pub env: Value,
    /// Resource limits of its runs (unset fields: the consumer's defaults).
    pub limits: RunLimits,
    /// Secrets its runs get as environment variables: env name → secret name.
    #[schema(value_type = Object)]
    pub secrets: Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a client gives to create or replace a task (absent fields take the API defaults).
#[derive(Debug, Clone, Default)]
pub struct TaskInput {
    /// Script name.
    pub script: String,
    /// Pinned version.
    pub version: Option<i32>,
    /// Default parameters.
    pub parameters: Map<String, Value>,
    /// Queue, timeout and retries (absent ones: the API's defaults).
    pub settings: RunSettings,
    /// Extra environment variables (string values).
    pub env: Map<String, Value>,
    /// Resource limits.
    pub limits: RunLimits,
    /// Environment variable → secret name.
    pub secrets: Map<String, Value>,
}

const COLUMNS: &str = "name, script_name, script_version, parameters, queue, timeout_seconds, \
    max_attempts, retry_backoff_seconds, retry_backoff_max_seconds, env, created_at, updated_at, \
    limits, secrets";

fn from_row(row: &Row) -> Task {
    Task {
        name: row.get(0),
        script: row.get(1),
        version: row.get(2),
        parameters: row.get(3),
        queue: row.get(4),
        timeout_seconds: row.get(5),
        max_attempts: row.get(6),
        retry_backoff_seconds: row.get(7),
        retry_backoff_max_seconds: row.get(8),
        env: row.get(9),
        limits: RunLimits::from_json(&row.get(12)),
        secrets: row.get(13),
        created_at: row.get(10),
        updated_at: row.get(11),
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    if is_valid_task_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_task_name",
            "name",
            format!(
                "task name '{name}' must be 1-128 of letters, digits, _ . - (starting with a letter or digit)"
            ),
        ))
    }
}

/// Checks `input` the way a run would be checked and resolves its defaults.
async fn resolve(
    client: &impl deadpool_postgres::GenericClient,
    policy: &SubmitPolicy,
    input: TaskInput,
) -> Result<RunSpec, Error> {
    let spec = NewRun {
        script: input.script,
        version: input.version,
        parameters: input.parameters,
        settings: input.settings,
        env: input.env,
        limits: input.limits,
        secrets: input.secrets,
        ..NewRun::default()
    }
    .check(policy)?;
    crate::secrets::check_mapping(client, &spec.secrets, "secrets").await?;
    scripts::resolve(client, &spec.script, spec.version, "script").await?;
    Ok(spec)
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        code: "task_not_found",
        message: format!("no task named '{name}'; create it with POST /tasks"),
    }
}

/// Creates task `name`; a name in use is a conflict.
pub async fn create(
    pool: &DbPool,
    policy: &SubmitPolicy,
    name: &str,
    input: TaskInput,
) -> Result<Task, Error> {
    check_name(name)?;
    let sql = format!(
        "INSERT INTO tasks (name, script_name, script_version, parameters, queue,
                            timeout_seconds, max_attempts, retry_backoff_seconds,
                            retry_backoff_max_seconds, env, limits, secrets)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (name) DO NOTHING
         RETURNING {COLUMNS}"
    );
    save(pool, policy, name, input, &sql)
        .await?
        .ok_or_else(|| Error::Conflict {
            code: "task_exists",
            field: "name".into(),
            message: format!("a task named '{name}' exists; change it with PUT /tasks/{name}"),
        })
}

/// Replaces every setting of task `name` (absent fields go back to the defaults).
pub async fn replace(
    pool: &DbPool,
    policy: &SubmitPolicy,
    name: &str,
    input: TaskInput,
) -> Result<Task, Error> {
    let sql = format!(
        "UPDATE tasks SET script_name = $2, script_version = $3, parameters = $4,
                queue = $5, timeout_seconds = $6, max_attempts = $7,
                retry_backoff_seconds = $8, retry_backoff_max_seconds = $9, env = $10,
                limits = $11, secrets = $12, updated_at = now()
          WHERE name = $1
      RETURNING {COLUMNS}"
    );
    save(pool, policy, name, input, &sql)
        .await?
        .ok_or_else(|| not_found(name))
}

/// Checks and resolves `input`, then runs `sql` (an insert or update taking the name and
/// the settings as $1..$12); None when it touched no row.
async fn save(
    pool: &DbPool,
    policy: &SubmitPolicy,
    name: &str,
    input: TaskInput,
    sql: &str,
) -> Result<Option<Task>, Error> {
    let client = pool.get().await?;
    let spec = resolve(&client, policy, input).await?;
    let row = client
        .query_opt(
            sql,
            &[
                &name,
                &spec.script,
                &spec.version,
                &Value::Object(spec.parameters),
                &spec.queue,
                &spec.timeout_seconds,
                &spec.retry.max_attempts,
                &spec.retry.backoff_seconds,
                &spec.retry.backoff_max_seconds,
                &Value::Object(spec.env),
                &spec.limits.to_json(),
                &Value::Object(spec.secrets),
            ],
        )
        .await?;
    Ok(row.map(|r| from_row(&r)))
}

/// Deletes task `name`; refused while schedules use it.
pub async fn delete(pool: &DbPool, name: &str) -> Result<(), Error> {
    let client = pool.get().await?;
    let schedules: i64 = client
        .query_one(
            "SELECT count(*) FROM schedules WHERE task_name = $1",
            &[&name],
        )
        .await?
        .get(0);
    if schedules > 0 {
        return Err(Error::Conflict {
            code: "task_in_use",
            field: "name".into(),
            message: format!(
                "task '{name}' is used by {schedules} schedule(s); delete those first"
            ),
        });
    }
    // A schedule created between the count and here makes the foreign key refuse.
    match client
        .execute("DELETE FROM tasks WHERE name = $1", &[&name])
        .await
    {
        Ok(1) => Ok(()),
        Ok(_) => Err(not_found(name)),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) => {
            Err(Error::Conflict {
                code: "task_in_use",
                field: "name".into(),
                message: format!("task '{name}' is used by a schedule; delete it first"),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Task `name`.
pub async fn get(
    client: &impl deadpool_postgres::GenericClient,
    name: &str,
) -> Result<Task, Error> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM tasks WHERE name = $1"),
            &[&name],
        )
        .await?;
    row.map(|r| from_row(&r)).ok_or_else(|| not_found(name))
}

/// Task `name` as named by request field `field`: a missing task is a 422 on that field
/// (for runs and schedules that refer to a task), not a 404.
pub async fn get_for_field(
    client: &impl deadpool_postgres::GenericClient,
    name: &str,
    field: &str,
) -> Result<Task, Error> {
    get(client, name).await.map_err(|e| match e {
        Error::NotFound { message, .. } => Error::invalid("unknown_task", field, message),
        other => other,
    })
}

/// All tasks by name.
pub async fn list(pool: &DbPool) -> Result<Vec<Task>, Error> {
    let client = pool.get().await?;
    let rows = client
        .query(&format!("SELECT {COLUMNS} FROM tasks ORDER BY name"), &[])
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// `base` with `overrides` laid over it key by key.
pub fn merge_parameters(base: &Value, overrides: &Map<String, Value>) -> Map<String, Value> {
    let mut merged = base.as_object().cloned().unwrap_or_default();
    for (k, v) in overrides {
        merged.insert(k.clone(), v.clone());
    }
    merged
}

impl Task {
    /// The task's stored settings, as run settings (a run's own override them).
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            queue: Some(self.queue.clone()),
            timeout_seconds: Some(i64::from(self.timeout_seconds)),
            max_attempts: Some(i64::from(self.max_attempts)),
            retry_backoff_seconds: Some(self.retry_backoff_seconds),
            retry_backoff_max_seconds: Some(self.retry_backoff_max_seconds),
        }
    }

    /// A run request from this task, `parameters` overriding the defaults. The API checks
    /// it against its policy like any run.
    pub fn new_run(&self, parameters: &Map<String, Value>, trigger: Trigger) -> NewRun {
        NewRun {
            script: self.script.clone(),
            version: self.version,
            parameters: merge_parameters(&self.parameters, parameters),
            settings: self.settings(),
            trigger,
            task: Some(self.name.clone()),
            env: self.env.as_object().cloned().unwrap_or_default(),
            limits: self.limits,
            secrets: self.secrets.as_object().cloned().unwrap_or_default(),
            ..NewRun::default()
        }
    }

    /// The run a schedule fire makes: the task's stored (already checked) settings, the
    /// schedule's parameters over the task's.
    pub fn fire_spec(
        &self,
        parameters: &Map<String, Value>,
        schedule_id: Uuid,
        scheduled_for: DateTime<Utc>,
        trigger: Trigger,
    ) -> RunSpec {
        RunSpec {
            script: self.script.clone(),
            version: self.version,
            script_field: "script",
            parameters: merge_parameters(&self.parameters, parameters),
            queue: self.queue.clone(),
            timeout_seconds: self.timeout_seconds,
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                backoff_seconds: self.retry_backoff_seconds,
                backoff_max_seconds: self.retry_backoff_max_seconds,
            },
            idempotency_key: None,
            trigger,
            task: Some(self.name.clone()),
            fire: Some((schedule_id, scheduled_for)),
            env: self.env.as_object().cloned().unwrap_or_default(),
            limits: self.limits,
            secrets: self.secrets.as_object().cloned().unwrap_or_default(),
        }
    }
}
