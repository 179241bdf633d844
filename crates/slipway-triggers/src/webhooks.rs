//! Source-commit triggers: push webhooks from GitHub, GitLab, Gitea/Forgejo and a
//! generic JSON form. A delivery must be signed with the webhook secret of a task it
//! would start; the same commit starts each task at most once.

use crate::tasks;
use crate::Triggers;
use hmac::{KeyInit, Mac};
use http::HeaderMap;
use slipway_api::source::normalise_repo;
use slipway_api::task::TaskSpec;
use std::sync::Arc;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A push, whatever sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub delivery: String,
    pub repository_urls: Vec<String>,
    pub branch: String,
    pub commit: String,
}

/// Who sends a push delivery, named by the last part of its URL
/// (`/v1/webhooks/{provider}`): each says what happened and signs it its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    Gitea,
    GitLab,
    /// Slipway's own JSON form (`{repositoryUrl, branch, commit}`), for anything else.
    Generic,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Provider::GitHub, Provider::Gitea, Provider::GitLab, Provider::Generic];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Gitea => "gitea",
            Provider::GitLab => "gitlab",
            Provider::Generic => "generic",
        }
    }

    /// The provider of a delivery's URL.
    pub fn named(name: &str) -> Result<Provider, WebhookError> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| WebhookError::BadRequest(format!("unknown webhook provider {name:?}; use github, gitlab, gitea or generic")))
    }

    /// What its deliveries are signed with, for people setting up the forge.
    pub fn signed_with(self) -> &'static str {
        match self {
            Provider::GitHub => "X-Hub-Signature-256 (the webhook's secret)",
            Provider::Gitea => "X-Gitea-Signature (the webhook's secret)",
            Provider::GitLab => "X-Gitlab-Token (the secret token)",
            Provider::Generic => "X-Slipway-Signature: sha256=HMAC of the body",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the delivery's signature does not match the webhook secret of any task for this repository")]
    Unauthorized,
    #[error("{0}")]
    Internal(String),
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The repository URLs a provider's payload names, whatever the event.
fn repository_urls(provider: Provider, v: &serde_json::Value) -> Vec<String> {
    let pointers: &[&str] = match provider {
        Provider::GitHub | Provider::Gitea => &[
            "/repository/clone_url",
            "/repository/html_url",
            "/repository/ssh_url",
            "/repository/git_url",
        ],
        Provider::GitLab => &[
            "/project/git_http_url",
            "/repository/git_http_url",
            "/project/web_url",
            "/repository/url",
        ],
        Provider::Generic => &["/repositoryUrl"],
    };
    pointers
        .iter()
        .filter_map(|p| v.pointer(p).and_then(|x| x.as_str()).map(str::to_string))
        .collect()
}

/// A full commit id (SHA-1 or SHA-256), lower-cased: the same commit always has the
/// same key, so `main`, `HEAD~0` or `ABC…` cannot start a task twice.
fn commit_id(given: &str) -> Option<String> {
    let c = given.trim().to_ascii_lowercase();
    ((c.len() == 40 || c.len() == 64) && c.chars().all(|x| x.is_ascii_hexdigit())).then_some(c)
}

/// Reads a push out of a provider's payload. Non-push events are `None`.
pub fn parse(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Result<Option<Push>, WebhookError> {
    let bad = |m: String| WebhookError::BadRequest(m);
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(format!("the payload is not JSON: {e}")))?;
    parse_value(provider, headers, &v)
}

fn parse_value(provider: Provider, headers: &HeaderMap, v: &serde_json::Value) -> Result<Option<Push>, WebhookError> {
    let bad = |m: String| WebhookError::BadRequest(m);
    let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_string);
    let branch_of = |r: Option<String>| r.and_then(|r| r.strip_prefix("refs/heads/").map(str::to_string));
    let push = match provider {
        Provider::GitHub | Provider::Gitea => {
            let event = header(headers, "X-GitHub-Event")
                .or(header(headers, "X-Gitea-Event"))
                .unwrap_or("push");
            if event != "push" {
                return Ok(None);
            }
            let delivery = header(headers, "X-GitHub-Delivery")
                .or(header(headers, "X-Gitea-Delivery"))
                .unwrap_or("")
                .to_string();
            let urls = repository_urls(provider, v);
            Push {
                delivery,
                repository_urls: urls,
                branch: branch_of(s("/ref")).unwrap_or_default(),
                commit: s("/after").unwrap_or_default(),
            }
        }
        Provider::GitLab => {
            let event = header(headers, "X-Gitlab-Event").unwrap_or("Push Hook");
            if event != "Push Hook" {
                return Ok(None);
            }
            let delivery = header(headers, "X-Gitlab-Event-UUID").unwrap_or("").to_string();
            let urls = repository_urls(provider, v);
            Push {
                delivery,
                repository_urls: urls,
                branch: branch_of(s("/ref")).unwrap_or_default(),
                commit: s("/checkout_sha").or(s("/after")).unwrap_or_default(),
            }
        }
        Provider::Generic => Push {
            delivery: s("/id").unwrap_or_default(),
            repository_urls: repository_urls(provider, v),
            branch: s("/branch")
                .map(|b| b.strip_prefix("refs/heads/").unwrap_or(&b).to_string())
                .unwrap_or_default(),
            commit: s("/commit").unwrap_or_default(),
        },
    };
    if push.repository_urls.is_empty() || push.commit.is_empty() || push.branch.is_empty() {
        return Err(bad("the push names no repository URL, branch or commit".into()));
    }
    if push.commit.chars().all(|c| c == '0') {
        // A branch deletion: nothing to build.
        return Ok(None);
    }
    let commit = commit_id(&push.commit).ok_or_else(|| {
        bad(format!(
            "commit {:?} is not a full commit id (40 or 64 hexadecimal digits)",
            push.commit.chars().take(80).collect::<String>()
        ))
    })?;
    Ok(Some(Push { commit, ..push }))
}

