//! Runs as the Azure CLI drives them: an upload URL for a context, `scheduleRun`, a
//! run's ARM resource, its log's URL, cancel. Each goes through the same checks and
//! queue as `/v1` for the caller the access token names.

use super::{arm_error, blobs, registry_id};
use crate::failure::{bad_request, internal, Failure};
use crate::{Server, Shared};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use slipway_api::arm::{ArmRunRequest, Scheduled};
use slipway_api::tenant::Caller;
use std::collections::HashMap;

type Who = axum::Extension<Caller>;

/// The registry's path parts, which must be the daemon's.
pub(crate) type RegistryPath = (String, String, String);

/// How long a shared-access URL lasts, in seconds.
const SAS_SECONDS: i64 = 3600;

/// Refuses a registry other than the daemon's.
pub(crate) fn ours(d: &Server, (sub, rg, name): &RegistryPath) -> Result<(), Failure> {
    let s = &d.settings;
    if sub.eq_ignore_ascii_case(&s.arm_subscription)
        && rg.eq_ignore_ascii_case(&s.arm_resource_group)
        && name.eq_ignore_ascii_case(&s.arm_registry_name)
    {
        Ok(())
    } else {
        Err(Failure(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("the registry {name:?} in resource group {rg:?} was not found"),
        ))
    }
}

/// A run as ARM shows it: `{id, name, type, properties}`, the properties being the run
/// as `/v1` shows it.
pub(crate) fn run_resource(d: &Server, run: &slipway_api::model::Run) -> serde_json::Value {
    let mut properties = serde_json::to_value(run).unwrap_or_default();
    if let Some(p) = properties.as_object_mut() {
        p.insert("provisioningState".into(), json!("Succeeded"));
    }
    json!({
        "id": format!("{}/runs/{}", registry_id(d), run.run_id),
        "name": run.run_id,
        "type": "Microsoft.ContainerRegistry/registries/runs",
        "properties": properties,
    })
}

/// `POST {registry}/listBuildSourceUploadUrl`: where to put a context (a blob URL whose
/// query is the credential) and what to name it by in the run request.
pub(crate) async fn upload_url(State(d): Shared, axum::Extension(who): Who, Path(registry): Path<RegistryPath>) -> Response {
    if let Err(f) = ours(&d, &registry) {
        return f.into_response();
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let path = blobs::upload_path(&who.tenant, &id);
    let expires = d.clock.now_ms() / 1000 + SAS_SECONDS;
    Json(json!({
        "uploadUrl": format!("{}{path}?{}", d.settings.public_base(), d.arm.sas(&path, 'w', expires)),
        "relativePath": format!("upload://{id}"),
    }))
    .into_response()
}

/// `POST {registry}/scheduleRun`: a quick build or task run, answered 200 with the run.
pub(crate) async fn schedule(
    State(d): Shared,
    axum::Extension(who): Who,
    Path(registry): Path<RegistryPath>,
    body: Bytes,
) -> Result<Response, Failure> {
    ours(&d, &registry)?;
    crate::plain_text::no_nul(&body)?;
    let request: ArmRunRequest = serde_json::from_slice(&body).map_err(|e| bad_request(format!("invalid run request: {e}")))?;
    let run = match request.into_scheduled(&d.settings.registry).map_err(bad_request)? {
        Scheduled::Run(r) => crate::intake::start_run(&d, &who, r).await?.view(),
        Scheduled::Task { name, overrides } => {
            let task = d
                .store
                .get_task(&who.tenant, &name)
                .await
                .map_err(internal)?
                .ok_or_else(|| crate::tasks::task_not_found(&name))?;
            crate::tasks::start_task_run(&d, &who, task.spec, overrides).await?
        }
    };
    Ok(Json(run_resource(&d, &run)).into_response())
}

async fn find(d: &Server, who: &Caller, id: &str) -> Result<slipway_store::RunRecord, Failure> {
    d.store
        .get(who.visible(), id)
        .await
        .map_err(internal)?
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, "RunNotFound", format!("no run with id {id:?}")))
}

