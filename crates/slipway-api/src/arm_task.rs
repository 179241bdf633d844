//! Tasks as ARM takes them from the Azure CLI (`az acr task create`, the body of
//! `PUT {registry}/tasks/{name}`), and their translation into Slipway's [`TaskSpec`]:
//! a Docker or file step with its context, image names, arguments and values, its
//! platform and timeout, and its commit, base-image and timer triggers. What ARM has
//! that Slipway does not use (`agentConfiguration`, `identity`, `credentials.sourceRegistry`,
//! `logTemplate`) is read and dropped here.

use crate::arm::{arguments, yes, ArmArgument, ArmPlatform};
use crate::secrets::Credential;
use crate::task::{BaseImageTrigger, BaseImageTriggerType, SourceTrigger, TaskSpec, TaskStatus, Timer};
use serde::Deserialize;

/// The body of `PUT {registry}/tasks/{name}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ArmTask {
    #[serde(default)]
    pub properties: ArmTaskProperties,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmTaskProperties {
    pub status: Option<String>,
    pub platform: Option<ArmPlatform>,
    pub timeout: Option<u64>,
    pub step: Option<ArmStep>,
    #[serde(default)]
    pub trigger: Option<ArmTriggers>,
}

/// A task's step.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum ArmStep {
    #[serde(rename_all = "camelCase")]
    Docker {
        context_path: Option<String>,
        context_access_token: Option<String>,
        docker_file_path: Option<String>,
        #[serde(default)]
        image_names: Vec<String>,
        #[serde(default = "yes")]
        is_push_enabled: bool,
        target: Option<String>,
        #[serde(default)]
        arguments: Vec<ArmArgument>,
    },
    #[serde(rename_all = "camelCase")]
    FileTask {
        context_path: Option<String>,
        context_access_token: Option<String>,
        task_file_path: String,
        values_file_path: Option<String>,
        #[serde(default)]
        values: Vec<ArmArgument>,
    },
    #[serde(rename_all = "camelCase")]
    EncodedTask {},
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmTriggers {
    #[serde(default)]
    pub source_triggers: Option<Vec<ArmSourceTrigger>>,
    #[serde(default)]
    pub timer_triggers: Option<Vec<ArmTimerTrigger>>,
    pub base_image_trigger: Option<ArmBaseImageTrigger>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmSourceTrigger {
    pub source_repository: Option<ArmSourceRepository>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmSourceRepository {
    pub branch: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmTimerTrigger {
    pub name: String,
    pub schedule: String,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmBaseImageTrigger {
    pub base_image_trigger_type: Option<String>,
    pub status: Option<String>,
}

fn enabled(status: &Option<String>) -> bool {
    status.as_deref().is_none_or(|s| s.eq_ignore_ascii_case("enabled"))
}

/// The host (with its port) of a git context URL, which its access token is for.
fn context_host(context: &str) -> Option<String> {
    let rest = context.split_once("://")?.1;
    let host = rest.split(['/', '#']).next()?;
    Some(host.rsplit('@').next().unwrap_or(host).to_string()).filter(|h| !h.is_empty())
}

/// A task's commit, base-image and timer triggers, as ARM gives them.
fn set_triggers(spec: &mut TaskSpec, triggers: ArmTriggers) {
    let sources = triggers.source_triggers.unwrap_or_default();
    spec.source_trigger = SourceTrigger {
        enabled: sources.iter().any(|t| enabled(&t.status)),
        branches: sources
            .iter()
            .filter_map(|t| t.source_repository.as_ref()?.branch.clone())
            .filter(|b| !b.is_empty())
            .collect(),
    };
    spec.base_image_trigger = match triggers.base_image_trigger {
        Some(b) => BaseImageTrigger {
            enabled: enabled(&b.status),
            kind: match b.base_image_trigger_type.as_deref() {
                Some(t) if t.eq_ignore_ascii_case("all") => BaseImageTriggerType::All,
                _ => BaseImageTriggerType::Runtime,
            },
        },
        None => BaseImageTrigger::default(),
    };
    spec.timers = triggers
        .timer_triggers
        .unwrap_or_default()
        .into_iter()
        .map(|t| Timer {
            enabled: enabled(&t.status),
            name: t.name,
            schedule: t.schedule,
        })
        .collect();
}

impl ArmTask {
    /// The task as Slipway keeps it, image names within `registry` as ACR reads them.
    pub fn into_task_spec(self, name: &str, registry: &str) -> Result<TaskSpec, String> {
        let p = self.properties;
        let mut spec: TaskSpec = serde_json::from_value(serde_json::json!({ "name": name })).map_err(|e| e.to_string())?;
        let (context, token) = match p.step.ok_or("the task has no step")? {
            ArmStep::Docker {
                context_path,
                context_access_token,
                docker_file_path,
                image_names,
                is_push_enabled,
                target,
                arguments: args,
            } => {
                spec.file = Some(docker_file_path.unwrap_or_else(|| "Dockerfile".into()));
                spec.image_names = image_names.into_iter().map(|n| crate::arm::qualified(n, registry)).collect();
                spec.is_push_enabled = is_push_enabled;
                spec.target = target.filter(|t| !t.is_empty());
                spec.arguments = arguments(args);
                (context_path, context_access_token)
            }
            ArmStep::FileTask {
                context_path,
                context_access_token,
                task_file_path,
                values_file_path,
                values,
            } => {
                if values_file_path.as_deref().is_some_and(|v| !v.is_empty()) {
                    return Err("a task's values file (--values) is not supported yet; give the values with --set".into());
                }
                spec.file = Some(task_file_path);
                spec.values = arguments(values);
                (context_path, context_access_token)
            }
            ArmStep::EncodedTask {} => {
                return Err("a task of one command (--cmd) is not supported yet; use a task file (-f acb.yaml)".into());
            }
        };
        spec.context_path = context.filter(|c| !c.is_empty() && c != "/dev/null");
        if let (Some(token), Some(host)) = (token.filter(|t| !t.is_empty()), spec.context_path.as_deref().and_then(context_host)) {
            spec.git_credentials.insert(
                host,
                Credential {
                    user: "x-access-token".into(),
                    secret: token,
                },
            );
        }
        if let Some(platform) = &p.platform {
            spec.platform = platform.text();
        }
        if let Some(timeout) = p.timeout {
            spec.timeout = timeout;
        }
        if !enabled(&p.status) {
            spec.status = TaskStatus::Disabled;
        }
        set_triggers(&mut spec, p.trigger.unwrap_or_default());
        spec.validate()?;
        Ok(spec)
    }
}

/// The body of `PATCH {registry}/tasks/{name}`: only what is given changes.
#[derive(Debug, Clone, Deserialize)]
pub struct ArmTaskUpdate {
    #[serde(default)]
    pub properties: ArmTaskUpdateProperties,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmTaskUpdateProperties {
    pub status: Option<String>,
    pub platform: Option<ArmPlatform>,
    pub timeout: Option<u64>,
    pub step: Option<ArmStepUpdate>,
    pub trigger: Option<ArmTriggersUpdate>,
}

/// What `az acr task update` changes of a step; what it leaves out stays.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmStepUpdate {
    pub context_path: Option<String>,
    pub docker_file_path: Option<String>,
    pub task_file_path: Option<String>,
    pub values_file_path: Option<String>,
    pub encoded_task_content: Option<String>,
    pub image_names: Option<Vec<String>>,
    pub is_push_enabled: Option<bool>,
    pub target: Option<String>,
    pub arguments: Option<Vec<ArmArgument>>,
    pub values: Option<Vec<ArmArgument>>,
}

impl ArmStepUpdate {
    /// Changes the task's step where the update gives a field; a list given replaces
    /// the one kept (its secret values sent back empty keep theirs, by the caller).
    fn apply(self, spec: &mut TaskSpec, registry: &str) -> Result<(), String> {
        if self.encoded_task_content.is_some() {
            return Err("a task of one command (--cmd) is not supported yet; use a task file (-f acb.yaml)".into());
        }
        if self.values_file_path.as_deref().is_some_and(|v| !v.is_empty()) {
            return Err("a task's values file (--values) is not supported yet; give the values with --set".into());
        }
        if let Some(c) = self.context_path {
            spec.context_path = Some(c).filter(|c| !c.is_empty() && c != "/dev/null");
        }
        if let Some(f) = self.docker_file_path.or(self.task_file_path) {
            spec.file = Some(f);
        }
        if let Some(names) = self.image_names {
            spec.image_names = names.into_iter().map(|n| crate::arm::qualified(n, registry)).collect();
        }
        if let Some(p) = self.is_push_enabled {
            spec.is_push_enabled = p;
        }
        if let Some(t) = self.target {
            spec.target = Some(t).filter(|t| !t.is_empty());
        }
        if let Some(list) = self.arguments {
            spec.arguments = arguments(list);
        }
        if let Some(list) = self.values {
            spec.values = arguments(list);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmTriggersUpdate {
    pub timer_triggers: Option<Vec<ArmTimerUpdate>>,
    pub base_image_trigger: Option<ArmBaseImageTrigger>,
    pub source_triggers: Option<Vec<ArmSourceTrigger>>,
}

/// A timer to add or change, by name (`schedule` and `status` kept when not given).
#[derive(Debug, Clone, Deserialize)]
pub struct ArmTimerUpdate {
    pub name: String,
    pub schedule: Option<String>,
    pub status: Option<String>,
}

impl ArmTaskUpdate {
    /// Changes `spec` as the update says (image names within `registry`); a timer added
    /// needs its schedule.
    pub fn apply(self, spec: &mut TaskSpec, registry: &str) -> Result<(), String> {
        let p = self.properties;
        if let Some(step) = p.step {
            step.apply(spec, registry)?;
        }
        if p.status.is_some() {
            spec.status = if enabled(&p.status) {
                TaskStatus::Enabled
            } else {
                TaskStatus::Disabled
            };
        }
        if let Some(platform) = &p.platform {
            spec.platform = platform.text();
        }
        if let Some(t) = p.timeout {
            spec.timeout = t;
        }
        let triggers = p.trigger.unwrap_or_default();
        for t in triggers.timer_triggers.unwrap_or_default() {
            merge_timer(spec, t)?;
        }
        if let Some(b) = triggers.base_image_trigger {
            if b.status.is_some() {
                spec.base_image_trigger.enabled = enabled(&b.status);
            }
            if let Some(kind) = b.base_image_trigger_type {
                spec.base_image_trigger.kind = if kind.eq_ignore_ascii_case("all") {
                    BaseImageTriggerType::All
                } else {
                    BaseImageTriggerType::Runtime
                };
            }
        }
        if let Some(sources) = triggers.source_triggers.filter(|s| !s.is_empty()) {
            spec.source_trigger.enabled = sources.iter().any(|t| enabled(&t.status));
        }
        spec.validate()
    }
}

/// Adds timer `t`, or changes the one of its name.
fn merge_timer(spec: &mut TaskSpec, t: ArmTimerUpdate) -> Result<(), String> {
    match spec.timers.iter_mut().find(|x| x.name == t.name) {
        Some(x) => {
            if let Some(s) = t.schedule {
                x.schedule = s;
            }
            if t.status.is_some() {
                x.enabled = enabled(&t.status);
            }
        }
        None => spec.timers.push(Timer {
            schedule: t.schedule.ok_or_else(|| format!("timer {:?} is new and has no schedule", t.name))?,
            enabled: enabled(&t.status),
            name: t.name,
        }),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_az_acr_task_create_sends_becomes_a_task() {
        // As azure-cli 2.91.0 sends `az acr task create -n t -c https://git.example/r.git#main
        // -f Dockerfile -t app:{{.Run.ID}} --schedule "0 2 * * *" --git-access-token tok --arg A=1`.
        let sent = serde_json::json!({"location": "slipway", "properties": {
            "status": "Enabled", "platform": {"os": "linux", "architecture": "amd64"},
            "agentConfiguration": {"cpu": 2}, "timeout": 3600,
            "step": {"type": "Docker", "imageNames": ["app:{{.Run.ID}}"], "isPushEnabled": true, "noCache": false,
                "dockerFilePath": "Dockerfile", "arguments": [{"type": "Argument", "name": "A", "value": "1", "isSecret": false}],
                "contextPath": "https://git.example/r.git#main", "contextAccessToken": "tok"},
            "trigger": {
                "sourceTriggers": [{"sourceRepository": {"sourceControlType": "Github", "repositoryUrl": "https://git.example/r.git#main",
                    "branch": "main", "sourceControlAuthProperties": {"tokenType": "PAT", "token": "tok", "scope": "repo"}},
                    "sourceTriggerEvents": ["commit"], "status": "Enabled", "name": "defaultSourceTriggerName"}],
                "timerTriggers": [{"schedule": "0 2 * * *", "status": "Enabled", "name": "t1"}],
                "baseImageTrigger": {"baseImageTriggerType": "Runtime", "status": "Enabled", "name": "defaultBaseimageTriggerName",
                    "updateTriggerPayloadType": "Default"}},
            "credentials": {}, "isSystemTask": false}});
        let task: ArmTask = serde_json::from_value(sent).unwrap();
        let spec = task.into_task_spec("build-app", "reg:5000").unwrap();
        assert_eq!(spec.image_names, ["reg:5000/app:{{.Run.ID}}"]);
        assert_eq!(spec.context_path.as_deref(), Some("https://git.example/r.git#main"));
        assert_eq!(spec.git_credentials["git.example"].secret, "tok");
        assert!(spec.source_trigger.enabled && spec.base_image_trigger.enabled);
        assert_eq!(spec.source_trigger.branches, ["main"]);
        assert_eq!(
            (spec.timers[0].name.as_str(), spec.timers[0].schedule.as_str()),
            ("t1", "0 2 * * *")
        );
    }

    #[test]
    fn a_timer_is_added_and_changed_by_name() {
        let mut spec: TaskSpec = serde_json::from_value(
            serde_json::json!({"name": "build-app", "file": "Dockerfile", "contextPath": "https://git.example/r.git", "timers": [{"name": "t1", "schedule": "0 2 * * *"}]}),
        )
        .unwrap();
        let add: ArmTaskUpdate = serde_json::from_value(serde_json::json!({"properties": {"trigger": {"timerTriggers": [
            {"name": "t2", "schedule": "0 3 * * *", "status": "Enabled"}, {"name": "t1", "status": "Disabled"}]}}}))
        .unwrap();
        add.apply(&mut spec, "reg").unwrap();
        assert_eq!(spec.timers.len(), 2);
        assert!(!spec.timers[0].enabled && spec.timers[0].schedule == "0 2 * * *");
        let bare: ArmTaskUpdate =
            serde_json::from_value(serde_json::json!({"properties": {"trigger": {"timerTriggers": [{"name": "t3"}]}}})).unwrap();
        assert!(bare.apply(&mut spec, "reg").unwrap_err().contains("no schedule"));
        let args: ArmTaskUpdate = serde_json::from_value(serde_json::json!({"properties": {"step": {"type": "Docker",
            "arguments": [{"type": "Argument", "name": "A", "value": "2", "isSecret": false}], "imageNames": ["app:2"]}}}))
        .unwrap();
        args.apply(&mut spec, "reg").unwrap();
        assert_eq!((spec.arguments[0].value.as_str(), spec.image_names[0].as_str()), ("2", "reg/app:2"));
    }

    #[test]
    fn what_slipway_cannot_keep_yet_is_refused_by_name() {
        let cmd = serde_json::json!({"properties": {"step": {"type": "EncodedTask", "encodedTaskContent": "eA=="}}});
        let e = serde_json::from_value::<ArmTask>(cmd)
            .unwrap()
            .into_task_spec("build-app", "")
            .unwrap_err();
        assert!(e.contains("--cmd"), "{e}");
    }
}
