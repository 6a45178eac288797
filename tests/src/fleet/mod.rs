//! [`Fleet`]: a producer and consumer in-process (or as processes), isolated per test,
//! and the handles tests drive it with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use runfleet_common::config::{AmqpConfig, DatabaseConfig, HttpConfig, LogConfig};
use runfleet_common::shutdown::Shutdown;
use runfleet_consumer::config::{
    ConsumerConfig, InstallerChoice, PipConfig, PythonConfig, VenvConfig, WorkerConfig,
};
use runfleet_producer::config::{ApiConfig, AuthConfig, ProducerConfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::services::{amqp_url, block_on_own_thread, create_database, drop_database};
use crate::*;

mod http;

pub use http::EventStream;

/// Knobs a test may turn before starting its fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Consumer slots.
    pub slots: usize,
    /// Captured output cap per stream.
    pub output_limit_bytes: usize,
    /// Put a cuttable TCP proxy between the producer and RabbitMQ.
    pub producer_via_proxy: bool,
    /// Put a cuttable TCP proxy between the producer and Postgres.
    pub producer_db_via_proxy: bool,
    /// Start a consumer at all.
    pub with_consumer: bool,
    /// The venv cache directory (default: a fresh one inside the fleet's work dir).
    pub venv_cache_dir: Option<PathBuf>,
    /// `pip.index_url` for the consumer.
    pub index_url: Option<String>,
    /// Which installer builds venvs (default: uv when [`test_uv`] finds one, else pip).
    pub installer: Option<InstallerChoice>,
    /// `python.auto_install`.
    pub auto_install: bool,
    /// `venv.max_bytes`.
    pub venv_max_bytes: Option<u64>,
    /// `venv.ttl_days`.
    pub venv_ttl_days: Option<u64>,
    /// `producer.reclaim_after_seconds`.
    pub reclaim_after_seconds: u64,
    /// `producer.max_reclaims`.
    pub max_reclaims: i32,
    /// Start the producer with `auth.disabled` (no tokens needed).
    pub auth_disabled: bool,
    /// Keep the production defaults of the background intervals (outbox sweep, queue
    /// statistics, heartbeats, venv eviction) instead of the fast ones tests use, so a
    /// benchmark measures what a deployed fleet spends.
    pub production_timings: bool,
    /// `producer.max_event_streams`.
    pub max_event_streams: usize,
}

/// The uv executable tests use: `RUNFLEET_TEST_UV`, else `uv` on PATH (None: pip only).
pub fn test_uv() -> Option<String> {
    if let Ok(p) = std::env::var("RUNFLEET_TEST_UV") {
        return Some(p);
    }
    runfleet_consumer::spawn::which("uv").map(|p| p.display().to_string())
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            slots: 2,
            output_limit_bytes: 1024 * 1024,
            producer_via_proxy: false,
            producer_db_via_proxy: false,
            with_consumer: true,
            venv_cache_dir: None,
            index_url: None,
            installer: None,
            auto_install: true,
            venv_max_bytes: None,
            venv_ttl_days: None,
            reclaim_after_seconds: 30,
            max_reclaims: 3,
            auth_disabled: false,
            production_timings: false,
            max_event_streams: 200,
        }
    }
}

/// The producer's background intervals: short ones for tests (a test waits less for the
/// outbox sweeper or queue statistics), unless `production` keeps `defaults`.
fn fast_timings(defaults: ApiConfig, production: bool) -> ApiConfig {
    if production {
        return defaults;
    }
    ApiConfig {
        outbox_interval_ms: 200,
        outbox_min_age_seconds: 1,
        queue_stats_interval_ms: 200,
        ..defaults
    }
}

/// One isolated fleet.
pub struct Fleet {
    /// API base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// HTTP client, sending the bootstrap admin token.
    pub http: reqwest::Client,
    /// The bootstrap admin token (for clients other than `http`, e.g. the CLI).
    pub admin_token: String,
    /// The fleet's database URL.
    pub db_url: String,
    /// The AMQP config the fleet uses (its prefix isolates it).
    pub amqp: AmqpConfig,
    /// The consumer's work directory.
    pub work_dir: PathBuf,
    /// The consumer's health listener, when a consumer runs.
    pub consumer_addr: Option<SocketAddr>,
    /// The proxy in front of RabbitMQ for the producer, if asked for.
    pub proxy: Option<TcpProxy>,
    /// The proxy in front of Postgres for the producer, if asked for.
    pub db_proxy: Option<TcpProxy>,
    /// The consumer's configuration (for restarts and external consumer processes).
    pub consumer_config: ConsumerConfig,
    db_name: String,
    shutdown: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    consumer: Option<(Shutdown, tokio::task::JoinHandle<()>)>,
}

