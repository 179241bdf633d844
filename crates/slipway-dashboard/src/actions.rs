//! The forms: sign in and out, cancel a run, run it again, run a task now, enable or
//! disable a task. Each checks the session's CSRF token, acts through the same code
//! as the API, and answers with a redirect to the page that shows the result.

use crate::access::{self, Session};
use crate::layout::{self, Section};
use crate::Dashboard;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::html;
use slipway_api::tenant::{token_hash, Caller};
use slipway_store::RunRecord;
use std::collections::HashMap;
use std::sync::Arc;

/// A form's fields, whatever the request's content type: a form that cannot be read is
/// an empty one, which then fails its CSRF check with a page that says so (never the
/// API's JSON rejection).
pub(crate) struct Fields(HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Fields {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024).await.unwrap_or_default();
        Ok(Fields(form_urlencoded::parse(&bytes).into_owned().collect()))
    }
}

/// Who sent a form that brought back its session's token; the refusal otherwise.
fn checked(session: Option<Extension<Session>>, form: &HashMap<String, String>) -> Result<Caller, crate::Refusal> {
    let given = form.get("csrf").map(String::as_str).unwrap_or("");
    match session {
        Some(s) if s.csrf_ok(given) => Ok(s.0.caller),
        _ => Err(crate::Refusal::from(layout::error_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form's security token is missing or belongs to another session. Go back, reload the page and try again.",
        ))),
    }
}

pub(crate) async fn signin_form(State(d): State<Arc<Dashboard>>, Query(q): Query<HashMap<String, String>>) -> Response {
    if d.node.directory().is_open() {
        return Redirect::to("/").into_response();
    }
    let next = access::safe_next(q.get("next").map(String::as_str).unwrap_or("/")).to_string();
    signin_page(StatusCode::OK, &next, None)
}

fn signin_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(e) = error { p.error #signin-error { (e) } }
        form.signin method="post" action="/signin" {
            input type="hidden" name="next" value=(next);
            label for="token" { "API token" }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            button type="submit" { "Sign in" }
        }
        p.note { "Use your token for this daemon, as the CLI does: you see your tenant's runs and tasks." }
    };
    layout::respond(status, layout::page("Sign in", Section::None, None, body))
}

pub(crate) async fn signin(State(d): State<Arc<Dashboard>>, headers: HeaderMap, Fields(form): Fields) -> Response {
    let next = access::safe_next(form.get("next").map(String::as_str).unwrap_or("/")).to_string();
    let given = form.get("token").map(String::as_str).unwrap_or("");
    let directory = d.node.directory();
    if directory.authenticate(given).is_none() {
        tracing::warn!("dashboard sign-in refused");
        // Guessing tokens is made slow.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        // The form again with the reason, as a page (a 401 would need a WWW-Authenticate
        // scheme a browser cannot answer).
        return signin_page(StatusCode::OK, &next, Some("That is not one of this daemon's tokens."));
    }
    let value = d.keys.issue(&token_hash(given), chrono::Utc::now().timestamp());
    let mut response = Redirect::to(&next).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, access::set_cookie(Some(&value), &headers));
    response
}

pub(crate) async fn signout(session: Option<Extension<Session>>, headers: HeaderMap, Fields(form): Fields) -> Response {
    if let Err(r) = checked(session, &form) {
        return r.into_response();
    }
    let mut response = Redirect::to("/signin").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, access::set_cookie(None, &headers));
    response
}

pub(crate) async fn cancel(
    State(d): State<Arc<Dashboard>>,
    session: Option<Extension<Session>>,
    Path(id): Path<String>,
    Fields(form): Fields,
) -> Response {
    let who = match checked(session, &form) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    match d.node.cancel(who.visible(), &id).await {
        Ok(Some(_)) => Redirect::to(&format!("/runs/{id}")).into_response(),
        Ok(None) => layout::no_run(&id),
        Err(e) => d.failed(e),
    }
}

pub(crate) async fn again(
    State(d): State<Arc<Dashboard>>,
    session: Option<Extension<Session>>,
    Path(id): Path<String>,
    Fields(form): Fields,
) -> Response {
    let who = match checked(session, &form) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let run = match d.run(&who, &id).await {
        Ok(r) => r,
        Err(page) => return page.into_response(),
    };
    match run_again(&d, &run).await {
        Ok(new) => Redirect::to(&format!("/runs/{}", new.id)).into_response(),
        Err(m) => layout::error_page(StatusCode::CONFLICT, "Cannot run it again", &m),
    }
}

