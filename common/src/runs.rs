//! Runs: the one code path that creates a run (API or scheduler), and the reads of runs.
//!
//! Submitting writes the run to Postgres first and only then publishes its message, so an
//! accepted run is never lost: if the broker is down, the run waits in the outbox
//! (`published_at IS NULL`) and [`sweep_outbox`] publishes it when the broker is back.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio_postgres::Row;
use tracing::Instrument;
use uuid::Uuid;

use crate::amqp::Publisher;
use crate::db::DbPool;
use crate::error::Error;
use crate::limits::RunLimits;
use crate::message::RunMessage;
use crate::names::is_valid_parameter_key;
use crate::run_state::{RunStatus, mark_published};
use crate::scripts;

/// Who or what started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// An HTTP client.
    Api,
    /// A cron schedule.
    Schedule,
    /// A retry of a failed run.
    Retry,
    /// The `runfleet` CLI.
    Cli,
}

impl Trigger {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Schedule => "schedule",
            Trigger::Retry => "retry",
            Trigger::Cli => "cli",
        }
    }

    fn parse(s: &str) -> Trigger {
        match s {
            "schedule" => Trigger::Schedule,
            "retry" => Trigger::Retry,
            "cli" => Trigger::Cli,
            _ => Trigger::Api,
        }
    }
}

/// Why a run failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunError {
    /// Machine-readable code, e.g. `exit_nonzero`, `timed_out`, `spawn_failed`.
    pub code: String,
    /// What happened.
    pub message: String,
}

impl RunError {
    /// The error from the stored `error_code` / `error` columns (None when both are empty).
    fn from_columns(code: Option<String>, message: Option<String>) -> Option<RunError> {
        (code.is_some() || message.is_some()).then(|| RunError {
            code: code.unwrap_or_else(|| "error".into()),
            message: message.unwrap_or_default(),
        })
    }
}

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Run {
    /// Run id (UUIDv7, time-ordered).
    pub id: Uuid,
    /// Script name.
    pub script: String,
    /// Script version the run uses.
    pub script_version: i32,
    /// Parameters (a JSON object).
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Worker queue.
    pub queue: String,
    /// Current status.
    pub status: RunStatus,
    /// Attempt number, from 1.
    pub attempt: i32,
    /// What started it.
    pub trigger: Trigger,
    /// The client's idempotency key, if given.
    pub idempotency_key: Option<String>,
    /// Seconds before the script is killed.
    pub timeout_seconds: i32,
    /// When it was accepted.
    pub submitted_at: DateTime<Utc>,
    /// When a consumer started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final status.
    pub finished_at: Option<DateTime<Utc>>,
    /// Consumer (pod) that ran it.
    pub worker: Option<String>,
    /// Script exit code.
    pub exit_code: Option<i32>,
    /// Set when the run did not succeed.
    pub error: Option<RunError>,
    /// JSON the script wrote to `RUNFLEET_RESULT_PATH`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Signature of the venv (requirement set) a Python run used; null when none.
    pub venv_signature: Option<String>,
    /// Times the run was taken back from a consumer that died while running it.
    pub reclaims: i32,
    /// When a cancel was requested (the run ends as `cancelled` shortly after).
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// Attempts allowed before a failure is final.
    pub max_attempts: i32,
    /// When a `retrying` run's next attempt is due.
    pub retry_at: Option<DateTime<Utc>>,
    /// The task it was made from, if any.
    pub task: Option<String>,
    /// The schedule that fired it, if any.
    pub schedule_id: Option<Uuid>,
    /// The fire time it stands for (with `schedule_id`).
    pub scheduled_for: Option<DateTime<Utc>>,
    /// OpenTelemetry trace id of the run (submit, publish, consume, script, result).
    pub trace_id: Option<String>,
    /// The full W3C trace context (carried by the run's messages).
    #[serde(skip)]
    pub traceparent: Option<String>,
}

const COLUMNS: &str = "id, script_name, script_version, parameters, queue, status, attempt, \
    triggered_by, idempotency_key, timeout_seconds, submitted_at, started_at, finished_at, \
    worker, exit_code, error_code, error, result, venv_signature, reclaims, cancel_requested_at, \
    max_attempts, retry_at, task_name, schedule_id, scheduled_for, traceparent";

