//! Tasks as the API takes and shows them: a saved run (context, file or command,
//! values, credentials) with its triggers, checked field by field.

use crate::model::Argument;
use crate::secrets::Credential;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskSpec {
    #[serde(default)]
    pub name: String,
    /// A git URL (`…/repo.git#ref:subfolder`), a tar.gz URL, or none.
    #[serde(default)]
    pub context_path: Option<String>,
    /// A Dockerfile, or a task file when it ends in `.yaml`/`.yml`.
    #[serde(default)]
    pub file: Option<String>,
    /// A single command to run instead of a file (`IMAGE ARGS`).
    #[serde(default)]
    pub cmd: Option<String>,
    /// A task file given inline instead of read from the context: ACR's encoded task
    /// step (`az acr task create --cmd`, `-f -`), kept as its YAML text.
    #[serde(default)]
    pub task_content: Option<String>,
    /// A values file within the context (task files), as `az acr task create --values`.
    #[serde(default)]
    pub values_file: Option<String>,
    #[serde(default)]
    pub image_names: Vec<String>,
    #[serde(default = "yes")]
    pub is_push_enabled: bool,
    /// Build arguments (Dockerfile tasks).
    #[serde(default)]
    pub arguments: Vec<Argument>,
    /// Values (task files and commands).
    #[serde(default)]
    pub values: Vec<Argument>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    #[serde(default = "default_platform")]
    pub platform: String,
    #[serde(default)]
    pub status: TaskStatus,
    #[serde(default)]
    pub source_trigger: SourceTrigger,
    #[serde(default)]
    pub base_image_trigger: BaseImageTrigger,
    #[serde(default)]
    pub timers: Vec<Timer>,
    /// Write-only: the secret webhook deliveries are signed with.
    #[serde(default, skip_serializing)]
    pub webhook_secret: Option<String>,
    /// Write-only: registry host → `user:password`.
    #[serde(default, skip_serializing)]
    pub registry_credentials: BTreeMap<String, Credential>,
    /// Write-only: git host → `user:token`.
    #[serde(default, skip_serializing)]
    pub git_credentials: BTreeMap<String, Credential>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceTrigger {
    #[serde(default)]
    pub enabled: bool,
    /// Branches whose pushes start the task; empty means the context's branch (or any).
    #[serde(default)]
    pub branches: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BaseImageTrigger {
    #[serde(default)]
    pub enabled: bool,
    /// `Runtime` (the final stage's base only) or `All` (buildtime bases too).
    #[serde(default, rename = "type")]
    pub kind: BaseImageTriggerType,
}

slipway_plan::choice!(
    /// Whether a task's triggers start it.
    TaskStatus, "status", [
    #[default]
    Enabled = "Enabled",
    Disabled = "Disabled"
]);
slipway_plan::choice!(
    /// Which base images' updates start a task: the final stage's, or every stage's.
    BaseImageTriggerType, "baseImageTrigger.type", [
    #[default]
    Runtime = "Runtime",
    All = "All"
]);

impl Default for BaseImageTrigger {
    fn default() -> Self {
        BaseImageTrigger {
            enabled: false,
            kind: BaseImageTriggerType::Runtime,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timer {
    pub name: String,
    /// Five-field cron in UTC.
    pub schedule: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}
fn default_timeout() -> u64 {
    3600
}
fn default_platform() -> String {
    "linux/amd64".into()
}

/// What a task keeps out of the database.
/// A task as the API shows it: its spec without secrets, whose it is, the base images
/// its last build used and when it was made and changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    #[serde(flatten)]
    pub spec: TaskSpec,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub dependencies: Vec<DependencyView>,
    /// RFC 3339.
    #[serde(default)]
    pub create_time: String,
    /// RFC 3339.
    #[serde(default)]
    pub last_updated_time: String,
}

/// A base image of a task's last build, with the digest a registry last reported for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyView {
    /// Normalised `registry/repository:tag`.
    pub image: String,
    pub kind: crate::results::DependencyKind,
    /// The digest the build used, when known.
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub last_seen_digest: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSecrets {
    pub arguments: BTreeMap<String, String>,
    pub values: BTreeMap<String, String>,
    pub webhook_secret: Option<String>,
    pub registry_credentials: BTreeMap<String, Credential>,
    pub git_credentials: BTreeMap<String, Credential>,
}

impl TaskSpec {
    pub fn is_task_file(&self) -> bool {
        self.file.as_deref().is_some_and(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
    }

    pub fn enabled(&self) -> bool {
        self.status == TaskStatus::Enabled
    }

    /// Checks the spec; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        if !(5..=50).contains(&n.len()) || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("name {n:?} must be 5 to 50 letters, digits, '-' or '_'"));
        }
        match [self.file.is_some(), self.cmd.is_some(), self.task_content.is_some()]
            .iter()
            .filter(|x| **x)
            .count()
        {
            0 => return Err("give file (a Dockerfile or a task file), cmd or taskContent".into()),
            1 => {}
            _ => return Err("give one of file, cmd and taskContent".into()),
        }
        if self.file.is_some() && self.context_path.is_none() {
            return Err("file needs a contextPath to read it from".into());
        }
        if self.task_content.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err("taskContent is empty".into());
        }
        if let Some(v) = &self.values_file {
            if !self.is_task_file() || self.context_path.is_none() {
                return Err(format!(
                    "valuesFile {v:?} is read from the context beside a task file: it needs a contextPath and a .yaml file"
                ));
            }
        }
        if !(300..=28800).contains(&self.timeout) {
            return Err(format!("timeout {} must be between 300 and 28800 seconds", self.timeout));
        }
        crate::requests::check_image_names(&self.image_names)?;
        if let Some(c) = &self.context_path {
            if !crate::source::is_git(c) && !crate::source::is_tarball(c) {
                return Err(format!(
                    "contextPath {c:?} must be a git URL (…/repo.git#ref:subfolder, git://, file://) or a tar.gz URL"
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.timers {
            if !names.insert(t.name.as_str()) {
                return Err(format!("timer {:?} is defined twice", t.name));
            }
            crate::schedule::parse(&t.schedule).map_err(|e| format!("timer {:?}: {e}", t.name))?;
        }
        Ok(())
    }

    /// Whether `other` runs what this task runs, from where it reads it: the same
    /// context, file, command and inline task. A task's secrets and credentials were
    /// given for its source, so a task whose source moves keeps none of them.
    pub fn same_source(&self, other: &TaskSpec) -> bool {
        self.context_path == other.context_path
            && self.file == other.file
            && self.cmd == other.cmd
            && self.task_content == other.task_content
    }

    /// Moves every secret value out of the spec.
    pub fn split_secrets(&mut self) -> TaskSecrets {
        let mut s = TaskSecrets::default();
        for a in self.arguments.iter_mut().filter(|a| a.is_secret) {
            s.arguments.insert(a.name.clone(), std::mem::take(&mut a.value));
        }
        for a in self.values.iter_mut().filter(|a| a.is_secret) {
            s.values.insert(a.name.clone(), std::mem::take(&mut a.value));
        }
        s.webhook_secret = self.webhook_secret.take();
        s.registry_credentials = std::mem::take(&mut self.registry_credentials);
        s.git_credentials = std::mem::take(&mut self.git_credentials);
        s
    }
}

/// Overrides a manual `task run` may give.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Overrides {
    #[serde(default)]
    pub values: Vec<Argument>,
    #[serde(default)]
    pub arguments: Vec<Argument>,
    pub target: Option<String>,
    pub file: Option<String>,
    pub context_path: Option<String>,
    /// Pull base images before building (set for base-image-update runs).
    #[serde(default)]
    pub pull: bool,
    /// Keep the task's secrets although `contextPath` or `file` moves its source
    /// elsewhere: only the tenant's admins may ask it.
    #[serde(default)]
    pub keep_secrets: bool,
}

/// Where to fetch a task's source, pinned to `commit` when a trigger names one.
pub fn source_location(context: Option<&str>, commit: Option<&str>) -> Option<String> {
    let context = context?;
    match (commit, crate::source::parse_git(context)) {
        (Some(commit), Ok(git)) => Some(git.at_commit(commit)),
        _ => Some(context.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> TaskSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_task_view_reads_back_as_written_and_keeps_no_secret() {
        let view = TaskView {
            spec: spec(serde_json::json!({"name": "t", "file": "Dockerfile", "webhookSecret": "hidden",
                "timers": [{"name": "n", "schedule": "0 * * * *"}]})),
            tenant: "team-a".into(),
            dependencies: vec![DependencyView {
                image: "reg/base:1".into(),
                kind: crate::results::DependencyKind::Buildtime,
                digest: "sha256:a".into(),
                last_seen_digest: None,
            }],
            create_time: "2026-12-04T00:00:00.000Z".into(),
            last_updated_time: "2026-12-04T00:00:01.000Z".into(),
        };
        let text = serde_json::to_string(&view).unwrap();
        assert!(!text.contains("hidden"), "{text}");
        assert!(text.contains(r#""kind":"buildtime""#), "{text}");
        let back: TaskView = serde_json::from_str(&text).unwrap();
        assert_eq!(back.spec.webhook_secret, None);
        assert_eq!(
            (back.tenant.as_str(), back.dependencies, back.spec.timers.len()),
            ("team-a", view.dependencies, 1)
        );
    }

    #[test]
    fn validation_names_the_field() {
        let ok = spec(serde_json::json!({"name": "build-app", "contextPath": "file:///r.git#main", "file": "Dockerfile"}));
        assert!(ok.validate().is_ok());
        let cases = [
            (serde_json::json!({"name": "abc", "cmd": "busybox"}), "name"),
            (serde_json::json!({"name": "build-app"}), "give file"),
            (serde_json::json!({"name": "build-app", "file": "Dockerfile"}), "contextPath"),
            (
                serde_json::json!({"name": "build-app", "cmd": "busybox", "taskContent": "steps: []"}),
                "one of file, cmd and taskContent",
            ),
            (
                serde_json::json!({"name": "build-app", "contextPath": "file:///r.git", "file": "Dockerfile", "valuesFile": "v.yaml"}),
                "valuesFile",
            ),
            (serde_json::json!({"name": "build-app", "cmd": "busybox", "timeout": 10}), "timeout"),
            (
                serde_json::json!({"name": "build-app", "cmd": "busybox", "timers": [{"name": "t", "schedule": "61 * * * *"}]}),
                "minute",
            ),
        ];
        for (json, needle) in cases {
            let e = spec(json.clone()).validate().unwrap_err();
            assert!(e.contains(needle), "{json}: {e}");
        }
        // Enums are read as enums: another word is refused where it is read.
        for (json, needle) in [
            (
                serde_json::json!({"name": "build-app", "cmd": "busybox", "baseImageTrigger": {"type": "Some"}}),
                "baseImageTrigger.type \"Some\" is not one of Runtime, All",
            ),
            (
                serde_json::json!({"name": "build-app", "cmd": "busybox", "status": "Root"}),
                "status \"Root\" is not one of Enabled, Disabled",
            ),
        ] {
            let e = serde_json::from_value::<TaskSpec>(json.clone()).unwrap_err().to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }

    #[test]
    fn secrets_are_split_out() {
        let mut s = spec(serde_json::json!({
            "name": "build-app", "cmd": "busybox", "webhookSecret": "w",
            "arguments": [{"name": "A", "value": "1"}, {"name": "B", "value": "hidden", "isSecret": true}],
        }));
        let secrets = s.split_secrets();
        assert_eq!(secrets.arguments["B"], "hidden");
        assert_eq!(secrets.webhook_secret.as_deref(), Some("w"));
        let shown = serde_json::to_string(&s).unwrap();
        assert!(!shown.contains("hidden") && !shown.contains("webhookSecret"), "{shown}");
    }

    #[test]
    fn sources_are_pinned_to_the_commit() {
        assert_eq!(
            source_location(Some("file:///r.git#main:sub"), Some("abc1234")).unwrap(),
            "file:///r.git#abc1234:sub"
        );
        assert_eq!(
            source_location(Some("file:///r.git"), Some("abc1234")).unwrap(),
            "file:///r.git#abc1234"
        );
        assert_eq!(source_location(Some("file:///r.git#main"), None).unwrap(), "file:///r.git#main");
    }
}
