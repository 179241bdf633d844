//! The queue on SQLite: WAL, a busy timeout, and one-statement claims.

use crate::{Clock, Completion, ListFilter, NewRun, Reaped, RunRecord, RunStatus, RunType, Store, StoreError};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
// Only the COLUMNS constant is ever formatted into SQL; values are bound.
use sqlx::{AssertSqlSafe, QueryBuilder, Row, SqlitePool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
    clock: Arc<dyn Clock>,
}

const COLUMNS: &str = "seq, id, status, run_type, task, platform, request, image_names, create_time, start_time, finish_time, \
     last_updated_time, output_images, image_dependencies, error_message, lease_owner, lease_expires, attempt, cancel_requested";

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

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

fn record(row: &SqliteRow) -> Result<RunRecord, StoreError> {
    let text = |name: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(name)?) };
    let json = |name: &str| -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(&text(name)?).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
    };
    let status = text("status")?;
    let run_type = text("run_type")?;
    Ok(RunRecord {
        id: text("id")?,
        status: RunStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        run_type: RunType::parse(&run_type).ok_or_else(|| StoreError::Corrupt(format!("run type {run_type:?}")))?,
        task: row.try_get("task")?,
        platform: text("platform")?,
        request: json("request")?,
        image_names: text("image_names")?.lines().map(str::to_string).collect(),
        create_time: row.try_get("create_time")?,
        start_time: row.try_get("start_time")?,
        finish_time: row.try_get("finish_time")?,
        last_updated_time: row.try_get("last_updated_time")?,
        output_images: json("output_images")?,
        image_dependencies: json("image_dependencies")?,
        error_message: row.try_get("error_message")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires: row.try_get("lease_expires")?,
        attempt: row.try_get("attempt")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
    })
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

