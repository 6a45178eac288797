//! The dead-letter watcher: consumes `<prefix>.dead` so no run is left `queued` behind a
//! message RabbitMQ gave up on.
//!
//! A worker queue dead-letters a message when a consumer rejects it (malformed, unknown
//! run) or when it was delivered `amqp.delivery_limit` times without an ack (a consumer
//! that keeps dying before it can claim). For each dead letter the watcher:
//! 1. marks the run `dead` with the broker's reason, if that run is still `queued` for the
//!    message's attempt (a guarded transition: a stale copy changes nothing);
//! 2. republishes the message, with the reason in header `x-runfleet-parked-reason`, to
//!    `<prefix>.parked` (confirmed), where operators can inspect it;
//! 3. acks it. A crash between the steps repeats them on redelivery: step 1 is then a
//!    no-op, step 2 may park a second copy, nothing is lost.

use std::sync::LazyLock;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use prometheus::IntCounterVec;

use crate::amqp::{self, AmqpError};
use crate::config::AmqpConfig;
use crate::db::{DbError, DbPool};
use crate::message::RunMessage;
use crate::metrics;
use crate::retry::{self, Backoff};
use crate::run_state;
use crate::shutdown::Shutdown;

/// Dead-lettered messages the watcher handled, by what it did (`run_dead`, `stale`,
/// `malformed`).
pub static DEAD_LETTERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter(
        "runfleet_dead_letters_total",
        "Dead-lettered run messages handled by the dead-letter watcher.",
        &["outcome"],
    )
});

/// Creates [`DEAD_LETTERS`]'s series for every outcome at zero.
pub fn init_metrics() {
    for outcome in ["run_dead", "stale", "malformed"] {
        DEAD_LETTERS.with_label_values(&[outcome]);
    }
}

/// Why RabbitMQ dead-lettered a message, from its first `x-death` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeathReason {
    /// `delivery_limit`, `rejected`, `expired`, … or `unknown` without an `x-death` header.
    pub reason: String,
    /// The queue it died in, when the header says.
    pub queue: Option<String>,
}

impl DeathReason {
    /// Reads the `x-death` header RabbitMQ adds when it dead-letters a message.
    pub fn of(properties: &BasicProperties) -> Self {
        let first = properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-death"))
            .and_then(|v| match v {
                AMQPValue::FieldArray(deaths) => deaths.as_slice().first(),
                _ => None,
            })
            .and_then(|v| match v {
                AMQPValue::FieldTable(t) => Some(t),
                _ => None,
            });
        let text = |key: &str| {
            first
                .and_then(|t| t.inner().get(key))
                .and_then(|v| match v {
                    AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into()),
                    AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
                    _ => None,
                })
        };
        DeathReason {
            reason: text("reason").unwrap_or_else(|| "unknown".into()),
            queue: text("queue"),
        }
    }
}

impl std::fmt::Display for DeathReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.reason[..], &self.queue) {
            ("delivery_limit", Some(q)) => write!(
                f,
                "delivery_limit: delivered too many times without an ack from queue {q}"
            ),
            (reason, Some(q)) => write!(f, "{reason} in queue {q}"),
            (reason, None) => f.write_str(reason),
        }
    }
}

/// What the watcher did with one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Its run was waiting for it and is now `dead`.
    RunDead,
    /// Its run had moved on (or does not exist): only parked.
    Stale,
    /// Not a run message: only parked.
    Malformed,
}

impl Handled {
    fn label(self) -> &'static str {
        match self {
            Handled::RunDead => "run_dead",
            Handled::Stale => "stale",
            Handled::Malformed => "malformed",
        }
    }
}

/// Watches `<prefix>.dead` until `shutdown`, reconnecting to RabbitMQ with backoff.
pub async fn watch(config: AmqpConfig, pool: DbPool, shutdown: Shutdown) {
    let mut backoff = Backoff::reconnect();
    while !shutdown.is_cancelled() {
        let wait = match watch_once(&config, &pool, &shutdown).await {
            Ok(()) => {
                backoff.reset();
                backoff.peek()
            }
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in = ?wait, "dead-letter watcher lost RabbitMQ");
                wait
            }
        };
        retry::pause(wait, &shutdown).await;
    }
}

