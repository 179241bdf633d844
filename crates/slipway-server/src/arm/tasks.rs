//! Tasks as the Azure CLI drives them (`az acr task create|show|list|delete`, and
//! `az acr task run` through `scheduleRun`): ARM's task resource made from and into
//! Slipway's task, through the `/v1` task functions, for the caller the access token
//! names. A task's secrets never come back: secret values show empty.

use super::registry_id;
use super::runs::{ours, RegistryPath};
use crate::failure::{bad_request, internal, Failure};
use crate::{Server, Shared};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::json;
use slipway_api::arm_task::ArmTask;
use slipway_api::model::Argument;
use slipway_api::task::{TaskSecrets, TaskSpec};
use slipway_api::tenant::Caller;

type Who = axum::Extension<Caller>;
type TaskPath = (String, String, String, String);

fn arguments(list: &[Argument]) -> serde_json::Value {
    list.iter()
        .map(|a| json!({"type": "Argument", "name": a.name, "value": if a.is_secret { "" } else { a.value.as_str() }, "isSecret": a.is_secret}))
        .collect()
}

fn status(enabled: bool) -> &'static str {
    if enabled {
        "Enabled"
    } else {
        "Disabled"
    }
}

/// The task's step as ARM shows it.
fn step(spec: &TaskSpec) -> serde_json::Value {
    let file = spec.file.clone().unwrap_or_else(|| "Dockerfile".into());
    let inline = match (&spec.cmd, &spec.task_content) {
        (Some(cmd), _) => Some(format!("steps:\n  - cmd: {}\n", serde_json::to_string(cmd).unwrap_or_default())),
        (None, content) => content.clone(),
    };
    if let Some(text) = inline {
        return json!({"type": "EncodedTask", "encodedTaskContent": base64::engine::general_purpose::STANDARD.encode(text),
            "contextPath": spec.context_path, "values": arguments(&spec.values)});
    }
    if spec.is_task_file() {
        return json!({"type": "FileTask", "taskFilePath": file, "valuesFilePath": spec.values_file,
            "contextPath": spec.context_path, "values": arguments(&spec.values)});
    }
    json!({"type": "Docker", "dockerFilePath": file, "imageNames": spec.image_names, "isPushEnabled": spec.is_push_enabled,
        "noCache": false, "arguments": arguments(&spec.arguments), "target": spec.target, "contextPath": spec.context_path})
}

/// The task's triggers as ARM shows them.
fn triggers(spec: &TaskSpec) -> serde_json::Value {
    let branch = spec
        .context_path
        .as_deref()
        .and_then(|c| slipway_api::source::parse_git(c).ok())
        .and_then(|g| g.reference);
    let sources: Vec<serde_json::Value> = spec
        .context_path
        .iter()
        .filter(|_| spec.source_trigger.enabled)
        .map(|c| {
            json!({"name": "defaultSourceTriggerName", "status": "Enabled", "sourceTriggerEvents": ["commit"],
                "sourceRepository": {"sourceControlType": "Github", "repositoryUrl": c,
                    "branch": spec.source_trigger.branches.first().cloned().or(branch.clone())}})
        })
        .collect();
    let timers: Vec<serde_json::Value> = spec
        .timers
        .iter()
        .map(|t| json!({"name": t.name, "schedule": t.schedule, "status": status(t.enabled)}))
        .collect();
    json!({
        "sourceTriggers": sources,
        "timerTriggers": timers,
        "baseImageTrigger": {"name": "defaultBaseimageTriggerName", "status": status(spec.base_image_trigger.enabled),
            "baseImageTriggerType": spec.base_image_trigger.kind.as_str(), "updateTriggerPayloadType": "Default"},
    })
}

/// A task's registry credentials as ARM shows them: the login servers and user
/// names, never a password.
fn credentials(stored: Option<&TaskSecrets>) -> serde_json::Value {
    let custom: serde_json::Map<String, serde_json::Value> = stored
        .map(|s| &s.registry_credentials)
        .into_iter()
        .flatten()
        .map(|(server, c)| {
            let shown = json!({"userName": {"type": "Opaque", "value": c.user}, "password": {"type": "Opaque"}});
            (server.clone(), shown)
        })
        .collect();
    if custom.is_empty() {
        json!({})
    } else {
        json!({ "customRegistries": custom })
    }
}

/// A task as ARM shows it, with its credentials' login servers when `stored` is given.
fn task_resource(d: &Server, record: &slipway_store::TaskRecord, stored: Option<&TaskSecrets>) -> serde_json::Value {
    let spec = &record.spec;
    let platform = slipway_api::model::Platform::parse(&spec.platform);
    json!({
        "id": format!("{}/tasks/{}", registry_id(d), record.name),
        "name": record.name,
        "type": "Microsoft.ContainerRegistry/registries/tasks",
        "location": "slipway",
        "properties": {
            "provisioningState": "Succeeded",
            "creationDate": slipway_api::time::from_ms(record.create_time),
            "status": status(record.enabled),
            "platform": {"os": platform.os, "architecture": platform.architecture},
            "agentConfiguration": {"cpu": 2},
            "timeout": spec.timeout,
            "step": step(spec),
            "trigger": triggers(spec),
            "credentials": credentials(stored),
            "isSystemTask": false,
        },
    })
}

async fn found(d: &Server, who: &Caller, name: &str) -> Result<slipway_store::TaskRecord, Failure> {
    d.store
        .get_task(&who.tenant, name)
        .await
        .map_err(internal)?
        .ok_or_else(|| crate::tasks::task_not_found(name))
}