/// `GET {registry}/runs/{id}`.
pub(crate) async fn show(
    State(d): Shared,
    axum::Extension(who): Who,
    Path((sub, rg, name, id)): Path<(String, String, String, String)>,
) -> Result<Response, Failure> {
    ours(&d, &(sub, rg, name))?;
    let record = find(&d, &who, &id).await?;
    Ok(Json(run_resource(&d, &record.view())).into_response())
}

/// `GET {registry}/runs?$filter=…&$top=N`: the caller's runs, newest first, filtered as
/// `az acr task list-runs` asks ([`slipway_api::arm::RunFilter`]).
pub(crate) async fn list(
    State(d): Shared,
    axum::Extension(who): Who,
    Path(registry): Path<RegistryPath>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    ours(&d, &registry)?;
    let given = slipway_api::arm::RunFilter::parse(q.get("$filter").map(String::as_str).unwrap_or("")).map_err(bad_request)?;
    let top = q.get("$top").and_then(|t| t.parse().ok()).unwrap_or(100).clamp(1, 1000);
    let filter = slipway_store::ListFilter {
        tenant: who.visible().map(str::to_string),
        task: given.task,
        status: given
            .status
            .map(|v| slipway_store::RunStatus::parse(&v).ok_or_else(|| bad_request(format!("Status {v:?} is not a run status"))))
            .transpose()?,
        // Runs that pushed an image of the repository; its digest is checked below.
        image: given.manifest.as_ref().map(|(repo, _)| repo.clone()),
        limit: if given.manifest.is_some() { 1000 } else { top },
        ..Default::default()
    };
    let mut runs = d.store.list(&filter).await.map_err(internal)?;
    if let Some((repo, digest)) = &given.manifest {
        runs.retain(|r| r.output_images.iter().any(|o| &o.repository == repo && &o.digest == digest));
        runs.truncate(top as usize);
    }
    let value: Vec<serde_json::Value> = runs.iter().map(|r| run_resource(&d, &r.view())).collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// `PATCH {registry}/runs/{id}`: a run kept past the retention period (its log and
/// context stay), or no longer kept.
pub(crate) async fn update(
    State(d): Shared,
    axum::Extension(who): Who,
    Path((sub, rg, name, id)): Path<(String, String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, Failure> {
    ours(&d, &(sub, rg, name))?;
    let update: slipway_api::arm::ArmRunUpdate =
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("invalid run update: {e}")))?;
    let record = match update.is_archive_enabled {
        Some(archived) => d.store.set_archived(who.visible(), &id, archived).await.map_err(internal)?,
        None => d.store.get(who.visible(), &id).await.map_err(internal)?,
    };
    let record = record.ok_or_else(|| Failure(StatusCode::NOT_FOUND, "RunNotFound", format!("no run with id {id:?}")))?;
    Ok(Json(run_resource(&d, &record.view())).into_response())
}

/// `POST {registry}/runs/{id}/listLogSasUrl`: the run's log as a blob URL.
pub(crate) async fn log_url(
    State(d): Shared,
    axum::Extension(who): Who,
    Path((sub, rg, name, id)): Path<(String, String, String, String)>,
) -> Result<Response, Failure> {
    ours(&d, &(sub, rg, name))?;
    find(&d, &who, &id).await?;
    let path = blobs::log_path(&id);
    let expires = d.clock.now_ms() / 1000 + SAS_SECONDS;
    Ok(Json(json!({
        "logLink": format!("{}{path}?{}", d.settings.public_base(), d.arm.sas(&path, 'r', expires)),
    }))
    .into_response())
}

/// `POST {registry}/runs/{id}/cancel`: 200 with nothing, as ARM answers.
pub(crate) async fn cancel(
    State(d): Shared,
    axum::Extension(who): Who,
    Path((sub, rg, name, id)): Path<(String, String, String, String)>,
) -> Result<Response, Failure> {
    ours(&d, &(sub, rg, name))?;
    match d.cancel(who.visible(), &id).await {
        Ok(Some(_)) => Ok(StatusCode::OK.into_response()),
        Ok(None) => Err(Failure(StatusCode::NOT_FOUND, "RunNotFound", format!("no run with id {id:?}"))),
        Err(e) => Ok(arm_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string())),
    }
}
