//! The HTTP API (documented in `docs/api.md`).

use crate::failure::{bad_request, internal, Failure};
use crate::intake::{receive_upload, start_run};
use crate::{Server, Shared};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use slipway_api::model::{Page, Run, RunRequest, Upload};
use slipway_api::secrets::same;
use slipway_api::tenant::{Caller, Role};
type Who = axum::Extension<Caller>;
use slipway_store::{ListFilter, RunStatus, RunType};
use slipway_worker::logs;
use std::collections::HashMap;
use std::sync::Arc;

/// Every endpoint the router serves; `docs/api.md` has a heading for each (a test checks).
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("POST", "/v1/uploads"),
    ("POST", "/v1/runs"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/{id}"),
    ("POST", "/v1/runs/{id}/cancel"),
    ("GET", "/v1/runs/{id}/log"),
    ("GET", "/v1/tasks"),
    ("PUT", "/v1/tasks/{name}"),
    ("PATCH", "/v1/tasks/{name}"),
    ("GET", "/v1/tasks/{name}"),
    ("DELETE", "/v1/tasks/{name}"),
    ("POST", "/v1/tasks/{name}/runs"),
    ("GET", "/v1/tasks/{name}/runs"),
    ("GET", "/v1/outgoing-webhooks"),
    ("PUT", "/v1/outgoing-webhooks/{name}"),
    ("PATCH", "/v1/outgoing-webhooks/{name}"),
    ("GET", "/v1/outgoing-webhooks/{name}"),
    ("DELETE", "/v1/outgoing-webhooks/{name}"),
    ("POST", "/v1/outgoing-webhooks/{name}/ping"),
    ("GET", "/v1/outgoing-webhooks/{name}/events"),
    ("POST", "/v1/webhooks/{provider}"),
    ("POST", "/v1/registry/notifications"),
];

/// The API's routes and the dashboard's pages; `shutdown` ends the dashboard's live feeds.
pub fn router(d: Arc<Server>, shutdown: tokio_util::sync::CancellationToken) -> Router {
    let api = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/uploads", post(upload).layer(DefaultBodyLimit::disable()))
        .route("/v1/runs", post(create_run).get(list_runs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/runs/{id}/cancel", post(cancel_run))
        .route("/v1/runs/{id}/log", get(run_log))
        .route("/v1/tasks", get(crate::tasks::list_tasks))
        .route(
            "/v1/tasks/{name}",
            get(crate::tasks::get_task)
                .put(crate::tasks::create_task)
                .patch(crate::tasks::update_task)
                .delete(crate::tasks::delete_task),
        )
        .route("/v1/tasks/{name}/runs", post(crate::tasks::run_task).get(task_runs))
        .route("/v1/outgoing-webhooks", get(crate::outgoing::list))
        .route(
            "/v1/outgoing-webhooks/{name}",
            get(crate::outgoing::show)
                .put(crate::outgoing::create)
                .patch(crate::outgoing::update)
                .delete(crate::outgoing::delete),
        )
        .route("/v1/outgoing-webhooks/{name}/ping", post(crate::outgoing::ping))
        .route("/v1/outgoing-webhooks/{name}/events", get(crate::outgoing::events))
        .layer(middleware::from_fn_with_state(d.clone(), auth));
    // Webhooks and registry notifications carry their own proof (a signature, a shared secret).
    let hooks = Router::new()
        .route("/v1/webhooks/{provider}", post(webhook))
        .route("/v1/registry/notifications", post(registry_notification));
    let dashboard = slipway_dashboard::router(d.node.clone(), d.triggers.clone(), shutdown);
    Router::new()
        .route("/healthz", get(health))
        .merge(api)
        .merge(hooks)
        .merge(crate::arm::router(d.clone()))
        .with_state(d.clone())
        .merge(dashboard)
        .fallback(not_found)
        .layer(middleware::from_fn(crate::plain_text::control_characters))
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn_with_state(d, stalled_bodies))
}

/// A request body must keep coming: one that stalls for as long as a request head may
/// take ends the request, so a client cannot hold a connection and its handler open.
async fn stalled_bodies(State(d): Shared, req: Request, next: Next) -> Response {
    let limit = std::time::Duration::from_secs(d.settings.http_header_timeout_seconds);
    let (parts, body) = req.into_parts();
    let timed = futures_util::stream::unfold(Some(body.into_data_stream()), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(limit, futures_util::StreamExt::next(&mut stream)).await {
            Ok(Some(item)) => Some((item.map_err(axum::Error::new), Some(stream))),
            Ok(None) => None,
            Err(_) => Some((
                Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the request body stalled for {} s", limit.as_secs()),
                ))),
                None,
            )),
        }
    });
    next.run(Request::from_parts(parts, Body::from_stream(timed))).await
}