/// `PUT {registry}/tasks/{name}`: made, or replaced whole as ARM's PUT does; 200.
pub(crate) async fn put(
    State(d): Shared,
    axum::Extension(who): Who,
    Path((sub, rg, reg, name)): Path<TaskPath>,
    body: Bytes,
) -> Result<Response, Failure> {
    ours(&d, &(sub, rg, reg))?;
    crate::plain_text::no_nul(&body)?;
    let task: ArmTask = serde_json::from_slice(&body).map_err(|e| bad_request(format!("invalid task: {e}")))?;
    let mut spec = task.into_task_spec(&name, &d.settings.registry).map_err(bad_request)?;
    let record = match d.store.get_task(&who.tenant, &name).await.map_err(internal)? {
        None => crate::tasks::put_spec(&d, &who, spec, true, None).await?,
        Some(old) => {
            // A task sent back as `listDetails` showed it (`az acr task timer remove`)
            // has its secrets empty: the stored ones stay, unless its source moved.
            let keep = kept_secrets(&d, &who, &old.spec, &mut spec).await?;
            crate::tasks::put_spec(&d, &who, spec, false, keep).await?
        }
    };
    answer(&d, &who, &record).await
}

/// The secrets an update of `before` into `spec` keeps: the stored ones, each secret
/// sent back empty filled from them, when `spec` reads from where `before` did; none
/// when its source moved, as on `/v1`.
async fn kept_secrets(d: &Server, who: &Caller, before: &TaskSpec, spec: &mut TaskSpec) -> Result<Option<TaskSecrets>, Failure> {
    if !spec.same_source(before) {
        return Ok(None);
    }
    let secrets = slipway_triggers::tasks::read_secrets(d, &who.tenant, &spec.name)
        .await
        .map_err(internal)?;
    fill_masked(spec, &secrets);
    Ok(Some(secrets))
}

/// A task as ARM answers a single one: with its credentials' login servers.
async fn answer(d: &Server, who: &Caller, record: &slipway_store::TaskRecord) -> Result<Response, Failure> {
    let stored = slipway_triggers::tasks::read_secrets(d, &who.tenant, &record.name)
        .await
        .map_err(internal)?;
    Ok(Json(task_resource(d, record, Some(&stored))).into_response())
}

/// Gives each secret argument and value sent back empty its stored value.
fn fill_masked(spec: &mut TaskSpec, stored: &slipway_api::task::TaskSecrets) {
    let fill = |list: &mut Vec<Argument>, from: &std::collections::BTreeMap<String, String>| {
        for a in list.iter_mut().filter(|a| a.is_secret && a.value.is_empty()) {
            if let Some(v) = from.get(&a.name) {
                a.value = v.clone();
            }
        }
    };
    fill(&mut spec.arguments, &stored.arguments);
    fill(&mut spec.values, &stored.values);
}

/// `PATCH {registry}/tasks/{name}`: what `az acr task timer add|update` and a status or
/// trigger change send: timers merged by name, the rest replaced where given.
pub(crate) async fn patch(
    State(d): Shared,
    axum::Extension(who): Who,
    Path((sub, rg, reg, name)): Path<TaskPath>,
    body: Bytes,
) -> Result<Response, Failure> {
    ours(&d, &(sub, rg, reg))?;
    crate::plain_text::no_nul(&body)?;
    let update: slipway_api::arm_task::ArmTaskUpdate =
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("invalid task update: {e}")))?;
    let record = found(&d, &who, &name).await?;
    let changes = update.credential_changes().map_err(bad_request)?;
    let mut spec = record.spec.clone();
    update.apply(&mut spec, &d.settings.registry).map_err(bad_request)?;
    // Secrets were given for the task's source: a task moved elsewhere keeps none.
    let mut keep = kept_secrets(&d, &who, &record.spec, &mut spec).await?;
    for (server, credential) in changes {
        let stored = keep.as_mut().and_then(|k| k.registry_credentials.remove(&server));
        match credential {
            // `credential update` without `--password` keeps the one stored.
            Some(mut c) => {
                if c.secret.is_empty() {
                    c.secret = stored.map(|s| s.secret).unwrap_or_default();
                }
                spec.registry_credentials.insert(server, c);
            }
            None => {
                spec.registry_credentials.remove(&server);
            }
        }
    }
    let record = crate::tasks::put_spec(&d, &who, spec, false, keep).await?;
    answer(&d, &who, &record).await
}

/// `GET {registry}/tasks/{name}`, and `POST …/listDetails` (secrets stay out of both).
pub(crate) async fn show(
    State(d): Shared,
    axum::Extension(who): Who,
    Path((sub, rg, reg, name)): Path<TaskPath>,
) -> Result<Response, Failure> {
    ours(&d, &(sub, rg, reg))?;
    let record = found(&d, &who, &name).await?;
    answer(&d, &who, &record).await
}

/// `GET {registry}/tasks`.
pub(crate) async fn list(State(d): Shared, axum::Extension(who): Who, Path(registry): Path<RegistryPath>) -> Result<Response, Failure> {
    ours(&d, &registry)?;
    let records = d.store.list_tasks(Some(&who.tenant)).await.map_err(internal)?;
    let value: Vec<serde_json::Value> = records.iter().map(|r| task_resource(&d, r, None)).collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// `DELETE {registry}/tasks/{name}`: 200.
pub(crate) async fn delete(
    State(d): Shared,
    axum::Extension(who): Who,
    Path((sub, rg, reg, name)): Path<TaskPath>,
) -> Result<Response, Failure> {
    ours(&d, &(sub, rg, reg))?;
    crate::tasks::delete_task(State(d.clone()), axum::Extension(who), Path(name)).await?;
    Ok(StatusCode::OK.into_response())
}
