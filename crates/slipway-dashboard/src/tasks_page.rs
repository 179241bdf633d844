//! The tasks page (`/tasks`) and a task's page (`/tasks/{name}`): triggers, last run,
//! timers' next firings, the webhook to configure on the forge, the base images the
//! task tracks. No secret value is shown, only whether one is set.

use crate::access::Session;
use crate::layout::{self, Section};
use crate::Dashboard;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use slipway_api::task::TaskSpec;
use slipway_store::{ListFilter, RunRecord, TaskRecord};
use slipway_triggers::webhooks::Provider;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) async fn list(State(d): State<Arc<Dashboard>>, session: Option<Extension<Session>>) -> Response {
    let Some(who) = session.as_ref().map(|s| s.caller.clone()) else {
        return layout::error_page(StatusCode::UNAUTHORIZED, "Sign in", "Sign in to see tasks.");
    };
    let tasks = match d.node.store.list_tasks(who.visible()).await {
        Ok(t) => t,
        Err(e) => return d.failed(e),
    };
    let mut rows = Vec::new();
    for t in &tasks {
        let last = d
            .node
            .store
            .list(&ListFilter {
                tenant: Some(t.tenant.clone()),
                task: Some(t.name.clone()),
                limit: 1,
                ..Default::default()
            })
            .await
            .ok()
            .and_then(|mut r| r.pop());
        rows.push((t, last));
    }
    let session = session.as_deref();
    let body = html! {
        h1 { "Tasks" }
        @if tasks.is_empty() {
            p.empty { "No tasks. Create one with " code { "slipway task create" } "." }
        } @else {
            table.tasks {
                thead { tr { th { "Task" } th { "Status" } th { "Triggers" } th { "Last run" } th { "Actions" } } }
                tbody {
                    @for (t, last) in &rows {
                        tr id={ "task-" (t.name) } {
                            td { a href=(crate::task_href(&t.tenant, &t.name)) { (t.name) } }
                            td { (layout::status_badge(if t.enabled { "Enabled" } else { "Disabled" })) }
                            td { (trigger_summary(&t.spec)) }
                            td { (last_run(last.as_ref())) }
                            td { @if let Some(s) = session { (task_actions(&t.tenant, &t.name, t.enabled, s)) } }
                        }
                    }
                }
            }
        }
    };
    layout::respond(StatusCode::OK, layout::page("Tasks", Section::Tasks, d.signout(session), body))
}

fn trigger_summary(s: &TaskSpec) -> Markup {
    let mut parts: Vec<String> = Vec::new();
    if s.source_trigger.enabled {
        parts.push(if s.source_trigger.branches.is_empty() {
            "commits".into()
        } else {
            format!("commits to {}", s.source_trigger.branches.join(", "))
        });
    }
    if s.base_image_trigger.enabled {
        parts.push(format!("base images ({})", s.base_image_trigger.kind));
    }
    let timers: Vec<&str> = s.timers.iter().filter(|t| t.enabled).map(|t| t.schedule.as_str()).collect();
    if !timers.is_empty() {
        parts.push(format!("timers {}", timers.join("; ")));
    }
    html! { @if parts.is_empty() { span.none { "manual only" } } @else { (parts.join(" · ")) } }
}

fn last_run(r: Option<&RunRecord>) -> Markup {
    html! {
        @if let Some(r) = r {
            a href={ "/runs/" (r.id) } { (r.id) } " " (layout::run_status(r.status)) " " (layout::time(r.create_time))
        } @else { span.none { "never" } }
    }
}

/// A form's address on a task's page: `/tasks/NAME/ACTION`, with its `?tenant=`.
fn task_action(tenant: &str, name: &str, action: &str) -> String {
    let page = crate::task_href(tenant, name);
    match page.split_once('?') {
        Some((path, query)) => format!("{path}/{action}?{query}"),
        None => format!("{page}/{action}"),
    }
}

