//! The consume loop: one channel per worker queue (prefetch = slots + lookahead),
//! deliveries handled in tasks bounded by a slot semaphore, each run claimed, executed,
//! committed, and only then acked. A run gives its slot back when its script ends, so the
//! commit and ack of one run overlap the start of the next. Reconnects to RabbitMQ with
//! backoff when the connection drops.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::metrics::{CONSUMER_SLOTS, RUN_DURATION, RUN_QUEUE_WAIT, RUNS_FINISHED};
use futures_util::StreamExt;
use futures_util::stream::select_all;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use runfleet_common::amqp::{self, AmqpError};
use runfleet_common::db::{DbError, DbPool};
use runfleet_common::failure_code::FailureCode;
use runfleet_common::live_logs;
use runfleet_common::message::RunMessage;
use runfleet_common::retry::{self, Backoff};
use runfleet_common::run_state::{self, Claim};
use runfleet_common::secrets::{self, RevealError};
use runfleet_common::shutdown::Shutdown;
use runfleet_common::telemetry;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::ConsumerConfig;
use crate::executor::{Executor, WorkDirRemoval};
use crate::live::LiveOutput;

/// Takes run messages and executes them.
pub struct Worker {
    config: ConsumerConfig,
    pool: DbPool,
    executor: Executor,
    slots: Arc<Semaphore>,
    broker_up: AtomicBool,
    /// Runs executing now, by (id, attempt). Their heartbeat is kept fresh, their cancel
    /// requests are watched for and their output is flushed live. Keyed by attempt too: a
    /// stale attempt still finishing here must not drop the entry of a newer attempt.
    running: std::sync::Mutex<HashMap<(Uuid, i32), Running>>,
    /// Keys for script secrets (None: none configured).
    keyring: Option<secrets::Keyring>,
}

/// A run executing on this consumer.
struct Running {
    /// Fired to stop it (a cancel request).
    cancel: CancellationToken,
    /// What it printed since the last flush.
    live: Arc<LiveOutput>,
}

struct Subscription {
    connection: Connection,
    channels: Vec<(Channel, String)>,
}

