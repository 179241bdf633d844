//! Outbound webhooks and their deliveries: what the notifier keeps in the queue's
//! database so an event is delivered (or given up on after its retry period) across
//! restarts, with every attempt recorded.

use crate::StoreError;
use async_trait::async_trait;
use std::time::Duration;

/// A webhook as stored: `spec` holds no secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRecord {
    pub tenant: String,
    pub name: String,
    pub spec: slipway_api::webhook::WebhookSpec,
    pub enabled: bool,
    pub create_time: i64,
    pub last_updated_time: i64,
}

/// An event to deliver to one webhook.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub tenant: String,
    pub webhook: String,
    pub action: String,
    /// The JSON sent, exactly as signed.
    pub body: String,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt in the retry period failed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "Pending",
            DeliveryStatus::Delivered => "Delivered",
            DeliveryStatus::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: String,
    pub tenant: String,
    pub webhook: String,
    pub action: String,
    pub body: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub create_time: i64,
    pub next_attempt: Option<i64>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub delivery_id: String,
    pub attempt: i64,
    pub time: i64,
    /// The answer's status; none when there was no answer (refused, timed out).
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// The start of the answer's body.
    pub response: Option<String>,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    /// Tried again at this time (ms).
    RetryAt(i64),
    GiveUp,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Saves a webhook. With `create`, fails (false) if it exists; without, if it does not.
    async fn put_webhook(&self, webhook: &WebhookRecord, create: bool) -> Result<bool, StoreError>;
    async fn get_webhook(&self, tenant: &str, name: &str) -> Result<Option<WebhookRecord>, StoreError>;
    /// The webhooks of `tenant`, or of every tenant.
    async fn list_webhooks(&self, tenant: Option<&str>) -> Result<Vec<WebhookRecord>, StoreError>;
    /// Deletes a webhook with its deliveries and their attempts; false if there was none.
    async fn delete_webhook(&self, tenant: &str, name: &str) -> Result<bool, StoreError>;
    /// Records events to deliver, due now, in one transaction.
    async fn add_deliveries(&self, deliveries: &[NewDelivery]) -> Result<(), StoreError>;
    /// Claims up to `n` due deliveries for `owner` under a lease, oldest first.
    async fn claim_deliveries(&self, owner: &str, n: u32, lease: Duration) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Records an attempt and what follows it; fenced by `owner` (false when the
    /// delivery is no longer this owner's).
    async fn finish_attempt(&self, owner: &str, attempt: &AttemptRecord, then: AfterAttempt) -> Result<bool, StoreError>;
    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError>;
    /// A webhook's deliveries, newest first, at most `limit`.
    async fn list_deliveries(&self, tenant: &str, webhook: &str, limit: u32) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// The attempts of these deliveries, in order.
    async fn attempts_of(&self, delivery_ids: &[String]) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Forgets deliveries that ended (delivered or given up) and were made before
    /// `before_ms`, with their attempts; returns how many.
    async fn purge_deliveries(&self, before_ms: i64) -> Result<u64, StoreError>;
}