fn from_row(row: &Row) -> Run {
    let status: String = row.get(5);
    let traceparent: Option<String> = row.get(26);
    Run {
        id: row.get(0),
        script: row.get(1),
        script_version: row.get(2),
        parameters: row.get(3),
        queue: row.get(4),
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        attempt: row.get(6),
        trigger: Trigger::parse(row.get(7)),
        idempotency_key: row.get(8),
        timeout_seconds: row.get(9),
        submitted_at: row.get(10),
        started_at: row.get(11),
        finished_at: row.get(12),
        worker: row.get(13),
        exit_code: row.get(14),
        error: RunError::from_columns(row.get(15), row.get(16)),
        result: row.get(17),
        venv_signature: row.get(18),
        reclaims: row.get(19),
        cancel_requested_at: row.get(20),
        max_attempts: row.get(21),
        retry_at: row.get(22),
        task: row.get(23),
        schedule_id: row.get(24),
        scheduled_for: row.get(25),
        trace_id: traceparent
            .as_deref()
            .and_then(crate::telemetry::trace_id_of)
            .map(str::to_string),
        traceparent,
    }
}

/// Limits and defaults applied to every submission.
#[derive(Debug, Clone)]
pub struct SubmitPolicy {
    /// Queues runs may be sent to (the ones declared on the broker).
    pub queues: Vec<String>,
    /// Queue used when none is given.
    pub default_queue: String,
    /// Timeout used when none is given (seconds).
    pub default_timeout_seconds: i32,
    /// Largest timeout accepted (seconds).
    pub max_timeout_seconds: i32,
    /// Largest serialized parameter object (bytes).
    pub max_parameters_bytes: usize,
    /// Retry policy of a run that gives none.
    pub default_retry: RetryPolicy,
}

/// How often and how patiently a failed or timed-out run is tried again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (1: no retry).
    pub max_attempts: i32,
    /// Delay before the first retry (seconds); doubles each attempt, with jitter.
    pub backoff_seconds: f64,
    /// Longest delay between attempts (seconds).
    pub backoff_max_seconds: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff_seconds: 10.0,
            backoff_max_seconds: 600.0,
        }
    }
}

/// Most attempts a run may ask for.
pub const MAX_ATTEMPTS: i32 = 20;

fn check_retry(
    defaults: RetryPolicy,
    max_attempts: Option<i64>,
    backoff: Option<f64>,
    backoff_max: Option<f64>,
) -> Result<RetryPolicy, Error> {
    let policy = RetryPolicy {
        max_attempts: match max_attempts {
            None => defaults.max_attempts,
            Some(n) if (1..=i64::from(MAX_ATTEMPTS)).contains(&n) => n as i32,
            Some(n) => {
                return Err(Error::invalid(
                    "invalid_retry",
                    "max_attempts",
                    format!("max_attempts is {n}; give 1 to {MAX_ATTEMPTS}"),
                ));
            }
        },
        backoff_seconds: backoff.unwrap_or(defaults.backoff_seconds),
        backoff_max_seconds: backoff_max.unwrap_or(defaults.backoff_max_seconds),
    };
    if !(0.0..=86_400.0).contains(&policy.backoff_seconds) {
        return Err(Error::invalid(
            "invalid_retry",
            "retry_backoff_seconds",
            "retry_backoff_seconds must be between 0 and 86400",
        ));
    }
    if !(policy.backoff_seconds..=86_400.0).contains(&policy.backoff_max_seconds) {
        return Err(Error::invalid(
            "invalid_retry",
            "retry_backoff_max_seconds",
            "retry_backoff_max_seconds must be between retry_backoff_seconds and 86400",
        ));
    }
    Ok(policy)
}

/// A request for a run.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Script name.
    pub script: String,
    /// Pinned version; latest when absent.
    pub version: Option<i32>,
    /// Parameter object.
    pub parameters: Map<String, Value>,
    /// Worker queue; the policy's default when absent.
    pub queue: Option<String>,
    /// Timeout; the policy's default when absent.
    pub timeout_seconds: Option<i64>,
    /// Client key: the same key returns the same run.
    pub idempotency_key: Option<String>,
    /// Who asks.
    pub trigger: Trigger,
    /// Attempts in all; the policy's default when absent.
    pub max_attempts: Option<i64>,
    /// First retry delay (seconds).
    pub retry_backoff_seconds: Option<f64>,
    /// Longest retry delay (seconds).
    pub retry_backoff_max_seconds: Option<f64>,
    /// Name of the request field holding the script name (`script`, `script_name`).
    pub script_field: &'static str,
    /// The task the run comes from, if any.
    pub task: Option<String>,
    /// The schedule fire it comes from: (schedule id, scheduled time). Unique per run.
    pub fire: Option<(Uuid, DateTime<Utc>)>,
    /// Extra environment variables for the script (checked by [`check_env`]).
    pub env: Map<String, Value>,
    /// Resource limits (a task's); the consumer's defaults where unset.
    pub limits: RunLimits,
    /// Secrets for the script's environment (env name → secret name; a task's).
    pub secrets: Map<String, Value>,
}