/// Rejections axum makes itself (a body over the limit, a bad path) come as plain
/// text; every error the API answers has the same JSON shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    // The dashboard's pages say what went wrong in HTML.
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).chars().take(500).collect::<String>();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        s if s.is_server_error() => "InternalError",
        _ => "BadRequest",
    };
    let mut out = Failure(status, code, if message.is_empty() { status.to_string() } else { message }).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

async fn not_found() -> Failure {
    Failure(StatusCode::NOT_FOUND, "NotFound", "no such endpoint".into())
}

/// One token's requests past `max_requests_per_token`: refused at once, cheaply.
fn too_many_requests(full: slipway_limits::Full) -> Response {
    let mut r = Failure(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        format!("too many requests of this token at once: {full} (max_requests_per_token); retry when some have been answered"),
    )
    .into_response();
    r.headers_mut().insert(header::RETRY_AFTER, "1".parse().expect("static header"));
    r
}

/// The header an operator names the tenant it acts for with.
pub const TENANT_HEADER: &str = "X-Slipway-Tenant";

/// Who the request speaks for: its token's tenant and role, put where every handler
/// finds it. An operator acts for the tenant `X-Slipway-Tenant` names (the default
/// tenant when it names none); a tenant's token acts only for its own.
async fn auth(State(d): Shared, mut req: Request, next: Next) -> Response {
    let directory = d.directory();
    let named = match req.headers().get(TENANT_HEADER).map(|v| v.to_str()) {
        None => None,
        Some(Ok(t)) if slipway_api::tenant::check_name(t).is_ok() => Some(t.to_string()),
        Some(_) => {
            return Failure(
                StatusCode::BAD_REQUEST,
                "BadTenant",
                format!("{TENANT_HEADER} must be a tenant's name (lowercase letters, digits, '-', '_')"),
            )
            .into_response()
        }
    };
    if directory.is_open() {
        // Without tokens, anything that can make a request to loopback is a client: a
        // page elsewhere whose name was rebound to 127.0.0.1, or a page posting a form
        // across sites. Neither is taken.
        if !slipway_dashboard::addressed_to_loopback(req.headers()) {
            return Failure(
                StatusCode::MISDIRECTED_REQUEST,
                "NotLoopback",
                "a daemon without tokens answers only requests addressed to localhost, 127.0.0.1 or [::1]".into(),
            )
            .into_response();
        }
        let changes = !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
        if changes && !slipway_dashboard::same_origin(req.headers(), None) {
            return Failure(
                StatusCode::FORBIDDEN,
                "CrossSite",
                "this request came from another site's page; a daemon without tokens takes none".into(),
            )
            .into_response();
        }
        let _pass = match d.requests.enter("") {
            Ok(pass) => pass,
            Err(full) => return too_many_requests(full),
        };
        let tenant = named.unwrap_or_else(|| slipway_api::tenant::DEFAULT_TENANT.to_string());
        req.extensions_mut().insert(Caller::operator(&tenant));
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if let Some(mut caller) = directory.authenticate(given) {
        match (caller.role, named) {
            (_, None) => {}
            (Role::Operator, Some(t)) => caller.tenant = t,
            (_, Some(t)) if t == caller.tenant => {}
            (_, Some(_)) => {
                return Failure(
                    StatusCode::FORBIDDEN,
                    "NotYourTenant",
                    format!(
                        "this token acts for tenant {} only; {TENANT_HEADER} may name it or be left out",
                        caller.tenant
                    ),
                )
                .into_response()
            }
        }
        let _pass = match d.requests.enter(&caller.token_hash) {
            Ok(pass) => pass,
            Err(full) => return too_many_requests(full),
        };
        req.extensions_mut().insert(caller);
        return next.run(req).await;
    }
    let mut r = Failure(StatusCode::UNAUTHORIZED, "Unauthorized", "a valid bearer token is required".into()).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static header"));
    r
}

async fn health(State(d): Shared) -> Response {
    let engine = d.engine.ping().await.map_err(|e| e.to_string());
    let db = d.store.ping().await.map_err(|e| e.to_string());
    let body = serde_json::json!({
        "engine": engine.as_ref().err().cloned().unwrap_or_else(|| "ok".into()),
        "database": db.as_ref().err().cloned().unwrap_or_else(|| "ok".into()),
    });
    let code = if engine.is_ok() && db.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(d): Shared, axum::Extension(who): Who) -> Result<Response, Failure> {
    let counts = d.store.counts(who.visible()).await.map_err(internal)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        d.metrics.render(&counts, who.visible()),
    )
        .into_response())
}

