//! What every page shares: the document around a page's content, the navigation, and
//! how times, durations, statuses and triggers are written.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use slipway_store::{RunRecord, RunStatus, TriggerKind};

/// Where a page is in the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Runs,
    Tasks,
    None,
}

/// Scripts and styles come from the dashboard alone; nothing inline runs.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A whole page; `signout` is the CSRF token of the sign-out form, for a visitor who
/// signed in.
pub(crate) fn page(title: &str, section: Section, signout: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Slipway" }
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/dashboard.css";
                script src="/assets/dashboard.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Slipway" }
                    nav {
                        a href="/" aria-current=[(section == Section::Runs).then_some("page")] { "Runs" }
                        a href="/tasks" aria-current=[(section == Section::Tasks).then_some("page")] { "Tasks" }
                    }
                    @if let Some(csrf) = signout {
                        form.signout method="post" action="/signout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// An HTML response with the dashboard's headers.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// A page that says what went wrong.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p.error { (message) }
        p { a href="/" { "Back to the runs" } }
    };
    respond(status, page(title, Section::None, None, body))
}

pub(crate) fn no_run(id: &str) -> Response {
    error_page(StatusCode::NOT_FOUND, "No such run", &format!("There is no run with id {id:?}."))
}

pub(crate) fn no_task(name: &str) -> Response {
    error_page(StatusCode::NOT_FOUND, "No such task", &format!("There is no task named {name:?}."))
}

/// `2026-11-23 16:50:01 UTC` in a `<time>` the script can show in local time.
pub(crate) fn time(ms: i64) -> Markup {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => html! {
            time datetime=(slipway_api::time::seconds(t)) { (t.format("%Y-%m-%d %H:%M:%S UTC")) }
        },
        None => html! { "" },
    }
}

pub(crate) fn optional_time(ms: Option<i64>) -> Markup {
    match ms {
        Some(ms) => time(ms),
        None => html! { span.none { "—" } },
    }
}

/// `1m 05s`, `12.3s`, `2h 03m`.
pub(crate) fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else if seconds < 3600.0 {
        let s = seconds.round() as u64;
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        let m = (seconds / 60.0).round() as u64;
        format!("{}h {:02}m", m / 60, m % 60)
    }
}

/// How long a run took (or has taken so far).
pub(crate) fn run_duration(r: &RunRecord, now_ms: i64) -> String {
    match (r.start_time, r.finish_time) {
        (Some(s), Some(f)) => duration((f - s).max(0) as f64 / 1000.0),
        (Some(s), None) => format!("{} so far", duration((now_ms - s).max(0) as f64 / 1000.0)),
        _ => "—".into(),
    }
}

pub(crate) fn status_badge(status: &str) -> Markup {
    let class = match status {
        "Succeeded" | "Enabled" => "ok",
        "Failed" | "Error" | "Timeout" | "TimedOut" => "bad",
        "Running" | "Started" => "live",
        "Canceled" | "Skipped" | "Disabled" => "off",
        "FailedIgnored" => "warn",
        _ => "wait",
    };
    html! { span class={ "status " (class) } data-status=(status) { (status) } }
}

pub(crate) fn run_status(s: RunStatus) -> Markup {
    status_badge(s.as_str())
}

/// What started a run, in a word, as `az acr task list-runs` shows it.
pub(crate) fn trigger_name(r: &RunRecord) -> &'static str {
    TriggerKind::of(&r.triggers).as_str()
}

/// `sha256:0123456789ab…`
pub(crate) fn short_digest(d: &str) -> String {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}…", &hex[..12]),
        _ => d.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(super::duration(4.25), "4.2s");
        assert_eq!(super::duration(65.0), "1m 05s");
        assert_eq!(super::duration(7380.0), "2h 03m");
        assert_eq!(super::short_digest("sha256:0123456789abcdef0123"), "sha256:0123456789ab…");
    }
}