fn task_actions(tenant: &str, name: &str, enabled: bool, s: &Session) -> Markup {
    html! {
        div.actions {
            form method="post" action=(task_action(tenant, name, "run")) {
                input type="hidden" name="csrf" value=(s.csrf);
                button type="submit" disabled[!enabled] { "Run now" }
            }
            form method="post" action=(task_action(tenant, name, if enabled { "disable" } else { "enable" })) {
                input type="hidden" name="csrf" value=(s.csrf);
                button type="submit" { (if enabled { "Disable" } else { "Enable" }) }
            }
        }
    }
}

pub(crate) async fn show(
    State(d): State<Arc<Dashboard>>,
    session: Option<Extension<Session>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(who) = session.as_ref().map(|s| s.caller.clone()) else {
        return layout::no_task(&name);
    };
    let tenant = crate::task_tenant(&who, &q);
    let (record, spec) = match d.task(&tenant, &name).await {
        Ok(t) => t,
        Err(page) => return page.into_response(),
    };
    let deps = d.node.store.dependencies_of(&tenant, &name).await.unwrap_or_default();
    let mut tracked = Vec::new();
    for dep in deps {
        let seen = d.node.store.last_image_digest(&dep.image).await.ok().flatten();
        tracked.push((dep, seen));
    }
    let runs = d
        .node
        .store
        .list(&ListFilter {
            tenant: Some(tenant.clone()),
            task: Some(name.clone()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    // Unreadable secrets show as none here; runs and deliveries refuse them with the reason.
    let has_webhook_secret = slipway_triggers::tasks::read_secrets(&d.node, &tenant, &name)
        .await
        .is_ok_and(|s| s.webhook_secret.is_some());
    // The address forges reach: the operator's public URL, else the one this page was
    // asked for (behind a TLS proxy, https).
    let base = if d.node.settings.public_url.is_empty() {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("DAEMON");
        let https = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
        format!("{}://{host}", if https { "https" } else { "http" })
    } else {
        d.node.settings.public_base()
    };
    let session = session.as_deref();
    let now = d.node.clock.now_ms();
    let body = render(&record, &spec, &tracked, &runs, has_webhook_secret, &base, session, now);
    layout::respond(
        StatusCode::OK,
        layout::page(&format!("Task {name}"), Section::Tasks, d.signout(session), body),
    )
}

/// The forge a task's context is on, from its host name, when it says.
fn provider_of(context: &str) -> Option<Provider> {
    let host = context.split("://").nth(1).unwrap_or(context).split('/').next().unwrap_or("");
    Provider::ALL
        .into_iter()
        .find(|p| *p != Provider::Generic && host.contains(p.as_str()))
}

#[allow(clippy::too_many_arguments)]
fn render(
    record: &TaskRecord,
    spec: &TaskSpec,
    tracked: &[(slipway_store::Dependency, Option<String>)],
    runs: &[RunRecord],
    has_webhook_secret: bool,
    base: &str,
    session: Option<&Session>,
    now: i64,
) -> Markup {
    html! {
        h1 { "Task " (record.name) " " (layout::status_badge(if record.enabled { "Enabled" } else { "Disabled" })) }
        @if let Some(s) = session { (task_actions(&record.tenant, &record.name, record.enabled, s)) }
        dl.facts {
            dt { "Context" } dd { (spec.context_path.as_deref().unwrap_or("—")) }
            dt { "File" } dd { (spec.file.as_deref().unwrap_or("—")) }
            @if let Some(cmd) = &spec.cmd { dt { "Command" } dd { code { (cmd) } } }
            @if let Some(v) = &spec.values_file { dt { "Values file" } dd { (v) } }
            @if let Some(text) = &spec.task_content { dt { "Task file (inline)" } dd { pre { (text) } } }
            dt { "Images" } dd { @if spec.image_names.is_empty() { "—" } @else { (spec.image_names.join(", ")) } }
            dt { "Platform" } dd { (spec.platform) }
            dt { "Timeout" } dd { (spec.timeout) " s" }
            dt { "Triggers" } dd { (trigger_summary(spec)) }
            dt { "Created" } dd { (layout::time(record.create_time)) }
            dt { "Updated" } dd { (layout::time(record.last_updated_time)) }
        }
        (timers_section(record, spec, now))
        (webhook_section(spec, has_webhook_secret, base))
        section #base-images {
            h2 { "Base images" }
            @if tracked.is_empty() { p.empty { "None recorded yet: a successful build records them." } } @else {
                table.deps {
                    thead { tr { th { "Image" } th { "Kind" } th { "Built on" } th { "Current digest" } } }
                    tbody {
                        @for (dep, seen) in tracked {
                            tr {
                                td { (dep.image) }
                                td { (dep.kind) }
                                td { @if dep.digest.is_empty() { span.none { "—" } } @else { code title=(dep.digest) { (layout::short_digest(&dep.digest)) } } }
                                td { @match seen { Some(s) => code title=(s) { (layout::short_digest(s)) }, None => span.none { "not seen yet" } } }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Recent runs" }
            @if runs.is_empty() { p.empty { "No runs yet." } } @else {
                table.runs {
                    thead { tr { th { "Run ID" } th { "Task" } th { "Platform" } th { "Status" } th { "Trigger" } th { "Started" } th { "Duration" } } }
                    tbody { @for r in runs { (crate::runs_page::row(r, now)) } }
                }
                p { a href={ "/?task=" (record.name) } { "All runs of this task" } }
            }
        }
    }
}

/// The task's timers, with each one's next occurrence.
fn timers_section(record: &TaskRecord, spec: &TaskSpec, now: i64) -> Markup {
    html! {
        section #timers {
            h2 { "Timers" }
            @if spec.timers.is_empty() { p.empty { "No timers." } } @else {
                table.timers {
                    thead { tr { th { "Timer" } th { "Schedule (UTC)" } th { "Enabled" } th { "Next (UTC)" } th { "Next (your time)" } } }
                    tbody {
                        @for t in &spec.timers {
                            @let next = slipway_api::schedule::parse(&t.schedule).ok().and_then(|c| slipway_api::schedule::next_after(&c, now));
                            tr {
                                td { (t.name) }
                                td { code { (t.schedule) } }
                                td { (if t.enabled { "yes" } else { "no" }) }
                                @match (next, t.enabled && record.enabled) {
                                    (Some(ms), true) => {
                                        td { (layout::time(ms)) }
                                        td.local-time data-ms=(ms) { "(shown with scripts on)" }
                                    }
                                    _ => { td { span.none { "—" } } td { span.none { "—" } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How to point a forge's push webhook at this task, with the provider its context is
/// on suggested.
fn webhook_section(spec: &TaskSpec, has_webhook_secret: bool, base: &str) -> Markup {
    let provider = spec.context_path.as_deref().and_then(provider_of);
    html! {
        section #webhook {
            h2 { "Commit webhook" }
            @if !spec.source_trigger.enabled {
                p.empty { "The commit trigger is off; pushes are ignored." }
            }
            p { "On the forge, add a webhook for push events, content type JSON, to the URL of its provider"
                @if let Some(p) = provider { " (this task's context is on " strong { (p.as_str()) } ")" } ". "
                "A secret is " @if has_webhook_secret { strong { "set" } } @else { strong { "not set" } } " for this task"
                @if has_webhook_secret { "; give the forge the same one." } @else { "; set one with " code { "slipway task update --webhook-secret" } "." }
            }
            table.webhooks {
                thead { tr { th { "Provider" } th { "URL" } th { "Signed with" } } }
                tbody {
                    @for p in Provider::ALL {
                        tr.suggested[provider == Some(p)] {
                            td { (p.as_str()) } td { code { (base) "/v1/webhooks/" (p.as_str()) } } td { (p.signed_with()) }
                        }
                    }
                }
            }
        }
    }
}
