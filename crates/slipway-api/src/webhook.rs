//! Outbound webhooks as the API takes and shows them (`az acr webhook`'s words): a
//! URI, custom headers, actions, a scope, a status, and an optional signing secret.
//! The headers' values and the secret are write-only; they never come back.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a webhook can be told of: ACR's `push`, and run events ACR does not have.
pub const ACTIONS: [&str; 4] = ["push", "run_queued", "run_started", "run_finished"];

/// Most custom headers one webhook may have.
const MAX_HEADERS: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSpec {
    #[serde(default)]
    pub name: String,
    /// Where events are POSTed (`http://` or `https://`).
    #[serde(default)]
    pub uri: String,
    #[serde(default = "default_actions")]
    pub actions: Vec<String>,
    /// `repo:tag`, `repo:*`, `repo` (which is `repo:latest`), or empty for every image.
    /// Run events are sent whatever the scope.
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub status: WebhookStatus,
    /// Write-only: sent with every delivery (an `Authorization` header, say).
    #[serde(default, skip_serializing)]
    pub custom_headers: BTreeMap<String, String>,
    /// Write-only: the key of the `X-Slipway-Signature-256` header (HMAC-SHA256 of the
    /// body); an empty string removes it.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
}

fn default_actions() -> Vec<String> {
    vec!["push".into()]
}

/// Whether a webhook is sent events: `enabled` or `disabled` (read in any case).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum WebhookStatus {
    #[default]
    Enabled,
    Disabled,
}

impl WebhookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Enabled => "enabled",
            WebhookStatus::Disabled => "disabled",
        }
    }
}

impl TryFrom<String> for WebhookStatus {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "enabled" => Ok(WebhookStatus::Enabled),
            "disabled" => Ok(WebhookStatus::Disabled),
            _ => Err(format!("status {text:?} must be enabled or disabled")),
        }
    }
}

impl From<WebhookStatus> for String {
    fn from(s: WebhookStatus) -> String {
        s.as_str().to_string()
    }
}

impl std::fmt::Display for WebhookStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a webhook keeps out of the database.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSecrets {
    pub custom_headers: BTreeMap<String, String>,
    pub secret: Option<String>,
}

impl WebhookSpec {
    pub fn enabled(&self) -> bool {
        self.status == WebhookStatus::Enabled
    }

    pub fn wants(&self, action: &str) -> bool {
        self.enabled() && self.actions.iter().any(|a| a == action)
    }

    /// Takes the secrets out of the spec.
    pub fn split_secrets(&mut self) -> WebhookSecrets {
        WebhookSecrets {
            custom_headers: std::mem::take(&mut self.custom_headers),
            secret: self.secret.take().filter(|s| !s.is_empty()),
        }
    }

    /// Checks the spec; the message names the field.
    pub fn validate(&mut self) -> Result<(), String> {
        let n = &self.name;
        if !(5..=50).contains(&n.len()) || !n.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("name {n:?} must be 5 to 50 letters or digits"));
        }
        check_uri(&self.uri)?;
        if self.actions.is_empty() {
            return Err(format!("actions: give at least one of {}", ACTIONS.join(", ")));
        }
        for (i, a) in self.actions.iter().enumerate() {
            if !ACTIONS.contains(&a.as_str()) {
                return Err(format!("actions: {a:?} is not one of {}", ACTIONS.join(", ")));
            }
            if self.actions[..i].contains(a) {
                return Err(format!("actions: {a:?} is given twice"));
            }
        }
        check_scope(&self.scope)?;
        if self.custom_headers.len() > MAX_HEADERS {
            return Err(format!("customHeaders: at most {MAX_HEADERS} headers"));
        }
        for (k, v) in &self.custom_headers {
            check_header(k, v)?;
        }
        if self.secret.as_ref().is_some_and(|s| s.len() > 1024) {
            return Err("secret: at most 1024 characters".into());
        }
        Ok(())
    }
}

fn check_uri(uri: &str) -> Result<(), String> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
        .ok_or_else(|| format!("uri {uri:?} must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(format!(
            "uri {uri:?} must name a host (and no user or password: put credentials in customHeaders)"
        ));
    }
    if uri.len() > 2048 || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("uri must be at most 2048 characters, without spaces or control characters".into());
    }
    Ok(())
}

fn check_scope(scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Ok(());
    }
    let (repo, tag) = scope.split_once(':').unwrap_or((scope, "latest"));
    let repo_ok = !repo.is_empty()
        && repo.len() <= 255
        && repo
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c));
    let tag_ok = tag == "*" || (!tag.is_empty() && tag.len() <= 128 && tag.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
    if repo_ok && tag_ok {
        Ok(())
    } else {
        Err(format!("scope {scope:?} must be repository:tag, repository:* or repository"))
    }
}

fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = !name.is_empty() && name.len() <= 256 && name.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
    // Not quoted back either: a value typed where the name goes may be a credential.
    if !token {
        return Err("customHeaders: a header name may hold only letters, digits and !#$%&'*+-.^_`|~".into());
    }
    let reserved = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "x-slipway-signature-256",
    ];
    if reserved.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("customHeaders: {name} is set by Slipway"));
    }
    // The value is never quoted back: it may be a credential.
    if value.len() > 4096 || value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "customHeaders: the value of {name} must be at most 4096 characters without line breaks"
        ));
    }
    Ok(())
}

