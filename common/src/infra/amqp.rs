//! RabbitMQ: the topology (durable quorum queues, dead-letter exchange and queue) and a
//! publisher that waits for the broker's confirm on every message.
//!
//! Names: worker queue `q` is `<prefix>.q`; the dead-letter exchange is `<prefix>.dlx`
//! (fanout) and its queue `<prefix>.dead`; the dead-letter watcher moves what it has handled
//! to `<prefix>.parked`, kept for inspection. Messages go through the default exchange with
//! the queue name as routing key, `mandatory` set, so an unroutable message is an error,
//! never a silent drop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

use crate::config::AmqpConfig;
use crate::message::RunMessage;

/// Errors talking to RabbitMQ.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// Connecting, declaring or publishing failed.
    #[error("RabbitMQ error (check amqp.url / RUNFLEET_AMQP__URL): {0}")]
    Broker(#[from] lapin::Error),
    /// `amqp.url` is not an AMQP URL (checked at start, so only seen in tests).
    #[error("amqp.url / RUNFLEET_AMQP__URL is not an AMQP URL: {0}")]
    Url(String),
    /// No answer within `amqp.timeout_seconds`.
    #[error("RabbitMQ did not answer within {0:?}")]
    Timeout(Duration),
    /// The broker refused to take the message.
    #[error("RabbitMQ refused the message (nack)")]
    Nacked,
    /// No queue is bound for the routing key.
    #[error("RabbitMQ has no queue '{0}' to route the message to")]
    Unroutable(String),
    /// A recent connect failed; not retried yet so a down broker is not hammered.
    #[error("RabbitMQ is unreachable (last attempt {0:?} ago)")]
    Backoff(Duration),
}

/// The AMQP name of worker queue `queue`.
pub fn queue_name(config: &AmqpConfig, queue: &str) -> String {
    format!("{}.{}", config.prefix, queue)
}

/// The dead-letter exchange name.
pub fn dead_letter_exchange(config: &AmqpConfig) -> String {
    format!("{}.dlx", config.prefix)
}

/// The dead-letter queue name.
pub fn dead_letter_queue(config: &AmqpConfig) -> String {
    format!("{}.dead", config.prefix)
}

/// The queue where handled dead letters are kept for inspection.
pub fn parked_queue(config: &AmqpConfig) -> String {
    format!("{}.parked", config.prefix)
}

/// Closes `channels`, then `connection` (errors ignored: this is shutdown). In that order
/// because a channel whose last handle drops while its connection is open is closed by
/// lapin in the background, and that late close fails against the closing connection and
/// is logged as an ERROR ("invalid channel state: Closing").
pub async fn close_in_order(channels: &[&Channel], connection: &Connection, reason: &str) {
    for channel in channels {
        let _ = channel.close(200, reason.into()).await;
    }
    let _ = connection.close(200, reason.into()).await;
}

/// Opens a connection, bounded by `amqp.timeout_seconds`.
pub async fn connect(config: &AmqpConfig, name: &str) -> Result<Connection, AmqpError> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let mut uri: lapin::uri::AMQPUri = config.url.parse().map_err(AmqpError::Url)?;
    // lapin keeps 32 frames of send and of receive buffer per connection. Without a
    // frame_max of our own it starts them small and, once RabbitMQ offers its 128 KiB,
    // grows them by writing zeros: 8 MiB resident per connection, for run messages under
    // 1 KiB. With one asked for, the buffers are 1 MiB each and allocated untouched.
    // A `frame_max` in amqp.url still wins.
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    tokio::time::timeout(config.timeout(), Connection::connect_uri(uri, props))
        .await
        .map_err(|_| AmqpError::Timeout(config.timeout()))?
        .map_err(AmqpError::from)
}

/// The AMQP frame size asked for (bytes; larger messages are sent as several frames).
pub const FRAME_MAX: u32 = 32 * 1024;

fn quorum_args(config: &AmqpConfig, dead_letter: bool) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    if dead_letter {
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dead_letter_exchange(config).into()),
        );
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(config.delivery_limit as i32),
        );
    }
    args
}

/// Declares the dead-letter exchange and queue and the worker queues (idempotent; the
/// producer and the consumer both call it with the same arguments).
pub async fn declare_topology(
    channel: &Channel,
    config: &AmqpConfig,
    queues: &[String],
) -> Result<(), AmqpError> {
    let durable = QueueDeclareOptions::durable();
    let dlx = dead_letter_exchange(config);
    let dlq = dead_letter_queue(config);
    channel
        .exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(dlq.as_str().into(), durable, quorum_args(config, false))
        .await?;
    channel
        .queue_bind(
            dlq.as_str().into(),
            dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            parked_queue(config).as_str().into(),
            durable,
            quorum_args(config, false),
        )
        .await?;
    for q in queues {
        channel
            .queue_declare(
                queue_name(config, q).as_str().into(),
                durable,
                quorum_args(config, true),
            )
            .await?;
    }
    Ok(())
}

/// The AMQP header carrying a run's W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// One worker queue as the broker counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// Worker queue name (without the prefix).
    pub queue: String,
    /// Messages ready for delivery (not counting unacked ones).
    pub messages_ready: u32,
    /// Subscribed consumers.
    pub consumers: u32,
}

