//! The runs page (`/`): the list `az acr task list-runs` shows, filtered and paged,
//! newest first; the script adds new runs and status changes as they happen.

use crate::access::Session;
use crate::layout::{self, Section};
use crate::Dashboard;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use slipway_api::tenant::Caller;
use slipway_store::{ListFilter, RunRecord, RunStatus, TriggerKind};
use std::collections::HashMap;
use std::sync::Arc;

/// Runs on one page.
pub(crate) const PAGE_SIZE: u32 = 50;

/// The filters a page (and its live feed) shows runs for.
#[derive(Default, Clone)]
pub(crate) struct Filters {
    pub status: Option<RunStatus>,
    pub task: Option<String>,
    pub trigger: Option<TriggerKind>,
    pub image: Option<String>,
    pub before: Option<String>,
    /// The visitor's tenant (none for an operator, who sees all): set from the
    /// session, never from the query.
    pub tenant: Option<String>,
}

impl Filters {
    /// Reads `status`, `task`, `trigger`, `image` and `before`; empty values mean no
    /// filter; anything else is named in the error.
    pub(crate) fn parse(q: &HashMap<String, String>, who: Option<&Caller>) -> Result<Filters, String> {
        let Some(who) = who else {
            return Err("sign in to see runs".into());
        };
        let mut f = Filters {
            tenant: who.visible().map(str::to_string),
            ..Filters::default()
        };
        for (k, v) in q {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            match k.as_str() {
                "status" => f.status = Some(RunStatus::parse(v).ok_or_else(|| format!("status {v:?} is not a run status"))?),
                "task" => f.task = Some(v.to_string()),
                "trigger" => {
                    f.trigger =
                        Some(TriggerKind::parse(v).ok_or_else(|| format!("trigger {v:?} is not Manual, Commit, Image Update or Timer"))?)
                }
                "image" => f.image = Some(v.to_string()),
                "before" => f.before = Some(v.to_string()),
                // The live feed's own parameters.
                "since" => {}
                other => return Err(format!("unknown filter {other:?}")),
            }
        }
        Ok(f)
    }

    pub(crate) fn list_filter(&self, limit: u32) -> ListFilter {
        ListFilter {
            status: self.status,
            task: self.task.clone(),
            trigger: self.trigger,
            image: self.image.clone(),
            before_id: self.before.clone(),
            tenant: self.tenant.clone(),
            limit,
            ..Default::default()
        }
    }

    /// The filters as a query string (without paging).
    pub(crate) fn query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(v) = self.status {
            s.append_pair("status", v.as_str());
        }
        if let Some(v) = &self.task {
            s.append_pair("task", v);
        }
        if let Some(v) = self.trigger {
            s.append_pair("trigger", v.as_str());
        }
        if let Some(v) = &self.image {
            s.append_pair("image", v);
        }
        s.finish()
    }
}

pub(crate) async fn show(
    State(d): State<Arc<Dashboard>>,
    session: Option<Extension<Session>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let filters = match Filters::parse(&q, session.as_ref().map(|s| &s.caller)) {
        Ok(f) => f,
        Err(m) => return layout::error_page(StatusCode::BAD_REQUEST, "Bad filter", &m),
    };
    let now = d.node.clock.now_ms();
    let runs = match d.node.store.list(&filters.list_filter(PAGE_SIZE)).await {
        Ok(r) => r,
        Err(e) => return d.failed(e),
    };
    let tasks: Vec<String> = d
        .node
        .store
        .list_tasks(filters.tenant.as_deref())
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let body = render(&filters, &runs, &tasks, now);
    layout::respond(
        StatusCode::OK,
        layout::page("Runs", Section::Runs, d.signout(session.as_deref()), body),
    )
}

pub(crate) fn render(filters: &Filters, runs: &[RunRecord], tasks: &[String], now: i64) -> Markup {
    let first_page = filters.before.is_none();
    let older = (runs.len() as u32 == PAGE_SIZE)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    let query = filters.query();
    let live_query = if query.is_empty() {
        format!("since={now}")
    } else {
        format!("{query}&since={now}")
    };
    html! {
        h1 { "Runs" }
        form.filters method="get" action="/" {
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in RunStatus::ALL {
                        option value=(s.as_str()) selected[filters.status == Some(s)] { (s.as_str()) }
                    }
                }
            }
            label { "Task "
                select name="task" {
                    option value="" { "any" }
                    @for t in tasks {
                        option value=(t) selected[filters.task.as_deref() == Some(t.as_str())] { (t) }
                    }
                }
            }
            label { "Trigger "
                select name="trigger" {
                    option value="" { "any" }
                    @for k in TriggerKind::ALL {
                        option value=(k.as_str()) selected[filters.trigger == Some(k)] { (k.as_str()) }
                    }
                }
            }
            label { "Image "
                input type="search" name="image" value=[filters.image.as_deref()] placeholder="repository or tag";
            }
            button type="submit" { "Filter" }
            @if !query.is_empty() { a.clear href="/" { "Clear" } }
        }
        table.runs #runs data-live=[first_page.then_some(format!("/live/runs?{live_query}"))] {
            thead { tr {
                th { "Run ID" } th { "Task" } th { "Platform" } th { "Status" } th { "Trigger" } th { "Started" } th { "Duration" }
            } }
            tbody {
                @for r in runs { (row(r, now)) }
            }
        }
        @if runs.is_empty() { p.empty #no-runs { "No runs" @if !query.is_empty() { " match these filters" } "." } }
        nav.paging {
            @if !first_page { a href={ "/?" (query) } { "Newest" } }
            @if let Some(id) = older {
                a href={ "/?" (if query.is_empty() { String::new() } else { format!("{query}&") }) "before=" (id) } rel="next" { "Older runs" }
            }
        }
    }
}

/// One run's row; the live feed sends the same markup.
pub(crate) fn row(r: &RunRecord, now: i64) -> Markup {
    html! {
        tr id={ "run-" (r.id) } data-created=(r.create_time) {
            td { a href={ "/runs/" (r.id) } { (r.id) } }
            td { @if let Some(t) = &r.task { a href=(crate::task_href(&r.tenant, t)) { (t) } } @else { span.none { "—" } } }
            td { (r.platform) }
            td { (layout::run_status(r.status)) }
            td { (layout::trigger_name(r)) }
            td { (layout::optional_time(r.start_time)) }
            td { (layout::run_duration(r, now)) }
        }
    }
}
