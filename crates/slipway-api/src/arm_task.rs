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
    pub credentials: Option<ArmCredentials>,
}

/// A task's credentials: `customRegistries` by login server, `null` removing one
/// (`az acr task credential add|update|remove`). `sourceRegistry` (the login mode for the
/// task's own registry) is read and dropped: a task signs in to the daemon's registry
/// as its tenant does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmCredentials {
    pub custom_registries: Option<std::collections::BTreeMap<String, Option<ArmCustomRegistry>>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmCustomRegistry {
    pub user_name: Option<ArmSecretObject>,
    pub password: Option<ArmSecretObject>,
    pub identity: Option<String>,
}

/// `{"type": "Opaque"|"Vaultsecret", "value": …}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ArmSecretObject {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub value: Option<String>,
}

impl ArmSecretObject {
    /// The value itself; a Key Vault reference is refused, naming the login server.
    fn opaque(&self, server: &str, what: &str) -> Result<String, String> {
        if self.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case("vaultsecret")) {
            return Err(format!(
                "credentials.customRegistries[{server:?}].{what}: Key Vault secrets are not supported; give the value itself"
            ));
        }
        Ok(self.value.clone().unwrap_or_default())
    }
}

/// A change to a task's registry credentials: set (an empty password keeps the one
/// stored, as a credential sent back masked does) or, with `None`, removed.
pub type CredentialChange = (String, Option<Credential>);

impl ArmCredentials {
    /// The changes these credentials make, by login server.
    pub fn changes(&self) -> Result<Vec<CredentialChange>, String> {
        let mut out = Vec::new();
        for (server, given) in self.custom_registries.iter().flatten() {
            let server = server.trim().to_ascii_lowercase();
            if server.is_empty() || server.contains(['/', ' ']) {
                return Err(format!("credentials.customRegistries: {server:?} is not a registry login server"));
            }
            let Some(c) = given else {
                out.push((server, None));
                continue;
            };
            if c.identity.as_deref().is_some_and(|i| !i.is_empty()) && c.user_name.is_none() && c.password.is_none() {
                return Err(format!(
                    "credentials.customRegistries[{server:?}]: a managed identity (--use-identity) is not supported; give --username and --password"
                ));
            }
            let user = c
                .user_name
                .as_ref()
                .map(|u| u.opaque(&server, "userName"))
                .transpose()?
                .unwrap_or_default();
            let secret = c
                .password
                .as_ref()
                .map(|p| p.opaque(&server, "password"))
                .transpose()?
                .unwrap_or_default();
            if user.is_empty() {
                return Err(format!("credentials.customRegistries[{server:?}]: give a userName"));
            }
            out.push((server, Some(Credential { user, secret })));
        }
        Ok(out)
    }
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
    EncodedTask {
        /// The task file, base64.
        encoded_task_content: String,
        context_path: Option<String>,
        context_access_token: Option<String>,
        #[serde(default)]
        values: Vec<ArmArgument>,
    },
}

