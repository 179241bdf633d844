//! The queue on SQLite: WAL, a busy timeout, and one-statement claims (SQLite takes
//! the write lock before it reads, so two claims never see the same queued run).

use crate::Clock;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::sync::Arc;

pub struct SqliteStore {
    pool: SqlitePool,
    clock: Arc<dyn Clock>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and applies the migrations.
    pub async fn open(url: &str, clock: Arc<dyn Clock>) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool, clock })
    }

    async fn notify_impl(&self, _channel: &str, _payload: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn listen_impl(&self, _channels: &[&str], _on: crate::Listener) -> Result<(), StoreError> {
        Ok(())
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// SQLite takes `?` placeholders as written.
fn placeholders(sql: &str) -> String {
    sql.to_string()
}

crate::sql::sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    sqlx::SqliteConnection,
    placeholders,
    "",
    "instr"
);

crate::sql_webhooks::sql_webhook_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, placeholders, "");