/// A new run like `run`, of its tenant: its task's again (as a manual run), or its
/// request again.
async fn run_again(d: &Dashboard, run: &RunRecord) -> Result<RunRecord, String> {
    if let Some(task) = &run.task {
        let record = d
            .node
            .store
            .get_task(&run.tenant, task)
            .await
            .map_err(|e| d.log_error(e))?
            .ok_or_else(|| format!("its task {task:?} no longer exists"))?;
        let spec = record.spec;
        return start_task(d, &run.tenant, &spec).await;
    }
    // The stored request holds no secret values; a run that had some cannot be repeated
    // from here, since they were deleted when it ended.
    if run.request.has_secrets() {
        return Err(format!(
            "run {} had secret values, which Slipway deletes when a run ends; start it again from the CLI",
            run.id
        ));
    }
    let request = run.request.clone();
    let source = request.source_location().map(str::to_string);
    if let Some(upload) = source.as_deref().and_then(|l| l.strip_prefix("upload://")) {
        d.node.ensure_upload(upload).await;
    }
    slipway_sources::validate(source.as_deref(), &d.node.settings.data_dir, &d.node.reach)
        .map_err(|e| format!("its source can no longer be used: {e}"))?;
    let submission = slipway_worker::submit::Submission::of_request(&run.tenant, request, None).map_err(|e| e.0)?;
    slipway_worker::submit::submit(&d.node, submission)
        .await
        .map_err(|e| match e {
            e @ slipway_worker::submit::SubmitError::Quota { .. } => e.to_string(),
            e => d.log_error(e),
        })?
        .ok_or_else(|| "the run was not queued".to_string())
}

async fn start_task(d: &Dashboard, tenant: &str, spec: &slipway_api::task::TaskSpec) -> Result<RunRecord, String> {
    slipway_triggers::tasks::start(&d.triggers, tenant, spec, Default::default(), None, None, Default::default())
        .await
        .map_err(|e| match e {
            slipway_triggers::tasks::StartError::Invalid(m) => m,
            slipway_triggers::tasks::StartError::Submit(e @ slipway_worker::submit::SubmitError::Quota { .. }) => e.to_string(),
            slipway_triggers::tasks::StartError::Submit(e) => d.log_error(e),
        })?
        .ok_or_else(|| "the run was not queued".to_string())
}

pub(crate) async fn run_task(
    State(d): State<Arc<Dashboard>>,
    session: Option<Extension<Session>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    Fields(form): Fields,
) -> Response {
    let who = match checked(session, &form) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let tenant = crate::task_tenant(&who, &q);
    let (_, spec) = match d.task(&tenant, &name).await {
        Ok(t) => t,
        Err(page) => return page.into_response(),
    };
    match start_task(&d, &tenant, &spec).await {
        Ok(run) => Redirect::to(&format!("/runs/{}", run.id)).into_response(),
        Err(m) => layout::error_page(StatusCode::CONFLICT, "Cannot run the task", &m),
    }
}

pub(crate) async fn enable(
    State(d): State<Arc<Dashboard>>,
    session: Option<Extension<Session>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Fields(form): Fields,
) -> Response {
    set_enabled(d, session, name, q, headers, form, true).await
}

pub(crate) async fn disable(
    State(d): State<Arc<Dashboard>>,
    session: Option<Extension<Session>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Fields(form): Fields,
) -> Response {
    set_enabled(d, session, name, q, headers, form, false).await
}

async fn set_enabled(
    d: Arc<Dashboard>,
    session: Option<Extension<Session>>,
    name: String,
    q: HashMap<String, String>,
    headers: HeaderMap,
    form: HashMap<String, String>,
    enabled: bool,
) -> Response {
    let who = match checked(session, &form) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let tenant = crate::task_tenant(&who, &q);
    match slipway_triggers::tasks::set_enabled(&d.triggers, &tenant, &name, enabled).await {
        Ok(Some(_)) => {
            // Back to the page the form was on (the list or the task's page).
            let back = headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .filter(|r| r.ends_with("/tasks"))
                .map(|_| "/tasks".to_string())
                .unwrap_or_else(|| crate::task_href(&tenant, &name));
            Redirect::to(&back).into_response()
        }
        Ok(None) => layout::no_task(&name),
        Err(e) => d.failed(e),
    }
}
