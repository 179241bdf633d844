//! Tasks on the `/v1` API (`az acr task`'s shape): made, changed, shown, listed,
//! deleted and run, each within its tenant's quotas and with its secrets in the vault.
//! The Azure CLI's ARM surface makes and runs tasks through the same functions.

use crate::failure::{bad_request, conflict, internal, Failure};
use crate::intake::{check_source, submit_failure};
use crate::{Server, Shared};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use slipway_api::model::{Page, Run};
use slipway_api::task::TaskView;
use slipway_api::tenant::Caller;

type Who = axum::Extension<Caller>;

pub(crate) fn task_not_found(name: &str) -> Failure {
    Failure(StatusCode::NOT_FOUND, "TaskNotFound", format!("no task named {name:?}"))
}

/// A task as the API shows it: the spec without secrets, its dependencies and times.
pub(crate) async fn task_json(d: &Server, record: &slipway_store::TaskRecord) -> Result<TaskView, Failure> {
    let mut dependencies = Vec::new();
    for dep in d.store.dependencies_of(&record.tenant, &record.name).await.map_err(internal)? {
        dependencies.push(slipway_api::task::DependencyView {
            last_seen_digest: d.store.last_image_digest(&dep.image).await.map_err(internal)?,
            image: dep.image,
            kind: dep.kind,
            digest: dep.digest,
        });
    }
    Ok(TaskView {
        spec: record.spec.clone(),
        tenant: record.tenant.clone(),
        dependencies,
        create_time: slipway_api::time::from_ms(record.create_time),
        last_updated_time: slipway_api::time::from_ms(record.last_updated_time),
    })
}

pub(crate) fn parse_spec(name: &str, body: &[u8]) -> Result<slipway_api::task::TaskSpec, Failure> {
    crate::plain_text::no_nul(body)?;
    let mut spec: slipway_api::task::TaskSpec = serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid task: {e}")))?;
    if !spec.name.is_empty() && spec.name != name {
        return Err(bad_request(format!(
            "the body names task {:?} but the path names {name:?}",
            spec.name
        )));
    }
    spec.name = name.to_string();
    spec.validate().map_err(bad_request)?;
    Ok(spec)
}

pub(crate) async fn save_task(
    d: &Server,
    tenant: &str,
    mut spec: slipway_api::task::TaskSpec,
    create: bool,
    keep: Option<slipway_api::task::TaskSecrets>,
) -> Result<slipway_store::TaskRecord, Failure> {
    let mut secrets = spec.split_secrets();
    if let Some(old) = keep {
        // An update that does not restate a secret keeps the one stored.
        for (k, v) in old.arguments {
            secrets.arguments.entry(k).or_insert(v);
        }
        for (k, v) in old.values {
            secrets.values.entry(k).or_insert(v);
        }
        secrets.webhook_secret = secrets.webhook_secret.or(old.webhook_secret);
        for (k, v) in old.registry_credentials {
            secrets.registry_credentials.entry(k).or_insert(v);
        }
        for (k, v) in old.git_credentials {
            secrets.git_credentials.entry(k).or_insert(v);
        }
    }
    let record = slipway_store::TaskRecord {
        tenant: tenant.to_string(),
        name: spec.name.clone(),
        enabled: spec.enabled(),
        spec: spec.clone(),
        create_time: 0,
        last_updated_time: 0,
    };
    slipway_triggers::tasks::write_secrets(d, tenant, &spec.name, &secrets)
        .await
        .map_err(internal)?;
    let saved = d.store.put_task(&record, create).await.map_err(internal)?;
    if !saved {
        return Err(if create {
            conflict(format!("a task named {:?} exists", spec.name))
        } else {
            task_not_found(&spec.name)
        });
    }
    d.triggers.tasks_touched();
    d.store
        .get_task(tenant, &spec.name)
        .await
        .map_err(internal)?
        .ok_or_else(|| task_not_found(&spec.name))
}

