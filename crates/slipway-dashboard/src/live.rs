//! The live parts, as server-sent events the page's script reads with EventSource:
//! `/live/runs` sends the rows of runs that were queued or changed; `/live/runs/{id}`
//! sends a run's log as it grows (event ids are byte offsets, so a reconnecting
//! browser resumes from the last byte it got) and its details when they change.
//!
//! This node's own changes wake the feeds at once; other nodes' (a fleet) are seen by
//! looking at the queue every second.

use crate::access::Session;
use crate::runs_page::Filters;
use crate::Dashboard;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::{Stream, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How far back each look at the queue reaches, so a node whose clock is a little
/// behind still has its changes seen.
const LOOK_BACK_MS: i64 = 10_000;
/// How often other nodes' changes are looked for.
const POLL: Duration = Duration::from_secs(1);
/// Runs read per look at the queue.
const PAGE: u32 = 200;
/// A log piece without a line end is sent anyway once it is this long.
const MAX_PARTIAL_LINE: usize = 64 * 1024;

type Events = Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

/// What a page shows of a run, in a number: two writes in one millisecond still differ.
fn fingerprint(r: &slipway_store::RunRecord) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (r.last_updated_time, r.status.as_str(), r.cancel_requested, &r.error_message).hash(&mut h);
    (r.start_time, r.finish_time).hash(&mut h);
    serde_json::to_string(&r.steps).unwrap_or_default().hash(&mut h);
    serde_json::to_string(&r.output_images).unwrap_or_default().hash(&mut h);
    h.finish()
}

fn last_event_id(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A place among the feeds this daemon holds open, counted per token.
fn enter(d: &Dashboard, session: Option<&Session>) -> Result<slipway_limits::Pass, Box<Response>> {
    let key = session.map(|s| s.caller.token_hash.as_str()).unwrap_or("");
    d.node.follows.enter(key).map_err(|full| {
        Box::new(crate::layout::error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Busy",
            &format!("Too many live pages are open: {full}. Close some, then reload."),
        ))
    })
}

fn sse(events: Events) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The runs page's feed: what it was sent, and the events not yet taken.
struct RunsFeed {
    d: Arc<Dashboard>,
    filters: Filters,
    since: i64,
    /// Runs sent: what they showed and when they changed.
    sent: HashMap<String, (u64, i64)>,
    pending: VecDeque<Event>,
    _permit: slipway_limits::Pass,
}

impl RunsFeed {
    /// Queues an event for each run that changed since the last one sent, oldest change
    /// first, from a little before it (another node's clock may be behind); pages on
    /// while pages come back full.
    async fn look(&mut self) {
        let mut cursor = self.since.saturating_sub(LOOK_BACK_MS);
        loop {
            let mut look = self.filters.list_filter(PAGE);
            look.status = None;
            look.before_id = None;
            look.updated_after = Some(cursor);
            let changed = match self.d.node.store.list(&look).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "the dashboard's live list could not read the queue");
                    return;
                }
            };
            let now = self.d.node.clock.now_ms();
            for r in &changed {
                let print = fingerprint(r);
                if self.sent.get(&r.id).is_some_and(|(p, _)| *p == print) {
                    continue;
                }
                self.sent.insert(r.id.clone(), (print, r.last_updated_time));
                self.since = self.since.max(r.last_updated_time);
                let data = serde_json::json!({
                    "id": r.id,
                    "created": r.create_time,
                    "matches": self.filters.status.is_none_or(|s| s == r.status),
                    "html": crate::runs_page::row(r, now).into_string(),
                });
                self.pending
                    .push_back(Event::default().event("run").id(self.since.to_string()).data(data.to_string()));
            }
            match changed.last() {
                Some(last) if changed.len() as u32 == PAGE => cursor = (last.last_updated_time - 1).max(cursor + 1),
                _ => return,
            }
        }
    }
}