struct Link {
    connection: Connection,
    channel: Channel,
}

impl Link {
    fn is_open(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// Publishes run messages with publisher confirms, reconnecting when the link broke.
///
/// Cloning is cheap; clones share one connection and one confirm channel.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<PublisherInner>,
}

struct PublisherInner {
    config: AmqpConfig,
    queues: Vec<String>,
    name: String,
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    link: Option<Arc<Link>>,
    last_failure: Option<Instant>,
}

/// After a failed connect, publishes fail fast for this long instead of reconnecting.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

impl Publisher {
    /// A publisher for `queues` (declared on every new connection). Connects lazily.
    pub fn new(config: AmqpConfig, queues: Vec<String>, name: &str) -> Self {
        Publisher {
            inner: Arc::new(PublisherInner {
                config,
                queues,
                name: name.to_string(),
                state: Mutex::new(LinkState::default()),
            }),
        }
    }

    /// The worker queues this publisher routes to.
    pub fn queues(&self) -> &[String] {
        &self.inner.queues
    }

    async fn link(&self) -> Result<Arc<Link>, AmqpError> {
        let mut state = self.inner.state.lock().await;
        if let Some(link) = &state.link {
            if link.is_open() {
                return Ok(link.clone());
            }
            state.link = None;
        }
        if let Some(at) = state.last_failure
            && at.elapsed() < RECONNECT_PAUSE
        {
            return Err(AmqpError::Backoff(at.elapsed()));
        }
        match self.open().await {
            Ok(link) => {
                let link = Arc::new(link);
                state.link = Some(link.clone());
                state.last_failure = None;
                Ok(link)
            }
            Err(e) => {
                state.last_failure = Some(Instant::now());
                Err(e)
            }
        }
    }

    async fn open(&self) -> Result<Link, AmqpError> {
        let cfg = &self.inner.config;
        let connection = connect(cfg, &self.inner.name).await?;
        let setup = async {
            let channel = connection.create_channel().await?;
            declare_topology(&channel, cfg, &self.inner.queues).await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, AmqpError>(channel)
        };
        let channel = tokio::time::timeout(cfg.timeout(), setup)
            .await
            .map_err(|_| AmqpError::Timeout(cfg.timeout()))??;
        Ok(Link {
            connection,
            channel,
        })
    }

    /// True when the broker is reachable (connects if needed).
    pub async fn is_ready(&self) -> bool {
        self.link().await.is_ok()
    }

    /// Publishes one run message as persistent and waits for the broker's confirm.
    /// `traceparent` (the run's W3C trace context) travels in the header of that name.
    pub async fn publish(
        &self,
        queue: &str,
        message: &RunMessage,
        traceparent: Option<&str>,
    ) -> Result<(), AmqpError> {
        let cfg = &self.inner.config;
        let link = self.link().await?;
        let routing_key = queue_name(cfg, queue);
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message.run_id.to_string().into());
        if let Some(tp) = traceparent {
            let mut headers = FieldTable::default();
            headers.insert(TRACEPARENT_HEADER.into(), AMQPValue::LongString(tp.into()));
            properties = properties.with_headers(headers);
        }
        let result = tokio::time::timeout(cfg.timeout(), async {
            let confirm = link
                .channel
                .basic_publish(
                    "".into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &message.to_bytes(),
                    properties,
                )
                .await?;
            Ok::<_, AmqpError>(confirm.await?)
        })
        .await
        .map_err(|_| AmqpError::Timeout(cfg.timeout()))
        .and_then(|r| r);
        let confirmation = match result {
            Ok(c) => c,
            Err(e) => {
                // A broken or stuck link is dropped so the next publish reconnects.
                self.drop_link(&link).await;
                return Err(e);
            }
        };
        if confirmation.is_nack() {
            return Err(AmqpError::Nacked);
        }
        if confirmation.take_message().is_some() {
            return Err(AmqpError::Unroutable(routing_key));
        }
        Ok(())
    }

    /// Ready messages and consumers of every worker queue, as the broker counts them
    /// (passive declares on a channel of their own, so a failure cannot break publishing).
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>, AmqpError> {
        let cfg = &self.inner.config;
        let link = self.link().await?;
        let read = async {
            let channel = link.connection.create_channel().await?;
            let mut stats = Vec::with_capacity(self.inner.queues.len());
            for queue in &self.inner.queues {
                let declared = channel
                    .queue_declare(
                        queue_name(cfg, queue).as_str().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                stats.push(QueueStats {
                    queue: queue.clone(),
                    messages_ready: declared.message_count(),
                    consumers: declared.consumer_count(),
                });
            }
            let _ = channel.close(200, "done".into()).await;
            Ok::<_, AmqpError>(stats)
        };
        tokio::time::timeout(cfg.timeout(), read)
            .await
            .map_err(|_| AmqpError::Timeout(cfg.timeout()))?
    }

    async fn drop_link(&self, broken: &Arc<Link>) {
        let mut state = self.inner.state.lock().await;
        if state.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, broken)) {
            state.link = None;
        }
    }

    /// Closes the connection (on shutdown).
    pub async fn close(&self) {
        let link = self.inner.state.lock().await.link.take();
        if let Some(link) = link {
            close_in_order(&[&link.channel], &link.connection, "shutdown").await;
        }
    }
}