impl Default for NewRun {
    fn default() -> Self {
        NewRun {
            script: String::new(),
            version: None,
            parameters: Map::new(),
            queue: None,
            timeout_seconds: None,
            idempotency_key: None,
            trigger: Trigger::Api,
            max_attempts: None,
            retry_backoff_seconds: None,
            retry_backoff_max_seconds: None,
            script_field: "script",
            task: None,
            fire: None,
            env: Map::new(),
            limits: RunLimits::default(),
            secrets: Map::new(),
        }
    }
}

/// A run request with every field checked and every default filled in.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Script name.
    pub script: String,
    /// Pinned version; latest when absent.
    pub version: Option<i32>,
    /// Name of the request field holding the script name (for error messages).
    pub script_field: &'static str,
    /// Parameter object.
    pub parameters: Map<String, Value>,
    /// Worker queue.
    pub queue: String,
    /// Timeout (seconds).
    pub timeout_seconds: i32,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Client key.
    pub idempotency_key: Option<String>,
    /// Who asks.
    pub trigger: Trigger,
    /// The task, if any.
    pub task: Option<String>,
    /// The schedule fire, if any.
    pub fire: Option<(Uuid, DateTime<Utc>)>,
    /// Extra environment variables (string values).
    pub env: Map<String, Value>,
    /// Resource limits.
    pub limits: RunLimits,
    /// Secrets for the environment (env name → secret name).
    pub secrets: Map<String, Value>,
}

impl NewRun {
    /// Checks every field against `policy` and fills in its defaults.
    pub fn check(self, policy: &SubmitPolicy) -> Result<RunSpec, Error> {
        check_parameters(&self.parameters, policy.max_parameters_bytes)?;
        let queue = check_queue(policy, self.queue.as_deref())?;
        let timeout_seconds = check_timeout(policy, self.timeout_seconds)?;
        check_idempotency_key(self.idempotency_key.as_deref())?;
        check_env(&self.env)?;
        self.limits.check("limits")?;
        let retry = check_retry(
            policy.default_retry,
            self.max_attempts,
            self.retry_backoff_seconds,
            self.retry_backoff_max_seconds,
        )?;
        Ok(RunSpec {
            script: self.script,
            version: self.version,
            script_field: self.script_field,
            parameters: self.parameters,
            queue,
            timeout_seconds,
            retry,
            idempotency_key: self.idempotency_key,
            trigger: self.trigger,
            task: self.task,
            fire: self.fire,
            env: self.env,
            limits: self.limits,
            secrets: self.secrets,
        })
    }
}

/// Largest extra environment of a run, as JSON (bytes).
pub const MAX_ENV_BYTES: usize = 32 * 1024;

/// Checks extra environment variables: POSIX-style names that do not start with
/// `RUNFLEET_` (those are set by the consumer), string values without NUL.
pub fn check_env(env: &Map<String, Value>) -> Result<(), Error> {
    for (name, value) in env {
        let field = format!("env.{name}");
        if !crate::names::is_valid_env_name(name) {
            return Err(Error::invalid(
                "invalid_env",
                field,
                format!(
                    "environment variable name '{name}' must be letters, digits and _ (not starting with a digit, at most 128)"
                ),
            ));
        }
        if name.to_ascii_uppercase().starts_with("RUNFLEET_") {
            return Err(Error::invalid(
                "invalid_env",
                field,
                format!(
                    "'{name}': RUNFLEET_* variables are set by the consumer and cannot be overridden"
                ),
            ));
        }
        match value {
            Value::String(v) if !v.contains('\0') => {}
            _ => {
                return Err(Error::invalid(
                    "invalid_env",
                    field,
                    format!("the value of '{name}' must be a string without NUL characters"),
                ));
            }
        }
    }
    let size = serde_json::to_vec(env).map(|v| v.len()).unwrap_or(0);
    if size > MAX_ENV_BYTES {
        return Err(Error::invalid(
            "env_too_large",
            "env",
            format!("env is {size} bytes as JSON; the limit is {MAX_ENV_BYTES}"),
        ));
    }
    Ok(())
}

/// The run and whether this call created it (false: an idempotent replay).
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The run.
    pub run: Run,
    /// True when new.
    pub created: bool,
}

