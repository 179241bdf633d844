//! The queue on PostgreSQL, for a fleet of workers on several machines sharing one
//! queue: the claim's subquery locks its rows `FOR UPDATE SKIP LOCKED`, so concurrent
//! claims from many machines skip each other's runs instead of waiting or colliding.

use crate::Clock;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::sync::Arc;

pub struct PgStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PgStore {
    /// Connects to `url` and applies the migrations.
    pub async fn open(url: &str, clock: Arc<dyn Clock>) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("../../migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool, clock })
    }

    async fn notify_impl(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One connection of its own listens; `recv` reconnects after an error (missing
    /// what was sent meanwhile, which the callers' periodic checks cover).
    async fn listen_impl(&self, channels: &[&str], on: crate::Listener) -> Result<(), StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen_all(channels.iter().copied()).await?;
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(n) => on(n.channel(), n.payload()),
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for the fleet's notifications failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(())
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// `?` placeholders become `$1`, `$2`, … (the SQL holds no `?` inside literals).
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

crate::sql::sql_store!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    sqlx::PgConnection,
    placeholders,
    " FOR UPDATE OF r SKIP LOCKED",
    "strpos"
);

crate::sql_webhooks::sql_webhook_store!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    placeholders,
    " FOR UPDATE SKIP LOCKED"
);
