//! The real Postgres and RabbitMQ the tests share: their addresses, and a database of
//! its own per test, dropped again afterwards.

use runfleet_common::config::DatabaseConfig;

/// Postgres server URL without a database (`RUNFLEET_TEST_PG`, default local trust auth).
pub fn pg_server() -> String {
    std::env::var("RUNFLEET_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// RabbitMQ address (`RUNFLEET_TEST_AMQP_ADDR`, default `127.0.0.1:5672`).
pub fn amqp_addr() -> String {
    std::env::var("RUNFLEET_TEST_AMQP_ADDR").unwrap_or_else(|_| "127.0.0.1:5672".into())
}

pub(crate) fn amqp_url(addr: &str) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

pub(crate) async fn admin_client() -> tokio_postgres::Client {
    let (client, conn) =
        tokio_postgres::connect(&format!("{}/postgres", pg_server()), tokio_postgres::NoTls)
            .await
            .expect("Postgres must run on 127.0.0.1:5432 (see README: bash .ci/run starts it)");
    tokio::spawn(conn);
    client
}

/// Creates database `name` and applies the migrations; returns its URL.
pub(crate) async fn create_database(name: &str) -> String {
    admin_client()
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let db_url = format!("{}/{name}", pg_server());
    let pool = runfleet_common::db::pool(&DatabaseConfig {
        url: db_url.clone(),
        pool_size: 8,
        connect_timeout_seconds: 3,
    });
    runfleet_common::db::migrate(&pool)
        .await
        .expect("migrate test database");
    pool.close();
    db_url
}

/// Drops database `name` (connections to it are closed first).
pub(crate) async fn drop_database(name: &str) {
    let _ = admin_client()
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}

/// Runs `work` to its end on a thread with a runtime of its own: `Drop` cannot await, and
/// the test's runtime may be shutting down.
pub(crate) fn block_on_own_thread(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for cleanup")
            .block_on(work)
    })
    .join();
}

/// A migrated database of one test's own and nothing else (no producer, no broker, no
/// background loops), for code called directly; dropped with it.
pub struct TestDb {
    /// A pool on it.
    pub pool: runfleet_common::db::DbPool,
    name: String,
}

impl TestDb {
    /// Creates and migrates a fresh database.
    pub async fn create() -> TestDb {
        let name = format!(
            "rf_test_{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        let url = create_database(&name).await;
        let pool = runfleet_common::db::pool(&DatabaseConfig {
            url,
            pool_size: 4,
            connect_timeout_seconds: 3,
        });
        TestDb { pool, name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.pool.close();
        let name = self.name.clone();
        block_on_own_thread(async move { drop_database(&name).await });
    }
}
