//! The durable job queue: runs, their status, and the leases workers hold on them.
//!
//! A run is claimed by one atomic statement (`UPDATE … WHERE id IN (SELECT … LIMIT n)
//! RETURNING`), so no run is ever taken twice; the same claim is `FOR UPDATE SKIP
//! LOCKED` on PostgreSQL. A worker renews its lease while it runs; every write it
//! makes is fenced by the run's attempt number and its own name, so a worker whose
//! run was taken from it cannot complete it. Time comes from one [`Clock`] that
//! tests control. Secret values never reach this crate.
//!
//! SQL is portable (integers for times, text for JSON) and lives in
//! `migrations/sqlite` and `migrations/postgres`; [`Store`] is the seam for a
//! PostgreSQL implementation beside [`SqliteStore`].

mod clock;
mod model;
mod postgres;
mod sql;
mod sql_webhooks;
mod sqlite;
mod webhooks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use model::{rfc3339, Dependency, ListFilter, NewRun, RunRecord, RunStatus, RunType, TaskRecord, TriggerKind, Triggers};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use webhooks::{AfterAttempt, AttemptRecord, DeliveryRecord, DeliveryStatus, NewDelivery, WebhookRecord, WebhookStore};

use async_trait::async_trait;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// How a worker's run ended, as the worker reports it.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub status: Option<RunStatus>,
    pub output_images: Vec<slipway_api::results::OutputImage>,
    pub image_dependencies: Vec<slipway_api::results::ImageDependency>,
    pub error_message: Option<String>,
    /// Each step's last state; `None` keeps what [`Store::set_steps`] wrote.
    pub steps: Option<Vec<slipway_api::results::StepView>>,
}

/// What happened to a run whose worker disappeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaped {
    /// Ended as `Error` with a message saying the worker was lost.
    Failed(String),
    /// Put back in the queue for one more attempt.
    Requeued(String),
}