impl Worker {
    /// A worker over `pool` running scripts with `executor`.
    pub fn new(config: ConsumerConfig, pool: DbPool, executor: Executor) -> Self {
        let slots = config.consumer.slots;
        CONSUMER_SLOTS
            .with_label_values(&["idle"])
            .set(slots as i64);
        CONSUMER_SLOTS.with_label_values(&["busy"]).set(0);
        // Checked by the config's validation already.
        let keyring = secrets::Keyring::from_config(&config.secrets)
            .ok()
            .flatten();
        Worker {
            keyring,
            config,
            pool,
            executor,
            slots: Arc::new(Semaphore::new(slots)),
            broker_up: AtomicBool::new(false),
            running: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// True while the consumer holds a live RabbitMQ connection.
    pub fn broker_up(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed)
    }

    async fn subscribe(&self) -> Result<(Subscription, Vec<lapin::Consumer>), AmqpError> {
        let cfg = &self.config;
        let name = format!("runfleet-consumer {}", cfg.consumer.worker_id);
        let connection = amqp::connect(&cfg.amqp, &name).await?;
        let mut channels = Vec::new();
        let mut consumers = Vec::new();
        for (i, queue) in cfg.consumer.queues.iter().enumerate() {
            let channel = connection.create_channel().await?;
            if i == 0 {
                amqp::declare_topology(&channel, &cfg.amqp, &cfg.consumer.queues).await?;
            }
            // Quorum queues only support per-consumer prefetch: each queue's channel may hold
            // up to `slots + lookahead` messages; the semaphore keeps execution at `slots`
            // overall.
            let prefetch = (cfg.consumer.slots + cfg.consumer.lookahead) as u16;
            channel
                .basic_qos(prefetch, BasicQosOptions { global: false })
                .await?;
            let tag = format!("{}.{}", cfg.consumer.worker_id, queue);
            let consumer = channel
                .basic_consume(
                    amqp::queue_name(&cfg.amqp, queue).as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            channels.push((channel, tag));
            consumers.push(consumer);
        }
        Ok((
            Subscription {
                connection,
                channels,
            },
            consumers,
        ))
    }

    /// Consumes until `shutdown`, then stops taking messages and lets running scripts
    /// finish for up to `consumer.drain_seconds`.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let watcher = tokio::spawn(self.clone().watch_running_forever());
        let mut tasks = JoinSet::new();
        let mut backoff = Backoff::reconnect();
        let mut subscription = None;
        while !shutdown.is_cancelled() {
            let (sub, consumers) = match self.subscribe().await {
                Ok(s) => s,
                Err(e) => {
                    self.broker_up.store(false, Ordering::Relaxed);
                    let wait = backoff.next_wait();
                    tracing::warn!(error = %e, retry_in = ?wait, "cannot consume from RabbitMQ");
                    retry::pause(wait, &shutdown).await;
                    continue;
                }
            };
            self.broker_up.store(true, Ordering::Relaxed);
            backoff.reset();
            tracing::info!(queues = ?self.config.consumer.queues, slots = self.config.consumer.slots, "consuming");
            let queues = self.config.consumer.queues.clone();
            let mut deliveries = select_all(
                consumers
                    .into_iter()
                    .zip(queues)
                    .map(|(c, q)| c.map(move |d| (q.clone(), d))),
            );
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = deliveries.next() => match next {
                        Some((queue, Ok(delivery))) => {
                            tasks.spawn(self.clone().handle(delivery, queue, shutdown.clone()));
                        }
                        Some((_, Err(e))) => {
                            tracing::warn!(error = %e, "RabbitMQ connection lost; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!("RabbitMQ closed the consumers; reconnecting");
                            break;
                        }
                    },
                    Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                        if let Err(e) = done {
                            tracing::error!(error = %e, "run task failed");
                        }
                    }
                }
            }
            self.broker_up.store(false, Ordering::Relaxed);
            subscription = Some(sub);
            retry::pause(backoff.peek(), &shutdown).await;
        }
        self.drain(tasks, subscription).await;
        watcher.abort();
    }

    /// For the runs executing now: every 500 ms, stores what they printed (live logs) and
    /// terminates those a cancel was requested for; every `heartbeat_seconds`, refreshes
    /// their heartbeat so the producer's reaper does not take them back. It keeps going
    /// after shutdown starts (draining runs still need it) and is stopped once the worker
    /// has drained.
    async fn watch_running_forever(self: Arc<Self>) {
        const CANCEL_CHECK: Duration = Duration::from_millis(500);
        let heartbeat_every = Duration::from_secs(self.config.consumer.heartbeat_seconds);
        let mut last_beat = std::time::Instant::now();
        loop {
            tokio::time::sleep(CANCEL_CHECK).await;
            let (runs, lives) = self.running_snapshot();
            if runs.is_empty() {
                continue;
            }
            let beat_due = last_beat.elapsed() >= heartbeat_every;
            let chunks: Vec<_> = lives.iter().flat_map(|l| l.take()).collect();
            let checked = async {
                let client = self.pool.get().await?;
                // Apart from the checks below: live output failing to store must never
                // stop heartbeats (the runs would be taken back) or cancels.
                if let Err(e) = live_logs::append(&client, &chunks).await {
                    tracing::warn!(error = %e, chunks = chunks.len(), "cannot store live output; will retry");
                    // Kept for the next flush: live output is late, not lost.
                    give_back(&lives, chunks);
                }
                let ids: Vec<Uuid> = runs.iter().map(|r| r.0).collect();
                let cancelled = run_state::cancel_requested(&client, &ids).await?;
                if beat_due {
                    run_state::heartbeat(&client, &runs).await?;
                }
                Ok::<_, runfleet_common::db::DbError>(cancelled)
            };
            match checked.await {
                Ok(cancelled) => {
                    if beat_due {
                        last_beat = std::time::Instant::now();
                    }
                    let running = self.running.lock().expect("running map is never poisoned");
                    for ((id, _), run) in running.iter() {
                        if cancelled.contains(id) {
                            tracing::info!(run_id = %id, "cancel requested; terminating the run");
                            run.cancel.cancel();
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, runs = runs.len(), "cannot check running runs")
                }
            }
        }
    }

    async fn drain(&self, mut tasks: JoinSet<()>, subscription: Option<Subscription>) {
        if let Some(sub) = &subscription {
            for (channel, tag) in &sub.channels {
                let _ = channel
                    .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                    .await;
            }
        }
        let grace = Duration::from_secs(self.config.consumer.drain_seconds);
        tracing::info!(running = tasks.len(), ?grace, "draining");
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "drain grace over; stopping remaining runs"
            );
            // Dropping the tasks kills their process groups; their messages go back to the
            // queue when the connection closes.
            tasks.shutdown().await;
            self.release_unfinished().await;
        }
        if let Some(sub) = subscription {
            // Unacked messages go back to the queue as the channels close.
            let channels: Vec<&Channel> = sub.channels.iter().map(|(c, _)| c).collect();
            amqp::close_in_order(&channels, &sub.connection, "shutdown").await;
        }
    }

    /// The (run, attempt) pairs executing now and their live outputs, under one lock.
    fn running_snapshot(&self) -> (Vec<(Uuid, i32)>, Vec<Arc<LiveOutput>>) {
        let running = self.running.lock().expect("running map is never poisoned");
        running
            .iter()
            .map(|(key, run)| (*key, run.live.clone()))
            .unzip()
    }

    /// Slots executing a run now.
    pub fn busy_slots(&self) -> usize {
        self.config
            .consumer
            .slots
            .saturating_sub(self.slots.available_permits())
    }

    /// The (run, attempt) pairs executing now.
    fn running_runs(&self) -> Vec<(Uuid, i32)> {
        self.running
            .lock()
            .expect("running map is never poisoned")
            .keys()
            .copied()
            .collect()
    }

    /// Puts runs stopped by the end of the drain grace back in the queue as their next
    /// attempt (the producer's outbox publishes them), rather than leaving them to the
    /// reaper's heartbeat timeout.
    async fn release_unfinished(&self) {
        let runs = self.running_runs();
        if runs.is_empty() {
            return;
        }
        let released = async {
            let client = self.pool.get().await?;
            run_state::release(&client, &runs).await
        };
        match released.await {
            Ok(n) => tracing::warn!(released = n, "runs stopped at shutdown were queued again"),
            Err(e) => tracing::warn!(error = %e, "cannot release stopped runs; the reaper will"),
        }
    }

    async fn handle(self: Arc<Self>, delivery: Delivery, queue: String, shutdown: Shutdown) {
        let message = match RunMessage::parse(&delivery.data) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, queue, "malformed run message; dead-lettering it");
                let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
                return;
            }
        };
        let slot = tokio::select! {
            p = self.slots.clone().acquire_owned() => Slot::taken(p.expect("semaphore is never closed")),
            // Not started: the message returns to the queue when the connection closes.
            _ = shutdown.cancelled() => return,
        };
        let span = run_span(&delivery, &message, &queue);
        self.process(&delivery, message, &queue, slot, &shutdown)
            .instrument(span)
            .await;
    }

    async fn claim(&self, message: RunMessage, shutdown: &Shutdown) -> Option<Claim> {
        let worker = &self.config.consumer.worker_id;
        retry::until_ok(
            "cannot claim run",
            Backoff::statement(),
            shutdown,
            || async {
                let client = self.pool.get().await?;
                run_state::claim(&client, message.run_id, message.attempt, worker).await
            },
        )
        .await
    }

    /// The values of the run's secrets; `Some(Err)` when the run cannot have them (it
    /// fails), None when shutdown came while Postgres was unreachable.
    async fn reveal_secrets(
        &self,
        run: &run_state::ClaimedRun,
        shutdown: &Shutdown,
    ) -> Option<Result<Vec<secrets::SecretEnv>, String>> {
        let mapping = run.secrets.as_object().cloned().unwrap_or_default();
        if mapping.is_empty() {
            // Most runs have no secrets: no pool checkout on their path.
            return Some(Ok(Vec::new()));
        }
        retry::until_ok(
            "cannot read the run's secrets",
            Backoff::statement(),
            shutdown,
            || async {
                let client = self.pool.get().await.map_err(DbError::from)?;
                match secrets::reveal(&client, self.keyring.as_ref(), &mapping).await {
                    Ok(values) => Ok(Ok(values)),
                    // Not an outage: the run fails saying why.
                    Err(RevealError::Unavailable(why)) => Ok(Err(why)),
                    Err(RevealError::Db(e)) => Err(e),
                }
            },
        )
        .await
    }

    async fn process(
        &self,
        delivery: &Delivery,
        message: RunMessage,
        queue: &str,
        slot: Slot,
        shutdown: &Shutdown,
    ) {
        let run_id = message.run_id;
        let Some(claim) = self.claim(message, shutdown).await else {
            return;
        };
        let mut run = match claim {
            Claim::Claimed(run) => run,
            Claim::NotQueued { status, attempt } => {
                tracing::info!(%run_id, status, attempt, message_attempt = message.attempt,
                    "run is not waiting for this message (duplicate or stale); acking it");
                let _ = delivery.ack(BasicAckOptions::default()).await;
                return;
            }
            Claim::Unknown => {
                tracing::error!(%run_id, queue, "message for an unknown run; dead-lettering it");
                let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
                return;
            }
        };
        RUN_QUEUE_WAIT
            .with_label_values(&[queue])
            .observe(run.queue_wait_seconds);
        tracing::info!(%run_id, attempt = run.attempt, queue, script = run.script_name, "run started");
        let cancel = CancellationToken::new();
        let live = Arc::new(LiveOutput::disabled());
        self.running
            .lock()
            .expect("running map is never poisoned")
            .insert(
                (run_id, run.attempt),
                Running {
                    cancel: cancel.clone(),
                    live,
                },
            );
        let (executed, removal) = match self.reveal_secrets(&run, shutdown).await {
            Some(Ok(values)) => {
                // Only now are the values to redact from live output known.
                let live = Arc::new(LiveOutput::new(
                    run_id,
                    run.attempt,
                    self.config.consumer.output_limit_bytes,
                    values.clone(),
                ));
                if let Some(entry) = self
                    .running
                    .lock()
                    .expect("running map is never poisoned")
                    .get_mut(&(run_id, run.attempt))
                {
                    entry.live = live.clone();
                }
                run.secret_env = values;
                self.executor.execute(&run, queue, &cancel, &live).await
            }
            Some(Err(why)) => (
                crate::executor::Executor::not_started(FailureCode::SecretUnavailable, why),
                WorkDirRemoval::default(),
            ),
            // Shutting down before the run started: its message is redelivered.
            None => return,
        };
        // The script's work is over: its slot may take the next run (already here with
        // `lookahead`) while this result is committed and acked.
        drop(slot);
        let outcome = executed.outcome;
        let status = outcome.status.as_str();
        RUN_DURATION
            .with_label_values(&[queue, status])
            .observe(executed.elapsed.as_secs_f64());

        // The result must be in Postgres before the ack: keep trying (a Postgres restart
        // is waited out); if this process dies meanwhile, the message is redelivered.
        let moved_to = retry::until_ok_even_at_shutdown(
            "cannot record result",
            Backoff::statement(),
            || async {
                let client = self.pool.get().await?;
                run_state::finish(&client, run_id, run.attempt, &outcome).await
            },
        )
        .instrument(tracing::info_span!("result_commit", status))
        .await;
        match moved_to {
            None => tracing::warn!(%run_id, "run moved on while it ran; result not recorded"),
            Some(run_state::RunStatus::Retrying) => {
                tracing::info!(%run_id, attempt = run.attempt, "attempt failed; retry scheduled")
            }
            Some(_) => {}
        }
        removal.done().await;
        self.running
            .lock()
            .expect("running map is never poisoned")
            .remove(&(run_id, run.attempt));
        RUNS_FINISHED.with_label_values(&[queue, status]).inc();
        tracing::info!(%run_id, attempt = run.attempt, status, exit_code = ?outcome.exit_code,
            elapsed_ms = executed.elapsed.as_millis() as u64, "run finished");
        if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
            tracing::warn!(%run_id, error = %e, "ack failed after commit; a redelivery will be skipped");
        }
    }
}