async fn upload(State(d): Shared, axum::Extension(who): Who, body: Body) -> Result<(StatusCode, Json<Upload>), Failure> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    Ok((StatusCode::CREATED, Json(receive_upload(&d, &who, &id, body).await?)))
}

const REQUEST_TYPES: &str = "DockerBuildRequest, FileTaskRunRequest, EncodedTaskRunRequest";

async fn create_run(State(d): Shared, axum::Extension(who): Who, body: Bytes) -> Result<(StatusCode, Json<Run>), Failure> {
    crate::plain_text::no_nul(&body)?;
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| bad_request(format!("the body is not JSON: {e}")))?;
    match value.get("type").and_then(|t| t.as_str()) {
        None => return Err(bad_request(format!("the request has no \"type\"; use one of {REQUEST_TYPES}"))),
        Some(t) if !REQUEST_TYPES.split(", ").any(|k| k == t) => {
            return Err(bad_request(format!("unknown request type {t:?}; use one of {REQUEST_TYPES}")))
        }
        _ => {}
    }
    let request: RunRequest = serde_json::from_value(value).map_err(|e| bad_request(format!("invalid request: {e}")))?;
    let record = start_run(&d, &who, request).await?;
    Ok((StatusCode::CREATED, Json(record.view())))
}

async fn list_runs(
    State(d): Shared,
    axum::Extension(who): Who,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Page<Run>>, Failure> {
    let mut f = ListFilter {
        tenant: who.visible().map(str::to_string),
        ..Default::default()
    };
    for (k, v) in &q {
        match k.as_str() {
            "status" => f.status = Some(RunStatus::parse(v).ok_or_else(|| bad_request(format!("status {v:?} is not a run status")))?),
            "runType" => f.run_type = Some(RunType::parse(v).ok_or_else(|| bad_request(format!("runType {v:?} is not a run type")))?),
            "task" => f.task = Some(v.clone()),
            "image" => f.image = Some(v.clone()),
            "top" => {
                f.limit = v
                    .parse()
                    .ok()
                    .filter(|n: &u32| (1..=1000).contains(n))
                    .ok_or_else(|| bad_request(format!("top {v:?} must be 1 to 1000")))?
            }
            "skipToken" => f.before_id = Some(v.clone()),
            "trigger" => {
                f.trigger = Some(
                    slipway_store::TriggerKind::parse(v)
                        .ok_or_else(|| bad_request(format!("trigger {v:?} is not Manual, Commit, ImageUpdate or Timer")))?,
                )
            }
            other => return Err(bad_request(format!("unknown query parameter {other:?}"))),
        }
    }
    if f.limit == 0 {
        f.limit = 50;
    }
    let runs = d.store.list(&f).await.map_err(internal)?;
    let next = if runs.len() as u32 == f.limit {
        runs.last().map(|r| r.id.clone())
    } else {
        None
    };
    let value: Vec<Run> = runs.iter().map(slipway_store::RunRecord::view).collect();
    Ok(Json(Page {
        value,
        next_skip_token: next,
    }))
}

/// A run the caller may see; another tenant's is answered as a missing one (404).
async fn find(d: &Server, who: &Caller, id: &str) -> Result<slipway_store::RunRecord, Failure> {
    d.store
        .get(who.visible(), id)
        .await
        .map_err(internal)?
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, "RunNotFound", format!("no run with id {id:?}")))
}

async fn get_run(State(d): Shared, axum::Extension(who): Who, Path(id): Path<String>) -> Result<Json<Run>, Failure> {
    Ok(Json(find(&d, &who, &id).await?.view()))
}

async fn cancel_run(State(d): Shared, axum::Extension(who): Who, Path(id): Path<String>) -> Result<Json<Run>, Failure> {
    let record = d
        .cancel(who.visible(), &id)
        .await
        .map_err(internal)?
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, "RunNotFound", format!("no run with id {id:?}")))?;
    Ok(Json(record.view()))
}