/// Whether `headers` carry a valid signature of `body` with `secret`, as `provider` signs.
pub fn verify(provider: Provider, headers: &HeaderMap, body: &[u8], secret: &str) -> bool {
    let hmac_hex = |given: &str| -> bool {
        let Ok(expected) = hex::decode(given.trim()) else { return false };
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(body);
        // verify_slice compares in constant time.
        mac.verify_slice(&expected).is_ok()
    };
    match provider {
        Provider::GitHub => header(headers, "X-Hub-Signature-256")
            .and_then(|s| s.strip_prefix("sha256="))
            .is_some_and(hmac_hex),
        Provider::Gitea => header(headers, "X-Gitea-Signature")
            .or(header(headers, "X-Forgejo-Signature"))
            .is_some_and(hmac_hex),
        Provider::Generic => header(headers, "X-Slipway-Signature")
            .and_then(|s| s.strip_prefix("sha256="))
            .is_some_and(hmac_hex),
        Provider::GitLab => header(headers, "X-Gitlab-Token").is_some_and(|t| slipway_api::secrets::same(t.as_bytes(), secret.as_bytes())),
    }
}

/// The branch a task's context names (`#branch[:subfolder]`), if any.
fn context_branch(context: &str) -> Option<String> {
    slipway_api::source::parse_git(context).ok()?.reference
}

fn wants(task: &TaskSpec, push: &Push) -> bool {
    let Some(context) = &task.context_path else { return false };
    if !task.enabled() || !task.source_trigger.enabled {
        return false;
    }
    let repo = normalise_repo(context);
    if !push.repository_urls.iter().any(|u| normalise_repo(u) == repo) {
        return false;
    }
    if task.source_trigger.branches.is_empty() {
        context_branch(context).is_none_or(|b| b == push.branch)
    } else {
        task.source_trigger.branches.iter().any(|b| b == &push.branch)
    }
}

