//! [`crate::WebhookStore`] in the same portable SQL as the queue, stamped out for
//! SQLite and PostgreSQL (placeholders and the claim's row lock differ).

pub(crate) const DELIVERY_COLUMNS: &str =
    "seq, id, tenant, webhook, action, body, status, attempts, create_time, next_attempt, last_status_code, last_error";

/// Implements `WebhookStore` for `$store` on database `$db`.
macro_rules! sql_webhook_store {
    ($store:ident, $db:ty, $row:ty, $q:path, $lock:expr) => {
        use $crate::sql_webhooks::DELIVERY_COLUMNS;
        use $crate::webhooks::{AfterAttempt, AttemptRecord, DeliveryRecord, DeliveryStatus, NewDelivery, WebhookRecord, WebhookStore};

        fn webhook_record(row: &$row) -> Result<WebhookRecord, StoreError> {
            let spec: String = row.try_get("spec")?;
            Ok(WebhookRecord {
                tenant: row.try_get("tenant")?,
                name: row.try_get("name")?,
                spec: serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(format!("webhook spec: {e}")))?,
                enabled: row.try_get::<i64, _>("enabled")? != 0,
                create_time: row.try_get("create_time")?,
                last_updated_time: row.try_get("last_updated_time")?,
            })
        }

        fn delivery_record(row: &$row) -> Result<DeliveryRecord, StoreError> {
            let status: String = row.try_get("status")?;
            Ok(DeliveryRecord {
                id: row.try_get("id")?,
                tenant: row.try_get("tenant")?,
                webhook: row.try_get("webhook")?,
                action: row.try_get("action")?,
                body: row.try_get("body")?,
                status: DeliveryStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("delivery status {status:?}")))?,
                attempts: row.try_get("attempts")?,
                create_time: row.try_get("create_time")?,
                next_attempt: row.try_get("next_attempt")?,
                last_status_code: row.try_get("last_status_code")?,
                last_error: row.try_get("last_error")?,
            })
        }

        fn attempt_record(row: &$row) -> Result<AttemptRecord, StoreError> {
            Ok(AttemptRecord {
                delivery_id: row.try_get("delivery_id")?,
                attempt: row.try_get("attempt")?,
                time: row.try_get("time")?,
                status_code: row.try_get("status_code")?,
                latency_ms: row.try_get("latency_ms")?,
                error: row.try_get("error")?,
                response: row.try_get("response")?,
            })
        }

        #[async_trait]
        impl WebhookStore for $store {
            async fn put_webhook(&self, w: &WebhookRecord, create: bool) -> Result<bool, StoreError> {
                let now = self.now();
                let r = if create {
                    sqlx::query(AssertSqlSafe($q("INSERT INTO webhooks (tenant, name, spec, enabled, create_time, last_updated_time) VALUES (?, ?, ?, ?, ?, ?) \
                         ON CONFLICT (tenant, name) DO NOTHING")))
                    .bind(&w.tenant)
                    .bind(&w.name)
                    .bind($crate::sql::json_text("webhook spec", &w.spec)?)
                    .bind(w.enabled as i64)
                    .bind(now)
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                } else {
                    sqlx::query(AssertSqlSafe($q("UPDATE webhooks SET spec = ?, enabled = ?, last_updated_time = ? WHERE tenant = ? AND name = ?")))
                        .bind($crate::sql::json_text("webhook spec", &w.spec)?)
                        .bind(w.enabled as i64)
                        .bind(now)
                        .bind(&w.tenant)
                        .bind(&w.name)
                        .execute(&self.pool)
                        .await?
                };
                Ok(r.rows_affected() == 1)
            }

            async fn get_webhook(&self, tenant: &str, name: &str) -> Result<Option<WebhookRecord>, StoreError> {
                let row = sqlx::query(AssertSqlSafe($q("SELECT * FROM webhooks WHERE tenant = ? AND name = ?")))
                    .bind(tenant)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(webhook_record).transpose()
            }

            async fn list_webhooks(&self, tenant: Option<&str>) -> Result<Vec<WebhookRecord>, StoreError> {
                let where_ = if tenant.is_some() { " WHERE tenant = ?" } else { "" };
                let rows = sqlx::query(AssertSqlSafe($q(&format!("SELECT * FROM webhooks{where_} ORDER BY tenant, name"))))
                    .bind(tenant)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(webhook_record).collect()
            }

            async fn delete_webhook(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(AssertSqlSafe($q("DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE tenant = ? AND webhook = ?)")))
                    .bind(tenant)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(AssertSqlSafe($q("DELETE FROM webhook_deliveries WHERE tenant = ? AND webhook = ?")))
                    .bind(tenant)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                let r = sqlx::query(AssertSqlSafe($q("DELETE FROM webhooks WHERE tenant = ? AND name = ?")))
                    .bind(tenant)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(r.rows_affected() == 1)
            }

            async fn add_deliveries(&self, deliveries: &[NewDelivery]) -> Result<(), StoreError> {
                if deliveries.is_empty() {
                    return Ok(());
                }
                let now = self.now();
                let mut tx = self.pool.begin().await?;
                for d in deliveries {
                    sqlx::query(AssertSqlSafe($q("INSERT INTO webhook_deliveries (id, tenant, webhook, action, body, status, attempts, create_time, next_attempt) \
                         VALUES (?, ?, ?, ?, ?, 'Pending', 0, ?, ?) ON CONFLICT (id) DO NOTHING")))
                    .bind(&d.id)
                    .bind(&d.tenant)
                    .bind(&d.webhook)
                    .bind(&d.action)
                    .bind(&d.body)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn claim_deliveries(&self, owner: &str, n: u32, lease: Duration) -> Result<Vec<DeliveryRecord>, StoreError> {
                let now = self.now();
                let rows = sqlx::query(AssertSqlSafe($q(&format!(
                    "UPDATE webhook_deliveries SET lease_owner = ?, lease_expires = ? \
                     WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'Pending' AND next_attempt <= ? \
                         AND (lease_expires IS NULL OR lease_expires < ?) ORDER BY next_attempt, seq LIMIT ?{lock}) \
                     RETURNING {DELIVERY_COLUMNS}",
                    lock = $lock
                ))))
                .bind(owner)
                .bind(now + ms(lease))
                .bind(now)
                .bind(now)
                .bind(n as i64)
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<(i64, DeliveryRecord)> = rows
                    .iter()
                    .map(|r| Ok((r.try_get("seq")?, delivery_record(r)?)))
                    .collect::<Result<_, StoreError>>()?;
                out.sort_by_key(|(seq, _)| *seq);
                Ok(out.into_iter().map(|(_, d)| d).collect())
            }

            async fn finish_attempt(&self, owner: &str, a: &AttemptRecord, then: AfterAttempt) -> Result<bool, StoreError> {
                let (status, next) = match then {
                    AfterAttempt::Delivered => (DeliveryStatus::Delivered, None),
                    AfterAttempt::RetryAt(t) => (DeliveryStatus::Pending, Some(t)),
                    AfterAttempt::GiveUp => (DeliveryStatus::Failed, None),
                };
                let mut tx = self.pool.begin().await?;
                let r = sqlx::query(AssertSqlSafe($q("UPDATE webhook_deliveries SET attempts = ?, status = ?, next_attempt = ?, lease_owner = NULL, \
                         lease_expires = NULL, last_status_code = ?, last_error = ? WHERE id = ? AND lease_owner = ? AND status = 'Pending'")))
                .bind(a.attempt)
                .bind(status.as_str())
                .bind(next)
                .bind(a.status_code)
                .bind(&a.error)
                .bind(&a.delivery_id)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
                if r.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(AssertSqlSafe($q("INSERT INTO webhook_attempts (delivery_id, attempt, time, status_code, latency_ms, error, response) \
                     VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, attempt) DO NOTHING")))
                .bind(&a.delivery_id)
                .bind(a.attempt)
                .bind(a.time)
                .bind(a.status_code)
                .bind(a.latency_ms)
                .bind(&a.error)
                .bind(&a.response)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
                let row = sqlx::query(AssertSqlSafe($q(&format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?"))))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(delivery_record).transpose()
            }

            async fn list_deliveries(&self, tenant: &str, webhook: &str, limit: u32) -> Result<Vec<DeliveryRecord>, StoreError> {
                let rows = sqlx::query(AssertSqlSafe($q(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant = ? AND webhook = ? ORDER BY seq DESC LIMIT ?"
                ))))
                .bind(tenant)
                .bind(webhook)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(delivery_record).collect()
            }

            async fn attempts_of(&self, delivery_ids: &[String]) -> Result<Vec<AttemptRecord>, StoreError> {
                if delivery_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut q = QueryBuilder::<$db>::new("SELECT * FROM webhook_attempts WHERE delivery_id IN (");
                let mut list = q.separated(", ");
                for id in delivery_ids {
                    list.push_bind(id.clone());
                }
                q.push(") ORDER BY delivery_id, attempt");
                let rows = q.build().fetch_all(&self.pool).await?;
                rows.iter().map(attempt_record).collect()
            }

            async fn purge_deliveries(&self, before_ms: i64) -> Result<u64, StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(AssertSqlSafe($q("DELETE FROM webhook_attempts WHERE delivery_id IN \
                     (SELECT id FROM webhook_deliveries WHERE status <> 'Pending' AND create_time < ?)")))
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
                let r = sqlx::query(AssertSqlSafe($q("DELETE FROM webhook_deliveries WHERE status <> 'Pending' AND create_time < ?")))
                    .bind(before_ms)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(r.rows_affected())
            }
        }
    };
}

pub(crate) use sql_webhook_store;
