//! A run's page (`/runs/{id}`): what started it, its steps, the images it made and
//! what they were built on, and its log, which the script follows live.

use crate::access::Session;
use crate::layout::{self, Section};
use crate::Dashboard;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use slipway_store::RunRecord;
use std::sync::Arc;

/// Most log bytes a page is rendered with; the script fetches the rest.
pub(crate) const RENDERED_LOG_BYTES: usize = 1 << 20;

pub(crate) async fn show(State(d): State<Arc<Dashboard>>, session: Option<Extension<Session>>, Path(id): Path<String>) -> Response {
    let run = match d.run_for(session.as_deref(), &id).await {
        Ok(r) => r,
        Err(page) => return page.into_response(),
    };
    // One read gives at most RENDERED_LOG_BYTES; a second says whether there is more.
    let log = d.node.read_log(&id, 0).await.unwrap_or_default();
    let more = log.len() >= RENDERED_LOG_BYTES && !d.node.read_log(&id, log.len() as u64).await.unwrap_or_default().is_empty();
    let (lines, offset, cut) = log_lines(&log, run.status.is_finished(), more);
    let session = session.as_deref();
    let now = d.node.clock.now_ms();
    let body = html! {
        div #details { (details(&run, session, now)) }
        section.log-section {
            h2 { "Log" }
            div.log-tools {
                // Searching and following need the script, which shows them.
                input #log-search type="search" placeholder="Search the log" aria-label="Search the log" hidden;
                span #log-matches {}
                label.follow #log-follow-label hidden { input #log-follow type="checkbox" checked; " Follow" }
                a href={ "/runs/" (run.id) "/log.txt" } download { "Download raw log" }
            }
            div #log .log
                data-offset=(offset)
                data-live=[(!run.status.is_finished() || cut).then(|| format!("/live/runs/{}", run.id))]
                role="log" {
                @for (i, line) in lines.iter().enumerate() { (log_line(i + 1, line)) }
            }
            @if cut {
                p.note #log-cut { "The page shows the first " (RENDERED_LOG_BYTES / 1024) " KiB of the log; the rest loads with scripts on, or download it." }
            }
        }
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&format!("Run {}", run.id), Section::Runs, d.signout(session), body),
    )
}

/// The log's complete lines, the offset after them, and whether there was more.
fn log_lines(log: &[u8], finished: bool, more: bool) -> (Vec<String>, usize, bool) {
    let shown = &log[..log.len().min(RENDERED_LOG_BYTES)];
    let more = more || log.len() > shown.len();
    // A line still being written is left to the live feed, unless the run has ended.
    let end = if more || !finished {
        shown.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0)
    } else {
        shown.len()
    };
    let text = String::from_utf8_lossy(&shown[..end]);
    let lines = text.lines().map(strip_escapes).collect();
    (lines, end, more)
}

/// Terminal escape sequences (colours, cursor moves) removed.
pub(crate) fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\r' || (c.is_control() && c != '\t') {
            continue;
        }
        out.push(c);
    }
    out
}

fn log_line(n: usize, text: &str) -> Markup {
    html! {
        div.line id={ "L" (n) } { a.ln href={ "#L" (n) } { (n) } span.text { (text) } }
    }
}

