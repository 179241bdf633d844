//! The one SQL implementation of [`crate::Store`], stamped out for SQLite and for
//! PostgreSQL. The SQL is portable; the dialects differ only in placeholders (`?` or
//! `$1`), the claim's row lock (`FOR UPDATE OF r SKIP LOCKED` on PostgreSQL) and the name of
//! the substring function. Only the COLUMNS constant is ever formatted into SQL;
//! every value is bound.

pub(crate) const COLUMNS: &str = "seq, id, status, run_type, task, platform, request, image_names, create_time, start_time, finish_time, \
     last_updated_time, output_images, image_dependencies, error_message, lease_owner, lease_expires, attempt, cancel_requested, \
     source_trigger, image_update_trigger, timer_trigger, steps, tenant, cache_namespace, archived";

/// ` AND tenant = ?` when a lookup is on a tenant's behalf, nothing for the daemon's own.
pub(crate) fn tenant_clause(tenant: Option<&str>) -> &'static str {
    if tenant.is_some() {
        " AND tenant = ?"
    } else {
        ""
    }
}

pub(crate) fn ms(d: std::time::Duration) -> i64 {
    d.as_millis() as i64
}

/// A value of a typed JSON column as the database keeps it.
pub(crate) fn json_text<T: serde::Serialize>(what: &str, value: &T) -> Result<String, crate::StoreError> {
    serde_json::to_string(value).map_err(|e| crate::StoreError::Corrupt(format!("{what}: {e}")))
}

/// Implements `Store` for `$store` (a struct with `pool` and `clock`) on database `$db`.
macro_rules! sql_store {
    ($store:ident, $db:ty, $row:ty, $conn:ty, $q:path, $lock:expr, $contains:expr) => {
        use $crate::sql::{json_text, ms, tenant_clause, COLUMNS};
        use slipway_api::results::DependencyKind;
        use $crate::{Completion, Dependency, ListFilter, TriggerKind, NewRun, Reaped, RunRecord, RunStatus, RunType, Store, StoreError, TaskRecord};
        use async_trait::async_trait;
        use sqlx::{AssertSqlSafe, QueryBuilder, Row};
        use std::time::Duration;

/// A typed JSON column; `null` (no value yet) is the type's default.
fn column<T: serde::de::DeserializeOwned + Default>(row: &$row, name: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(name)?;
    serde_json::from_str::<Option<T>>(&text)
        .map(Option::unwrap_or_default)
        .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
}

fn record(row: &$row) -> Result<RunRecord, StoreError> {
    let text = |name: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(name)?) };
    let status = text("status")?;
    let run_type = text("run_type")?;
    Ok(RunRecord {
        id: text("id")?,
        tenant: text("tenant")?,
        cache_namespace: row.try_get("cache_namespace")?,
        status: RunStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        run_type: RunType::parse(&run_type).ok_or_else(|| StoreError::Corrupt(format!("run type {run_type:?}")))?,
        task: row.try_get("task")?,
        platform: text("platform")?,
        request: serde_json::from_str(&text("request")?).map_err(|e| StoreError::Corrupt(format!("request: {e}")))?,
        image_names: text("image_names")?.lines().map(str::to_string).collect(),
        create_time: row.try_get("create_time")?,
        start_time: row.try_get("start_time")?,
        finish_time: row.try_get("finish_time")?,
        last_updated_time: row.try_get("last_updated_time")?,
        output_images: column(row, "output_images")?,
        image_dependencies: column(row, "image_dependencies")?,
        steps: column(row, "steps")?,
        error_message: row.try_get("error_message")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires: row.try_get("lease_expires")?,
        attempt: row.try_get("attempt")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        archived: row.try_get::<i64, _>("archived")? != 0,
        triggers: crate::Triggers {
            source: optional_json(row, "source_trigger")?,
            image_update: optional_json(row, "image_update_trigger")?,
            timer: optional_json(row, "timer_trigger")?,
        },
    })
}

fn optional_json<T: serde::de::DeserializeOwned>(row: &$row, name: &str) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.try_get(name)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{name}: {e}"))))
        .transpose()
}

