//! Outbound webhooks: Slipway tells other systems when a run pushes an image (ACR's
//! push event, field for field) and, for webhooks that ask, when runs are queued,
//! start and finish.
//!
//! Every event becomes one delivery per webhook it concerns, written to the queue's
//! database before anything is sent; deliveries are claimed under a lease by any
//! node's delivery loop, POSTed (signed with HMAC-SHA256 when the webhook has a
//! secret) and retried with backoff for the retry period, across restarts. Each
//! attempt is recorded (status, latency, the start of the answer).
//!
//! Secrets (the signing key and custom header values) are kept like a run's: sealed
//! with a fleet's key in the database, else in a `0600` file of the data dir.

pub mod payload;
pub mod send;

use slipway_api::webhook::{WebhookSecrets, WebhookSpec};
use slipway_store::{AfterAttempt, AttemptRecord, DeliveryRecord, NewDelivery, WebhookRecord};
use slipway_worker::events::{RunEvent, RunEvents};
use slipway_worker::vault::{Owner, VaultError};
use slipway_worker::Node;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Deliveries one loop sends at once.
const BATCH: u32 = 16;
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

pub struct Notifier {
    pub node: Arc<Node>,
    client: reqwest::Client,
    reach: Arc<slipway_sources::Reach>,
    /// Woken when deliveries are added on this node.
    due: tokio::sync::Notify,
}

impl Notifier {
    /// A notifier for `node`; fails when no HTTP client can be made (the TLS backend).
    pub fn new(node: Arc<Node>) -> Result<Arc<Notifier>, String> {
        let reach = Arc::new(slipway_sources::Reach {
            file_dirs: Vec::new(),
            allowed: node.settings.allowed_webhook_hosts.clone(),
            setting: "allowed_webhook_hosts",
            ..Default::default()
        });
        Ok(Arc::new(Notifier {
            client: send::client(&reach)?,
            reach,
            node,
            due: tokio::sync::Notify::new(),
        }))
    }