pub(crate) fn check_parameters(params: &Map<String, Value>, max_bytes: usize) -> Result<(), Error> {
    for key in params.keys() {
        if !is_valid_parameter_key(key) {
            return Err(Error::invalid(
                "invalid_parameter_key",
                format!("parameters.{key}"),
                format!(
                    "parameter name '{key}' becomes the flag --{key}: start with a letter or _, then letters, digits, _ - (at most 64)"
                ),
            ));
        }
    }
    let size = serde_json::to_vec(params).map(|v| v.len()).unwrap_or(0);
    if size > max_bytes {
        return Err(Error::invalid(
            "parameters_too_large",
            "parameters",
            format!("parameters are {size} bytes as JSON; the limit is {max_bytes}"),
        ));
    }
    if contains_nul(&Value::Object(params.clone())) {
        return Err(Error::invalid(
            "invalid_parameters",
            "parameters",
            "parameters contain a NUL character, which cannot be passed in argv or env",
        ));
    }
    for (key, value) in params {
        if let Some(n) = oversized_number(value) {
            return Err(Error::invalid(
                "invalid_parameters",
                format!("parameters.{key}"),
                format!(
                    "parameter '{key}' holds the number {n:e}, beyond the {MAX_JSON_NUMBER:e} a run can keep; pass it as a string"
                ),
            ));
        }
        if depth(value) > MAX_PARAMETER_DEPTH {
            return Err(Error::invalid(
                "parameters_too_deep",
                format!("parameters.{key}"),
                format!(
                    "parameter '{key}' nests more than {MAX_PARAMETER_DEPTH} arrays or objects deep; flatten it"
                ),
            ));
        }
    }
    Ok(())
}

/// Deepest nesting of arrays and objects a parameter value may have.
pub const MAX_PARAMETER_DEPTH: usize = 16;

/// Nesting depth of `v`: 0 for a scalar.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Largest magnitude of a JSON number a record keeps. Postgres stores a jsonb number as an
/// exact decimal, and one within a few units in the last place of `f64::MAX` does not read
/// back as an f64 (serde_json calls it out of range): the run could no longer be read.
pub const MAX_JSON_NUMBER: f64 = 1e308;

/// The first number in `v` whose magnitude is beyond [`MAX_JSON_NUMBER`].
pub fn oversized_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|x| x.abs() > MAX_JSON_NUMBER),
        Value::Array(a) => a.iter().find_map(oversized_number),
        Value::Object(o) => o.values().find_map(oversized_number),
        _ => None,
    }
}

/// True when any string (or key) in `v` holds a NUL, which argv, env and Postgres refuse.
pub fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

fn check_queue(policy: &SubmitPolicy, queue: Option<&str>) -> Result<String, Error> {
    let queue = queue.unwrap_or(&policy.default_queue);
    if policy.queues.iter().any(|q| q == queue) {
        Ok(queue.to_string())
    } else {
        Err(Error::invalid(
            "unknown_queue",
            "queue",
            format!(
                "no worker queue '{queue}'; configured queues: {}",
                policy.queues.join(", ")
            ),
        ))
    }
}

fn check_timeout(policy: &SubmitPolicy, t: Option<i64>) -> Result<i32, Error> {
    match t {
        None => Ok(policy.default_timeout_seconds),
        Some(t) if t >= 1 && t <= i64::from(policy.max_timeout_seconds) => Ok(t as i32),
        Some(t) => Err(Error::invalid(
            "invalid_timeout",
            "timeout_seconds",
            format!(
                "timeout_seconds is {t}; give 1 to {}",
                policy.max_timeout_seconds
            ),
        )),
    }
}

/// Longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

fn check_idempotency_key(key: Option<&str>) -> Result<(), Error> {
    match key {
        Some(k)
            if k.is_empty()
                || k.chars().count() > MAX_IDEMPOTENCY_KEY
                || k.chars().any(char::is_control) =>
        {
            Err(Error::invalid(
                "invalid_idempotency_key",
                "idempotency_key",
                "idempotency_key is 1-200 printable characters",
            ))
        }
        _ => Ok(()),
    }
}

/// Validates, records and publishes a run: the one way a run is created over the API.
///
/// The run is committed before it is published; a failed publish is logged and left to the
/// outbox sweeper, and the caller still gets the accepted run.
pub async fn submit(
    pool: &DbPool,
    publisher: &Publisher,
    policy: &SubmitPolicy,
    new: NewRun,
) -> Result<Submitted, Error> {
    let spec = new.check(policy)?;
    let client = pool.get().await?;
    let submitted = insert(&client, &spec).await?;
    if submitted.created {
        publish(&client, publisher, std::slice::from_ref(&submitted.run)).await;
    }
    Ok(submitted)
}

/// Most runs one batch may hold.
pub const MAX_BATCH: usize = 1000;