fn task_record(row: &$row) -> Result<TaskRecord, StoreError> {
    let spec: String = row.try_get("spec")?;
    Ok(TaskRecord {
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(format!("task spec: {e}")))?,
        enabled: row.try_get::<String, _>("status")? == "Enabled",
        create_time: row.try_get("create_time")?,
        last_updated_time: row.try_get("last_updated_time")?,
    })
}

fn dependency(row: &$row) -> Result<Dependency, StoreError> {
    Ok(Dependency {
        tenant: row.try_get("tenant")?,
        task: row.try_get("task")?,
        image: row.try_get("image")?,
        kind: {
            let kind: String = row.try_get("kind")?;
            DependencyKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("dependency kind {kind:?}")))?
        },
        digest: row.try_get("digest")?,
    })
}

/// Inserts a run (inside whatever transaction `conn` is in).
async fn insert_run(conn: &mut $conn, run: &NewRun, now: i64) -> Result<RunRecord, StoreError> {
    let row = sqlx::query(AssertSqlSafe($q(&format!(
        "INSERT INTO runs (id, status, run_type, task, platform, request, image_names, create_time, last_updated_time, \
             source_trigger, image_update_trigger, timer_trigger, tenant, cache_namespace) \
         VALUES (?, 'Queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
    ))))
    .bind(&run.id)
    .bind(run.run_type.as_str())
    .bind(&run.task)
    .bind(&run.platform)
    .bind(json_text("request", &run.request)?)
    .bind(run.image_names.join("\n"))
    .bind(now)
    .bind(now)
    .bind(run.triggers.source.as_ref().and_then(|t| serde_json::to_string(t).ok()))
    .bind(run.triggers.image_update.as_ref().and_then(|t| serde_json::to_string(t).ok()))
    .bind(run.triggers.timer.as_ref().and_then(|t| serde_json::to_string(t).ok()))
    .bind(&run.tenant)
    .bind(&run.cache_namespace)
    .fetch_one(&mut *conn)
    .await?;
    record(&row)
}