async fn run_log(
    State(d): Shared,
    axum::Extension(who): Who,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    find(&d, &who, &id).await?;
    let follow = q.get("follow").is_some_and(|v| v == "true" || v == "1");
    // A follow holds a connection as long as the run goes on: counted per token.
    let pass = match follow {
        true => Some(d.node.follows.enter(&who.token_hash).map_err(|full| {
            Failure(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyFollows",
                format!("cannot follow another log: {full}; end a follow first"),
            )
        })?),
        false => None,
    };
    let offset: u64 = match q.get("offset") {
        Some(v) => v.parse().map_err(|_| bad_request(format!("offset {v:?} is not a number")))?,
        None => 0,
    };
    let node = d.node.clone();
    let log_id = id.clone();
    let read = move |offset: u64| {
        let (node, id) = (node.clone(), log_id.clone());
        async move { node.read_log(&id, offset).await }
    };
    let store = d.store.clone();
    let run_id = id.clone();
    let finished = move || {
        let store = store.clone();
        let id = run_id.clone();
        async move {
            store
                .get(None, &id)
                .await
                .ok()
                .flatten()
                .map(|r| r.status.is_finished())
                .unwrap_or(true)
        }
    };
    let body = Body::from_stream(
        logs::stream(read, offset, follow, d.log_appended.clone(), finished).map(move |chunk| {
            let _held = &pass;
            chunk
        }),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}

async fn task_runs(
    State(d): Shared,
    axum::Extension(who): Who,
    Path(name): Path<String>,
    Query(mut q): Query<HashMap<String, String>>,
) -> Result<Json<Page<Run>>, Failure> {
    d.store
        .get_task(&who.tenant, &name)
        .await
        .map_err(internal)?
        .ok_or_else(|| crate::tasks::task_not_found(&name))?;
    q.insert("task".into(), name);
    // The task's runs, which are its tenant's (an operator names the tenant it acts for).
    let who = Caller { role: Role::Member, ..who };
    list_runs(State(d), axum::Extension(who), Query(q)).await
}

async fn webhook(
    State(d): Shared,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), Failure> {
    crate::plain_text::no_nul(&body)?;
    let provider = slipway_triggers::webhooks::Provider::named(&provider).map_err(|e| bad_request(e.to_string()))?;
    match slipway_triggers::webhooks::deliver(&d.triggers, provider, &headers, &body).await {
        Ok(runs) => Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "runs": runs })))),
        Err(slipway_triggers::webhooks::WebhookError::BadRequest(m)) => Err(bad_request(m)),
        Err(e @ slipway_triggers::webhooks::WebhookError::Unauthorized) => {
            Err(Failure(StatusCode::UNAUTHORIZED, "Unauthorized", e.to_string()))
        }
        Err(slipway_triggers::webhooks::WebhookError::Internal(m)) => Err(internal(m)),
    }
}

async fn registry_notification(State(d): Shared, headers: HeaderMap, body: Bytes) -> Result<Json<serde_json::Value>, Failure> {
    let given = headers.get("X-Slipway-Registry-Secret").and_then(|v| v.to_str().ok()).unwrap_or("");
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let secret_ok = d
        .settings
        .registry_notification_secret
        .as_deref()
        .is_some_and(|s| !given.is_empty() && same(s.as_bytes(), given.as_bytes()));
    // Operators' tokens only: a tenant's could announce digests that start other
    // tenants' base-image runs.
    let directory = d.directory();
    let token_ok = directory.authenticate(bearer).is_some_and(|c| c.role == Role::Operator);
    let open = directory.is_open() && d.settings.registry_notification_secret.is_none();
    if !(secret_ok || token_ok || open) {
        return Err(Failure(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "a registry notification needs the shared secret header or a token".into(),
        ));
    }
    let sightings = slipway_triggers::images::parse_envelope(&body).map_err(bad_request)?;
    let mut runs = Vec::new();
    for s in &sightings {
        runs.extend(slipway_triggers::images::seen(&d.triggers, s).await.map_err(internal)?);
    }
    Ok(Json(serde_json::json!({ "runs": runs })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_endpoint_is_documented() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
        for (method, path) in super::ENDPOINTS {
            assert!(
                doc.contains(&format!("### {method} {path}\n")),
                "docs/api.md lacks ### {method} {path}"
            );
        }
        let documented = doc.lines().filter(|l| l.starts_with("### ")).count();
        assert_eq!(
            documented,
            super::ENDPOINTS.len(),
            "docs/api.md documents an endpoint the router does not serve"
        );
    }
}