/// Validates every run of a batch, records them all in one transaction (all or none),
/// then publishes them. An error names the item: `runs[3].script`.
pub async fn submit_batch(
    pool: &DbPool,
    publisher: &Publisher,
    policy: &SubmitPolicy,
    batch: Vec<NewRun>,
) -> Result<Vec<Submitted>, Error> {
    if batch.is_empty() || batch.len() > MAX_BATCH {
        return Err(Error::invalid(
            "invalid_batch",
            "runs",
            format!(
                "a batch holds 1 to {MAX_BATCH} runs; this one has {}",
                batch.len()
            ),
        ));
    }
    let specs = batch
        .into_iter()
        .enumerate()
        .map(|(i, new)| {
            new.check(policy)
                .map_err(|e| e.within(&format!("runs[{i}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Each script version is resolved once per batch.
    let mut versions = std::collections::HashMap::new();
    for (i, spec) in specs.iter().enumerate() {
        if let std::collections::hash_map::Entry::Vacant(slot) =
            versions.entry((spec.script.clone(), spec.version))
        {
            let v = scripts::resolve(&tx, &spec.script, spec.version, spec.script_field)
                .await
                .map_err(|e| e.within(&format!("runs[{i}]")))?;
            slot.insert(v);
        }
    }
    let inserted =
        futures_util::future::join_all(specs.iter().map(|spec| {
            insert_resolved(&tx, spec, versions[&(spec.script.clone(), spec.version)])
        }))
        .await;
    let mut submitted = Vec::with_capacity(inserted.len());
    for (i, result) in inserted.into_iter().enumerate() {
        submitted.push(result.map_err(|e| e.within(&format!("runs[{i}]")))?);
    }
    tx.commit().await?;
    let created: Vec<Run> = submitted
        .iter()
        .filter(|s| s.created)
        .map(|s| s.run.clone())
        .collect();
    publish(&client, publisher, &created).await;
    Ok(submitted)
}

/// Records a checked run as `queued`, unpublished (in the outbox), on `client` (which may
/// be a transaction). An idempotency key or schedule fire seen before returns the existing
/// run with `created: false`. Publish it after the commit with [`publish`].
pub async fn insert(
    client: &impl deadpool_postgres::GenericClient,
    spec: &RunSpec,
) -> Result<Submitted, Error> {
    let version = scripts::resolve(client, &spec.script, spec.version, spec.script_field).await?;
    insert_resolved(client, spec, version).await
}

/// [`insert`] with the script version already resolved (by [`scripts::resolve`]), for
/// callers that make many runs of one script at once (schedule fires).
pub async fn insert_resolved(
    client: &impl deadpool_postgres::GenericClient,
    spec: &RunSpec,
    version: i32,
) -> Result<Submitted, Error> {
    let parameters = Value::Object(spec.parameters.clone());
    let env = Value::Object(spec.env.clone());
    let id = Uuid::now_v7();
    let (schedule_id, scheduled_for) = spec.fire.unzip();
    // Prepared once per connection: this is the per-run insert of the API and of every
    // schedule fire.
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO runs (id, script_name, script_version, parameters, queue, status,
                                   attempt, triggered_by, idempotency_key, timeout_seconds,
                                   max_attempts, retry_backoff_seconds, retry_backoff_max_seconds,
                                   task_name, schedule_id, scheduled_for, env, traceparent,
                                   limits, secrets)
                 VALUES ($1, $2, $3, $4, $5, 'queued', 1, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                         $15, $16, $17, $18)
                 ON CONFLICT DO NOTHING
                 RETURNING {COLUMNS}"
        ))
        .await?;
    let inserted = client
        .query_opt(
            &statement,
            &[
                &id,
                &spec.script,
                &version,
                &parameters,
                &spec.queue,
                &spec.trigger.as_str(),
                &spec.idempotency_key,
                &spec.timeout_seconds,
                &spec.retry.max_attempts,
                &spec.retry.backoff_seconds,
                &spec.retry.backoff_max_seconds,
                &spec.task,
                &schedule_id,
                &scheduled_for,
                &env,
                &crate::telemetry::current_traceparent(),
                &spec.limits.to_json(),
                &Value::Object(spec.secrets.clone()),
            ],
        )
        .await?;
    if let Some(row) = inserted {
        return Ok(Submitted {
            run: from_row(&row),
            created: true,
        });
    }
    if let (Some(schedule_id), Some(scheduled_for)) = (schedule_id, scheduled_for) {
        // This fire already has its run (another scheduler replica, or a retried batch).
        let row = client
            .query_one(
                &format!(
                    "SELECT {COLUMNS} FROM runs WHERE schedule_id = $1 AND scheduled_for = $2"
                ),
                &[&schedule_id, &scheduled_for],
            )
            .await?;
        return Ok(Submitted {
            run: from_row(&row),
            created: false,
        });
    }
    let row = client
        .query_one(
            &format!("SELECT {COLUMNS} FROM runs WHERE idempotency_key = $1"),
            &[&spec.idempotency_key],
        )
        .await?;
    let existing = from_row(&row);
    if existing.script != spec.script
        || (spec.version.is_some() && spec.version != Some(existing.script_version))
        || existing.parameters != parameters
        || existing.queue != spec.queue
    {
        return Err(Error::Conflict {
            code: "idempotency_key_reused",
            field: "idempotency_key".into(),
            message: format!(
                "idempotency_key was already used for run {} with a different script, parameters or queue",
                existing.id
            ),
        });
    }
    Ok(Submitted {
        run: existing,
        created: false,
    })
}

/// Publishes runs that are in the outbox (concurrently, each confirmed) and marks the
/// confirmed ones published. A failure only delays a run: the outbox sweeper publishes it
/// later (and a consumer skips a duplicate copy). Returns how many were confirmed.
pub async fn publish(
    client: &impl deadpool_postgres::GenericClient,
    publisher: &Publisher,
    runs: &[Run],
) -> usize {
    let results = futures_util::future::join_all(runs.iter().map(|run| {
        let message = RunMessage {
            run_id: run.id,
            attempt: run.attempt,
        };
        // A child of the span the run was created in, even when published later.
        let span = tracing::info_span!("publish", run_id = %run.id, queue = %run.queue);
        if let Some(tp) = &run.traceparent {
            crate::telemetry::set_parent(&span, tp);
        }
        async move {
            publisher
                .publish(&run.queue, &message, run.traceparent.as_deref())
                .await
        }
        .instrument(span)
    }))
    .await;
    let mut confirmed = Vec::with_capacity(runs.len());
    for (run, result) in runs.iter().zip(results) {
        match result {
            Ok(()) => confirmed.push(run.id),
            Err(e) => {
                tracing::warn!(run_id = %run.id, error = %e, "run queued but not yet published; the outbox sweeper will publish it");
            }
        }
    }
    if !confirmed.is_empty()
        && let Err(e) = mark_published(client, &confirmed).await
    {
        tracing::warn!(runs = confirmed.len(), error = %e, "published but could not mark as published");
    }
    confirmed.len()
}

/// Publishes runs still in the outbox that were submitted more than `min_age` ago.
/// Several sweepers may run at once: rows are locked with `SKIP LOCKED`.
/// Returns how many were published.
pub async fn sweep_outbox(
    pool: &DbPool,
    publisher: &Publisher,
    min_age: Duration,
    batch: i64,
) -> Result<usize, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let age = min_age.as_secs_f64();
    let rows = tx
        .query(
            "SELECT id, queue, attempt, traceparent FROM runs
              WHERE published_at IS NULL AND status = 'queued'
                AND submitted_at < now() - make_interval(secs => $1)
              ORDER BY submitted_at
              LIMIT $2
              FOR UPDATE SKIP LOCKED",
            &[&age, &batch],
        )
        .await?;
    let mut published = Vec::with_capacity(rows.len());
    for row in &rows {
        let run_id: Uuid = row.get(0);
        let queue: String = row.get(1);
        let attempt: i32 = row.get(2);
        let traceparent: Option<String> = row.get(3);
        match publisher
            .publish(
                &queue,
                &RunMessage { run_id, attempt },
                traceparent.as_deref(),
            )
            .await
        {
            Ok(()) => published.push(run_id),
            Err(e) => {
                tracing::warn!(error = %e, "outbox sweep: broker unavailable, will retry");
                break;
            }
        }
    }
    if !published.is_empty() {
        mark_published(&tx, &published).await?;
    }
    tx.commit().await?;
    Ok(published.len())
}

/// Cancels a run (see [`crate::run_state::cancel`]).
pub async fn cancel(pool: &DbPool, id: Uuid) -> Result<crate::run_state::CancelOutcome, Error> {
    let client = pool.get().await?;
    Ok(crate::run_state::cancel(&client, id).await?)
}

/// Queues a fresh attempt of a finished run (see [`crate::run_state::retry`]) and
/// publishes it. A run that has not finished is a conflict.
pub async fn retry(pool: &DbPool, publisher: &Publisher, id: Uuid) -> Result<Run, Error> {
    use crate::run_state::RetryOutcome;
    let client = pool.get().await?;
    match crate::run_state::retry(&client, id).await? {
        RetryOutcome::Queued => {}
        RetryOutcome::NotFinished(status) => {
            return Err(Error::Conflict {
                code: "run_not_finished",
                field: "id".into(),
                message: format!(
                    "run {id} is {}; retry it once it has finished",
                    status.as_str()
                ),
            });
        }
        RetryOutcome::Unknown => return Err(run_not_found(id)),
    }
    let row = client
        .query_one(&format!("SELECT {COLUMNS} FROM runs WHERE id = $1"), &[&id])
        .await?;
    let run = from_row(&row);
    publish(&client, publisher, std::slice::from_ref(&run)).await;
    Ok(run)
}

fn run_not_found(id: Uuid) -> Error {
    Error::NotFound {
        code: "run_not_found",
        message: format!("no run with id {id}"),
    }
}

/// One run.
pub async fn get(pool: &DbPool, id: Uuid) -> Result<Run, Error> {
    let client = pool.get().await?;
    let row = client
        .query_opt(&format!("SELECT {COLUMNS} FROM runs WHERE id = $1"), &[&id])
        .await?;
    row.map(|r| from_row(&r)).ok_or_else(|| run_not_found(id))
}

/// Filters for listing runs, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs of this script.
    pub script: Option<String>,
    /// At most this many.
    pub limit: i64,
    /// Only runs older than this run id (the previous page's `next_cursor`).
    pub cursor: Option<Uuid>,
}

/// A page of runs and the cursor of the next page (None: no more).
pub async fn list(pool: &DbPool, filter: &RunFilter) -> Result<(Vec<Run>, Option<Uuid>), Error> {
    let client = pool.get().await?;
    let status = filter.status.map(RunStatus::as_str);
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM runs
                  WHERE ($1::text IS NULL OR status = $1)
                    AND ($2::text IS NULL OR script_name = $2)
                    AND ($3::uuid IS NULL OR id < $3)
                  ORDER BY id DESC LIMIT $4"
            ),
            &[&status, &filter.script, &filter.cursor, &(filter.limit + 1)],
        )
        .await?;
    let mut runs: Vec<Run> = rows.iter().map(from_row).collect();
    let next = if runs.len() as i64 > filter.limit {
        runs.truncate(filter.limit as usize);
        runs.last().map(|r| r.id)
    } else {
        None
    };
    Ok((runs, next))
}