#[async_trait]
impl Store for SqliteStore {
    async fn enqueue(&self, run: NewRun) -> Result<RunRecord, StoreError> {
        let now = self.now();
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO runs (id, status, run_type, task, platform, request, image_names, create_time, last_updated_time) \
             VALUES (?, 'Queued', ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
        )))
        .bind(&run.id)
        .bind(run.run_type.as_str())
        .bind(&run.task)
        .bind(&run.platform)
        .bind(run.request.to_string())
        .bind(run.image_names.join("\n"))
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        record(&row)
    }

    async fn claim(&self, worker: &str, n: u32, lease: Duration) -> Result<Vec<RunRecord>, StoreError> {
        let now = self.now();
        // One statement: SQLite takes the write lock before it reads, so two claims never
        // see the same queued run. PostgreSQL: the inner SELECT gets FOR UPDATE SKIP LOCKED.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE runs SET status = 'Started', lease_owner = ?, lease_expires = ?, attempt = attempt + 1, \
                 start_time = COALESCE(start_time, ?), last_updated_time = ? \
             WHERE id IN (SELECT id FROM runs WHERE status = 'Queued' AND cancel_requested = 0 ORDER BY seq LIMIT ?) \
             RETURNING {COLUMNS}"
        )))
        .bind(worker)
        .bind(now + ms(lease))
        .bind(now)
        .bind(now)
        .bind(n as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(i64, RunRecord)> = rows
            .iter()
            .map(|r| Ok((r.try_get("seq")?, record(r)?)))
            .collect::<Result<_, StoreError>>()?;
        out.sort_by_key(|(seq, _)| *seq);
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }

    async fn mark_running(&self, id: &str, worker: &str, attempt: i64) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE runs SET status = 'Running', last_updated_time = ? WHERE id = ? AND lease_owner = ? AND attempt = ? AND status = 'Started'")
            .bind(self.now())
            .bind(id)
            .bind(worker)
            .bind(attempt)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn renew(&self, id: &str, worker: &str, attempt: i64, lease: Duration) -> Result<bool, StoreError> {
        let now = self.now();
        let r = sqlx::query(
            "UPDATE runs SET lease_expires = ?, last_updated_time = ? \
             WHERE id = ? AND lease_owner = ? AND attempt = ? AND status IN ('Started', 'Running')",
        )
        .bind(now + ms(lease))
        .bind(now)
        .bind(id)
        .bind(worker)
        .bind(attempt)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn complete(&self, id: &str, worker: &str, attempt: i64, done: Completion) -> Result<bool, StoreError> {
        let now = self.now();
        let status = done.status.unwrap_or(RunStatus::Error);
        let r = sqlx::query(
            "UPDATE runs SET status = ?, finish_time = ?, last_updated_time = ?, output_images = ?, image_dependencies = ?, \
                 error_message = ?, lease_owner = NULL, lease_expires = NULL \
             WHERE id = ? AND lease_owner = ? AND attempt = ? AND status IN ('Started', 'Running')",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(now)
        .bind(if done.output_images.is_null() {
            "[]".to_string()
        } else {
            done.output_images.to_string()
        })
        .bind(if done.image_dependencies.is_null() {
            "[]".to_string()
        } else {
            done.image_dependencies.to_string()
        })
        .bind(&done.error_message)
        .bind(id)
        .bind(worker)
        .bind(attempt)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn request_cancel(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let now = self.now();
        sqlx::query(
            "UPDATE runs SET status = 'Canceled', finish_time = ?, last_updated_time = ?, error_message = 'canceled before it started' \
             WHERE id = ? AND status = 'Queued'",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        sqlx::query("UPDATE runs SET cancel_requested = 1, last_updated_time = ? WHERE id = ? AND status IN ('Started', 'Running')")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.get(id).await
    }

    async fn get(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM runs WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self, f: &ListFilter) -> Result<Vec<RunRecord>, StoreError> {
        let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM runs WHERE 1 = 1"));
        if let Some(s) = f.status {
            q.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some(t) = f.run_type {
            q.push(" AND run_type = ").push_bind(t.as_str());
        }
        if let Some(task) = &f.task {
            q.push(" AND task = ").push_bind(task.clone());
        }
        if let Some(image) = &f.image {
            q.push(" AND instr(image_names, ").push_bind(image.clone()).push(") > 0");
        }
        if let Some(before) = &f.before_id {
            q.push(" AND seq < (SELECT seq FROM runs WHERE id = ")
                .push_bind(before.clone())
                .push(")");
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(if f.limit == 0 { 50 } else { f.limit } as i64);
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(record).collect()
    }

    async fn reap(&self, requeue: bool) -> Result<Vec<Reaped>, StoreError> {
        let now = self.now();
        let rows = sqlx::query("SELECT id, attempt FROM runs WHERE status IN ('Started', 'Running') AND lease_expires < ?")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let attempt: i64 = row.try_get("attempt")?;
            if requeue && attempt < 2 {
                let r = sqlx::query(
                    "UPDATE runs SET status = 'Queued', lease_owner = NULL, lease_expires = NULL, cancel_requested = 0, last_updated_time = ? \
                     WHERE id = ? AND attempt = ? AND status IN ('Started', 'Running')",
                )
                .bind(now)
                .bind(&id)
                .bind(attempt)
                .execute(&self.pool)
                .await?;
                if r.rows_affected() == 1 {
                    out.push(Reaped::Requeued(id));
                }
            } else {
                let r = sqlx::query(
                    "UPDATE runs SET status = 'Error', finish_time = ?, last_updated_time = ?, lease_owner = NULL, lease_expires = NULL, \
                         error_message = 'the worker running this run was lost (the daemon stopped or its lease expired)' \
                     WHERE id = ? AND attempt = ? AND status IN ('Started', 'Running')",
                )
                .bind(now)
                .bind(now)
                .bind(&id)
                .bind(attempt)
                .execute(&self.pool)
                .await?;
                if r.rows_affected() == 1 {
                    out.push(Reaped::Failed(id));
                }
            }
        }
        Ok(out)
    }

    async fn expire_node_leases(&self, node: &str, current: &str) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE runs SET lease_expires = 0 WHERE status IN ('Started', 'Running') \
             AND substr(lease_owner, 1, length(?)) = ? AND substr(lease_owner, 1, length(?)) <> ?",
        )
        .bind(node)
        .bind(node)
        .bind(current)
        .bind(current)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn counts(&self) -> Result<Vec<(RunStatus, i64)>, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get("status")?;
                Ok((
                    RunStatus::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("status {s:?}")))?,
                    r.try_get("n")?,
                ))
            })
            .collect()
    }

    async fn finished_before(&self, before_ms: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM runs WHERE finish_time IS NOT NULL AND finish_time < ?")
            .bind(before_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