pub(crate) async fn create_task(
    State(d): Shared,
    axum::Extension(who): Who,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<TaskView>), Failure> {
    let spec = parse_spec(&name, &body)?;
    let record = put_spec(&d, &who, spec, true, None).await?;
    Ok((StatusCode::CREATED, Json(task_json(&d, &record).await?)))
}

/// Saves `spec` (made anew when `create`, else replacing the task of its name, keeping
/// of `keep` what `spec` does not restate) within the tenant's quotas, its source
/// checked. `/v1` and ARM's PUT and PATCH all.
pub(crate) async fn put_spec(
    d: &Server,
    who: &Caller,
    spec: slipway_api::task::TaskSpec,
    create: bool,
    keep: Option<slipway_api::task::TaskSecrets>,
) -> Result<slipway_store::TaskRecord, Failure> {
    check_source(d, who, spec.context_path.as_deref(), "contextPath").await?;
    check_task_quotas(d, who, &spec, create).await?;
    save_task(d, &who.tenant, spec, create, keep).await
}

/// A tenant's tasks and timers within its quotas, and (unless an operator asks) each
/// timer at most as frequent as `min_timer_period_seconds`: 500 tasks firing every
/// minute would fill the queue for everyone.
pub(crate) async fn check_task_quotas(d: &Server, who: &Caller, spec: &slipway_api::task::TaskSpec, create: bool) -> Result<(), Failure> {
    let s = &d.settings;
    let quota = |m: String| Failure(StatusCode::TOO_MANY_REQUESTS, "QuotaExceeded", m);
    let timers = spec.timers.iter().filter(|t| t.enabled);
    if who.visible().is_some() {
        let now = d.clock.now_ms();
        for t in timers.clone() {
            let cron = slipway_api::schedule::parse(&t.schedule).map_err(bad_request)?;
            if let Some(gap) = slipway_api::schedule::shortest_period_seconds(&cron, now) {
                if gap < s.min_timer_period_seconds as i64 {
                    return Err(bad_request(format!(
                        "timers: timer {:?} ({}) fires {gap} s apart; this daemon allows a tenant's timers at least {} s apart (min_timer_period_seconds)",
                        t.name, t.schedule, s.min_timer_period_seconds
                    )));
                }
            }
        }
    }
    let others: Vec<_> = d
        .store
        .list_tasks(Some(&who.tenant))
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|t| t.name != spec.name)
        .collect();
    if create && others.len() as u64 >= s.max_tasks_per_tenant {
        return Err(quota(format!(
            "tenant {} has {} tasks, the most it may (max_tasks_per_tenant); delete one first",
            who.tenant,
            others.len()
        )));
    }
    let other_timers: usize = others.iter().map(|t| t.spec.timers.iter().filter(|t| t.enabled).count()).sum();
    let total = other_timers + timers.count();
    if total as u64 > s.max_timers_per_tenant {
        return Err(quota(format!(
            "tenant {} would have {total} enabled timers, more than it may (max_timers_per_tenant is {})",
            who.tenant, s.max_timers_per_tenant
        )));
    }
    Ok(())
}