/// Captured output of a run's latest attempt.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunLogs {
    /// Run id.
    pub run_id: Uuid,
    /// Attempt the output belongs to.
    pub attempt: i32,
    /// Run status (output is empty until the attempt finishes).
    pub status: RunStatus,
    /// Standard output (its tail when truncated).
    pub stdout: String,
    /// Standard error (its tail when truncated).
    pub stderr: String,
    /// True when the start of stdout was dropped to respect the cap.
    pub stdout_truncated: bool,
    /// True when the start of stderr was dropped to respect the cap.
    pub stderr_truncated: bool,
}

/// An attempt's output (the latest attempt's when `attempt` is None). While the attempt
/// runs, and for an attempt whose consumer died, it is the output flushed live so far.
pub async fn logs(pool: &DbPool, id: Uuid, attempt: Option<i32>) -> Result<RunLogs, Error> {
    let run = get(pool, id).await?;
    let attempt = match attempt {
        None => run.attempt,
        Some(a) if (1..=run.attempt).contains(&a) => a,
        Some(a) => {
            return Err(Error::invalid(
                "unknown_attempt",
                "attempt",
                format!("run {id} has attempts 1 to {}, not {a}", run.attempt),
            ));
        }
    };
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT stdout, stderr, stdout_truncated, stderr_truncated
               FROM run_logs WHERE run_id = $1 AND attempt = $2",
            &[&id, &attempt],
        )
        .await?;
    let mut logs = RunLogs {
        run_id: id,
        attempt,
        status: run.status,
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
    };
    if let Some(row) = row {
        logs.stdout = row.get(0);
        logs.stderr = row.get(1);
        logs.stdout_truncated = row.get(2);
        logs.stderr_truncated = row.get(3);
    } else if let Some((stdout, stderr)) = crate::live_logs::joined(&client, id, attempt).await? {
        // Running, or an attempt whose consumer died: what it printed so far.
        logs.stdout = stdout;
        logs.stderr = stderr;
    }
    Ok(logs)
}