/// Whether a push of `repository:tag` is in `scope` (ACR's rules: `repo:*` any tag of
/// `repo`, `repo` alone is `repo:latest`, empty is everything).
pub fn in_scope(scope: &str, repository: &str, tag: &str) -> bool {
    if scope.is_empty() {
        return true;
    }
    let (repo, want) = scope.split_once(':').unwrap_or((scope, "latest"));
    repo == repository && (want == "*" || want == tag)
}

/// A webhook as the API shows it: the spec without secrets, which headers it sends,
/// whether it signs, and when it was made and changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    #[serde(flatten)]
    pub spec: WebhookSpec,
    pub custom_header_names: Vec<String>,
    pub signed: bool,
    pub create_time: String,
    pub last_updated_time: String,
}

/// One delivery of an event, with its attempts (`az acr webhook list-events`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    pub action: String,
    /// `Pending`, `Delivered` or `Failed` (given up after the retry period).
    pub status: String,
    pub create_time: String,
    pub next_attempt_time: Option<String>,
    /// The event as sent.
    pub content: serde_json::Value,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub attempt: i64,
    pub time: String,
    /// The receiver's status; none when it did not answer.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_view_reads_back_as_written() {
        let view = WebhookView {
            spec: spec(serde_json::json!({"name": "hook1", "uri": "https://a/", "secret": "s", "customHeaders": {"A": "b"}})).unwrap(),
            custom_header_names: vec!["A".into()],
            signed: true,
            create_time: "t0".into(),
            last_updated_time: "t1".into(),
        };
        let text = serde_json::to_string(&view).unwrap();
        let back: WebhookView = serde_json::from_str(&text).unwrap();
        assert_eq!((back.spec.uri.as_str(), back.signed, back.spec.secret), ("https://a/", true, None));
    }

    fn spec(json: serde_json::Value) -> Result<WebhookSpec, String> {
        let mut s: WebhookSpec = serde_json::from_value(json).map_err(|e| e.to_string())?;
        s.validate()?;
        Ok(s)
    }

    #[test]
    fn specs_are_checked_field_by_field() {
        let ok =
            spec(serde_json::json!({"name": "deploy1", "uri": "https://hooks.example/x", "scope": "app:*", "status": "Enabled"})).unwrap();
        assert_eq!(
            (ok.actions.as_slice(), ok.status),
            (&["push".to_string()][..], WebhookStatus::Enabled)
        );
        for (bad, field) in [
            (serde_json::json!({"name": "x", "uri": "https://a/"}), "name"),
            (serde_json::json!({"name": "hook1", "uri": "ftp://a/"}), "uri"),
            (serde_json::json!({"name": "hook1", "uri": "https://u:p@a/"}), "uri"),
            (
                serde_json::json!({"name": "hook1", "uri": "https://a/", "actions": ["delete"]}),
                "actions",
            ),
            (serde_json::json!({"name": "hook1", "uri": "https://a/", "actions": []}), "actions"),
            (serde_json::json!({"name": "hook1", "uri": "https://a/", "scope": "App:1"}), "scope"),
            (serde_json::json!({"name": "hook1", "uri": "https://a/", "status": "on"}), "status"),
            (
                serde_json::json!({"name": "hook1", "uri": "https://a/", "customHeaders": {"Host": "x"}}),
                "customHeaders",
            ),
            (
                serde_json::json!({"name": "hook1", "uri": "https://a/", "customHeaders": {"X-A": "v\r\nInjected: 1"}}),
                "customHeaders",
            ),
        ] {
            let e = spec(bad.clone()).unwrap_err();
            assert!(e.contains(field), "{bad}: {e}");
        }
        let e = spec(serde_json::json!({"name": "hook1", "uri": "https://a/", "customHeaders": {"X-Key": "hunter2\n"}})).unwrap_err();
        assert!(!e.contains("hunter2"), "a header's value is never quoted: {e}");
    }

    #[test]
    fn scopes_match_as_acr_documents() {
        assert!(in_scope("", "app", "1"));
        assert!(in_scope("app:*", "app", "1"));
        assert!(in_scope("app:1", "app", "1"));
        assert!(!in_scope("app:1", "app", "2"));
        assert!(in_scope("app", "app", "latest"));
        assert!(!in_scope("app", "app", "1"));
        assert!(!in_scope("app:*", "other", "1"));
    }

    #[test]
    fn secrets_are_write_only() {
        let mut s =
            spec(serde_json::json!({"name": "hook1", "uri": "https://a/", "secret": "k", "customHeaders": {"Authorization": "Bearer t"}}))
                .unwrap();
        let shown = serde_json::to_string(&s).unwrap();
        assert!(!shown.contains("Bearer t") && !shown.contains("\"k\""), "{shown}");
        let secrets = s.split_secrets();
        assert_eq!(secrets.secret.as_deref(), Some("k"));
        assert_eq!(secrets.custom_headers["Authorization"], "Bearer t");
    }
}