pub(crate) async fn update_task(
    State(d): Shared,
    axum::Extension(who): Who,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<TaskView>, Failure> {
    let record = d
        .store
        .get_task(&who.tenant, &name)
        .await
        .map_err(internal)?
        .ok_or_else(|| task_not_found(&name))?;
    crate::plain_text::no_nul(&body)?;
    let mut patch: serde_json::Value = serde_json::from_slice(&body).map_err(|e| bad_request(format!("the body is not JSON: {e}")))?;
    let keep = take_keep_secrets(&who, &mut patch)?;
    let mut merged = serde_json::to_value(&record.spec).map_err(internal)?;
    slipway_api::patch::merge(&mut merged, &patch, &[]);
    let spec = parse_spec(&name, merged.to_string().as_bytes())?;
    let before = &record.spec;
    if spec.context_path != before.context_path {
        check_source(&d, &who, spec.context_path.as_deref(), "contextPath").await?;
    }
    // Secrets and credentials were given for the task's source and steps: a task moved
    // elsewhere, or given another command, keeps none of them, unless the tenant's
    // admin says so.
    let moved = !spec.same_source(before);
    check_task_quotas(&d, &who, &spec, false).await?;
    let old = if !moved || keep {
        slipway_triggers::tasks::read_secrets(&d, &who.tenant, &name)
            .await
            .map_err(internal)?
    } else {
        Default::default()
    };
    let record = save_task(&d, &who.tenant, spec, false, Some(old)).await?;
    Ok(Json(task_json(&d, &record).await?))
}

/// `keepSecrets` out of a body: only a tenant's admin (or an operator) may say it.
pub(crate) fn take_keep_secrets(who: &Caller, body: &mut serde_json::Value) -> Result<bool, Failure> {
    let keep = match body.as_object_mut().and_then(|m| m.remove("keepSecrets")) {
        None => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => return Err(bad_request("keepSecrets must be true or false")),
    };
    if keep && !who.is_admin() {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            "AdminOnly",
            format!(
                "keepSecrets needs an admin token of tenant {}: a task's secrets follow its own source",
                who.tenant
            ),
        ));
    }
    Ok(keep)
}

pub(crate) async fn get_task(State(d): Shared, axum::Extension(who): Who, Path(name): Path<String>) -> Result<Json<TaskView>, Failure> {
    let record = d
        .store
        .get_task(&who.tenant, &name)
        .await
        .map_err(internal)?
        .ok_or_else(|| task_not_found(&name))?;
    Ok(Json(task_json(&d, &record).await?))
}

pub(crate) async fn list_tasks(State(d): Shared, axum::Extension(who): Who) -> Result<Json<Page<TaskView>>, Failure> {
    let mut out = Vec::new();
    for record in d.store.list_tasks(who.visible()).await.map_err(internal)? {
        out.push(task_json(&d, &record).await?);
    }
    Ok(Json(Page::of(out)))
}

pub(crate) async fn delete_task(State(d): Shared, axum::Extension(who): Who, Path(name): Path<String>) -> Result<StatusCode, Failure> {
    if !d.store.delete_task(&who.tenant, &name).await.map_err(internal)? {
        return Err(task_not_found(&name));
    }
    slipway_triggers::tasks::remove_secrets(&d, &who.tenant, &name).await;
    d.triggers.tasks_touched();
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn run_task(
    State(d): Shared,
    axum::Extension(who): Who,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Run>), Failure> {
    let record = d
        .store
        .get_task(&who.tenant, &name)
        .await
        .map_err(internal)?
        .ok_or_else(|| task_not_found(&name))?;
    let overrides: slipway_api::task::Overrides = if body.is_empty() {
        Default::default()
    } else {
        crate::plain_text::no_nul(&body)
            .and_then(|_| serde_json::from_slice(&body).map_err(|e| bad_request(format!("invalid overrides: {e}"))))?
    };
    let run = start_task_run(&d, &who, record.spec, overrides).await?;
    Ok((StatusCode::CREATED, Json(run)))
}

/// Starts a run of `who`'s task `spec` with `overrides`, as `POST /v1/tasks/{name}/runs`
/// and ARM's `TaskRunRequest` do.
pub(crate) async fn start_task_run(
    d: &Server,
    who: &Caller,
    spec: slipway_api::task::TaskSpec,
    overrides: slipway_api::task::Overrides,
) -> Result<Run, Failure> {
    if overrides.keep_secrets {
        take_keep_secrets(who, &mut serde_json::json!({ "keepSecrets": true }))?;
    }
    check_source(d, who, overrides.context_path.as_deref(), "contextPath").await?;
    let run = slipway_triggers::tasks::start(&d.triggers, &who.tenant, &spec, overrides, None, None, Default::default())
        .await
        .map_err(|e| match e {
            slipway_triggers::tasks::StartError::Invalid(m) => bad_request(m),
            slipway_triggers::tasks::StartError::Submit(e) => submit_failure(e),
        })?
        .ok_or_else(|| internal("the run was not queued"))?;
    Ok(run.view())
}
