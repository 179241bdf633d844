//! Tasks: saved runs that Slipway starts by itself (commits, base image updates,
//! timers) or on request. A task's secret values live in the node's vault (a `0600`
//! file on one machine, sealed in the database in a fleet), never in clear in the
//! database or in the API's answers.

use crate::Triggers;
use base64::Engine as _;
use slipway_api::model::{Argument, DockerBuildRequest, EncodedTaskRunRequest, FileTaskRunRequest, RunRequest};
use slipway_api::requests;
use slipway_api::task::{source_location, Overrides, TaskSecrets, TaskSpec};
use slipway_api::tenant::DEFAULT_TENANT;
use slipway_worker::vault::Owner;

use slipway_store::{RunRecord, RunType, TaskRecord};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A task's secrets (none kept: the default), from the vault. An error when they are
/// kept but cannot be read: a run never starts with a secret silently empty.
pub async fn read_secrets(d: &slipway_worker::Node, tenant: &str, name: &str) -> Result<TaskSecrets, String> {
    d.vault.read(&Owner::task(tenant, name)).await.map_err(|e| e.to_string())
}

/// Keeps a task's secrets; a task without any keeps nothing.
pub async fn write_secrets(d: &slipway_worker::Node, tenant: &str, name: &str, s: &TaskSecrets) -> Result<(), String> {
    if s == &TaskSecrets::default() {
        remove_secrets(d, tenant, name).await;
        return Ok(());
    }
    d.vault.keep(&Owner::task(tenant, name), s).await.map_err(|e| e.to_string())
}

pub async fn remove_secrets(d: &slipway_worker::Node, tenant: &str, name: &str) {
    d.vault.delete(&Owner::task(tenant, name)).await;
}

/// A trigger event's key within its tenant: the default tenant's keys are as they were
/// before tenants, so an event seen then is still seen.
pub fn trigger_key(tenant: &str, key: &str) -> String {
    if tenant == DEFAULT_TENANT {
        key.to_string()
    } else {
        format!("{tenant}/{key}")
    }
}

/// Whether overrides move a task's source (another context or file): then the run
/// gets none of the task's secrets, unless the tenant's admin keeps them.
pub fn moves_source(task: &TaskSpec, overrides: &Overrides) -> bool {
    let moved = |given: &Option<String>, own: &Option<String>| given.as_ref().is_some_and(|g| Some(g) != own.as_ref());
    moved(&overrides.context_path, &task.context_path) || moved(&overrides.file, &task.file)
}

/// Whether a run with these overrides is the task as it is defined (it then shares
/// the task's build cache); any other override makes a run of its own.
fn as_defined(overrides: &Overrides) -> bool {
    overrides.values.is_empty()
        && overrides.arguments.is_empty()
        && overrides.target.is_none()
        && overrides.file.is_none()
        && overrides.context_path.is_none()
}

/// Why a task's run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The task (with its overrides) does not make a valid run.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Submit(#[from] slipway_worker::submit::SubmitError),
}

/// Starts a run of `tenant`'s `task`. With `key`, at most one run per key is ever started
/// (`Ok(None)` when the key was seen before).
pub async fn start(
    d: &Arc<Triggers>,
    tenant: &str,
    task: &TaskSpec,
    overrides: Overrides,
    commit: Option<&str>,
    key: Option<String>,
    triggers: slipway_store::Triggers,
) -> Result<Option<RunRecord>, StartError> {
    let mut submission = build_run(d, tenant, task, overrides, commit, triggers)
        .await
        .map_err(StartError::Invalid)?;
    submission.trigger_key = key.map(|k| trigger_key(tenant, &k));
    Ok(slipway_worker::submit::submit(d, submission).await?)
}

