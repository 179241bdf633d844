//! The task file exactly as written: every field optional, nothing defaulted yet.
//! `plan` turns this into a validated [`crate::Plan`].

use serde::Deserialize;
use std::collections::BTreeMap;

/// Keys a task may hold (for unknown-key suggestions).
pub const TASK_KEYS: &[&str] = &[
    "version",
    "stepTimeout",
    "totalTimeout",
    "workingDirectory",
    "env",
    "secrets",
    "networks",
    "volumes",
    "alias",
    "steps",
    "networkMode",
];
pub const STEP_KEYS: &[&str] = &[
    "id",
    "cmd",
    "build",
    "push",
    "when",
    "timeout",
    "startDelay",
    "retries",
    "retryDelay",
    "retryOnErrors",
    "repeat",
    "detach",
    "keep",
    "ignoreErrors",
    "disableWorkingDirectoryOverride",
    "entryPoint",
    "env",
    "expose",
    "ports",
    "network",
    "user",
    "workingDirectory",
    "privileged",
    "pull",
    "isolation",
    "cpus",
    "cache",
    "volumeMounts",
    "cmdDownloadRetries",
    "cmdDownloadRetryDelay",
    "exitedWith",
    "exitedWithout",
];
/// The only keys a push step may hold.
pub const PUSH_STEP_KEYS: &[&str] = &["id", "push", "when", "env", "ignoreErrors", "startDelay", "timeout"];
pub const SECRET_KEYS: &[&str] = &["id", "keyvault", "clientID", "aadResourceId", "env", "file"];
pub const NETWORK_KEYS: &[&str] = &["name", "driver", "ipv6", "skipCreation", "isDefault"];
pub const VOLUME_KEYS: &[&str] = &["name", "secret"];
pub const MOUNT_KEYS: &[&str] = &["name", "mountPath"];
pub const ALIAS_KEYS: &[&str] = &["values", "src", "directive"];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawTask {
    pub version: Option<String>,
    pub step_timeout: Option<i64>,
    pub total_timeout: Option<i64>,
    pub working_directory: Option<String>,
    pub env: Option<Vec<String>>,
    pub secrets: Option<Vec<RawSecret>>,
    pub networks: Option<Vec<RawNetwork>>,
    pub volumes: Option<Vec<RawVolume>>,
    /// Read earlier, through [`AliasOnly`]; declared here so it is a known key.
    #[allow(dead_code)]
    pub alias: Option<RawAlias>,
    pub steps: Option<Vec<RawStep>>,
    pub network_mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawStep {
    pub id: Option<String>,
    pub cmd: Option<String>,
    pub build: Option<String>,
    pub push: Option<Vec<String>>,
    pub when: Option<Vec<String>>,
    pub timeout: Option<i64>,
    pub start_delay: Option<i64>,
    pub retries: Option<i64>,
    pub retry_delay: Option<i64>,
    pub retry_on_errors: Option<Vec<String>>,
    pub repeat: Option<i64>,
    pub detach: Option<bool>,
    pub keep: Option<bool>,
    pub ignore_errors: Option<bool>,
    pub disable_working_directory_override: Option<bool>,
    pub entry_point: Option<String>,
    pub env: Option<Vec<String>>,
    pub expose: Option<Vec<String>>,
    pub ports: Option<Vec<String>>,
    pub network: Option<String>,
    pub user: Option<String>,
    pub working_directory: Option<String>,
    pub privileged: Option<bool>,
    pub pull: Option<bool>,
    pub isolation: Option<String>,
    pub cpus: Option<f64>,
    pub cache: Option<String>,
    pub volume_mounts: Option<Vec<RawMount>>,
    pub cmd_download_retries: Option<i64>,
    pub cmd_download_retry_delay: Option<i64>,
    pub exited_with: Option<Vec<i64>>,
    pub exited_without: Option<Vec<i64>>,
}

impl RawStep {
    /// The keys this step set, for the push-step key check.
    pub fn keys_set(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        macro_rules! check {
            ($($field:ident => $name:literal),* $(,)?) => { $( if self.$field.is_some() { keys.push($name); } )* };
        }
        check!(
            id => "id", cmd => "cmd", build => "build", push => "push", when => "when", timeout => "timeout",
            start_delay => "startDelay", retries => "retries", retry_delay => "retryDelay", retry_on_errors => "retryOnErrors",
            repeat => "repeat", detach => "detach", keep => "keep", ignore_errors => "ignoreErrors",
            disable_working_directory_override => "disableWorkingDirectoryOverride", entry_point => "entryPoint", env => "env",
            expose => "expose", ports => "ports", network => "network", user => "user", working_directory => "workingDirectory",
            privileged => "privileged", pull => "pull", isolation => "isolation", cpus => "cpus", cache => "cache",
            volume_mounts => "volumeMounts", cmd_download_retries => "cmdDownloadRetries",
            cmd_download_retry_delay => "cmdDownloadRetryDelay", exited_with => "exitedWith", exited_without => "exitedWithout",
        );
        keys
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSecret {
    pub id: Option<String>,
    pub keyvault: Option<String>,
    #[serde(rename = "clientID")]
    pub client_id: Option<String>,
    /// Accepted for ACR files; Key Vault access is not implemented here.
    #[allow(dead_code)]
    pub aad_resource_id: Option<String>,
    pub env: Option<String>,
    pub file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawNetwork {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub ipv6: Option<bool>,
    pub skip_creation: Option<bool>,
    pub is_default: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawVolume {
    pub name: Option<String>,
    pub secret: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawMount {
    pub name: Option<String>,
    pub mount_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawAlias {
    pub values: Option<BTreeMap<String, String>>,
    pub src: Option<Vec<String>>,
    pub directive: Option<String>,
}

/// Only the alias section, read before templates are rendered.
#[derive(Debug, Default, Deserialize)]
pub struct AliasOnly {
    pub version: Option<String>,
    pub alias: Option<RawAlias>,
}

/// The known keys at a path such as `steps[3]` or `networks[0]`.
pub fn known_keys_at(parent: &str) -> &'static [&'static str] {
    let last = parent.rsplit('.').next().unwrap_or("");
    let last = last.split('[').next().unwrap_or("");
    match last {
        "" => TASK_KEYS,
        "steps" => STEP_KEYS,
        "secrets" => SECRET_KEYS,
        "networks" => NETWORK_KEYS,
        "volumes" => VOLUME_KEYS,
        "volumeMounts" => MOUNT_KEYS,
        "alias" => ALIAS_KEYS,
        _ => &[],
    }
}
