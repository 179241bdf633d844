//! `/v1/outgoing-webhooks`: the webhooks Slipway notifies (`az acr webhook
//! create/update/delete/list/show/ping/list-events`). Their secrets (signing key,
//! custom header values) are kept by the notifier, never in the database or an answer.

use crate::failure::{bad_request, conflict, internal, Failure};
use crate::{Server, Shared};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use slipway_api::model::Page;
use slipway_api::tenant::Caller;
use slipway_api::webhook::{AttemptView, DeliveryView, WebhookSecrets, WebhookSpec, WebhookView};
use slipway_store::rfc3339 as time;
use slipway_store::WebhookRecord;
use std::collections::HashMap;
use std::time::Duration;

type Who = axum::Extension<Caller>;

fn not_found(name: &str) -> Failure {
    Failure(StatusCode::NOT_FOUND, "WebhookNotFound", format!("no webhook named {name:?}"))
}

/// Most webhooks one tenant keeps (each of its events is one delivery per webhook).
const MAX_WEBHOOKS: usize = 100;

async fn view(d: &Server, record: &WebhookRecord) -> Result<WebhookView, Failure> {
    let spec = record.spec.clone();
    let secrets = d.notifier.secrets(&record.tenant, &record.name).await.map_err(internal)?;
    Ok(WebhookView {
        spec,
        custom_header_names: secrets.custom_headers.keys().cloned().collect(),
        signed: secrets.secret.is_some(),
        create_time: time(record.create_time),
        last_updated_time: time(record.last_updated_time),
    })
}

/// Reads and checks a spec for `name`; its secrets come out separately.
async fn parse(d: &Server, name: &str, body: &serde_json::Value) -> Result<(WebhookSpec, WebhookSecrets), Failure> {
    let mut spec: WebhookSpec = serde_json::from_value(body.clone()).map_err(|e| bad_request(format!("invalid webhook: {e}")))?;
    if !spec.name.is_empty() && spec.name != name {
        return Err(bad_request(format!(
            "the body names webhook {:?} but the path names {name:?}",
            spec.name
        )));
    }
    spec.name = name.to_string();
    spec.validate().map_err(bad_request)?;
    d.notifier
        .check_uri(&spec.uri)
        .await
        .map_err(|e| bad_request(format!("uri: {e}")))?;
    let secrets = spec.split_secrets();
    Ok((spec, secrets))
}

fn record(tenant: &str, spec: &WebhookSpec) -> Result<WebhookRecord, Failure> {
    Ok(WebhookRecord {
        tenant: tenant.to_string(),
        name: spec.name.clone(),
        spec: spec.clone(),
        enabled: spec.enabled(),
        create_time: 0,
        last_updated_time: 0,
    })
}

/// The caller's tenant's webhook (an operator's: the tenant it acts for).
async fn saved(d: &Server, who: &Caller, name: &str) -> Result<WebhookRecord, Failure> {
    d.store
        .get_webhook(&who.tenant, name)
        .await
        .map_err(internal)?
        .ok_or_else(|| not_found(name))
}

pub(crate) async fn create(
    State(d): Shared,
    axum::Extension(who): Who,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookView>), Failure> {
    crate::plain_text::no_nul(&body)?;
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| bad_request(format!("the body is not JSON: {e}")))?;
    let (spec, secrets) = parse(&d, &name, &value).await?;
    if d.store.list_webhooks(Some(&who.tenant)).await.map_err(internal)?.len() >= MAX_WEBHOOKS {
        return Err(conflict(format!(
            "a tenant keeps at most {MAX_WEBHOOKS} webhooks; delete one first"
        )));
    }
    if !d.store.put_webhook(&record(&who.tenant, &spec)?, true).await.map_err(internal)? {
        return Err(conflict(format!("a webhook named {name:?} exists")));
    }
    // The secrets are kept once the name is ours; without them the webhook is undone.
    if let Err(e) = d.notifier.keep_secrets(&who.tenant, &name, &secrets).await {
        let _ = d.store.delete_webhook(&who.tenant, &name).await;
        return Err(internal(e));
    }
    Ok((StatusCode::CREATED, Json(view(&d, &saved(&d, &who, &name).await?).await?)))
}

