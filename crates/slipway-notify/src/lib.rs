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
    pub fn new(node: Arc<Node>) -> Arc<Notifier> {
        let reach = Arc::new(slipway_sources::Reach {
            file_dirs: Vec::new(),
            allowed: node.settings.allowed_webhook_hosts.clone(),
            setting: "allowed_webhook_hosts",
        });
        Arc::new(Notifier {
            client: send::client(&reach),
            reach,
            node,
            due: tokio::sync::Notify::new(),
        })
    }

    /// Whether the daemon may send to `uri` (its host checked as it is now).
    pub fn check_uri(&self, uri: &str) -> Result<(), String> {
        self.reach.check_url(uri)
    }

    fn secrets_key(name: &str) -> String {
        format!("webhook-{name}")
    }

    /// A webhook's secrets (none when it has none).
    pub async fn secrets(&self, name: &str) -> WebhookSecrets {
        match self.node.read_sealed(&Self::secrets_key(name)).await {
            Ok(Some(plain)) => serde_json::from_slice(&plain).unwrap_or_default(),
            Ok(None) => WebhookSecrets::default(),
            Err(e) => {
                tracing::warn!(webhook = name, error = %e, "reading a webhook's secrets failed");
                WebhookSecrets::default()
            }
        }
    }

    pub async fn keep_secrets(&self, name: &str, secrets: &WebhookSecrets) -> std::io::Result<()> {
        if secrets == &WebhookSecrets::default() {
            self.node.remove_sealed(&Self::secrets_key(name)).await;
            return Ok(());
        }
        let plain = serde_json::to_vec(secrets).map_err(std::io::Error::other)?;
        self.node.keep_sealed(&Self::secrets_key(name), &plain).await
    }

    pub async fn forget_secrets(&self, name: &str) {
        self.node.remove_sealed(&Self::secrets_key(name)).await;
    }

    fn now(&self) -> String {
        self.node.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// Queues a ping to `webhook`; returns the delivery's id.
    pub async fn ping(&self, webhook: &str) -> Result<String, slipway_store::StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let body = payload::ping_event(&id, &self.now()).to_string();
        self.node
            .store
            .add_deliveries(&[NewDelivery {
                id: id.clone(),
                webhook: webhook.to_string(),
                action: "ping".into(),
                body,
            }])
            .await?;
        self.due.notify_one();
        Ok(id)
    }

    /// The deliveries an event makes: one per enabled webhook that wants it.
    async fn deliveries_for(&self, run_id: &str, event: &RunEvent) -> Result<Vec<NewDelivery>, String> {
        let hooks = self.node.store.list_webhooks().await.map_err(|e| e.to_string())?;
        let specs: Vec<WebhookSpec> = hooks
            .iter()
            .filter(|h| h.enabled)
            .filter_map(|h| serde_json::from_value(h.spec.clone()).ok())
            .collect();
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
                RunEvent::Pushed(image) => slipway_api::webhook::in_scope(
                    &s.scope,
                    image.get("repository").and_then(|v| v.as_str()).unwrap_or(""),
                    image.get("tag").and_then(|v| v.as_str()).unwrap_or(""),
                ),
                _ => true,
            })
            .collect();
        if wanting.is_empty() {
            return Ok(Vec::new());
        }
        let run = match event {
            RunEvent::Pushed(_) => None,
            _ => {
                let Some(r) = self.node.store.get(run_id).await.map_err(|e| e.to_string())? else {
                    return Ok(Vec::new());
                };
                Some(run_json(&r))
            }
        };
        let link = format!("{}/runs/{run_id}", self.node.settings.public_base());
        let now = self.now();
        Ok(wanting
            .into_iter()
            .map(|s| {
                let id = uuid::Uuid::new_v4().to_string();
                let body = match (event, &run) {
                    (RunEvent::Pushed(image), _) => payload::push_event(&id, &now, run_id, image),
                    (_, Some(run)) => payload::run_event(&id, &now, action, run.clone(), &link),
                    (_, None) => unreachable!("run events read their run above"),
                };
                NewDelivery {
                    id,
                    webhook: s.name.clone(),
                    action: action.to_string(),
                    body: body.to_string(),
                }
            })
            .collect())
    }

    /// One attempt at `d`, recorded with what follows it.
    async fn attempt(&self, owner: &str, d: DeliveryRecord, hook: Option<&WebhookRecord>) {
        let now_ms = self.node.clock.now_ms();
        let attempt = d.attempts + 1;
        let spec: Option<WebhookSpec> = hook.and_then(|h| serde_json::from_value(h.spec.clone()).ok());
        let (sent, then) = match spec {
            // A ping is sent to a disabled webhook too: it checks the receiver.
            Some(spec) if spec.enabled() || d.action == "ping" => {
                let secrets = self.secrets(&spec.name).await;
                let timeout = Duration::from_secs(self.node.settings.webhook_timeout_seconds.max(1));
                let sent = match self.reach.check_url_literal(&spec.uri) {
                    Ok(()) => send::post(&self.client, &spec.uri, &d.action, &d.id, &d.body, &secrets, timeout).await,
                    Err(e) => send::Sent {
                        status_code: None,
                        latency: Duration::ZERO,
                        error: Some(e),
                        response: None,
                    },
                };
                let then = if sent.delivered() {
                    AfterAttempt::Delivered
                } else {
                    let base = Duration::from_secs(self.node.settings.webhook_retry_seconds.max(1));
                    let wait = base.saturating_mul(1u32 << (attempt - 1).clamp(0, 20) as u32).min(MAX_BACKOFF);
                    let next = now_ms + wait.as_millis() as i64;
                    let period_ms = (self.node.settings.webhook_retry_period_seconds as i64) * 1000;
                    if next - d.create_time <= period_ms {
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

/// The run as the API shows it (the same fields as `GET /v1/runs/{id}`).
fn run_json(r: &slipway_store::RunRecord) -> serde_json::Value {
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    serde_json::json!({
        "runId": r.id,
        "status": r.status.as_str(),
        "runType": r.run_type.as_str(),
        "task": r.task,
        "trigger": slipway_store::TriggerKind::of(&r.triggers).as_str(),
        "platform": r.platform,
        "createTime": time(r.create_time),
        "startTime": r.start_time.map(time),
        "finishTime": r.finish_time.map(time),
        "outputImages": r.output_images,
        "runErrorMessage": r.error_message,
        "sourceTrigger": r.triggers.source,
        "imageUpdateTrigger": r.triggers.image_update,
        "timerTrigger": r.triggers.timer,
    })
}

impl Notifier {
    /// Makes this notifier the listener of its node's run events.
    pub fn listen(self: &Arc<Self>) {
        if !self.node.listen_to_runs(Arc::new(Hook(Arc::downgrade(self)))) {
            tracing::warn!("the node already had a listener for its run events");
        }
    }
}

/// What the node holds: a weak link, so the node and the notifier do not keep each
/// other alive.
struct Hook(std::sync::Weak<Notifier>);

impl RunEvents for Hook {
    fn run_event(&self, run_id: &str, event: RunEvent) {
        // Told in passing by workers: the reading and writing happen off their path.
        let Some(me) = self.0.upgrade() else { return };
        let run_id = run_id.to_string();
        tokio::spawn(async move {
            match me.deliveries_for(&run_id, &event).await {
                Ok(list) if list.is_empty() => {}
                Ok(list) => match me.node.store.add_deliveries(&list).await {
                    Ok(()) => me.due.notify_one(),
                    Err(e) => tracing::error!(run_id, error = %e, "recording webhook deliveries failed; these events are lost"),
                },
                Err(e) => tracing::error!(run_id, error = %e, "finding the webhooks of an event failed; it is lost"),
            }
        });
    }
}

/// Sends due deliveries until `shutdown`: claims a batch under a lease, sends them at
/// once, records each attempt; waits for new ones or a second.
pub async fn deliver(n: Arc<Notifier>, shutdown: CancellationToken) {
    let owner = format!("{}notify", n.node.instance);
    let lease = Duration::from_secs(n.node.settings.webhook_timeout_seconds.max(1) + 30);
    let mut purged = std::time::Instant::now();
    loop {
        // Ended deliveries are kept as long as finished runs' logs.
        if purged.elapsed() >= Duration::from_secs(n.node.settings.purge_interval_seconds.max(1)) {
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
        match n.node.store.claim_deliveries(&owner, BATCH, lease).await {
            Ok(batch) if !batch.is_empty() => {
                let hooks = n.node.store.list_webhooks().await.unwrap_or_default();
                let mut sending = tokio::task::JoinSet::new();
                for d in batch {
                    let hook = hooks.iter().find(|h| h.name == d.webhook).cloned();
                    let (n, owner) = (n.clone(), owner.clone());
                    sending.spawn(async move { n.attempt(&owner, d, hook.as_ref()).await });
                }
                tokio::select! {
                    _ = async { while sending.join_next().await.is_some() {} } => {}
                    _ = shutdown.cancelled() => return,
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed"),
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