/// One finished attempt of a run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// Attempt number.
    pub attempt: i32,
    /// How it ended (`succeeded`, `failed`, `timed_out`, `cancelled`).
    pub status: String,
    /// Consumer that ran it.
    pub worker: Option<String>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Why it did not succeed.
    pub error: Option<RunError>,
}

/// Every finished attempt of a run, oldest first.
pub async fn attempts(pool: &DbPool, id: Uuid) -> Result<Vec<Attempt>, Error> {
    get(pool, id).await?;
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT attempt, status, worker, started_at, finished_at, exit_code, error_code, error
               FROM run_attempts WHERE run_id = $1 ORDER BY attempt",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Attempt {
            attempt: r.get(0),
            status: r.get(1),
            worker: r.get(2),
            started_at: r.get(3),
            finished_at: r.get(4),
            exit_code: r.get(5),
            error: RunError::from_columns(r.get(6), r.get(7)),
        })
        .collect())
}

#[cfg(test)]
mod tests {

    #[test]
    fn deeply_nested_parameters_are_refused_naming_the_parameter() {
        let mut deep = serde_json::json!(1);
        for _ in 0..MAX_PARAMETER_DEPTH {
            deep = serde_json::json!([deep]);
        }
        let mut params = Map::new();
        params.insert("ok".into(), deep.clone());
        assert!(check_parameters(&params, 1 << 20).is_ok());
        params.insert("nested".into(), serde_json::json!({"a": deep}));
        let e = check_parameters(&params, 1 << 20).unwrap_err();
        assert!(
            matches!(e, Error::Invalid { ref field, .. } if field == "parameters.nested"),
            "{e}"
        );
    }