#[async_trait]
impl Store for $store {
    async fn enqueue(&self, run: NewRun) -> Result<RunRecord, StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_run(&mut conn, &run, self.now()).await
    }

    async fn claim(&self, worker: &str, n: u32, lease: Duration, max_per_tenant: u32) -> Result<Vec<RunRecord>, StoreError> {
        let now = self.now();
        // One statement: SQLite takes the write lock before it reads, so two claims never
        // see the same queued run. The queued runs are ranked by their tenant's load (runs
        // started or running, plus their place in its queue), then by age. On PostgreSQL
        // the first `n` of the best few dozen that no other claim holds are locked
        // (FOR UPDATE OF … SKIP LOCKED: window functions take no row locks, so the ranking
        // is a select of its own), so concurrent claims take the next ones, never wait.
        let rows = sqlx::query(AssertSqlSafe($q(&format!(
            "UPDATE runs SET status = 'Started', lease_owner = ?, lease_expires = ?, attempt = attempt + 1, \
                 start_time = COALESCE(start_time, ?), last_updated_time = ? \
             WHERE id IN (SELECT r.id FROM runs r JOIN ( \
                 SELECT id, seq, load FROM ( \
                     SELECT q.id, q.seq, ROW_NUMBER() OVER (PARTITION BY q.tenant ORDER BY q.seq) + COALESCE(b.busy, 0) AS load \
                     FROM runs q LEFT JOIN ( \
                         SELECT tenant, COUNT(*) AS busy FROM runs WHERE status IN ('Started', 'Running') GROUP BY tenant \
                     ) b ON b.tenant = q.tenant \
                     WHERE q.status = 'Queued' AND q.cancel_requested = 0 \
                 ) ranked WHERE (? = 0 OR load <= ?) ORDER BY load, seq LIMIT ? \
             ) c ON c.id = r.id WHERE r.status = 'Queued' ORDER BY c.load, c.seq LIMIT ?{lock}) \
             RETURNING {COLUMNS}", lock = $lock
        ))))
        .bind(worker)
        .bind(now + ms(lease))
        .bind(now)
        .bind(now)
        .bind(max_per_tenant as i64)
        .bind(max_per_tenant as i64)
        .bind(n as i64 + 64)
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
        let r = sqlx::query(AssertSqlSafe($q("UPDATE runs SET status = 'Running', last_updated_time = ? WHERE id = ? AND lease_owner = ? AND attempt = ? AND status = 'Started'")))
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
        let r = sqlx::query(AssertSqlSafe($q("UPDATE runs SET lease_expires = ?, last_updated_time = ? \
             WHERE id = ? AND lease_owner = ? AND attempt = ? AND status IN ('Started', 'Running')")))
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
        let r = sqlx::query(AssertSqlSafe($q("UPDATE runs SET status = ?, finish_time = ?, last_updated_time = ?, output_images = ?, image_dependencies = ?, \
                 error_message = ?, steps = COALESCE(?, steps), lease_owner = NULL, lease_expires = NULL \
             WHERE id = ? AND lease_owner = ? AND attempt = ? AND status IN ('Started', 'Running')")))
        .bind(status.as_str())
        .bind(now)
        .bind(now)
        .bind(serde_json::to_string(&done.output_images).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(&done.image_dependencies).unwrap_or_else(|_| "[]".into()))
        .bind(&done.error_message)
        .bind(done.steps.as_ref().map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into())))
        .bind(id)
        .bind(worker)
        .bind(attempt)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_steps(&self, id: &str, worker: &str, attempt: i64, steps: &[slipway_api::results::StepView]) -> Result<bool, StoreError> {
        let r = sqlx::query(AssertSqlSafe($q("UPDATE runs SET steps = ?, last_updated_time = ? \
             WHERE id = ? AND lease_owner = ? AND attempt = ? AND status IN ('Started', 'Running')")))
        .bind(serde_json::to_string(steps).unwrap_or_else(|_| "[]".into()))
        .bind(self.now())
        .bind(id)
        .bind(worker)
        .bind(attempt)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn cancel_queued(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError> {
        let now = self.now();
        let r = sqlx::query(AssertSqlSafe($q(&format!("UPDATE runs SET status = 'Canceled', finish_time = ?, last_updated_time = ?, error_message = 'canceled before it started' \
             WHERE id = ? AND status = 'Queued'{}", tenant_clause(tenant)))))
        .bind(now)
        .bind(now)
        .bind(id)
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn request_cancel(&self, tenant: Option<&str>, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let now = self.now();
        self.cancel_queued(tenant, id).await?;
        sqlx::query(AssertSqlSafe($q(&format!("UPDATE runs SET cancel_requested = 1, last_updated_time = ? WHERE id = ? AND status IN ('Started', 'Running'){}", tenant_clause(tenant)))))
            .bind(now)
            .bind(id)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        self.get(tenant, id).await
    }

    async fn set_archived(&self, tenant: Option<&str>, id: &str, archived: bool) -> Result<Option<RunRecord>, StoreError> {
        sqlx::query(AssertSqlSafe($q(&format!("UPDATE runs SET archived = ?, last_updated_time = ? WHERE id = ?{}", tenant_clause(tenant)))))
            .bind(i64::from(archived))
            .bind(self.now())
            .bind(id)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        self.get(tenant, id).await
    }

    async fn get(&self, tenant: Option<&str>, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe($q(&format!("SELECT {COLUMNS} FROM runs WHERE id = ?{}", tenant_clause(tenant)))))
            .bind(id)
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self, f: &ListFilter) -> Result<Vec<RunRecord>, StoreError> {
        let mut q = QueryBuilder::<$db>::new(format!("SELECT {COLUMNS} FROM runs WHERE 1 = 1"));
        if let Some(t) = &f.tenant {
            q.push(" AND tenant = ").push_bind(t.clone());
        }
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
            q.push(format!(" AND {}(image_names, ", $contains)).push_bind(image.clone()).push(") > 0");
        }
        match f.trigger {
            Some(TriggerKind::Manual) => {
                q.push(" AND source_trigger IS NULL AND image_update_trigger IS NULL AND timer_trigger IS NULL");
            }
            Some(TriggerKind::Commit) => {
                q.push(" AND source_trigger IS NOT NULL");
            }
            Some(TriggerKind::ImageUpdate) => {
                q.push(" AND image_update_trigger IS NOT NULL");
            }
            Some(TriggerKind::Timer) => {
                q.push(" AND timer_trigger IS NOT NULL");
            }
            None => {}
        }
        if let Some(after) = f.updated_after {
            q.push(" AND last_updated_time > ").push_bind(after);
        }
        if let Some(before) = &f.before_id {
            // Within the tenant too: another tenant's run id is no cursor (nor an oracle).
            q.push(" AND seq < (SELECT seq FROM runs WHERE id = ").push_bind(before.clone());
            if let Some(t) = &f.tenant {
                q.push(" AND tenant = ").push_bind(t.clone());
            }
            q.push(")");
        }
        // Watching for changes reads the oldest change first; a list reads newest first.
        q.push(if f.updated_after.is_some() {
            " ORDER BY last_updated_time, seq LIMIT "
        } else {
            " ORDER BY seq DESC LIMIT "
        })
        .push_bind(if f.limit == 0 { 50 } else { f.limit } as i64);
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(record).collect()
    }

    async fn reap(&self, requeue: bool) -> Result<Vec<Reaped>, StoreError> {
        let now = self.now();
        let rows = sqlx::query(AssertSqlSafe($q("SELECT id, attempt FROM runs WHERE status IN ('Started', 'Running') AND lease_expires < ?")))
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let attempt: i64 = row.try_get("attempt")?;
            if requeue && attempt < 2 {
                let r = sqlx::query(AssertSqlSafe($q("UPDATE runs SET status = 'Queued', lease_owner = NULL, lease_expires = NULL, cancel_requested = 0, last_updated_time = ? \
                     WHERE id = ? AND attempt = ? AND status IN ('Started', 'Running')")))
                .bind(now)
                .bind(&id)
                .bind(attempt)
                .execute(&self.pool)
                .await?;
                if r.rows_affected() == 1 {
                    out.push(Reaped::Requeued(id));
                }
            } else {
                let r = sqlx::query(AssertSqlSafe($q("UPDATE runs SET status = 'Error', finish_time = ?, last_updated_time = ?, lease_owner = NULL, lease_expires = NULL, \
                         error_message = 'the worker running this run was lost (the daemon stopped or its lease expired)' \
                     WHERE id = ? AND attempt = ? AND status IN ('Started', 'Running')")))
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
        let r = sqlx::query(AssertSqlSafe($q("UPDATE runs SET lease_expires = 0 WHERE status IN ('Started', 'Running') \
             AND substr(lease_owner, 1, length(?)) = ? AND substr(lease_owner, 1, length(?)) <> ?")))
        .bind(node)
        .bind(node)
        .bind(current)
        .bind(current)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn counts(&self, tenant: Option<&str>) -> Result<Vec<(RunStatus, i64)>, StoreError> {
        let where_ = if tenant.is_some() { " WHERE tenant = ?" } else { "" };
        let rows = sqlx::query(AssertSqlSafe($q(&format!("SELECT status, COUNT(*) AS n FROM runs{where_} GROUP BY status"))))
            .bind(tenant)
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
        let rows = sqlx::query(AssertSqlSafe($q("SELECT id FROM runs WHERE finish_time IS NOT NULL AND finish_time < ? AND archived = 0")))
            .bind(before_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe($q("SELECT 1"))).execute(&self.pool).await?;
        Ok(())
    }

    async fn put_task(&self, task: &TaskRecord, create: bool) -> Result<bool, StoreError> {
        let now = self.now();
        let status = if task.enabled { "Enabled" } else { "Disabled" };
        let r = if create {
            sqlx::query(AssertSqlSafe($q("INSERT INTO tasks (tenant, name, spec, status, create_time, last_updated_time) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, name) DO NOTHING")))
                .bind(&task.tenant)
                .bind(&task.name)
                .bind(json_text("task spec", &task.spec)?)
                .bind(status)
                .bind(now)
                .bind(now)
                .execute(&self.pool)
                .await?
        } else {
            sqlx::query(AssertSqlSafe($q("UPDATE tasks SET spec = ?, status = ?, last_updated_time = ? WHERE tenant = ? AND name = ?")))
                .bind(json_text("task spec", &task.spec)?)
                .bind(status)
                .bind(now)
                .bind(&task.tenant)
                .bind(&task.name)
                .execute(&self.pool)
                .await?
        };
        Ok(r.rows_affected() == 1)
    }

    async fn get_task(&self, tenant: &str, name: &str) -> Result<Option<TaskRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe($q("SELECT * FROM tasks WHERE tenant = ? AND name = ?")))
            .bind(tenant)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(task_record).transpose()
    }

    async fn list_tasks(&self, tenant: Option<&str>) -> Result<Vec<TaskRecord>, StoreError> {
        let where_ = if tenant.is_some() { " WHERE tenant = ?" } else { "" };
        let rows = sqlx::query(AssertSqlSafe($q(&format!("SELECT * FROM tasks{where_} ORDER BY tenant, name"))))
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(task_record).collect()
    }

    async fn delete_task(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(AssertSqlSafe($q("DELETE FROM tasks WHERE tenant = ? AND name = ?")))
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(AssertSqlSafe($q("DELETE FROM task_dependencies WHERE tenant = ? AND task = ?")))
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn enqueue_once(&self, key: &str, run: NewRun) -> Result<Option<RunRecord>, StoreError> {
        let now = self.now();
        // The first statement writes, so SQLite takes the write lock at once.
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(AssertSqlSafe($q("INSERT INTO trigger_keys (key, run_id, create_time) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING")))
            .bind(key)
            .bind(&run.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        let record = insert_run(&mut tx, &run, now).await?;
        tx.commit().await?;
        Ok(Some(record))
    }

    async fn enqueue_many_once(&self, items: Vec<(String, NewRun)>) -> Result<Vec<RunRecord>, StoreError> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::new();
        for (key, run) in items {
            let r = sqlx::query(AssertSqlSafe($q("INSERT INTO trigger_keys (key, run_id, create_time) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING")))
                .bind(&key)
                .bind(&run.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if r.rows_affected() == 1 {
                out.push(insert_run(&mut tx, &run, now).await?);
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn set_dependencies(&self, tenant: &str, task: &str, deps: &[Dependency]) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(AssertSqlSafe($q("DELETE FROM task_dependencies WHERE tenant = ? AND task = ?")))
            .bind(tenant)
            .bind(task)
            .execute(&mut *tx)
            .await?;
        for d in deps {
            sqlx::query(AssertSqlSafe($q("INSERT INTO task_dependencies (tenant, task, image, kind, digest, last_updated_time) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (tenant, task, image, kind) DO UPDATE SET digest = excluded.digest, last_updated_time = excluded.last_updated_time")))
            .bind(tenant)
            .bind(task)
            .bind(&d.image)
            .bind(d.kind.as_str())
            .bind(&d.digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn dependencies_of(&self, tenant: &str, task: &str) -> Result<Vec<Dependency>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe($q("SELECT tenant, task, image, kind, digest FROM task_dependencies WHERE tenant = ? AND task = ? ORDER BY kind DESC, image")))
            .bind(tenant)
            .bind(task)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(dependency).collect()
    }

    async fn dependents_of(&self, image: &str) -> Result<Vec<Dependency>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe($q("SELECT tenant, task, image, kind, digest FROM task_dependencies WHERE image = ? ORDER BY tenant, task")))
            .bind(image)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(dependency).collect()
    }

    async fn swap_image_digest(&self, image: &str, digest: &str) -> Result<Option<String>, StoreError> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        // Written first (a no-op update), so the read below happens under the write lock.
        sqlx::query(AssertSqlSafe($q("UPDATE image_digests SET last_updated_time = ? WHERE image = ?")))
            .bind(now)
            .bind(image)
            .execute(&mut *tx)
            .await?;
        let before: Option<String> = sqlx::query(AssertSqlSafe($q("SELECT digest FROM image_digests WHERE image = ?")))
            .bind(image)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("digest"))
            .transpose()?;
        sqlx::query(AssertSqlSafe($q("INSERT INTO image_digests (image, digest, last_updated_time) VALUES (?, ?, ?) ON CONFLICT (image) DO UPDATE SET digest = excluded.digest, last_updated_time = excluded.last_updated_time")))
            .bind(image)
            .bind(digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(before)
    }

    async fn last_image_digest(&self, image: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(AssertSqlSafe($q("SELECT digest FROM image_digests WHERE image = ?")))
            .bind(image)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("digest")).transpose()?)
    }

    async fn tracked_images(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe($q("SELECT DISTINCT image FROM task_dependencies ORDER BY image")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("image")?)).collect()
    }

    async fn put_upload(&self, id: &str, tenant: &str, size: u64) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe($q("INSERT INTO uploads (id, tenant, size, create_time) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")))
            .bind(id)
            .bind(tenant)
            .bind(size as i64)
            .bind(self.now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn upload_tenant(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(AssertSqlSafe($q("SELECT tenant FROM uploads WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("tenant")).transpose()?)
    }

    async fn upload_usage(&self, tenant: &str) -> Result<(u64, u64), StoreError> {
        let row = sqlx::query(AssertSqlSafe($q("SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM uploads WHERE tenant = ?")))
            .bind(tenant)
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        // SUM of BIGINT is NUMERIC on PostgreSQL, hence the cast.
        let bytes: i64 = row.try_get("bytes")?;
        Ok((n.max(0) as u64, bytes.max(0) as u64))
    }

    async fn unused_uploads(&self, before_ms: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe($q("SELECT u.id FROM uploads u WHERE u.create_time < ? \
             AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.status IN ('Queued', 'Started', 'Running') AND r.request LIKE '%upload://' || u.id || '%') \
             AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.spec LIKE '%upload://' || u.id || '%')")))
            .bind(before_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>("id")?)).collect()
    }

    async fn delete_upload(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe($q("DELETE FROM uploads WHERE id = ?")))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn put_directory(&self, directory: &slipway_api::tenant::Directory) -> Result<(), StoreError> {
        let text = serde_json::to_string(directory).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(AssertSqlSafe($q("INSERT INTO tenant_directory (id, directory, last_updated_time) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET directory = excluded.directory, last_updated_time = excluded.last_updated_time")))
        .bind(text)
        .bind(self.now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn directory(&self) -> Result<Option<slipway_api::tenant::Directory>, StoreError> {
        let row = sqlx::query(AssertSqlSafe($q("SELECT directory FROM tenant_directory WHERE id = 1")))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let text: String = r.try_get("directory")?;
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("tenant directory: {e}")))
        })
        .transpose()
    }

    async fn put_sealed_secrets(&self, owner: &str, sealed: &[u8]) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe($q(
            "INSERT INTO sealed_secrets (owner, sealed) VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET sealed = excluded.sealed"
        )))
        .bind(owner)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn sealed_secrets(&self, owner: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query(AssertSqlSafe($q("SELECT sealed FROM sealed_secrets WHERE owner = ?")))
            .bind(owner)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("sealed")).transpose()?)
    }

    async fn delete_sealed_secrets(&self, owner: &str) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe($q("DELETE FROM sealed_secrets WHERE owner = ?")))
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn sealed_owners(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe($q("SELECT owner FROM sealed_secrets ORDER BY owner")))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.try_get("owner")).collect::<Result<_, _>>()?)
    }

    async fn append_log(&self, run_id: &str, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe($q("INSERT INTO log_chunks (run_id, start_offset, data) VALUES (?, ?, ?) ON CONFLICT (run_id, start_offset) DO NOTHING")))
            .bind(run_id)
            .bind(offset as i64)
            .bind(data)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn read_log(&self, run_id: &str, offset: u64, max: u64) -> Result<Vec<u8>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe($q("SELECT start_offset, data FROM log_chunks WHERE run_id = ? AND start_offset + length(data) > ? ORDER BY start_offset LIMIT 256")))
            .bind(run_id)
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        let mut at = offset;
        for r in &rows {
            let start: i64 = r.try_get("start_offset")?;
            let data: Vec<u8> = r.try_get("data")?;
            let start = start as u64;
            if start > at {
                break; // a piece not written yet (or lost): stop at the gap
            }
            let skip = (at - start) as usize;
            if skip < data.len() {
                out.extend_from_slice(&data[skip..]);
                at = start + data.len() as u64;
            }
            if out.len() as u64 >= max {
                break;
            }
        }
        Ok(out)
    }

    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        self.notify_impl(channel, payload).await
    }

    async fn listen(&self, channels: &[&str], on: crate::Listener) -> Result<(), StoreError> {
        self.listen_impl(channels, on).await
    }

    async fn delete_log(&self, run_id: &str) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe($q("DELETE FROM log_chunks WHERE run_id = ?")))
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

    };
}

pub(crate) use sql_store;
