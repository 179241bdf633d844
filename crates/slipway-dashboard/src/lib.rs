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
use slipway_triggers::Triggers;
use slipway_worker::Node;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Most live pages (event streams) open at once on one daemon.
const MAX_LIVE: usize = 256;

/// What the dashboard's handlers share.
pub(crate) struct Dashboard {
    node: Arc<Node>,
    triggers: Arc<Triggers>,
    keys: access::Keys,
    /// Open event streams; each holds a permit.
    live: Arc<tokio::sync::Semaphore>,
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

    /// A run, or the page that says there is none (or that the store failed).
    async fn run(&self, id: &str) -> Result<slipway_store::RunRecord, Refusal> {
        match self.node.store.get(id).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(Refusal::from(layout::no_run(id))),
            Err(e) => Err(Refusal::from(self.failed(e))),
        }
    }

    /// A task with its spec, or the page that says there is none.
    async fn task(&self, name: &str) -> Result<(slipway_store::TaskRecord, slipway_api::task::TaskSpec), Refusal> {
        let record = match self.node.store.get_task(name).await {
            Ok(Some(t)) => t,
            Ok(None) => return Err(Refusal::from(layout::no_task(name))),
            Err(e) => return Err(Refusal::from(self.failed(e))),
        };
        match slipway_triggers::tasks::spec_of(&record) {
            Ok(spec) => Ok((record, spec)),
            Err(e) => Err(Refusal::from(self.failed(e))),
        }
    }

    /// The sign-out form's token, for a visitor who signed in (a daemon without tokens
    /// has nobody to sign out).
    fn signout<'a>(&self, session: Option<&'a access::Session>) -> Option<&'a str> {
        session.filter(|_| !self.keys.open()).map(|s| s.csrf.as_str())
    }

    fn log_error(&self, e: impl std::fmt::Display) -> String {
        tracing::error!(error = %e, "a dashboard request failed");
        "the daemon could not complete the request; its log says why".into()
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
        keys: access::Keys::new(node.settings.tokens.clone(), &node.settings.public_url),
        node,
        triggers,
        live: Arc::new(tokio::sync::Semaphore::new(MAX_LIVE)),
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