/// The run `tenant`'s task would start, with the secrets it takes from the task: none
/// when the overrides move its source, unless they say to keep them (which the API
/// allows only the tenant's admins).
pub async fn build_run(
    d: &Triggers,
    tenant: &str,
    task: &TaskSpec,
    mut overrides: Overrides,
    commit: Option<&str>,
    triggers: slipway_store::Triggers,
) -> Result<slipway_worker::submit::Submission, String> {
    let keeps_secrets = !moves_source(task, &overrides) || overrides.keep_secrets;
    let secrets = if keeps_secrets {
        read_secrets(d, tenant, &task.name).await?
    } else {
        TaskSecrets::default()
    };
    let owner = if as_defined(&overrides) {
        requests::CacheOwner::Task(&task.name)
    } else {
        requests::CacheOwner::Run
    };
    let mut values = with_secrets(&task.values, &secrets.values);
    let mut arguments = with_secrets(&task.arguments, &secrets.arguments);
    // Overrides win over the task's own entries of the same name.
    for o in std::mem::take(&mut overrides.values) {
        values.retain(|v| v.name != o.name);
        values.push(o);
    }
    for o in std::mem::take(&mut overrides.arguments) {
        arguments.retain(|v| v.name != o.name);
        arguments.push(o);
    }
    let (request, run_type) = request_of(task, overrides, commit, values, arguments);
    let mut submission = slipway_worker::submit::Submission::of_request(tenant, request, Some(owner)).map_err(|e| e.0)?;
    submission.run.run_type = run_type;
    submission.run.task = Some(task.name.clone());
    submission.run.triggers = triggers;
    submission.secrets.registry = secrets.registry_credentials;
    submission.secrets.git = secrets.git_credentials;
    Ok(submission)
}

/// `list` with each secret entry's value from `stored` (empty when it has none).
fn with_secrets(list: &[Argument], stored: &BTreeMap<String, String>) -> Vec<Argument> {
    list.iter()
        .map(|a| {
            if a.is_secret {
                Argument {
                    value: stored.get(&a.name).cloned().unwrap_or_default(),
                    ..a.clone()
                }
            } else {
                a.clone()
            }
        })
        .collect()
}

/// The request a run of `task` makes, and its run type: a command or an inline task
/// file runs as an encoded task, a `.yaml`/`.yml` file as a task file, anything else as a Dockerfile build.
fn request_of(
    task: &TaskSpec,
    overrides: Overrides,
    commit: Option<&str>,
    values: Vec<Argument>,
    arguments: Vec<Argument>,
) -> (RunRequest, RunType) {
    let context = overrides.context_path.or(task.context_path.clone());
    let file = overrides.file.or(task.file.clone());
    let location = source_location(context.as_deref(), commit);
    let is_task_file = file.as_deref().is_some_and(|f| f.ends_with(".yaml") || f.ends_with(".yml"));
    let (timeout, platform) = (Some(task.timeout), Some(task.platform.clone()));
    let inline = match (&task.cmd, &task.task_content) {
        (Some(cmd), _) => Some(format!("steps:\n  - cmd: {}\n", serde_json::to_string(cmd).unwrap_or_default())),
        (None, content) => content.clone(),
    };
    if let Some(text) = inline {
        let r = RunRequest::EncodedTaskRunRequest(EncodedTaskRunRequest {
            encoded_task_content: base64::engine::general_purpose::STANDARD.encode(text),
            encoded_values_content: None,
            values,
            platform,
            timeout,
            source_location: location,
        });
        (r, RunType::AutoRun)
    } else if let Some(task_file_path) = file.clone().filter(|_| is_task_file) {
        let r = RunRequest::FileTaskRunRequest(FileTaskRunRequest {
            task_file_path,
            values_file_path: task.values_file.clone(),
            values,
            platform,
            timeout,
            source_location: location,
        });
        (r, RunType::AutoRun)
    } else {
        let r = RunRequest::DockerBuildRequest(DockerBuildRequest {
            image_names: task.image_names.clone(),
            is_push_enabled: task.is_push_enabled,
            no_cache: false,
            docker_file_path: file.unwrap_or_else(|| "Dockerfile".into()),
            target: overrides.target.or(task.target.clone()),
            arguments,
            platform,
            timeout,
            source_location: location,
            pull: overrides.pull,
            build_secrets: Vec::new(),
        });
        (r, RunType::AutoBuild)
    }
}

/// Enables or disables a task (its `status`), leaving its secrets as they are; `None`
/// when there is no such task.
pub async fn set_enabled(d: &Triggers, tenant: &str, name: &str, enabled: bool) -> Result<Option<TaskRecord>, slipway_store::StoreError> {
    let Some(mut record) = d.store.get_task(tenant, name).await? else {
        return Ok(None);
    };
    record.spec.status = if enabled {
        slipway_api::task::TaskStatus::Enabled
    } else {
        slipway_api::task::TaskStatus::Disabled
    };
    record.enabled = enabled;
    if !d.store.put_task(&record, false).await? {
        return Ok(None);
    }
    d.tasks_touched();
    d.store.get_task(tenant, name).await
}