    /// Whether the daemon may send to `uri`: its host's addresses as they resolve now
    /// (resolved off the async runtime, for at most 10 s).
    pub async fn check_uri(&self, uri: &str) -> Result<(), String> {
        let (reach, uri) = (self.reach.clone(), uri.to_string());
        match tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(move || reach.check_url(&uri))).await {
            Ok(Ok(checked)) => checked,
            Ok(Err(e)) => Err(format!("the check failed: {e}")),
            Err(_) => Err("its host name did not resolve within 10 s".into()),
        }
    }

    /// A webhook's secrets (none when it has none); an error when they are kept but
    /// cannot be read, so nothing is sent without them.
    pub async fn secrets(&self, tenant: &str, name: &str) -> Result<WebhookSecrets, String> {
        self.node.vault.read(&Owner::webhook(tenant, name)).await.map_err(|e| e.to_string())
    }

    pub async fn keep_secrets(&self, tenant: &str, name: &str, secrets: &WebhookSecrets) -> Result<(), VaultError> {
        if secrets == &WebhookSecrets::default() {
            self.forget_secrets(tenant, name).await;
            return Ok(());
        }
        self.node.vault.keep(&Owner::webhook(tenant, name), secrets).await
    }

    pub async fn forget_secrets(&self, tenant: &str, name: &str) {
        self.node.vault.delete(&Owner::webhook(tenant, name)).await;
    }

    fn now(&self) -> String {
        slipway_api::time::millis(self.node.now())
    }

    /// Queues a ping to `webhook`; returns the delivery's id.
    pub async fn ping(&self, tenant: &str, webhook: &str) -> Result<String, slipway_store::StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let body = payload::ping_event(&id, &self.now()).to_string();
        self.node
            .store
            .add_deliveries(&[NewDelivery {
                id: id.clone(),
                tenant: tenant.to_string(),
                webhook: webhook.to_string(),
                action: "ping".into(),
                body,
            }])
            .await?;
        self.due.notify_one();
        Ok(id)
    }

    /// The deliveries an event makes: one per enabled webhook of the run's tenant that
    /// wants it (another tenant's webhooks never hear of the run).
    async fn deliveries_for(&self, run_id: &str, event: &RunEvent) -> Result<Vec<NewDelivery>, String> {
        let Some(record) = self.node.store.get(None, run_id).await.map_err(|e| e.to_string())? else {
            return Ok(Vec::new());
        };
        let hooks = self
            .node
            .store
            .list_webhooks(Some(&record.tenant))
            .await
            .map_err(|e| e.to_string())?;
        let specs: Vec<WebhookSpec> = hooks.iter().filter(|h| h.enabled).map(|h| h.spec.clone()).collect();
        let action = match event {
            RunEvent::Pushed(_) => "push",
            RunEvent::Queued => "run_queued",
            RunEvent::Started => "run_started",
            RunEvent::Finished => "run_finished",
        };
        let wanting: Vec<&WebhookSpec> = specs
            .iter()
            .filter(|s| s.wants(action))
            .filter(|s| match event {
                RunEvent::Pushed(image) => slipway_api::webhook::in_scope(&s.scope, &image.repository, &image.tag),
                _ => true,
            })
            .collect();
        if wanting.is_empty() {
            return Ok(Vec::new());
        }
        let trigger = slipway_store::TriggerKind::of(&record.triggers).as_str();
        let run = record.view();
        let link = format!("{}/runs/{run_id}", self.node.settings.public_base());
        let now = self.now();
        Ok(wanting
            .into_iter()
            .map(|s| {
                let id = uuid::Uuid::new_v4().to_string();
                let body = match event {
                    RunEvent::Pushed(image) => serde_json::to_string(&payload::push_event(&id, &now, run_id, image)),
                    _ => {
                        let mut run = run.clone();
                        // The state the event is about, though the run may have moved on.
                        match event {
                            RunEvent::Queued => run.status = slipway_api::RunStatus::Queued,
                            RunEvent::Started => run.status = slipway_api::RunStatus::Running,
                            _ => {}
                        }
                        serde_json::to_string(&payload::run_event(&id, &now, action, run, trigger, &link))
                    }
                }
                .unwrap_or_default();
                NewDelivery {
                    id,
                    tenant: record.tenant.clone(),
                    webhook: s.name.clone(),
                    action: action.to_string(),
                    body,
                }
            })
            .collect())
    }

    /// One attempt at `d`, recorded with what follows it.
    async fn attempt(&self, owner: &str, d: DeliveryRecord, hook: Option<&WebhookRecord>) {
        let now_ms = self.node.clock.now_ms();
        let attempt = d.attempts + 1;
        let spec: Option<&WebhookSpec> = hook.map(|h| &h.spec);
        let (sent, then) = match spec {
            // A ping is sent to a disabled webhook too: it checks the receiver.
            Some(spec) if spec.enabled() || d.action == "ping" => {
                let timeout = Duration::from_secs(self.node.settings.webhook_timeout_seconds);
                let sent = match (self.secrets(&d.tenant, &spec.name).await, self.reach.check_url_literal(&spec.uri)) {
                    (Ok(secrets), Ok(())) => {
                        let mut sent = send::post(&self.client, &spec.uri, &d.action, &d.id, &d.body, &secrets, timeout).await;
                        // A receiver that echoes the request must not make us keep a secret.
                        sent.response = sent.response.map(|r| redact(&r, &secrets));
                        sent
                    }
                    (Err(e), _) => {
                        tracing::error!(webhook = %spec.name, error = %e, "a webhook's secrets cannot be read; nothing was sent");
                        failed_attempt("the webhook's secrets cannot be read; see the daemon's log")
                    }
                    (_, Err(e)) => failed_attempt(&e),
                };
                let then = if sent.delivered() {
                    AfterAttempt::Delivered
                } else {
                    let base = Duration::from_secs(self.node.settings.webhook_retry_seconds);
                    let wait = base.saturating_mul(1u32 << (attempt - 1).clamp(0, 20) as u32).min(MAX_BACKOFF);
                    let next = now_ms.saturating_add(wait.as_millis() as i64);
                    let period_ms = (self.node.settings.webhook_retry_period_seconds as i64) * 1000;
                    if next.saturating_sub(d.create_time) <= period_ms {
                        AfterAttempt::RetryAt(next)
                    } else {
                        AfterAttempt::GiveUp
                    }
                };
                (sent, then)
            }
            _ => (
                send::Sent {
                    status_code: None,
                    latency: Duration::ZERO,
                    error: Some(
                        if hook.is_none() {
                            "the webhook was deleted"
                        } else {
                            "the webhook is disabled"
                        }
                        .into(),
                    ),
                    response: None,
                },
                AfterAttempt::GiveUp,
            ),
        };
        tracing::info!(
            webhook = %d.webhook,
            delivery = %d.id,
            action = %d.action,
            attempt,
            status = sent.status_code,
            latency_ms = sent.latency.as_millis() as u64,
            error = sent.error.as_deref().unwrap_or(""),
            outcome = ?then,
            "webhook delivery attempt"
        );
        let record = AttemptRecord {
            delivery_id: d.id.clone(),
            attempt,
            time: now_ms,
            status_code: sent.status_code.map(i64::from),
            latency_ms: sent.latency.as_millis() as i64,
            error: sent.error,
            response: sent.response,
        };
        match self.node.store.finish_attempt(owner, &record, then).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(delivery = %d.id, "the delivery was no longer this node's; its attempt was not recorded"),
            Err(e) => tracing::warn!(delivery = %d.id, error = %e, "recording a delivery attempt failed"),
        }
    }
}