/// A JSON merge patch of the spec; `customHeaders` given replace them all, `secret`
/// given replaces it (`""` removes it); secrets not restated are kept.
pub(crate) async fn update(
    State(d): Shared,
    axum::Extension(who): Who,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<WebhookView>, Failure> {
    let current = saved(&d, &who, &name).await?;
    crate::plain_text::no_nul(&body)?;
    let patch: serde_json::Value = serde_json::from_slice(&body).map_err(|e| bad_request(format!("the body is not JSON: {e}")))?;
    if !patch.is_object() {
        return Err(bad_request("the body must be a JSON object"));
    }
    let mut merged = serde_json::to_value(&current.spec).map_err(internal)?;
    slipway_api::patch::merge(&mut merged, &patch, &["customHeaders"]);
    let (spec, mut secrets) = parse(&d, &name, &merged).await?;
    let old = d.notifier.secrets(&who.tenant, &name).await.map_err(internal)?;
    // Secrets go where they were given for: a new host must be given them again.
    let origin = |uri: &str| uri.split('/').take(3).collect::<Vec<_>>().join("/").to_ascii_lowercase();
    let before = &current.spec;
    let has_old = !old.custom_headers.is_empty() || old.secret.is_some();
    let restated = patch.get("customHeaders").is_some() && patch.get("secret").is_some();
    if has_old && origin(&before.uri) != origin(&spec.uri) && !restated {
        return Err(bad_request(
            "uri: moving a webhook to another host needs its customHeaders and secret given again (or {} and \"\" to drop them): they were given for the old one",
        ));
    }
    if patch.get("customHeaders").is_none() {
        secrets.custom_headers = old.custom_headers;
    }
    if patch.get("secret").is_none() {
        secrets.secret = old.secret;
    }
    d.notifier.keep_secrets(&who.tenant, &name, &secrets).await.map_err(internal)?;
    if !d.store.put_webhook(&record(&who.tenant, &spec)?, false).await.map_err(internal)? {
        return Err(not_found(&name));
    }
    Ok(Json(view(&d, &saved(&d, &who, &name).await?).await?))
}

pub(crate) async fn show(State(d): Shared, axum::Extension(who): Who, Path(name): Path<String>) -> Result<Json<WebhookView>, Failure> {
    Ok(Json(view(&d, &saved(&d, &who, &name).await?).await?))
}

pub(crate) async fn list(State(d): Shared, axum::Extension(who): Who) -> Result<Json<Page<WebhookView>>, Failure> {
    let mut out = Vec::new();
    for r in d.store.list_webhooks(who.visible()).await.map_err(internal)? {
        out.push(view(&d, &r).await?);
    }
    Ok(Json(Page::of(out)))
}

pub(crate) async fn delete(State(d): Shared, axum::Extension(who): Who, Path(name): Path<String>) -> Result<StatusCode, Failure> {
    if !d.store.delete_webhook(&who.tenant, &name).await.map_err(internal)? {
        return Err(not_found(&name));
    }
    d.notifier.forget_secrets(&who.tenant, &name).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a ping and answers with its delivery once the first attempt is recorded (or
/// the attempt's timeout has passed; it is then still pending).
pub(crate) async fn ping(State(d): Shared, axum::Extension(who): Who, Path(name): Path<String>) -> Result<Json<DeliveryView>, Failure> {
    saved(&d, &who, &name).await?;
    let id = d.notifier.ping(&who.tenant, &name).await.map_err(internal)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(d.settings.webhook_timeout_seconds + 5);
    loop {
        let found = d.store.get_delivery(&id).await.map_err(internal)?;
        match found {
            Some(x) if x.attempts > 0 || tokio::time::Instant::now() >= deadline => {
                let attempts = d.store.attempts_of(std::slice::from_ref(&x.id)).await.map_err(internal)?;
                return Ok(Json(delivery_view(x, &attempts)));
            }
            None => return Err(internal("the ping's delivery is gone")),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub(crate) async fn events(
    State(d): Shared,
    axum::Extension(who): Who,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Page<DeliveryView>>, Failure> {
    saved(&d, &who, &name).await?;
    let mut top = 50;
    for (k, v) in &q {
        match k.as_str() {
            "top" => {
                top = v
                    .parse()
                    .ok()
                    .filter(|n: &u32| (1..=1000).contains(n))
                    .ok_or_else(|| bad_request(format!("top {v:?} must be 1 to 1000")))?
            }
            other => return Err(bad_request(format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(Json(Page::of(deliveries(&d, &who.tenant, &name, top).await?)))
}

async fn deliveries(d: &Server, tenant: &str, name: &str, top: u32) -> Result<Vec<DeliveryView>, Failure> {
    let list = d.store.list_deliveries(tenant, name, top).await.map_err(internal)?;
    let ids: Vec<String> = list.iter().map(|x| x.id.clone()).collect();
    let attempts = d.store.attempts_of(&ids).await.map_err(internal)?;
    Ok(list.into_iter().map(|x| delivery_view(x, &attempts)).collect())
}

fn delivery_view(x: slipway_store::DeliveryRecord, attempts: &[slipway_store::AttemptRecord]) -> DeliveryView {
    DeliveryView {
        attempts: attempts
            .iter()
            .filter(|a| a.delivery_id == x.id)
            .map(|a| AttemptView {
                attempt: a.attempt,
                time: time(a.time),
                status_code: a.status_code,
                latency_ms: a.latency_ms,
                error: a.error.clone(),
                response: a.response.clone(),
            })
            .collect(),
        content: serde_json::from_str(&x.body).unwrap_or(serde_json::Value::Null),
        next_attempt_time: x
            .next_attempt
            .filter(|_| x.status == slipway_store::DeliveryStatus::Pending)
            .map(time),
        id: x.id,
        action: x.action,
        status: x.status.as_str().to_string(),
        create_time: time(x.create_time),
    }
}