    use super::*;

    #[test]
    fn retry_policy_bounds() {
        let d = RetryPolicy::default();
        assert_eq!(check_retry(d, None, None, None).unwrap(), d);
        assert_eq!(
            check_retry(d, Some(3), Some(1.0), Some(5.0))
                .unwrap()
                .max_attempts,
            3
        );
        for (n, b, m, field) in [
            (Some(0), None, None, "max_attempts"),
            (Some(21), None, None, "max_attempts"),
            (None, Some(-1.0), None, "retry_backoff_seconds"),
            (None, Some(10.0), Some(5.0), "retry_backoff_max_seconds"),
        ] {
            match check_retry(d, n, b, m) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }

    fn policy() -> SubmitPolicy {
        SubmitPolicy {
            queues: vec!["default".into(), "etl".into()],
            default_queue: "default".into(),
            default_timeout_seconds: 60,
            max_timeout_seconds: 3600,
            max_parameters_bytes: 100,
            default_retry: RetryPolicy::default(),
        }
    }

    fn field(e: Error) -> String {
        match e {
            Error::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parameters_keys_size_and_nul() {
        let mut p = Map::new();
        p.insert("url".into(), Value::String("x".into()));
        assert!(check_parameters(&p, 100).is_ok());
        let huge: Map<String, Value> =
            serde_json::from_str(r#"{"x": [1, {"y": -1.7976931348623157e308}]}"#).unwrap();
        assert_eq!(
            field(check_parameters(&huge, 100).unwrap_err()),
            "parameters.x"
        );
        let fine: Map<String, Value> =
            serde_json::from_str(r#"{"x": 1e308, "y": 1e-400}"#).unwrap();
        assert!(check_parameters(&fine, 100).is_ok());
        p.insert("--evil".into(), Value::Bool(true));
        assert_eq!(
            field(check_parameters(&p, 100).unwrap_err()),
            "parameters.--evil"
        );
        let mut big = Map::new();
        big.insert("a".into(), Value::String("x".repeat(200)));
        assert_eq!(
            field(check_parameters(&big, 100).unwrap_err()),
            "parameters"
        );
        let mut nul = Map::new();
        nul.insert("a".into(), serde_json::json!(["ok", "b\0d"]));
        assert_eq!(
            field(check_parameters(&nul, 100).unwrap_err()),
            "parameters"
        );
    }

    #[test]
    fn queue_and_timeout_policy() {
        let p = policy();
        assert_eq!(check_queue(&p, None).unwrap(), "default");
        assert_eq!(check_queue(&p, Some("etl")).unwrap(), "etl");
        assert_eq!(field(check_queue(&p, Some("gpu")).unwrap_err()), "queue");
        assert_eq!(check_timeout(&p, None).unwrap(), 60);
        assert_eq!(check_timeout(&p, Some(3600)).unwrap(), 3600);
        assert_eq!(
            field(check_timeout(&p, Some(0)).unwrap_err()),
            "timeout_seconds"
        );
        assert_eq!(
            field(check_timeout(&p, Some(3601)).unwrap_err()),
            "timeout_seconds"
        );
    }

    #[test]
    fn idempotency_keys() {
        assert!(check_idempotency_key(None).is_ok());
        assert!(check_idempotency_key(Some("order-42")).is_ok());
        assert!(check_idempotency_key(Some("")).is_err());
        assert!(check_idempotency_key(Some("a\nb")).is_err());
    }
}