/// An attempt that sent nothing.
fn failed_attempt(why: &str) -> send::Sent {
    send::Sent {
        status_code: None,
        latency: Duration::ZERO,
        error: Some(why.to_string()),
        response: None,
    }
}

/// `text` with every secret value of the webhook replaced by `*****`.
/// Values shorter than four characters are left: masking every `1` would hide the
/// answer, not a secret.
fn redact(text: &str, secrets: &WebhookSecrets) -> String {
    let values = secrets.custom_headers.values().chain(secrets.secret.iter());
    slipway_plan::Redactor::new(values.filter(|v| v.len() >= 4).cloned().collect()).mask(text)
}

impl Notifier {
    /// Makes this notifier the listener of its node's run events.
    pub fn listen(self: &Arc<Self>) {
        // One queue, read by one task: a run's events are recorded in the order told.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, RunEvent)>(EVENT_QUEUE);
        if !self.node.listen_to_runs(Arc::new(Hook(tx))) {
            tracing::warn!("the node already had a listener for its run events");
            return;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some((run_id, event)) = rx.recv().await {
                let Some(me) = me.upgrade() else { return };
                match me.deliveries_for(&run_id, &event).await {
                    Ok(list) if list.is_empty() => {}
                    Ok(list) => match me.node.store.add_deliveries(&list).await {
                        Ok(()) => me.due.notify_one(),
                        Err(e) => tracing::error!(run_id, error = %e, "recording webhook deliveries failed; these events are lost"),
                    },
                    Err(e) => tracing::error!(run_id, error = %e, "finding the webhooks of an event failed; it is lost"),
                }
            }
        });
    }
}

/// Events waiting to be recorded, at most.
const EVENT_QUEUE: usize = 10_000;

/// What the node holds: the sending end of the notifier's queue.
struct Hook(tokio::sync::mpsc::Sender<(String, RunEvent)>);

impl RunEvents for Hook {
    fn run_event(&self, run_id: &str, event: RunEvent) {
        // Told in passing by workers: never waits.
        if let Err(e) = self.0.try_send((run_id.to_string(), event)) {
            tracing::error!(run_id, error = %e, "the webhook event queue is full or closed; this event is lost");
        }
    }
}

/// Sends due deliveries until `shutdown`: keeps up to `BATCH` attempts going at once,
/// claiming more as slots free (a slow receiver holds one slot, not the loop), records
/// each attempt; when nothing is due, waits for new ones or a second. Delivery is at
/// least once: a receiver may see an event again (same `id`) if an attempt outlives
/// its lease or the daemon stops mid-attempt.
pub async fn deliver(n: Arc<Notifier>, shutdown: CancellationToken) {
    let owner = format!("{}notify", n.node.instance);
    let lease = Duration::from_secs(n.node.settings.webhook_timeout_seconds + 60);
    let slots = Arc::new(tokio::sync::Semaphore::new(BATCH as usize));
    let mut purged = std::time::Instant::now();
    loop {
        // Ended deliveries are kept as long as finished runs' logs.
        if purged.elapsed() >= Duration::from_secs(n.node.settings.purge_interval_seconds) {
            purged = std::time::Instant::now();
            let before = n.node.clock.now_ms() - (n.node.settings.retention_days as i64) * 86_400_000;
            match n.node.store.purge_deliveries(before).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "forgot old webhook deliveries"),
                Err(e) => tracing::warn!(error = %e, "purging old webhook deliveries failed"),
            }
        }
        let woken = n.due.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let free = slots.available_permits() as u32;
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match n.node.store.claim_deliveries(&owner, free, lease).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook deliveries failed");
                    Vec::new()
                }
            }
        };
        if !claimed.is_empty() {
            let hooks = match n.node.store.list_webhooks(None).await {
                Ok(h) => h,
                Err(e) => {
                    // Not "deleted": the claimed deliveries stay due and are claimed
                    // again once their lease lapses.
                    tracing::warn!(error = %e, "reading webhooks failed; the claimed deliveries wait for their next attempt");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for d in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                let hook = hooks.iter().find(|h| h.tenant == d.tenant && h.name == d.webhook).cloned();
                let (n, owner) = (n.clone(), owner.clone());
                tokio::spawn(async move {
                    n.attempt(&owner, d, hook.as_ref()).await;
                    drop(permit);
                    n.due.notify_one();
                });
            }
            continue;
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