/// A slot taken by a run (it shows in the busy-slots gauge until dropped).
struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Slot {
    fn taken(permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        CONSUMER_SLOTS.with_label_values(&["busy"]).inc();
        CONSUMER_SLOTS.with_label_values(&["idle"]).dec();
        Slot { _permit: permit }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        CONSUMER_SLOTS.with_label_values(&["busy"]).dec();
        CONSUMER_SLOTS.with_label_values(&["idle"]).inc();
    }
}

/// Hands chunks a failed flush could not store back to the runs they came from.
fn give_back(lives: &[Arc<LiveOutput>], chunks: Vec<live_logs::Chunk>) {
    for live in lives {
        let mine: Vec<_> = chunks.iter().filter(|c| live.owns(c)).cloned().collect();
        if !mine.is_empty() {
            live.give_back(mine);
        }
    }
}

/// The span of one delivery: a child of the span the run was created in (the message's
/// `traceparent` header), carrying the fields every log line about the run shows.
fn run_span(delivery: &Delivery, message: &RunMessage, queue: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "run",
        run_id = %message.run_id,
        queue,
        attempt = message.attempt,
        trace_id = tracing::field::Empty,
    );
    let traceparent = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(amqp::TRACEPARENT_HEADER))
        .and_then(|v| match v {
            lapin::types::AMQPValue::LongString(s) => Some(s.to_string()),
            _ => None,
        });
    if let Some(tp) = traceparent {
        telemetry::set_parent(&span, &tp);
    }
    telemetry::record_trace_id(&span);
    span
}
