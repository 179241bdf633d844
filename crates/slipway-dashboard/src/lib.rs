//! The web dashboard `slipway serve` shows at `/`: the runs, a run with its steps,
//! images and live log, the tasks with their triggers. Pages are rendered on the
//! server (maud) and work without scripts; one small hand-written script
//! (`assets/dashboard.js`) adds the live parts over server-sent events.
//!
//! It reads the queue and acts through the same code as the API (the worker's
//! `Node`, the triggers' tasks); it knows nothing of the API's routes. Access is the
//! API's tokens, traded for a session cookie (`access.rs`).

mod access;
mod actions;
mod layout;
mod live;
mod run_page;
mod runs_page;
mod tasks_page;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use slipway_api::tenant::Caller;
use slipway_triggers::Triggers;
use slipway_worker::Node;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What the dashboard's handlers share.
pub(crate) struct Dashboard {
    node: Arc<Node>,
    triggers: Arc<Triggers>,
    keys: access::Keys,
    /// Ends the event streams when the daemon stops.
    shutdown: CancellationToken,
}

impl Dashboard {
    /// A page for an error the visitor cannot fix; the detail goes to the daemon's log.
    fn failed(&self, e: impl std::fmt::Display) -> Response {
        self.log_error(e);
        layout::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The daemon could not complete the request; its log says why.",
        )
    }

    /// A run the visitor may see, or the page that says there is none (another
    /// tenant's run is one there is none of).
    async fn run(&self, who: &Caller, id: &str) -> Result<slipway_store::RunRecord, Refusal> {
        match self.node.store.get(who.visible(), id).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(Refusal::from(layout::no_run(id))),
            Err(e) => Err(Refusal::from(self.failed(e))),
        }
    }

    /// A run the visitor with `session` may see; without a session, none.
    async fn run_for(&self, session: Option<&access::Session>, id: &str) -> Result<slipway_store::RunRecord, Refusal> {
        match session {
            Some(s) => self.run(&s.caller, id).await,
            None => Err(Refusal::from(layout::no_run(id))),
        }
    }

    /// A task of `tenant` (see [`task_tenant`]) with its spec, or the page that says
    /// there is none.
    async fn task(&self, tenant: &str, name: &str) -> Result<(slipway_store::TaskRecord, slipway_api::task::TaskSpec), Refusal> {
        let record = match self.node.store.get_task(tenant, name).await {
            Ok(Some(t)) => t,
            Ok(None) => return Err(Refusal::from(layout::no_task(name))),
            Err(e) => return Err(Refusal::from(self.failed(e))),
        };
        let spec = record.spec.clone();
        Ok((record, spec))
    }

    /// The sign-out form's token, for a visitor who signed in (a daemon without tokens
    /// has nobody to sign out).
    fn signout<'a>(&self, session: Option<&'a access::Session>) -> Option<&'a str> {
        session.filter(|_| !self.node.directory().is_open()).map(|s| s.csrf.as_str())
    }

    fn log_error(&self, e: impl std::fmt::Display) -> String {
        tracing::error!(error = %e, "a dashboard request failed");
        "the daemon could not complete the request; its log says why".into()
    }
}

/// The tenant whose task a page or form names: a member's own; for an operator, the
/// one `?tenant=` names (the default tenant otherwise).
pub(crate) fn task_tenant(who: &Caller, q: &std::collections::HashMap<String, String>) -> String {
    match (who.role, q.get("tenant")) {
        (slipway_api::tenant::Role::Operator, Some(t)) if slipway_api::tenant::check_name(t).is_ok() => t.clone(),
        _ => who.tenant.clone(),
    }
}

/// A task's page (`?tenant=` for the operator's views of other tenants).
pub(crate) fn task_href(tenant: &str, name: &str) -> String {
    if tenant == slipway_api::tenant::DEFAULT_TENANT {
        format!("/tasks/{name}")
    } else {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("tenant", tenant)
            .finish();
        format!("/tasks/{name}?{query}")
    }
}

/// A page that ends a request early (boxed: a response is large to carry in a `Result`).
pub(crate) struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(r: Response) -> Refusal {
        Refusal(Box::new(r))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The dashboard's routes, for the daemon to merge with the API's.
pub fn router(node: Arc<Node>, triggers: Arc<Triggers>, shutdown: CancellationToken) -> Router {
    let d = Arc::new(Dashboard {
        keys: access::Keys::new(session_secret(&node), &node.settings.public_url),
        node,
        triggers,
        shutdown,
    });
    Router::new()
        .route("/", get(runs_page::show))
        .route("/runs/{id}", get(run_page::show))
        .route("/runs/{id}/log.txt", get(run_page::raw_log))
        .route("/runs/{id}/cancel", post(actions::cancel))
        .route("/runs/{id}/again", post(actions::again))
        .route("/tasks", get(tasks_page::list))
        .route("/tasks/{name}", get(tasks_page::show))
        .route("/tasks/{name}/run", post(actions::run_task))
        .route("/tasks/{name}/enable", post(actions::enable))
        .route("/tasks/{name}/disable", post(actions::disable))
        .route("/signin", get(actions::signin_form).post(actions::signin))
        .route("/signout", post(actions::signout))
        .route("/live/runs", get(live::runs))
        .route("/live/runs/{id}", get(live::run))
        .route("/assets/{file}", get(asset))
        .route_layer(axum::middleware::from_fn_with_state(d.clone(), access::guard))
        .with_state(d)
}

/// The daemon's secret sessions are keyed with: the fleet key, which every node has,
/// or a random key kept `0600` in the data dir (so sessions outlive restarts).
fn session_secret(node: &Node) -> Vec<u8> {
    if let Some(k) = &node.settings.fleet_key {
        return format!("fleet|{k}").into_bytes();
    }
    let path = node.data("session.key");
    if let Ok(k) = std::fs::read(&path) {
        if k.len() >= 32 {
            return k;
        }
    }
    let k = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()).into_bytes();
    if let Err(e) = slipway_worker::vault::write_private(&path, &k) {
        tracing::warn!(error = %e, "cannot keep the dashboard's session key; sessions end when the daemon restarts");
    }
    k
}

/// The checks a daemon without tokens makes of every request, the API's too: that it
/// is addressed to loopback (no DNS rebinding) and, for a change, that it does not come
/// from another site's page.
pub use access::{addressed_to_loopback, same_origin};

/// The paths the dashboard serves, for the daemon's documentation check.
pub const PAGES: &[&str] = &["/", "/runs/{id}", "/tasks", "/tasks/{name}", "/signin"];

const CSS: &str = include_str!("../assets/dashboard.css");
const JS: &str = include_str!("../assets/dashboard.js");
const FAVICON: &str = include_str!("../assets/favicon.svg");

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (kind, body) = match file.as_str() {
        "dashboard.css" => ("text/css; charset=utf-8", CSS),
        "dashboard.js" => ("text/javascript; charset=utf-8", JS),
        "favicon.svg" => ("image/svg+xml", FAVICON),
        _ => return layout::error_page(StatusCode::NOT_FOUND, "Not found", "There is no such file."),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