/// One connection's worth of watching; returns when the link breaks or on shutdown.
async fn watch_once(
    config: &AmqpConfig,
    pool: &DbPool,
    shutdown: &Shutdown,
) -> Result<(), AmqpError> {
    let connection = amqp::connect(config, "runfleet-dead-letter-watcher").await?;
    let channel = connection.create_channel().await?;
    amqp::declare_topology(&channel, config, &[]).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .basic_qos(16, BasicQosOptions { global: false })
        .await?;
    let mut deliveries = channel
        .basic_consume(
            amqp::dead_letter_queue(config).as_str().into(),
            "runfleet-dead-letter-watcher".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let result = loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            next = deliveries.next() => match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => break Err(e.into()),
                None => break Ok(()),
            },
        };
        // Handled one at a time: dead letters are rare, and order keeps the log readable.
        if let Err(e) = handle(config, pool, &channel, &delivery, shutdown).await {
            break Err(e);
        }
    };
    amqp::close_in_order(&[&channel], &connection, "dead-letter watcher stopping").await;
    result
}

async fn handle(
    config: &AmqpConfig,
    pool: &DbPool,
    channel: &Channel,
    delivery: &Delivery,
    shutdown: &Shutdown,
) -> Result<(), AmqpError> {
    let reason = DeathReason::of(&delivery.properties);
    let handled = match RunMessage::parse(&delivery.data) {
        Err(_) => Handled::Malformed,
        Ok(message) => match mark_dead(pool, message, &reason, shutdown).await {
            Some(true) => Handled::RunDead,
            Some(false) => Handled::Stale,
            // Shutting down before Postgres answered: unacked, so it comes back.
            None => return Ok(()),
        },
    };
    match handled {
        Handled::RunDead => {
            tracing::error!(%reason, body = %String::from_utf8_lossy(&delivery.data),
            "run message dead-lettered; its run is now dead")
        }
        _ => tracing::warn!(%reason, outcome = handled.label(),
            body = %String::from_utf8_lossy(&delivery.data), "dead letter parked"),
    }
    park(config, channel, delivery, &reason).await?;
    delivery.ack(BasicAckOptions::default()).await?;
    DEAD_LETTERS.with_label_values(&[handled.label()]).inc();
    Ok(())
}

/// Applies the guarded `queued → dead` transition, retrying while Postgres is down.
/// `None` when shutdown came first.
async fn mark_dead(
    pool: &DbPool,
    message: RunMessage,
    reason: &DeathReason,
    shutdown: &Shutdown,
) -> Option<bool> {
    let reason = reason.to_string();
    let what = format!("cannot record the dead letter of run {}", message.run_id);
    retry::until_ok(&what, Backoff::statement(), shutdown, || async {
        let client = pool.get().await.map_err(DbError::from)?;
        run_state::dead_letter(&client, message.run_id, message.attempt, &reason).await
    })
    .await
}

async fn park(
    config: &AmqpConfig,
    channel: &Channel,
    delivery: &Delivery,
    reason: &DeathReason,
) -> Result<(), AmqpError> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-runfleet-parked-reason".into(),
        AMQPValue::LongString(reason.to_string().into()),
    );
    let properties = delivery.properties.clone().with_headers(headers);
    let confirm = tokio::time::timeout(config.timeout(), async {
        channel
            .basic_publish(
                "".into(),
                amqp::parked_queue(config).as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                &delivery.data,
                properties,
            )
            .await?
            .await
    })
    .await
    .map_err(|_| AmqpError::Timeout(config.timeout()))??;
    if confirm.is_nack() {
        return Err(AmqpError::Nacked);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::FieldArray;

    #[test]
    fn reads_the_first_x_death_entry() {
        let mut death = FieldTable::default();
        death.insert(
            "reason".into(),
            AMQPValue::LongString("delivery_limit".into()),
        );
        death.insert("queue".into(), AMQPValue::LongString("rf.default".into()));
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
        );
        let reason = DeathReason::of(&BasicProperties::default().with_headers(headers));
        assert_eq!(reason.reason, "delivery_limit");
        assert_eq!(reason.queue.as_deref(), Some("rf.default"));
        assert!(reason.to_string().contains("rf.default"), "{reason}");
    }

    #[test]
    fn no_header_is_an_unknown_reason() {
        let reason = DeathReason::of(&BasicProperties::default());
        assert_eq!(reason.reason, "unknown");
        assert_eq!(reason.to_string(), "unknown");
    }
}
