//! Recording runs: `submit` (one), `submit_batch` (all or none) and the inserts beneath
//! them, which replay an idempotency key or a schedule fire instead of adding a run.

use std::sync::LazyLock;

use prometheus::IntCounterVec;
use serde_json::Value;
use uuid::Uuid;

use crate::amqp::Publisher;
use crate::db::DbPool;
use crate::error::Error;
use crate::{metrics, scripts};

use super::*;

/// Runs accepted, by queue and trigger (counted by the caller that knows the run was new:
/// the API's answer or the scheduler's fire).
pub static RUNS_SUBMITTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter(
        "runfleet_runs_submitted_total",
        "Runs accepted by the API or the scheduler.",
        &["queue", "trigger"],
    )
});

/// Creates [`RUNS_SUBMITTED`]'s series for every queue and trigger at zero.
pub fn init_metrics(queues: &[String]) {
    for queue in queues {
        for trigger in Trigger::ALL {
            RUNS_SUBMITTED.with_label_values(&[queue, trigger.as_str()]);
        }
    }
}

/// The run and whether this call created it (false: an idempotent replay).
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The run.
    pub run: Run,
    /// True when new.
    pub created: bool,
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