/// Handles a delivery: verifies it against the tasks built from the repository it
/// names, and starts those that want it. Only those tasks' secrets are tried, each
/// distinct secret once, off the async runtime: an unsigned delivery costs the same
/// whatever the number of tasks the daemon holds.
pub async fn deliver(d: &Arc<Triggers>, provider: Provider, headers: &HeaderMap, body: &[u8]) -> Result<Vec<String>, WebhookError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::BadRequest(format!("the payload is not JSON: {e}")))?;
    let push = parse_value(provider, headers, &v)?;
    let urls: Vec<String> = repository_urls(provider, &v).iter().map(|u| normalise_repo(u)).collect();
    // Every tenant's tasks of the repository: each delivery is verified against each
    // task's own secret, so a tenant's signature starts only that tenant's tasks.
    let tasks = d.store.list_tasks(None).await.map_err(|e| WebhookError::Internal(e.to_string()))?;
    let candidates: Vec<(String, TaskSpec)> = tasks
        .iter()
        .map(|record| (record.tenant.clone(), record.spec.clone()))
        .filter(|(_, spec)| {
            spec.context_path
                .as_deref()
                .is_some_and(|c| urls.iter().any(|u| *u == normalise_repo(c)))
        })
        .collect();
    let mut secrets: Vec<((String, String), String)> = Vec::new();
    for (tenant, spec) in &candidates {
        match tasks::read_secrets(d, tenant, &spec.name).await {
            Ok(s) => {
                if let Some(secret) = s.webhook_secret.filter(|s| !s.is_empty()) {
                    secrets.push(((tenant.clone(), spec.name.clone()), secret));
                }
            }
            // Without its secret the task cannot be verified, so it is not started.
            Err(e) => tracing::warn!(tenant = %tenant, task = %spec.name, error = %e, "a task's webhook secret could not be read"),
        }
    }
    let verified: std::collections::HashSet<(String, String)> = {
        let (headers, body) = (headers.clone(), body.to_vec());
        tokio::task::spawn_blocking(move || {
            let mut by_secret: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
            secrets
                .into_iter()
                .filter(|(_, secret)| {
                    *by_secret
                        .entry(secret.clone())
                        .or_insert_with(|| verify(provider, &headers, &body, secret))
                })
                .map(|(name, _)| name)
                .collect()
        })
        .await
        .map_err(|e| WebhookError::Internal(e.to_string()))?
    };
    if verified.is_empty() {
        return Err(WebhookError::Unauthorized);
    }
    // Not a push (a ping, another event): answered, since it is correctly signed.
    let Some(push) = push else { return Ok(Vec::new()) };
    let mut started = Vec::new();
    for (tenant, spec) in candidates.iter().filter(|(t, s)| verified.contains(&(t.clone(), s.name.clone()))) {
        if !wants(spec, &push) {
            continue;
        }
        let trigger = slipway_api::results::SourceTriggerEvent {
            id: push.delivery.clone(),
            event_type: "commit".into(),
            commit_id: push.commit.clone(),
            branch_name: push.branch.clone(),
            repository_url: push.repository_urls.first().cloned(),
            provider_type: provider.as_str().to_string(),
        };
        let triggers = slipway_store::Triggers {
            source: Some(trigger),
            ..Default::default()
        };
        let key = format!("commit:{}:{}", spec.name, push.commit);
        match tasks::start(d, tenant, spec, Default::default(), Some(&push.commit), Some(key), triggers).await {
            Ok(Some(run)) => started.push(run.id),
            Ok(None) => {}
            Err(tasks::StartError::Submit(e @ slipway_worker::submit::SubmitError::Quota { .. })) => {
                tracing::warn!(%tenant, task = %spec.name, "a push started no run: {e}");
            }
            Err(e) => return Err(WebhookError::Internal(e.to_string())),
        }
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signatures_per_provider() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let mut h = HeaderMap::new();
        h.insert("X-Hub-Signature-256", format!("sha256={}", sign("s3", body)).parse().unwrap());
        assert!(verify(Provider::GitHub, &h, body, "s3"));
        assert!(!verify(Provider::GitHub, &h, body, "other"));
        assert!(!verify(Provider::GitHub, &h, b"tampered", "s3"));
        let mut h = HeaderMap::new();
        h.insert("X-Gitea-Signature", sign("s3", body).parse().unwrap());
        assert!(verify(Provider::Gitea, &h, body, "s3"));
        let mut h = HeaderMap::new();
        h.insert("X-Gitlab-Token", "s3".parse().unwrap());
        assert!(verify(Provider::GitLab, &h, body, "s3") && !verify(Provider::GitLab, &h, body, "s4"));
        assert!(
            !verify(Provider::GitHub, &HeaderMap::new(), body, "s3"),
            "a missing signature fails"
        );
    }

    #[test]
    fn payloads_per_provider() {
        let gh = br#"{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567","repository":{"clone_url":"https://h/o/r.git"}}"#;
        let mut h = HeaderMap::new();
        h.insert("X-GitHub-Event", "push".parse().unwrap());
        h.insert("X-GitHub-Delivery", "d1".parse().unwrap());
        let p = parse(Provider::GitHub, &h, gh).unwrap().unwrap();
        assert_eq!(
            (p.delivery.as_str(), p.branch.as_str(), p.commit.as_str()),
            ("d1", "main", "0123456789abcdef0123456789abcdef01234567")
        );
        let gl = br#"{"ref":"refs/heads/dev","checkout_sha":"ABCDEF0123456789ABCDEF0123456789ABCDEF01","project":{"git_http_url":"https://h/o/r.git"}}"#;
        assert_eq!(parse(Provider::GitLab, &HeaderMap::new(), gl).unwrap().unwrap().branch, "dev");
        let mut ping = HeaderMap::new();
        ping.insert("X-GitHub-Event", "ping".parse().unwrap());
        assert_eq!(parse(Provider::GitHub, &ping, gh).unwrap(), None);
        assert!(Provider::named("bitbucket").is_err());
        assert_eq!(Provider::named("gitea").unwrap(), Provider::Gitea);
        assert!(parse(Provider::Generic, &HeaderMap::new(), br#"{"branch":"main"}"#).is_err());
        for commit in ["HEAD~0", "main", "abc123"] {
            let body = format!(r#"{{"repositoryUrl":"https://h/r.git","branch":"main","commit":"{commit}"}}"#);
            let e = parse(Provider::Generic, &HeaderMap::new(), body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains("full commit id"), "{commit}: {e}");
        }
        let upper = r#"{"repositoryUrl":"https://h/r.git","branch":"main","commit":"ABCDEF0123456789ABCDEF0123456789ABCDEF01"}"#;
        assert_eq!(
            parse(Provider::Generic, &HeaderMap::new(), upper.as_bytes())
                .unwrap()
                .unwrap()
                .commit,
            "abcdef0123456789abcdef0123456789abcdef01",
            "one commit, one key"
        );
    }

    #[test]
    fn repository_urls_compare_loosely() {
        assert_eq!(normalise_repo("https://Host/Org/Repo.git/"), normalise_repo("host/org/repo"));
        assert_eq!(normalise_repo("file:///tmp/x/repo.git#main:sub"), "/tmp/x/repo");
        assert_eq!(normalise_repo("https://user@host/o/r.git"), "host/o/r");
    }
}