/// The queue, its tasks and triggers' keys, and (through [`WebhookStore`]) the
/// outbound webhooks with their deliveries.
#[async_trait]
pub trait Store: WebhookStore + Send + Sync {
    async fn enqueue(&self, run: NewRun) -> Result<RunRecord, StoreError>;
    /// Claims up to `n` queued runs for `worker` in one statement, fairly: each next run
    /// is the oldest queued run of the tenant with the fewest runs started or running
    /// (counting those this claim takes), so a tenant with many queued runs takes turns
    /// with the others. With `max_per_tenant` above 0, no tenant gets more running than that.
    async fn claim(&self, worker: &str, n: u32, lease: Duration, max_per_tenant: u32) -> Result<Vec<RunRecord>, StoreError>;
    /// `Started` → `Running`; fenced like every worker write.
    async fn mark_running(&self, id: &str, worker: &str, attempt: i64) -> Result<bool, StoreError>;
    /// Extends the lease; `false` means the run is no longer this worker's.
    async fn renew(&self, id: &str, worker: &str, attempt: i64, lease: Duration) -> Result<bool, StoreError>;
    /// Records the end of a run; `false` means the run is no longer this worker's.
    async fn complete(&self, id: &str, worker: &str, attempt: i64, done: Completion) -> Result<bool, StoreError>;
    /// Records the state of the run's steps while it runs; fenced like `complete`.
    async fn set_steps(&self, id: &str, worker: &str, attempt: i64, steps: &[slipway_api::results::StepView]) -> Result<bool, StoreError>;
    /// Cancels a run that is still queued; true when this call did (it never starts).
    /// `tenant`, when given, must own it (every lookup on a client's behalf names the
    /// tenant; `None` is the daemon's own or an operator's).
    async fn cancel_queued(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError>;
    /// Cancels a queued run at once; asks a running one to stop. `None` if unknown (or
    /// not `tenant`'s).
    async fn request_cancel(&self, tenant: Option<&str>, id: &str) -> Result<Option<RunRecord>, StoreError>;
    /// Keeps a run (its log and context) past the retention period, or stops keeping
    /// it. `None` if unknown (or not `tenant`'s).
    async fn set_archived(&self, tenant: Option<&str>, id: &str, archived: bool) -> Result<Option<RunRecord>, StoreError>;
    /// A run, if it exists and (with `tenant`) is that tenant's.
    async fn get(&self, tenant: Option<&str>, id: &str) -> Result<Option<RunRecord>, StoreError>;
    async fn list(&self, filter: &ListFilter) -> Result<Vec<RunRecord>, StoreError>;
    /// Runs whose lease expired: re-queued once when `requeue` and it is their first
    /// attempt, otherwise ended as `Error`.
    async fn reap(&self, requeue: bool) -> Result<Vec<Reaped>, StoreError>;
    /// Expires at once the leases of workers on `node` other than `current` (a daemon
    /// restarted on the same machine knows its old workers are gone).
    async fn expire_node_leases(&self, node: &str, current: &str) -> Result<u64, StoreError>;
    /// Number of runs per status, of `tenant` or of all.
    async fn counts(&self, tenant: Option<&str>) -> Result<Vec<(RunStatus, i64)>, StoreError>;
    /// Finished runs that ended before `before_ms` and are not archived, for purging
    /// their files.
    async fn finished_before(&self, before_ms: i64) -> Result<Vec<String>, StoreError>;
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Saves a task. With `create`, fails (returns false) if it exists; without, if it does not.
    async fn put_task(&self, task: &TaskRecord, create: bool) -> Result<bool, StoreError>;
    async fn get_task(&self, tenant: &str, name: &str) -> Result<Option<TaskRecord>, StoreError>;
    /// The tasks of `tenant`, or of every tenant, by tenant and name.
    async fn list_tasks(&self, tenant: Option<&str>) -> Result<Vec<TaskRecord>, StoreError>;
    /// Deletes a task and its tracked dependencies; false if there was none.
    async fn delete_task(&self, tenant: &str, name: &str) -> Result<bool, StoreError>;
    /// Queues `run` unless an event with `key` already started one: the key and the
    /// run are written in one transaction. `None` when the key was seen before.
    async fn enqueue_once(&self, key: &str, run: NewRun) -> Result<Option<RunRecord>, StoreError>;
    /// `enqueue_once` for many events in one transaction; returns the runs queued.
    async fn enqueue_many_once(&self, items: Vec<(String, NewRun)>) -> Result<Vec<RunRecord>, StoreError>;
    /// Replaces the dependencies recorded for a task.
    async fn set_dependencies(&self, tenant: &str, task: &str, deps: &[Dependency]) -> Result<(), StoreError>;
    async fn dependencies_of(&self, tenant: &str, task: &str) -> Result<Vec<Dependency>, StoreError>;
    /// Every task dependency on `image` (normalised `registry/repository:tag`), of any tenant.
    async fn dependents_of(&self, image: &str) -> Result<Vec<Dependency>, StoreError>;
    /// Records the digest now seen for `image`; returns the one seen before, if any.
    async fn swap_image_digest(&self, image: &str, digest: &str) -> Result<Option<String>, StoreError>;
    /// The last digest seen for `image`, if any.
    async fn last_image_digest(&self, image: &str) -> Result<Option<String>, StoreError>;
    /// The distinct images tasks depend on.
    async fn tracked_images(&self) -> Result<Vec<String>, StoreError>;

    /// Records an upload and the tenant that sent it.
    async fn put_upload(&self, id: &str, tenant: &str, size: u64) -> Result<(), StoreError>;
    /// The tenant that sent an upload, if it is known.
    async fn upload_tenant(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// How many uploads `tenant` keeps, and their bytes.
    async fn upload_usage(&self, tenant: &str) -> Result<(u64, u64), StoreError>;
    /// Uploads made before `before_ms` that no queued or running run and no task names.
    async fn unused_uploads(&self, before_ms: i64) -> Result<Vec<String>, StoreError>;
    async fn delete_upload(&self, id: &str) -> Result<(), StoreError>;

    /// Replaces the tenant directory every node reads.
    async fn put_directory(&self, directory: &slipway_api::tenant::Directory) -> Result<(), StoreError>;
    /// The tenant directory last written, if any.
    async fn directory(&self) -> Result<Option<slipway_api::tenant::Directory>, StoreError>;

    /// Keeps an owner's sealed secrets (the vault's, in a fleet: encrypted before they
    /// get here), replacing what it had.
    async fn put_sealed_secrets(&self, owner: &str, sealed: &[u8]) -> Result<(), StoreError>;
    async fn sealed_secrets(&self, owner: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn delete_sealed_secrets(&self, owner: &str) -> Result<(), StoreError>;
    /// Every owner with sealed secrets (for re-sealing under a new key).
    async fn sealed_owners(&self) -> Result<Vec<String>, StoreError>;

    /// Appends a piece of a live run's log that starts at `offset` (the run's single
    /// writer keeps the offsets).
    async fn append_log(&self, run_id: &str, offset: u64, data: &[u8]) -> Result<(), StoreError>;
    /// Up to about `max` bytes of a live run's log from `offset`.
    async fn read_log(&self, run_id: &str, offset: u64, max: u64) -> Result<Vec<u8>, StoreError>;
    /// Forgets a run's log pieces (once the log is in the blob store).
    async fn delete_log(&self, run_id: &str) -> Result<(), StoreError>;

    /// Tells every node that listens (PostgreSQL `NOTIFY`); nothing on SQLite, whose
    /// single node wakes its own waiters.
    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError>;
    /// Calls `on(channel, payload)` for each notification any node sends on `channels`
    /// (PostgreSQL `LISTEN`, reconnecting as needed) for as long as the process lives;
    /// on SQLite it never calls.
    async fn listen(&self, channels: &[&str], on: Listener) -> Result<(), StoreError>;
}

/// Opens the store a database URL names: `sqlite://PATH` or `postgres://…`.
/// What [`Store::listen`] calls: the channel and the payload.
pub type Listener = std::sync::Arc<dyn Fn(&str, &str) + Send + Sync>;

pub async fn open(url: &str, clock: std::sync::Arc<dyn Clock>) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        return Ok(std::sync::Arc::new(SqliteStore::open(url, clock).await?));
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Ok(std::sync::Arc::new(PgStore::open(url, clock).await?));
    }
    Err(StoreError::UnsupportedUrl(url.to_string()))
}