/// Everything but the log; the live feed sends it again when the run changes.
pub(crate) fn details(run: &RunRecord, session: Option<&Session>, now: i64) -> Markup {
    let (images, deps) = (&run.output_images, &run.image_dependencies);
    html! {
        h1 { "Run " (run.id) " " (layout::run_status(run.status)) }
        @if let Some(s) = session { (run_actions(run, s)) }
        @if let Some(m) = &run.error_message { p.error { (m) } }
        dl.facts {
            dt { "Task" } dd { @if let Some(t) = &run.task { a href=(crate::task_href(&run.tenant, t)) { (t) } } @else { "— (" (run.run_type.as_str()) ")" } }
            dt { "Platform" } dd { (run.platform) }
            dt { "Queued" } dd { (layout::time(run.create_time)) }
            dt { "Started" } dd { (layout::optional_time(run.start_time)) }
            dt { "Finished" } dd { (layout::optional_time(run.finish_time)) }
            dt { "Duration" } dd { (layout::run_duration(run, now)) }
            dt { "Trigger" } dd { (trigger(run)) }
        }
        (steps_section(run))
        @if images.is_empty() && deps.is_empty() {
            p.empty #no-images { "No image pushed, no base images recorded." }
        }
        @if !images.is_empty() { (images_section(images)) }
        @if !deps.is_empty() { section {
            h2 { "Base images" }
            {
                table.deps {
                    thead { tr { th { "Image" } th { "Runtime base" } th { "Build-time bases" } } }
                    tbody {
                        @for dep in deps {
                            tr {
                                td { (reference(Some(&dep.image))) }
                                td { (reference(dep.runtime_dependency.as_ref())) }
                                td {
                                    @for b in &dep.buildtime_dependency {
                                        div { (reference(Some(b))) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        } }
    }
}

/// Cancel (while it runs) and run again, for a signed-in visitor.
fn run_actions(run: &RunRecord, s: &Session) -> Markup {
    html! {
        div.actions {
            @if !run.status.is_finished() {
                form method="post" action={ "/runs/" (run.id) "/cancel" } {
                    input type="hidden" name="csrf" value=(s.csrf);
                    button.danger #cancel type="submit" disabled[run.cancel_requested] {
                        @if run.cancel_requested { "Canceling…" } @else { "Cancel" }
                    }
                }
            }
            form method="post" action={ "/runs/" (run.id) "/again" } {
                input type="hidden" name="csrf" value=(s.csrf);
                button #again type="submit" { "Run again" }
            }
        }
    }
}

/// The run's steps, each with its status, times and error.
fn steps_section(run: &RunRecord) -> Markup {
    let steps = &run.steps;
    html! {
        section {
            h2 { "Steps" }
            @if steps.is_empty() {
                p.empty { @if run.status.is_finished() { "No step ran." } @else { "Steps appear when the run starts." } }
            } @else {
                table.steps {
                    thead { tr { th { "Step" } th { "After" } th { "Status" } th { "Started" } th { "Duration" } th { "Executions" } th { "Error" } } }
                    tbody {
                        @for s in steps {
                            @let when = s.when.join(", ");
                            tr data-step=(s.id) {
                                td { (s.id) }
                                td { @if when.is_empty() { span.none { "—" } } @else { (when) } }
                                td { (layout::status_badge(&step_status(run, &s.status))) }
                                td { @match s.start_time.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
                                    Some(Ok(t)) => (layout::time(t.timestamp_millis())),
                                    _ => span.none { "—" },
                                } }
                                td { @match s.duration_seconds {
                                    Some(secs) => (layout::duration(secs)),
                                    None => span.none { "—" },
                                } }
                                td { @if let Some(n) = s.executions { (n) } }
                                td.error { (s.error.as_deref().unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The images the run pushed.
fn images_section(images: &[slipway_plan::OutputImage]) -> Markup {
    html! {
        section {
            h2 { "Images" }
            {
                table.images {
                    thead { tr { th { "Image" } th { "Digest" } th { "Platform" } } }
                    tbody {
                        @for i in images {
                            tr {
                                td { (i.registry) "/" (i.repository) ":" (i.tag) }
                                td { code title=(i.digest) { (layout::short_digest(&i.digest)) } }
                                td { @match &i.platform { Some(p) => (p), None => span.none { "—" } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A step's status as shown: a finished run whose record still says a step is going
/// (its worker was lost) shows how the run ended.
fn step_status(run: &RunRecord, status: &str) -> String {
    match (run.status.is_finished(), status) {
        (true, "Running") => run.status.as_str().to_string(),
        (true, "Pending") => "Skipped".into(),
        _ => status.to_string(),
    }
}

/// `registry/repository:tag` and its digest (or the name as given, when it did not parse).
fn reference(v: Option<&slipway_api::results::ImageRef>) -> Markup {
    let Some(v) = v else {
        return html! { span.none { "—" } };
    };
    html! {
        @if let Some(name) = &v.reference { span.ref { (name) } } @else {
            span.ref { (v.registry) "/" (v.repository) ":" (v.tag) }
        }
        @if !v.digest.is_empty() { " " code title=(v.digest) { (layout::short_digest(&v.digest)) } }
    }
}

/// What started the run, with its details.
fn trigger(run: &RunRecord) -> Markup {
    let t = &run.triggers;
    html! {
        @if let Some(s) = &t.source {
            "Commit " code { (s.commit_id.chars().take(12).collect::<String>()) }
            " on " strong { (s.branch_name) }
            " of " (s.repository_url.as_deref().unwrap_or_default()) " (" (s.provider_type) ")"
        } @else if let Some(i) = &t.image_update {
            "Base image update: "
            @for img in &i.images {
                (reference(Some(img)))
            }
        } @else if let Some(tm) = &t.timer {
            "Timer " strong { (tm.timer_trigger_name) } ", occurrence "
            @match chrono::DateTime::parse_from_rfc3339(&tm.schedule_occurrence) {
                Ok(at) => (layout::time(at.timestamp_millis())),
                Err(_) => (tm.schedule_occurrence),
            }
        } @else {
            "Manual"
        }
    }
}

/// `/runs/{id}/log.txt`: the raw log, as a download.
pub(crate) async fn raw_log(State(d): State<Arc<Dashboard>>, session: Option<Extension<Session>>, Path(id): Path<String>) -> Response {
    if let Err(page) = d.run_for(session.as_deref(), &id).await {
        return page.into_response();
    }
    let node = d.node.clone();
    let log_id = id.clone();
    let read = move |offset: u64| {
        let (node, id) = (node.clone(), log_id.clone());
        async move { node.read_log(&id, offset).await }
    };
    let body = axum::body::Body::from_stream(slipway_worker::logs::stream(
        read,
        0,
        false,
        d.node.log_appended.clone(),
        || async { true },
    ));
    let safe: String = id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"run-{safe}.log\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_still_being_written_waits_for_the_live_feed() {
        let (lines, offset, cut) = log_lines(b"one\ntwo\nthr", false, false);
        assert_eq!((lines, offset, cut), (vec!["one".to_string(), "two".into()], 8, false));
        let (lines, offset, _) = log_lines(b"one\ntwo\nthr", true, false);
        assert_eq!((lines.len(), offset), (3, 11));
        // A finished log longer than a page: cut at a line, the rest left to the feed.
        let (lines, offset, cut) = log_lines(b"one\ntwo\nthr", true, true);
        assert_eq!((lines.len(), offset, cut), (2, 8, true));
    }

    #[test]
    fn escapes_are_removed() {
        assert_eq!(strip_escapes("\u{1b}[31mred\u{1b}[0m\r"), "red");
        assert_eq!(strip_escapes("a\tb"), "a\tb");
    }
}