impl Fleet {
    /// Starts a fleet with default options.
    pub async fn start() -> Fleet {
        Fleet::start_with(FleetOptions::default()).await
    }

    /// Creates the database, migrates it, starts producer (and consumer).
    pub async fn start_with(opts: FleetOptions) -> Fleet {
        // The random tail of a v7 id (its head is a timestamp shared by tests starting together).
        let id = uuid::Uuid::now_v7().simple().to_string()[20..].to_string();
        let db_name = format!("rf_test_{id}");
        let db_url = create_database(&db_name).await;
        let database = DatabaseConfig {
            url: db_url.clone(),
            pool_size: 8,
            connect_timeout_seconds: 3,
        };

        let amqp = AmqpConfig {
            url: amqp_url(&amqp_addr()),
            prefix: format!("rft-{id}"),
            delivery_limit: 5,
            timeout_seconds: 3,
        };
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let log = LogConfig::default();
        runfleet_common::telemetry::init(
            &LogConfig {
                format: runfleet_common::config::LogFormat::Pretty,
                level: std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            },
            "runfleet-test",
        );

        let proxy = if opts.producer_via_proxy {
            Some(TcpProxy::start(amqp_addr()).await)
        } else {
            None
        };
        let mut producer_amqp = amqp.clone();
        if let Some(p) = &proxy {
            producer_amqp.url = amqp_url(&p.addr.to_string());
        }
        let db_proxy = if opts.producer_db_via_proxy {
            let server = pg_server();
            let host_port = server.rsplit('@').next().unwrap_or(&server).to_string();
            Some(TcpProxy::start(host_port).await)
        } else {
            None
        };
        let mut producer_database = database.clone();
        if let Some(p) = &db_proxy {
            producer_database.url = format!("postgres://postgres@{}/{db_name}", p.addr);
        }
        // The fleet's client is the bootstrap admin; tests of roles make their own tokens.
        let admin_token = runfleet_common::access::generate_token();
        // One key for script secrets, shared by producer and consumer as in production.
        let secrets = runfleet_common::config::SecretsConfig {
            keys: vec![
                format!(
                    "test:{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                )
                .as_str()
                .into(),
            ],
        };
        let producer_config = ProducerConfig {
            database: producer_database,
            amqp: producer_amqp,
            http: HttpConfig::on("127.0.0.1:0"),
            log: log.clone(),
            producer: ApiConfig {
                queues: vec!["default".into(), "other".into()],
                max_body_bytes: 256 * 1024,
                max_script_bytes: 128 * 1024,
                reclaim_after_seconds: opts.reclaim_after_seconds,
                max_reclaims: opts.max_reclaims,
                max_event_streams: opts.max_event_streams,
                ..fast_timings(ApiConfig::default(), opts.production_timings)
            },
            auth: AuthConfig {
                disabled: opts.auth_disabled,
                bootstrap_token: Some(admin_token.as_str().into()),
            },
            secrets: secrets.clone(),
        };
        let producer = runfleet_producer::Producer::bind(producer_config)
            .await
            .expect("bind producer");
        let base = format!("http://{}", producer.local_addr());
        tasks.push(tokio::spawn(producer.run(shutdown.clone())));

        let work_dir = std::env::temp_dir().join(format!("runfleet-test-{id}"));
        let installer = opts.installer.unwrap_or(if test_uv().is_some() {
            InstallerChoice::Uv
        } else {
            InstallerChoice::Pip
        });
        let consumer_config = ConsumerConfig {
            database,
            amqp: amqp.clone(),
            http: HttpConfig::on("127.0.0.1:0"),
            log,
            consumer: WorkerConfig {
                slots: opts.slots,
                queues: vec!["default".into(), "other".into()],
                worker_id: format!("test-consumer-{id}"),
                work_dir: work_dir.clone(),
                output_limit_bytes: opts.output_limit_bytes,
                kill_grace_seconds: 1,
                drain_seconds: 5,
                heartbeat_seconds: if opts.production_timings {
                    WorkerConfig::default().heartbeat_seconds
                } else {
                    1
                },
                ..WorkerConfig::default()
            },
            python: PythonConfig {
                auto_install: opts.auto_install,
                ..PythonConfig::default()
            },
            venv: VenvConfig {
                cache_dir: opts
                    .venv_cache_dir
                    .clone()
                    .unwrap_or_else(|| work_dir.join("venvs")),
                download_cache_dir: Some(work_dir.join("downloads")),
                ttl_days: opts.venv_ttl_days,
                max_bytes: opts.venv_max_bytes,
                installer,
                uv: test_uv().unwrap_or_else(|| "uv".into()),
                install_timeout_seconds: 120,
                eviction_interval_seconds: if opts.production_timings {
                    VenvConfig::default().eviction_interval_seconds
                } else {
                    1
                },
            },
            pip: PipConfig {
                index_url: opts.index_url.clone(),
                ..PipConfig::default()
            },
            secrets,
        };
        let mut fleet = Fleet {
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .default_headers(reqwest::header::HeaderMap::from_iter([(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {admin_token}").parse().unwrap(),
                )]))
                .build()
                .unwrap(),
            admin_token: admin_token.to_string(),
            db_url,
            amqp,
            work_dir,
            consumer_addr: None,
            proxy,
            db_proxy,
            consumer_config,
            db_name,
            shutdown,
            tasks,
            consumer: None,
        };
        if opts.with_consumer {
            fleet.start_consumer().await;
        }
        fleet
    }

    /// Starts the in-process consumer (again) with [`Fleet::consumer_config`].
    pub async fn start_consumer(&mut self) {
        let token = self.shutdown.child_token();
        let consumer = runfleet_consumer::Consumer::bind(self.consumer_config.clone())
            .await
            .expect("bind consumer");
        self.consumer_addr = Some(consumer.local_addr());
        let task = tokio::spawn(consumer.run(token.clone()));
        self.consumer = Some((token, task));
        self.wait_consumer_ready().await;
    }

    /// Stops the in-process consumer gracefully and waits for it.
    pub async fn stop_consumer(&mut self) {
        if let Some((token, task)) = self.consumer.take() {
            token.cancel();
            let _ = task.await;
        }
    }

    /// Starts an in-process scheduler on this fleet's database and RabbitMQ (call it twice
    /// for two replicas). Stop it with [`SchedulerHandle::stop`]; the fleet stops the rest.
    pub async fn start_scheduler(&self, max_idle_ms: u64) -> SchedulerHandle {
        let config = runfleet_scheduler::SchedulerConfig {
            database: self.consumer_config.database.clone(),
            amqp: self.amqp.clone(),
            http: HttpConfig::on("127.0.0.1:0"),
            log: LogConfig::default(),
            scheduler: runfleet_scheduler::FiringConfig { max_idle_ms },
        };
        let scheduler = runfleet_scheduler::Scheduler::bind(config)
            .await
            .expect("bind scheduler");
        let base = format!("http://{}", scheduler.local_addr());
        let token = self.shutdown.child_token();
        let task = tokio::spawn(scheduler.run(token.clone()));
        SchedulerHandle { base, token, task }
    }

    /// The Prometheus text of `base`'s `/metrics` (the API's, or `http://<consumer>`).
    pub async fn metrics_text(&self, base: &str) -> String {
        self.http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The consumer's base URL.
    pub fn consumer_base(&self) -> String {
        format!("http://{}", self.consumer_addr.expect("a consumer runs"))
    }

    /// Values of the named metrics on the consumer's `/metrics` (missing ones are absent).
    pub async fn consumer_metrics(
        &self,
        names: &[&str],
    ) -> std::collections::BTreeMap<String, f64> {
        let text = self.metrics_text(&self.consumer_base()).await;
        pyindex::metric_values(&text, names)
    }

    /// The consumer's `/venvs` listing.
    pub async fn venvs(&self) -> Vec<Value> {
        self.http
            .get(format!("http://{}/venvs", self.consumer_addr.unwrap()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn wait_consumer_ready(&self) {
        let url = format!("http://{}/ready", self.consumer_addr.unwrap());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("consumer did not become ready in 15 s");
    }

    /// A direct Postgres connection to the fleet's database.
    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls)
            .await
            .expect("connect to test database");
        tokio::spawn(conn);
        client
    }

    /// Messages ready in the AMQP queue `name` (full name, prefix included).
    pub async fn queue_depth(&self, name: &str) -> u32 {
        let conn = lapin::Connection::connect(&amqp_url(&amqp_addr()), Default::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                name.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
        runfleet_common::amqp::close_in_order(&[&ch], &conn, "done").await;
        q.message_count()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for t in &self.tasks {
            t.abort();
        }
        if let Some((_, task)) = &self.consumer {
            task.abort();
        }
        let db_name = self.db_name.clone();
        let amqp = self.amqp.clone();
        let work_dir = self.work_dir.clone();
        block_on_own_thread(async move {
            drop_database(&db_name).await;
            if let Ok(conn) =
                lapin::Connection::connect(&amqp_url(&amqp_addr()), Default::default()).await
            {
                if let Ok(ch) = conn.create_channel().await {
                    for q in ["default", "other"] {
                        let name = runfleet_common::amqp::queue_name(&amqp, q);
                        let _ = ch
                            .queue_delete(name.as_str().into(), Default::default())
                            .await;
                    }
                    for name in [
                        runfleet_common::amqp::dead_letter_queue(&amqp),
                        runfleet_common::amqp::parked_queue(&amqp),
                    ] {
                        let _ = ch
                            .queue_delete(name.as_str().into(), Default::default())
                            .await;
                    }
                    let dlx = runfleet_common::amqp::dead_letter_exchange(&amqp);
                    let _ = ch
                        .exchange_delete(dlx.as_str().into(), Default::default())
                        .await;
                    runfleet_common::amqp::close_in_order(&[&ch], &conn, "cleanup").await;
                } else {
                    let _ = conn.close(200, "".into()).await;
                }
            }
            let _ = std::fs::remove_dir_all(work_dir);
        });
    }
}

/// A scheduler started by [`Fleet::start_scheduler`].
pub struct SchedulerHandle {
    /// Its `/health`, `/ready`, `/metrics` base URL.
    pub base: String,
    token: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl SchedulerHandle {
    /// Stops it (SIGTERM-like) and waits for it.
    pub async fn stop(self) {
        self.token.cancel();
        let _ = self.task.await;
    }
}

impl Fleet {
    /// Starts `runfleet-consumer` as a separate process configured like the in-process one
    /// (environment variables, as in production).
    pub fn spawn_consumer_process(&self) -> std::process::Child {
        self.consumer_command()
            .spawn()
            .expect("start runfleet-consumer")
    }

    /// The command [`Fleet::spawn_consumer_process`] runs, to add variables before spawning.
    pub fn consumer_command(&self) -> std::process::Command {
        let c = &self.consumer_config;
        let installer = match c.venv.installer {
            InstallerChoice::Uv => "uv",
            InstallerChoice::Pip => "pip",
            InstallerChoice::Auto => "auto",
        };
        let mut cmd = std::process::Command::new(workspace_bin("runfleet-consumer"));
        cmd.env("RUNFLEET_DATABASE__URL", &c.database.url)
            .env("RUNFLEET_AMQP__URL", &c.amqp.url)
            .env("RUNFLEET_AMQP__PREFIX", &c.amqp.prefix)
            .env("RUNFLEET_HTTP__LISTEN", "127.0.0.1:0")
            .env("RUNFLEET_LOG__LEVEL", "warn")
            .env("RUNFLEET_CONSUMER__SLOTS", c.consumer.slots.to_string())
            .env(
                "RUNFLEET_CONSUMER__LOOKAHEAD",
                c.consumer.lookahead.to_string(),
            )
            .env("RUNFLEET_CONSUMER__QUEUES", c.consumer.queues.join(","))
            .env(
                "RUNFLEET_CONSUMER__WORKER_ID",
                format!("{}-proc", c.consumer.worker_id),
            )
            .env("RUNFLEET_CONSUMER__WORK_DIR", &c.consumer.work_dir)
            .env(
                "RUNFLEET_CONSUMER__HEARTBEAT_SECONDS",
                c.consumer.heartbeat_seconds.to_string(),
            )
            .env(
                "RUNFLEET_CONSUMER__DRAIN_SECONDS",
                c.consumer.drain_seconds.to_string(),
            )
            .env("RUNFLEET_VENV__CACHE_DIR", &c.venv.cache_dir)
            .env("RUNFLEET_VENV__INSTALLER", installer)
            .env("RUNFLEET_VENV__UV", &c.venv.uv)
            .stdout(std::process::Stdio::null());
        if let Some(d) = &c.venv.download_cache_dir {
            cmd.env("RUNFLEET_VENV__DOWNLOAD_CACHE_DIR", d);
        }
        if let Some(u) = &c.pip.index_url {
            cmd.env("RUNFLEET_PIP__INDEX_URL", u);
        }
        let keys: Vec<&str> = c.secrets.keys.iter().map(|k| k.expose()).collect();
        cmd.env("RUNFLEET_SECRETS__KEYS", keys.join(","));
        cmd
    }
}
