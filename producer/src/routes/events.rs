//! `GET /runs/{id}/events`: a run followed live, as server-sent events.
//!
//! - `run` — the run (as `GET /runs/{id}`): first, then at each change of status or attempt;
//! - `log` — `{attempt, stream, text}`: output as the consumer flushes it while the attempt
//!   runs (complete lines, about every 500 ms), then whatever the stored logs hold beyond
//!   that when the attempt ends;
//! - `end` — the run, once it is final; then the stream closes.
//!
//! Each open stream reads Postgres every [`POLL`]: a run's state and its new chunks.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use runfleet_common::live_logs::{self, Stream as Output};
use runfleet_common::run_state::RunStatus;
use runfleet_common::runs::{self, Run};
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::api_error::{ApiError, ApiResult, ErrorBody};
use crate::routes::parse_run_id;
use crate::state::AppState;

/// How often an open stream looks for news.
pub const POLL: Duration = Duration::from_millis(250);

/// Data of a `log` event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogEvent {
    /// The attempt that printed it.
    pub attempt: i32,
    /// `stdout` or `stderr`.
    pub stream: Output,
    /// The text, to append to what came before.
    pub text: String,
}

/// Follows a run: `run` events on each change, `log` events with its output while it runs,
/// and `end` when it is final (the stream then closes).
#[utoipa::path(get, path = "/runs/{id}/events", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id")),
    responses(
        (status = 200, description = "server-sent events: `run` (a Run), `log` (a LogEvent), `end` (the final Run)",
            content_type = "text/event-stream", body = String),
        (status = 404, body = ErrorBody),
        (status = 503, description = "too many open streams (producer.max_event_streams), or Postgres down", body = ErrorBody)))]
pub async fn follow(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(
    [(HeaderName, &'static str); 2],
    Sse<impl Stream<Item = Result<Event, Infallible>>>,
)> {
    let id = parse_run_id(&id)?;
    let Ok(permit) = state.event_streams.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!(
                "{} run event streams are open (producer.max_event_streams); try again later or poll GET /runs/{id}",
                state.config.producer.max_event_streams
            ),
        ));
    };
    // A missing run is a 404 before the stream starts.
    let first = runs::get(&state.pool, id).await?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        Follower::new(state, id, first.attempt, tx).run(first).await;
        drop(permit);
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    // A proxy (nginx ingress) buffering the answer would hold events back.
    let headers = [
        (header::CACHE_CONTROL, "no-cache"),
        (HeaderName::from_static("x-accel-buffering"), "no"),
    ];
    Ok((headers, Sse::new(events).keep_alive(KeepAlive::default())))
}

/// The task behind one open stream.
struct Follower {
    state: AppState,
    id: Uuid,
    tx: mpsc::Sender<Event>,
    /// The attempt whose output is being sent.
    attempt: i32,
    /// Last chunk sent of that attempt.
    seq: i32,
    /// Bytes of stdout and stderr of that attempt sent so far.
    sent: [usize; 2],
}

impl Follower {
    fn new(state: AppState, id: Uuid, attempt: i32, tx: mpsc::Sender<Event>) -> Self {
        Follower {
            state,
            id,
            tx,
            attempt,
            seq: 0,
            sent: [0, 0],
        }
    }

    /// False once the client has gone.
    async fn send(&self, name: &str, data: &impl Serialize) -> bool {
        let event = Event::default()
            .event(name)
            .json_data(data)
            .expect("events serialize");
        self.tx.send(event).await.is_ok()
    }

    async fn run(mut self, first: Run) {
        let mut shown = None;
        // The attempt whose stored tail was sent (it ended).
        let mut tail_sent = None;
        let mut run = first;
        loop {
            if run.attempt > self.attempt {
                // The attempt we were following ended (retry, reclaim): its stored tail.
                if tail_sent != Some(self.attempt) && !self.finish_attempt(self.attempt).await {
                    return;
                }
                self.attempt = run.attempt;
                self.seq = 0;
                self.sent = [0, 0];
            }
            if shown != Some((run.status, run.attempt)) {
                shown = Some((run.status, run.attempt));
                if !self.send("run", &run).await {
                    return;
                }
            }
            let ended = run.status.is_final() || run.status == RunStatus::Retrying;
            if ended && tail_sent != Some(run.attempt) {
                // The attempt is over (a retry may be minutes away): its stored tail now.
                tail_sent = Some(run.attempt);
                if !self.finish_attempt(run.attempt).await {
                    return;
                }
            }
            if run.status == RunStatus::Running {
                if !self.send_chunks().await {
                    return;
                }
            } else if run.status.is_final() {
                self.send("end", &run).await;
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.tx.closed() => return,
                _ = self.state.closing.cancelled() => return,
            }
            run = loop {
                match runs::get(&self.state.pool, self.id).await {
                    Ok(run) => break run,
                    Err(e) => {
                        // Postgres away: the stream waits rather than ends.
                        tracing::debug!(run_id = %self.id, error = %e, "cannot read the followed run");
                        tokio::select! {
                            _ = tokio::time::sleep(POLL * 4) => {}
                            _ = self.tx.closed() => return,
                            _ = self.state.closing.cancelled() => return,
                        }
                    }
                }
            };
        }
    }

    /// Sends the current attempt's new chunks. False once the client has gone.
    async fn send_chunks(&mut self) -> bool {
        let chunks = async {
            let client = self
                .state
                .pool
                .get()
                .await
                .map_err(runfleet_common::db::DbError::from)?;
            live_logs::since(&client, self.id, self.attempt, self.seq).await
        };
        let chunks = match chunks.await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(run_id = %self.id, error = %e, "cannot read live output");
                return true;
            }
        };
        for chunk in chunks {
            self.seq = chunk.seq;
            self.sent[chunk.stream.index()] += chunk.data.len();
            let event = LogEvent {
                attempt: chunk.attempt,
                stream: chunk.stream,
                text: chunk.data,
            };
            if !self.send("log", &event).await {
                return false;
            }
        }
        true
    }

    /// Sends what the stored logs of `attempt` hold beyond what was sent live. False once
    /// the client has gone.
    async fn finish_attempt(&mut self, attempt: i32) -> bool {
        let logs = match runs::logs(&self.state.pool, self.id, Some(attempt)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(run_id = %self.id, error = %e, "cannot read stored logs");
                return true;
            }
        };
        for (stream, text, truncated) in [
            (Output::Stdout, logs.stdout, logs.stdout_truncated),
            (Output::Stderr, logs.stderr, logs.stderr_truncated),
        ] {
            let sent = self.sent[stream.index()];
            let rest = if sent == 0 {
                text
            } else if !truncated && sent <= text.len() && text.is_char_boundary(sent) {
                text[sent..].to_string()
            } else {
                format!(
                    "\n[runfleet: the {} was longer than the stored cap; GET /runs/{}/logs?attempt={attempt} has its last part]\n",
                    stream.as_str(),
                    self.id
                )
            };
            if rest.is_empty() {
                continue;
            }
            self.sent[stream.index()] += rest.len();
            let event = LogEvent {
                attempt,
                stream,
                text: rest,
            };
            if !self.send("log", &event).await {
                return false;
            }
        }
        true
    }
}