/// Changed runs' rows: `event: run`, data `{id, created, matches, html}`; `matches`
/// says whether the run still passes the page's status filter.
pub(crate) async fn runs(
    State(d): State<Arc<Dashboard>>,
    session: Option<Extension<Session>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let filters = match Filters::parse(&q, session.as_ref().map(|s| &s.caller)) {
        Ok(f) => f,
        Err(m) => return crate::layout::error_page(StatusCode::BAD_REQUEST, "Bad filter", &m),
    };
    let permit = match enter(&d, session.as_deref()) {
        Ok(p) => p,
        Err(page) => return *page,
    };
    let now = d.node.clock.now_ms();
    // Whatever the client says, the feed looks back at most a day.
    let since = last_event_id(&headers)
        .or_else(|| q.get("since").and_then(|s| s.parse().ok()))
        .unwrap_or(now)
        .clamp(now - 86_400_000, now + 60_000);
    let feed = RunsFeed {
        d,
        filters,
        since,
        sent: HashMap::new(),
        pending: VecDeque::new(),
        _permit: permit,
    };
    let events = futures_util::stream::unfold(feed, |mut f| async move {
        loop {
            if let Some(e) = f.pending.pop_front() {
                return Some((Ok(e), f));
            }
            let changed = f.d.node.changed.clone();
            let woken = changed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            f.look().await;
            let horizon = f.since.saturating_sub(LOOK_BACK_MS);
            f.sent.retain(|_, (_, t)| *t >= horizon);
            if !f.pending.is_empty() {
                continue;
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = f.d.shutdown.cancelled() => return None,
            }
        }
    });
    sse(Box::pin(events))
}

/// One run: `event: log` (data `{"text"}`, id the offset after it), `event: run`
/// (data `{status, finished, html}`) when its details change, and `event: end` once
/// it has finished and every byte of its log was sent.
pub(crate) async fn run(
    State(d): State<Arc<Dashboard>>,
    session: Option<Extension<Session>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(page) = d.run_for(session.as_deref(), &id).await {
        return page.into_response();
    }
    let permit = match enter(&d, session.as_deref()) {
        Ok(p) => p,
        Err(page) => return *page,
    };
    let offset = last_event_id(&headers)
        .or_else(|| q.get("offset").and_then(|s| s.parse().ok()))
        .unwrap_or(0)
        .max(0) as u64;
    let feed = RunFeed {
        log: Box::pin(log_from(&d, &id, offset)),
        d,
        id,
        session: session.map(|s| s.0),
        carry: Vec::new(),
        offset,
        updated: 0,
        started: false,
        pending: VecDeque::new(),
        ended: false,
        poll: {
            let mut i = tokio::time::interval(POLL);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        },
        _permit: permit,
    };
    sse(Box::pin(futures_util::stream::unfold(feed, RunFeed::next)))
}

/// A run's log from `offset`, followed until the run finishes.
fn log_from(d: &Dashboard, id: &str, offset: u64) -> impl Stream<Item = std::io::Result<axum::body::Bytes>> + Send + 'static {
    let node = d.node.clone();
    let log_id = id.to_string();
    let read = move |offset: u64| {
        let (node, id) = (node.clone(), log_id.clone());
        async move { node.read_log(&id, offset).await }
    };
    let store = d.node.store.clone();
    let run_id = id.to_string();
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
    slipway_worker::logs::stream(read, offset, true, d.node.log_appended.clone(), finished)
}

/// One run page's live feed: its log's new lines (`log`), its details when they change
/// (`run`), and `end` once the run finished and every byte was sent.
struct RunFeed {
    d: Arc<Dashboard>,
    id: String,
    session: Option<Session>,
    log: Pin<Box<dyn Stream<Item = std::io::Result<axum::body::Bytes>> + Send>>,
    carry: Vec<u8>,
    offset: u64,
    /// The fingerprint of the details last sent.
    updated: i64,
    /// Whether the first details were sent (or tried).
    started: bool,
    pending: VecDeque<Event>,
    ended: bool,
    poll: tokio::time::Interval,
    _permit: slipway_limits::Pass,
}