/// An encoded task's YAML out of its base64, or why not.
fn decoded(content: &str) -> Result<String, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(content.trim())
        .map_err(|e| format!("step.encodedTaskContent is not base64: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "step.encodedTaskContent is not UTF-8 text".to_string())
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
                spec.file = Some(task_file_path);
                spec.values_file = values_file_path.filter(|v| !v.is_empty());
                spec.values = arguments(values);
                (context_path, context_access_token)
            }
            ArmStep::EncodedTask {
                encoded_task_content,
                context_path,
                context_access_token,
                values,
            } => {
                spec.task_content = Some(decoded(&encoded_task_content)?);
                spec.values = arguments(values);
                (context_path, context_access_token)
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
        for (server, credential) in p.credentials.unwrap_or_default().changes()? {
            if let Some(c) = credential {
                spec.registry_credentials.insert(server, c);
            }
        }
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
    pub credentials: Option<ArmCredentials>,
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
        if let Some(content) = &self.encoded_task_content {
            spec.task_content = Some(decoded(content)?);
            spec.file = None;
            spec.cmd = None;
        }
        if let Some(v) = self.values_file_path {
            spec.values_file = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(c) = self.context_path {
            spec.context_path = Some(c).filter(|c| !c.is_empty() && c != "/dev/null");
        }
        if let Some(f) = self.docker_file_path.or(self.task_file_path) {
            spec.file = Some(f);
            spec.task_content = None;
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
    /// The registry credentials the update sets or removes; [`ArmTaskUpdate::apply`]
    /// leaves them to the caller, which holds the ones stored.
    pub fn credential_changes(&self) -> Result<Vec<CredentialChange>, String> {
        self.properties
            .credentials
            .as_ref()
            .map(ArmCredentials::changes)
            .unwrap_or(Ok(Vec::new()))
    }

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
    fn an_encoded_task_keeps_its_yaml_and_a_file_task_its_values_file() {
        // `az acr task create -n t --cmd "busybox echo hi" -c /dev/null`.
        let yaml = "version: v1.1.0\nsteps: \n  - cmd: busybox echo hi\n    disableWorkingDirectoryOverride: true\n";
        use base64::Engine as _;
        let content = base64::engine::general_purpose::STANDARD.encode(yaml);
        let cmd = serde_json::json!({"properties": {"step": {"type": "EncodedTask", "encodedTaskContent": content,
            "values": [{"type": "SetValue", "name": "who", "value": "me", "isSecret": false}]}}});
        let spec = serde_json::from_value::<ArmTask>(cmd)
            .unwrap()
            .into_task_spec("build-app", "")
            .unwrap();
        assert_eq!(spec.task_content.as_deref(), Some(yaml));
        assert!(spec.context_path.is_none() && spec.file.is_none());
        let bad = serde_json::json!({"properties": {"step": {"type": "EncodedTask", "encodedTaskContent": "not base64!"}}});
        let e = serde_json::from_value::<ArmTask>(bad)
            .unwrap()
            .into_task_spec("build-app", "")
            .unwrap_err();
        assert!(e.contains("step.encodedTaskContent"), "{e}");
        let file = serde_json::json!({"properties": {"step": {"type": "FileTask", "taskFilePath": "acb.yaml",
            "valuesFilePath": "values.yaml", "contextPath": "https://git.example/r.git"}}});
        let spec = serde_json::from_value::<ArmTask>(file)
            .unwrap()
            .into_task_spec("build-app", "")
            .unwrap();
        assert_eq!(spec.values_file.as_deref(), Some("values.yaml"));
    }

    #[test]
    fn credentials_are_set_and_removed_by_login_server() {
        // `az acr task credential add -n t --login-server Reg.Example:5000 -u me -p pw`, then
        // `credential remove`.
        let add: ArmTaskUpdate = serde_json::from_value(serde_json::json!({"properties": {"credentials": {"customRegistries": {
            "Reg.Example:5000": {"userName": {"type": "Opaque", "value": "me"}, "password": {"type": "Opaque", "value": "pw"}}}}}}))
        .unwrap();
        let changes = add.credential_changes().unwrap();
        assert_eq!(changes[0].0, "reg.example:5000");
        assert_eq!(
            changes[0].1.as_ref().map(|c| (c.user.as_str(), c.secret.as_str())),
            Some(("me", "pw"))
        );
        let remove: ArmTaskUpdate =
            serde_json::from_value(serde_json::json!({"properties": {"credentials": {"customRegistries": {"reg.example:5000": null}}}}))
                .unwrap();
        assert_eq!(remove.credential_changes().unwrap(), vec![("reg.example:5000".to_string(), None)]);
        for (given, needle) in [
            (
                serde_json::json!({"userName": {"type": "Vaultsecret", "value": "https://v.vault/x"}, "password": {"value": "p"}}),
                "Key Vault",
            ),
            (serde_json::json!({"identity": "[system]"}), "managed identity"),
            (serde_json::json!({"password": {"type": "Opaque", "value": "p"}}), "userName"),
        ] {
            let u: ArmTaskUpdate =
                serde_json::from_value(serde_json::json!({"properties": {"credentials": {"customRegistries": {"reg.example": given}}}}))
                    .unwrap();
            let e = u.credential_changes().unwrap_err();
            assert!(e.contains(needle) && e.contains("reg.example"), "{e}");
        }
    }
}
