//! The one way a run is started. The API, task runs, webhooks, base-image updates and
//! timers all make a [`Submission`] and call [`submit`]: its secrets are kept for the
//! worker (in the data dir, or sealed with the fleet key; never in clear in the
//! database), the run goes into the queue with its trigger
//! key in one transaction, and a worker is woken. Secrets are typed end to end.

use crate::Node;
pub use slipway_api::secrets::RunSecrets;
use slipway_store::{NewRun, RunRecord};

/// A run to start, with what it keeps secret and, for a trigger, its event's key: a
/// key starts at most one run, ever.
pub struct Submission {
    pub run: NewRun,
    pub secrets: RunSecrets,
    pub trigger_key: Option<String>,
}

impl Submission {
    /// A run of `request` for `tenant`: a new id, its build cache's namespace (the
    /// request's own when `cache` says none), the request as the database keeps it and
    /// its secret values apart. The one way the API, the dashboard and the triggers make
    /// a run of a request; a task's run adds its task, triggers and credentials.
    pub fn of_request(
        tenant: &str,
        request: slipway_api::model::RunRequest,
        cache: Option<slipway_api::requests::CacheOwner>,
    ) -> Result<Submission, slipway_api::requests::BadRequest> {
        use slipway_api::requests;
        let id = slipway_plan::new_run_id();
        let cache_namespace = requests::cache_namespace(tenant, cache.unwrap_or_else(|| requests::request_cache_owner(&request)), &id);
        let prepared = requests::prepare(request)?;
        Ok(Submission {
            run: NewRun {
                id,
                tenant: tenant.to_string(),
                cache_namespace: Some(cache_namespace),
                run_type: prepared.run_type,
                task: None,
                platform: prepared.platform,
                request: prepared.stored,
                image_names: prepared.image_names,
                triggers: Default::default(),
            },
            secrets: RunSecrets {
                values: prepared.secrets,
                ..Default::default()
            },
            trigger_key: None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{0}")]
    Secrets(#[from] crate::vault::VaultError),
    #[error("cannot queue the run: {0}")]
    Store(#[from] slipway_store::StoreError),
    /// The tenant has `max_queued_runs_per_tenant` runs queued already.
    #[error(
        "tenant {tenant} has {queued} runs queued, the most it may (max_queued_runs_per_tenant); wait for some to start or cancel some"
    )]
    Quota { tenant: String, queued: i64 },
}

/// How many runs `tenant` has queued.
async fn queued(d: &Node, tenant: &str) -> Result<i64, SubmitError> {
    let counts = d.store.counts(Some(tenant)).await?;
    Ok(counts
        .iter()
        .find(|(status, _)| *status == slipway_store::RunStatus::Queued)
        .map(|(_, n)| *n)
        .unwrap_or(0))
}

/// Refuses a run of a tenant that has as many queued as it may. Counted, then queued:
/// two submissions at one instant may pass one over, never more.
async fn check_quota(d: &Node, tenant: &str, adding: i64) -> Result<(), SubmitError> {
    let max = d.settings.max_queued_runs_per_tenant as i64;
    let queued = queued(d, tenant).await?;
    if queued + adding > max {
        return Err(SubmitError::Quota {
            tenant: tenant.to_string(),
            queued,
        });
    }
    Ok(())
}

async fn keep(d: &Node, s: &Submission) -> Result<(), SubmitError> {
    Ok(d.keep_secrets(&s.run.id, &s.secrets).await?)
}

async fn forget(d: &Node, run_id: &str) {
    d.remove_secrets(run_id).await;
}

/// Starts a run. `Ok(None)` when its trigger key started a run before.
pub async fn submit(d: &Node, s: Submission) -> Result<Option<RunRecord>, SubmitError> {
    check_quota(d, &s.run.tenant, 1).await?;
    keep(d, &s).await?;
    let id = s.run.id.clone();
    let queued = match s.trigger_key {
        Some(key) => d.store.enqueue_once(&key, s.run).await,
        None => d.store.enqueue(s.run).await.map(Some),
    };
    match queued {
        Ok(Some(run)) => {
            d.wake.notify_one();
            d.changed.notify_waiters();
            d.tell(&run.id, crate::events::RunEvent::Queued);
            Ok(Some(run))
        }
        Ok(None) => {
            forget(d, &id).await;
            Ok(None)
        }
        Err(e) => {
            forget(d, &id).await;
            Err(e.into())
        }
    }
}

/// Starts many keyed runs in one transaction (timers due the same minute); returns
/// those that were new. The secrets of the others are not kept. A tenant's runs past
/// its queued runs quota are left out, with a warning.
pub async fn submit_many(d: &Node, all: Vec<Submission>) -> Result<Vec<RunRecord>, SubmitError> {
    let mut room: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut kept = Vec::with_capacity(all.len());
    for s in all {
        let tenant = s.run.tenant.clone();
        let left = match room.get(&tenant) {
            Some(n) => *n,
            None => d.settings.max_queued_runs_per_tenant as i64 - queued(d, &tenant).await?,
        };
        if left <= 0 {
            tracing::warn!(%tenant, run_id = %s.run.id, "a trigger's run is not queued: the tenant has as many runs queued as it may (max_queued_runs_per_tenant)");
        } else {
            kept.push(s);
        }
        room.insert(tenant, left - 1);
    }
    let all = kept;
    let mut items = Vec::with_capacity(all.len());
    let mut ids = Vec::with_capacity(all.len());
    for s in all {
        keep(d, &s).await?;
        ids.push(s.run.id.clone());
        items.push((s.trigger_key.unwrap_or_else(|| format!("run:{}", s.run.id)), s.run));
    }
    match d.store.enqueue_many_once(items).await {
        Ok(runs) => {
            for id in ids.iter().filter(|id| !runs.iter().any(|r| &&r.id == id)) {
                forget(d, id).await;
            }
            for _ in 0..runs.len().min(64) {
                d.wake.notify_one();
            }
            d.changed.notify_waiters();
            for r in &runs {
                d.tell(&r.id, crate::events::RunEvent::Queued);
            }
            Ok(runs)
        }
        Err(e) => {
            for id in &ids {
                forget(d, id).await;
            }
            Err(e.into())
        }
    }
}