/// What woke the feed.
enum Next {
    Log(Option<std::io::Result<axum::body::Bytes>>),
    Look,
    Stop,
}

impl RunFeed {
    /// Sends the carried bytes up to `upto`; `continues` when they end inside a line.
    fn send_log(&mut self, upto: usize, continues: bool) {
        let text: Vec<u8> = self.carry.drain(..upto).collect();
        self.offset += text.len() as u64;
        let text = String::from_utf8_lossy(&text);
        let mut lines: Vec<String> = text.split('\n').map(crate::run_page::strip_escapes).collect();
        if !continues && text.ends_with('\n') {
            lines.pop();
        }
        let data = serde_json::json!({ "lines": lines, "continues": continues });
        self.pending
            .push_back(Event::default().event("log").id(self.offset.to_string()).data(data.to_string()));
    }

    /// New log bytes: whole lines are sent, a long partial line in pieces cut where a
    /// character ends, so none is split in two.
    fn take_log(&mut self, bytes: &[u8]) {
        self.carry.extend_from_slice(bytes);
        match self.carry.iter().rposition(|b| *b == b'\n') {
            Some(i) => self.send_log(i + 1, false),
            None if self.carry.len() >= MAX_PARTIAL_LINE => {
                let upto = match std::str::from_utf8(&self.carry) {
                    Ok(_) => self.carry.len(),
                    Err(e) if e.valid_up_to() > 0 => e.valid_up_to(),
                    Err(_) => self.carry.len(),
                };
                self.send_log(upto, true);
            }
            None => {}
        }
    }

    async fn send_details(&mut self, force: bool) -> bool {
        let Ok(Some(r)) = self.d.node.store.get(None, &self.id).await else {
            // Tried again at the next poll, not at once.
            self.started = true;
            return false;
        };
        let print = fingerprint(&r) as i64;
        if print == self.updated && !force {
            return r.status.is_finished();
        }
        self.updated = print;
        let now = self.d.node.clock.now_ms();
        let data = serde_json::json!({
            "status": r.status.as_str(),
            "finished": r.status.is_finished(),
            "html": crate::run_page::details(&r, self.session.as_ref(), now).into_string(),
        });
        self.pending.push_back(Event::default().event("run").data(data.to_string()));
        r.status.is_finished()
    }

    /// The feed's next event, waiting for the log, a change or the poll.
    async fn next(mut self) -> Option<(Result<Event, std::convert::Infallible>, RunFeed)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some((Ok(e), self));
            }
            if self.ended {
                return None;
            }
            let changed = self.d.node.changed.clone();
            let shutdown = self.d.shutdown.clone();
            let woken = changed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if !self.started {
                self.started = true;
                self.send_details(true).await;
                continue;
            }
            let next = tokio::select! {
                chunk = self.log.next() => Next::Log(chunk),
                _ = woken => Next::Look,
                // An interval, not a new sleep each pass: a busy log must not keep the
                // details from being looked at.
                _ = self.poll.tick() => Next::Look,
                _ = shutdown.cancelled() => Next::Stop,
            };
            match next {
                Next::Log(Some(Ok(bytes))) => self.take_log(&bytes),
                Next::Log(Some(Err(e))) => {
                    tracing::debug!(error = %e, "reading a run's log for the dashboard failed");
                    self.ended = true;
                }
                Next::Log(None) => {
                    // The run finished and every byte was read.
                    if !self.carry.is_empty() {
                        self.send_log(self.carry.len(), false);
                    }
                    self.send_details(true).await;
                    self.pending.push_back(Event::default().event("end").data("{}"));
                    self.ended = true;
                }
                Next::Look => {
                    self.send_details(false).await;
                }
                Next::Stop => return None,
            }
        }
    }
}
