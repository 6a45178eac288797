//! `/fleet` (consumers, slots, queues, venv caches: the console's fleet page) and
//! `/whoami` (the caller's token name and role, so a client shows only what it may do).

use crate::queue_stats::{QUEUE_CONSUMERS, QUEUE_MESSAGES_READY, QUEUE_OLDEST_AGE};
use axum::extract::State;
use axum::{Extension, Json};
use runfleet_common::access::Caller;
use runfleet_common::fleet::{self, ConsumerEntry};
use serde::Serialize;

use crate::api_error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// A consumer not heard from for this long is no longer shown.
const SHOWN_FOR_SECONDS: f64 = 3600.0;

/// One worker queue.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueView {
    /// Queue name (as in `POST /runs`).
    pub queue: String,
    /// Messages waiting in RabbitMQ (refreshed every `queue_stats_interval_ms`).
    pub messages_ready: i64,
    /// Consumers RabbitMQ sees on it.
    pub consumers: i64,
    /// Seconds the oldest queued run has waited.
    pub oldest_run_age_seconds: f64,
    /// Runs queued, from Postgres.
    pub queued: i64,
    /// Runs running.
    pub running: i64,
    /// Runs waiting for a retry.
    pub retrying: i64,
}

/// The fleet at a glance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FleetView {
    /// Consumers that announced themselves in the last hour, by worker id.
    pub consumers: Vec<ConsumerEntry>,
    /// Every configured queue.
    pub queues: Vec<QueueView>,
    /// Slots of the live consumers.
    pub slots: i64,
    /// Of which busy.
    pub busy: i64,
}

/// Consumers (slots, busy slots, venv cache), queues (depth, oldest wait, runs by state).
#[utoipa::path(get, path = "/fleet", tag = "ops",
    responses((status = 200, body = FleetView), (status = 503, body = ErrorBody)))]
pub async fn view(State(state): State<AppState>) -> ApiResult<Json<FleetView>> {
    let client = state
        .pool
        .get()
        .await
        .map_err(runfleet_common::Error::from)?;
    let consumers = fleet::list(&client, SHOWN_FOR_SECONDS)
        .await
        .map_err(runfleet_common::Error::from)?;
    let queues = &state.config.producer.queues;
    let rows = client
        .query(
            "SELECT q.queue,
                    count(r.id) FILTER (WHERE r.status = 'queued'),
                    count(r.id) FILTER (WHERE r.status = 'running'),
                    count(r.id) FILTER (WHERE r.status = 'retrying')
               FROM unnest($1::text[]) AS q(queue)
               LEFT JOIN runs r ON r.queue = q.queue
                    AND r.status IN ('queued', 'running', 'retrying')
              GROUP BY q.queue",
            &[queues],
        )
        .await
        .map_err(runfleet_common::Error::from)?;
    let mut views: Vec<QueueView> = rows
        .iter()
        .map(|r| {
            let queue: String = r.get(0);
            QueueView {
                messages_ready: QUEUE_MESSAGES_READY.with_label_values(&[&queue]).get(),
                consumers: QUEUE_CONSUMERS.with_label_values(&[&queue]).get(),
                oldest_run_age_seconds: QUEUE_OLDEST_AGE.with_label_values(&[&queue]).get(),
                queued: r.get(1),
                running: r.get(2),
                retrying: r.get(3),
                queue,
            }
        })
        .collect();
    // In the configured order (the first is the default queue).
    views.sort_by_key(|v| queues.iter().position(|q| *q == v.queue));
    let live = consumers.iter().filter(|c| c.alive);
    let (slots, busy) = live.fold((0, 0), |(s, b), c| {
        (s + i64::from(c.info.slots), b + i64::from(c.info.busy))
    });
    Ok(Json(FleetView {
        consumers,
        queues: views,
        slots,
        busy,
    }))
}

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The token's name (`bootstrap` for the bootstrap token).
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
}

/// The calling token's name and role.
#[utoipa::path(get, path = "/whoami", tag = "tokens",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn whoami(Extension(caller): Extension<Caller>) -> Json<WhoAmI> {
    Json(WhoAmI {
        name: caller.name,
        role: caller.role.as_str().to_string(),
    })
}
