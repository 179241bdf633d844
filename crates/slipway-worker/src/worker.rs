//! Workers: claim a run, keep its lease, run it, record how it ended.

use crate::{logs, Node};
use slipway_api::requests::{self, TaskSource, ValuesSource};
use slipway_api::secrets::Credential;
use slipway_reference::Reference;
use slipway_runner::{RunConfig, RunReport, StepStatus};
use slipway_sources as sources;
use slipway_store::{Completion, Reaped, RunRecord, RunStatus};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One worker: claims and runs one run at a time until shutdown.
pub async fn work(d: Arc<Node>, name: String, shutdown: CancellationToken) {
    let lease = Duration::from_secs(d.settings.lease_seconds);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        // While the engine is down, queued runs wait rather than fail one by one.
        if d.engine_down.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                _ = shutdown.cancelled() => return,
            }
        }
        match d.store.claim(&name, 1, lease, d.settings.max_running_runs_per_tenant as u32).await {
            Ok(runs) if !runs.is_empty() => {
                for run in runs {
                    execute(&d, &name, run, lease).await;
                }
            }
            Ok(_) => {
                tokio::select! {
                    _ = d.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            Err(e) => {
                tracing::warn!(worker = %name, error = %e, "claiming a run failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Watches the engine: while it does not answer, workers claim nothing and `/healthz`
/// says why; when it answers again, what runs left in it while it was away is swept.
pub async fn watch_engine(d: Arc<Node>, shutdown: CancellationToken) {
    loop {
        let state = d.engine.ping().await.err().map(|e| e.to_string());
        let was_down = {
            let mut down = d.engine_down.lock().unwrap_or_else(|p| p.into_inner());
            let was = down.is_some();
            if state.is_some() != was {
                match &state {
                    Some(e) => tracing::error!(error = %e, "the Docker engine is unreachable; no runs are claimed until it answers"),
                    None => tracing::info!("the Docker engine answers again"),
                }
            }
            *down = state.clone();
            was
        };
        if state.is_none() {
            let pending: Vec<String> = std::mem::take(&mut *d.unswept.lock().unwrap_or_else(|p| p.into_inner()));
            for id in pending {
                if let Err(e) = d.engine.sweep(&id).await {
                    tracing::warn!(run_id = %id, error = %e, "sweeping a run's leftovers failed; will retry");
                    d.unswept.lock().unwrap_or_else(|p| p.into_inner()).push(id);
                }
            }
            if was_down {
                d.wake.notify_waiters();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Reaps lost runs, sweeps their containers, and purges old files, periodically.
pub async fn housekeeping(d: Arc<Node>, shutdown: CancellationToken) {
    let mut last_purge = std::time::Instant::now();
    let mut last_directory = std::time::Instant::now();
    let purge_every = Duration::from_secs(d.settings.purge_interval_seconds);
    purge(&d).await;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
        reap_once(&d).await;
        if last_directory.elapsed() >= Duration::from_secs(5) {
            last_directory = std::time::Instant::now();
            d.refresh_directory().await;
        }
        if last_purge.elapsed() >= purge_every {
            last_purge = std::time::Instant::now();
            purge(&d).await;
        }
    }
}

pub async fn reap_once(d: &Arc<Node>) {
    match d.store.reap(d.settings.requeue_lost_runs).await {
        Ok(reaped) => {
            for r in reaped {
                let (id, line) = match &r {
                    Reaped::Failed(id) => (id, "The worker running this run was lost; the run ended as Error."),
                    Reaped::Requeued(id) => (id, "The worker running this run was lost; the run was queued again."),
                };
                tracing::warn!(run_id = %id, "{line}");
                d.note_in_log(id, line).await;
                if let Err(e) = d.engine.sweep(id).await {
                    tracing::warn!(run_id = %id, error = %e, "removing a lost run's containers failed");
                }
                if matches!(r, Reaped::Failed(_)) {
                    d.remove_secrets(id).await;
                    d.tell(id, crate::events::RunEvent::Finished);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "reaping lost runs failed"),
    }
}

/// Removes the contexts and logs of runs that ended more than `retention_days` ago.
/// Only finished runs are ever purged.
async fn purge(d: &Arc<Node>) {
    let cutoff = d.clock.now_ms() - (d.settings.retention_days as i64) * 86_400_000;
    let Ok(ids) = d.store.finished_before(cutoff).await else { return };
    // Whole contexts can be large: remove them on a blocking thread.
    let (contexts, data_dir) = (d.data("contexts"), d.settings.data_dir.clone());
    let _ = tokio::task::spawn_blocking(move || {
        for id in ids {
            let _ = std::fs::remove_dir_all(contexts.join(&id));
            let _ = std::fs::remove_file(logs::log_path(&data_dir, &id));
        }
    })
    .await;
    purge_uploads(d).await;
}

/// Removes uploads no queued or running run and no task names once `unused_upload_hours`
/// have passed (a tenant's upload quota counts what is kept), and, after the retention
/// period, upload files the store has no row for (kept before rows were).
async fn purge_uploads(d: &Arc<Node>) {
    let now_ms = d.clock.now_ms();
    let cutoff = now_ms - (d.settings.unused_upload_hours as i64) * 3_600_000;
    match d.store.unused_uploads(cutoff).await {
        Ok(ids) => {
            for id in ids {
                let _ = std::fs::remove_file(sources::uploads::archive_path(&d.settings.data_dir, &id));
                if let Some(blobs) = &d.blobs {
                    if let Err(e) = blobs.delete(&crate::fleet::upload_key(&id)).await {
                        tracing::warn!(upload = %id, error = %e, "removing an unused upload from the blob store failed");
                        continue;
                    }
                }
                if let Err(e) = d.store.delete_upload(&id).await {
                    tracing::warn!(upload = %id, error = %e, "forgetting an unused upload failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing unused uploads failed"),
    }
    let Ok(entries) = std::fs::read_dir(d.data("uploads")) else {
        return;
    };
    let max_age_ms = (d.settings.retention_days as i64) * 86_400_000;
    for e in entries.flatten() {
        let modified_ms = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64);
        if modified_ms.is_some_and(|m| now_ms - m > max_age_ms) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

async fn execute(d: &Arc<Node>, worker: &str, run: RunRecord, lease: Duration) {
    let id = run.id.clone();
    let cancel = CancellationToken::new();
    d.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), cancel.clone());
    if d.store.mark_running(&id, worker, run.attempt).await.unwrap_or(false) {
        d.tell(&id, crate::events::RunEvent::Started);
    }
    d.changed.notify_waiters();
    let keeper = keep_lease(d, &id, worker, run.attempt, lease, cancel.clone());
    let (shipper, log) = run_log(d, &id);
    let mut done = run_one(d, &run, worker, log.clone(), cancel.clone()).await;
    keeper.abort();
    if let (Some(why), Some(RunStatus::Canceled)) = (d.stopping(), done.status) {
        log(&format!("{why}; it ended as Error."));
        done.status = Some(RunStatus::Error);
        done.error_message = Some(why);
    }
    // The last line is written before the status changes, so a follower that sees the
    // run finished has already been given every line.
    log(&format!(
        "Run {id} ended: {}",
        done.status.map(|s| s.to_string()).unwrap_or_default()
    ));
    if let Some(s) = shipper {
        s.finish().await;
    }
    if d.store.complete(&id, worker, run.attempt, done).await.unwrap_or(false) {
        d.tell(&id, crate::events::RunEvent::Finished);
    } else {
        tracing::warn!(run_id = %id, "the run was no longer ours when it ended; its result was dropped");
    }
    d.changed.notify_waiters();
    if d.blobs.is_some() {
        // The log is in the blob store now; followers elsewhere read it there.
        if let Err(e) = d.store.delete_log(&id).await {
            tracing::warn!(run_id = %id, error = %e, "dropping the shipped log pieces failed");
        }
    }
    d.remove_secrets(&id).await;
    d.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
}

/// Keeps the run's lease while it runs, and cancels it when a cancel is asked for or
/// the lease is taken from this worker. The lease is kept until the run has ended,
/// cancelled or not: a cancel can take a moment to stop what the run is doing.
fn keep_lease(
    d: &Arc<Node>,
    id: &str,
    worker: &str,
    attempt: i64,
    lease: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let d = d.clone();
    let (id, worker) = (id.to_string(), worker.to_string());
    tokio::spawn(async move {
        let mut last_renew = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if !cancel.is_cancelled() {
                if let Ok(Some(r)) = d.store.get(None, &id).await {
                    if r.cancel_requested {
                        cancel.cancel();
                    }
                }
            }
            if last_renew.elapsed() >= lease / 3 {
                last_renew = std::time::Instant::now();
                match d.store.renew(&id, &worker, attempt, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(run_id = %id, "lost the lease on this run; stopping it");
                        cancel.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(run_id = %id, error = %e, "renewing the lease failed"),
                }
            }
        }
    })
}

/// The run's log, capped at `max_log_bytes`. In a fleet it is also shipped to the
/// database while the run lives, so a follower on any node sees it, and to the blob
/// store when it ends (by the shipper returned).
fn run_log(d: &Arc<Node>, id: &str) -> (Option<crate::fleet::Shipper>, slipway_engine::LogSink) {
    let log = match d.log_sink(id) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(run_id = %id, error = %e, "cannot write the run's log");
            Arc::new(|_: &str| {})
        }
    };
    let log = logs::capped(log, d.settings.max_log_bytes);
    match &d.blobs {
        Some(_) => {
            let (s, l) = crate::fleet::Shipper::start(d, id, log);
            (Some(s), l)
        }
        None => (None, log),
    }
}

/// Largest task or values file read from a source.
const MAX_TASK_FILE_BYTES: u64 = 4 << 20;

fn failed(status: RunStatus, message: String) -> Completion {
    Completion {
        status: Some(status),
        error_message: Some(message),
        ..Default::default()
    }
}

/// Reads a file of the source, resolved beneath it whatever links the source holds.
fn read_in(dir: &Path, rel: &str) -> Result<String, String> {
    slipway_context::Beneath::open(dir)
        .and_then(|b| b.read_to_string(rel, MAX_TASK_FILE_BYTES))
        .map_err(|e| format!("cannot read {rel:?} from the source: {e}"))
}

/// A run, in its named steps: its secrets and credentials, its source, its task file
/// loaded into a plan, the runner's configuration, the run, and what it left.
async fn run_one(d: &Arc<Node>, run: &RunRecord, worker: &str, log: slipway_engine::LogSink, cancel: CancellationToken) -> Completion {
    let secrets = match d.read_secrets(&run.id).await {
        Ok(s) => s,
        Err(e) => return failed(RunStatus::Error, e),
    };
    let redactor = slipway_runner::Redactor::new(secrets.masked());
    // Credentials come from the run (its task) first, then the daemon's settings for
    // the registries and git hosts they name; never from the daemon's own files.
    let mut registry_credentials = d.settings.registry_credentials.clone();
    registry_credentials.extend(secrets.registry.clone());
    let mut git_credentials = d.settings.git_credentials.clone();
    git_credentials.extend(secrets.git.clone());
    let say = |line: &str| log(&redactor.mask(line));
    let job = match requests::job(&run.request, secrets.values) {
        Ok(j) => j,
        Err(e) => return failed(RunStatus::Error, e.0),
    };
    let fetch_opts = fetch_options(d, git_credentials, job.timeout);
    let source = match fetch_source(d, run, &fetch_opts, &cancel, &redactor, &say).await {
        Ok(s) => s,
        Err(done) => return done,
    };
    let loaded = match load_plan(d, run, &job, &source, &cancel, &redactor, &say).await {
        Ok(l) => l,
        Err(done) => return done,
    };
    let mut cfg = match run_config(d, run, &source, &fetch_opts, &registry_credentials, &loaded) {
        Ok(c) => c,
        Err(e) => return failed(RunStatus::Error, e),
    };
    let plan = loaded.plan;
    let board = crate::steps::Board::start(d, &run.id, worker, run.attempt, &plan);
    cfg.on_step = Some(board.watcher(d.clone()));
    let report = slipway_runner::run(d.engine.clone(), plan.clone(), cfg, log.clone(), cancel.clone()).await;
    let stopped = if report.canceled { "Canceled" } else { "Error" };
    let steps = board.finish(&report.steps, stopped);
    if let (false, false, Err(down)) = (report.succeeded, report.canceled, d.engine.ping().await) {
        // Not the task's fault: its containers may still be in the engine, so they are
        // swept once it answers again; and nothing more is claimed until it does (the
        // engine watcher would notice within a second; this worker knows now).
        *d.engine_down.lock().unwrap_or_else(|p| p.into_inner()) = Some(down.to_string());
        let m = "the Docker engine became unreachable during the run".to_string();
        say(&m);
        d.unswept.lock().unwrap_or_else(|p| p.into_inner()).push(run.id.clone());
        return Completion {
            steps: Some(steps),
            ..failed(RunStatus::Error, m)
        };
    }
    for s in &report.steps {
        if s.status != StepStatus::Skipped {
            let kind = plan.steps.iter().find(|p| p.id == s.id).map(|p| p.type_name()).unwrap_or("cmd");
            d.metrics.record_step(&run.tenant, kind, s.duration_secs);
        }
    }
    if let (Some(task), true) = (&run.task, report.succeeded) {
        record_dependencies(d, &run.tenant, task, &report).await;
    }
    Completion {
        steps: Some(steps),
        ..completion(&report)
    }
}

/// How a run's sources (and a build's `ADD` URLs) are fetched: the daemon's limits and
/// timeouts, the run's git credentials, and the run's timeout as the deadline.
fn fetch_options(d: &Node, git_credentials: std::collections::BTreeMap<String, Credential>, timeout: u64) -> sources::FetchOptions {
    sources::FetchOptions {
        git_credentials,
        max_bytes: d.settings.max_upload_bytes,
        limits: slipway_context::archive::Limits {
            max_bytes: d.settings.max_context_bytes,
            max_entries: d.settings.max_context_entries,
            ..Default::default()
        },
        reach: d.reach.clone(),
        connect_timeout: Duration::from_secs(d.settings.fetch_connect_timeout_seconds),
        read_timeout: Duration::from_secs(d.settings.fetch_read_timeout_seconds),
        deadline: Duration::from_secs(timeout.max(1)),
    }
}

/// The run's source on disk; when it cannot be fetched, how the run ends (nothing
/// half-fetched stays behind).
async fn fetch_source(
    d: &Node,
    run: &RunRecord,
    fetch_opts: &sources::FetchOptions,
    cancel: &CancellationToken,
    redactor: &slipway_runner::Redactor,
    say: &(dyn Fn(&str) + Sync),
) -> Result<sources::Source, Completion> {
    let location = run.request.source_location().map(str::to_string);
    let dest = d.data("contexts").join(&run.id);
    say(&format!("Run {} started on {}", run.id, d.settings.node));
    if let Some(l) = &location {
        say(&format!("Fetching the source {l}"));
    }
    if let Some(id) = location.as_deref().and_then(|l| l.strip_prefix("upload://")) {
        d.ensure_upload(id).await;
    }
    let source = match sources::fetch(location.as_deref(), &d.settings.data_dir, &dest, fetch_opts, cancel).await {
        Ok(s) => s,
        Err(e) => {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dest)).await;
            let m = redactor.mask(&format!("cannot fetch the source: {e}"));
            say(&m);
            let status = match e {
                sources::SourceError::Canceled => RunStatus::Canceled,
                sources::SourceError::TimedOut => RunStatus::Timeout,
                _ => RunStatus::Failed,
            };
            return Err(failed(status, m));
        }
    };
    if !source.commit.is_empty() {
        let branch = if source.branch.is_empty() {
            String::new()
        } else {
            format!("(branch {})", source.branch)
        };
        say(&format!("Source at commit {} {branch}", source.commit));
    }
    Ok(source)
}

/// The task file and values the run names, read from its request or its source.
fn task_text(job: &requests::Job, source: &sources::Source) -> Result<(String, String, serde_json::Value), String> {
    let (file_name, text) = match &job.task {
        TaskSource::Text(t) => ("task".to_string(), t.clone()),
        TaskSource::File(rel) => (rel.clone(), read_in(&source.dir, rel)?),
    };
    let values = match &job.values_file {
        None => serde_json::Value::Object(Default::default()),
        Some(v) => {
            let (name, text) = match v {
                ValuesSource::Text(t) => ("values".to_string(), t.clone()),
                ValuesSource::File(rel) => (rel.clone(), read_in(&source.dir, rel)?),
            };
            slipway_taskfile::parse_values(&name, &text).map_err(|e| e.to_string())?
        }
    };
    Ok((file_name, text, values))
}

/// The run's variables (`{{.Run.ID}}`, `$Commit`, `$Branch`, …).
fn run_vars(d: &Node, run: &RunRecord, source: &sources::Source) -> slipway_taskfile::RunVars {
    let mut vars = slipway_taskfile::RunVars::new(&run.id, &d.settings.registry, d.now());
    vars.commit = source.commit.clone();
    // A commit trigger pins the commit, so the branch comes from the trigger.
    vars.branch = run
        .triggers
        .source
        .as_ref()
        .map(|t| t.branch_name.clone())
        .unwrap_or_else(|| source.branch.clone());
    vars.repository = source.repository.clone();
    vars.task_name = run.task.clone().unwrap_or_else(|| "quickrun".into());
    vars
}

/// The task file loaded into a plan, off the async runtime; when it cannot be, how
/// the run ends. Loading is bounded (its own deadline) but not interruptible: a cancel
/// ends the run now and leaves the thread to finish on its own.
async fn load_plan(
    d: &Node,
    run: &RunRecord,
    job: &requests::Job,
    source: &sources::Source,
    cancel: &CancellationToken,
    redactor: &slipway_runner::Redactor,
    say: &(dyn Fn(&str) + Sync),
) -> Result<slipway_taskfile::Loaded, Completion> {
    let (file_name, text, values) = task_text(job, source).map_err(|e| {
        say(&e);
        failed(RunStatus::Failed, e)
    })?;
    let opts = d.task_options(run_vars(d, run, source), job.values_over(values), job.secrets.clone());
    let base = source.dir.clone();
    let loading = tokio::task::spawn_blocking(move || {
        let read = move |p: &str| read_in(&base, p);
        slipway_taskfile::load(&file_name, &text, &opts, &read)
    });
    let loaded = tokio::select! {
        l = loading => l,
        _ = cancel.cancelled() => {
            say("The run was canceled while its task file was loading.");
            return Err(failed(RunStatus::Canceled, "the run was canceled".into()));
        }
    };
    match loaded {
        Ok(Ok(l)) => {
            for w in &l.warnings {
                say(&format!("warning: {w}"));
            }
            Ok(l)
        }
        Ok(Err(e)) => {
            let m = redactor.mask(&e.to_string());
            say(&format!("error: {m}"));
            Err(failed(RunStatus::Failed, m))
        }
        Err(e) => Err(failed(RunStatus::Error, e.to_string())),
    }
}

/// The runner's configuration for this run in `serve`: the daemon's access rules, its
/// builder, the run's cache namespace, images, pushes and reads for its tenant, its
/// fetches checked like sources, its limits, secrets and credentials.
fn run_config(
    d: &Arc<Node>,
    run: &RunRecord,
    source: &sources::Source,
    fetch_opts: &sources::FetchOptions,
    registry_credentials: &std::collections::BTreeMap<String, Credential>,
    loaded: &slipway_taskfile::Loaded,
) -> Result<RunConfig, String> {
    let mut cfg = RunConfig::new(&run.id, source.dir.clone());
    cfg.host = crate::host_access(&d.settings);
    cfg.builder = d.settings.builder;
    if let Some(task) = &run.task {
        cfg.task_name = task.clone();
    }
    // Decided when the run was queued (`requests::cache_namespace`): a tenant's task or
    // repository, or the run alone; a run queued before that was decided keeps its own.
    cfg.cache_mount_namespace = Some(
        run.cache_namespace
            .clone()
            .unwrap_or_else(|| requests::cache_namespace(&run.tenant, requests::CacheOwner::Run, &run.id)),
    );
    // The run's images are its own, its pushes its tenant's, its builds' fetches
    // checked like sources, and its steps without the capabilities that reach devices
    // or raw networks.
    cfg.images = Some(slipway_runner::ImageScope {
        operator_images: crate::tenants::operator_images(&d.settings),
        allowed_frontends: d.settings.allowed_frontends.clone(),
    });
    cfg.may_push = Some(d.push_check(&run.tenant));
    cfg.may_read = Some(d.read_check(&run.tenant));
    let reach = d.reach.clone();
    cfg.url_check = Some(Arc::new(move |url: &str| reach.check_url(url)));
    let fetch = fetch_opts.clone();
    cfg.url_fetch = Some(Arc::new(move |url: String, to: std::path::PathBuf| {
        let fetch = fetch.clone();
        Box::pin(async move { sources::download(&url, &to, &fetch).await.map_err(|e| e.to_string()) })
    }));
    cfg.cap_drop = crate::tenants::STEP_CAP_DROP.iter().map(|c| c.to_string()).collect();
    cfg.proxy_limits = slipway_engine_proxy::Limits {
        connections: d.proxy_connections.clone(),
        header_timeout: Duration::from_secs(d.settings.http_header_timeout_seconds),
    };
    cfg.step_limits = Some(d.settings.step_limits());
    cfg.max_workspace_bytes = Some(d.settings.max_workspace_bytes).filter(|m| *m > 0);
    cfg.secret_values = loaded.secret_values.clone();
    cfg.credentials = registry_credentials
        .iter()
        .map(|(registry, c)| slipway_engine::RegistryCredential {
            registry: registry.clone(),
            username: c.user.clone(),
            password: c.secret.clone(),
        })
        .collect();
    cfg.scratch_dir = d.data("scratch");
    cfg.sandbox_image = d.settings.sandbox_image.clone();
    cfg.prepared_network = d.pool.take();
    Ok(cfg)
}

/// After a task's build, remember the base images it used and their digests.
async fn record_dependencies(d: &Arc<Node>, tenant: &str, task: &str, report: &RunReport) {
    if report.dependencies.is_empty() {
        return;
    }
    let mut deps = Vec::new();
    use slipway_api::results::DependencyKind;
    let mut add = |image: &str, kind: DependencyKind| {
        if let Ok(r) = Reference::parse(image) {
            let dep = slipway_store::Dependency {
                tenant: tenant.to_string(),
                task: task.to_string(),
                image: r.tagged(),
                kind,
                digest: r.digest.clone().unwrap_or_default(),
            };
            if !deps
                .iter()
                .any(|x: &slipway_store::Dependency| x.image == dep.image && x.kind == dep.kind)
            {
                deps.push(dep);
            }
        }
    };
    for set in &report.dependencies {
        if let Some(rt) = &set.runtime {
            add(rt, DependencyKind::Runtime);
        }
        for b in &set.buildtime {
            add(b, DependencyKind::Buildtime);
        }
    }
    if let Err(e) = d.store.set_dependencies(tenant, task, &deps).await {
        tracing::warn!(task, error = %e, "recording the task's dependencies failed");
    }
}

fn completion(report: &RunReport) -> Completion {
    let status = if report.succeeded {
        RunStatus::Succeeded
    } else if report.canceled {
        RunStatus::Canceled
    } else if report.timed_out {
        RunStatus::Timeout
    } else if report.steps.is_empty() && !report.over_limit {
        RunStatus::Error
    } else {
        RunStatus::Failed
    };
    use slipway_api::results::{ImageDependency, ImageRef};
    let dependencies: Vec<ImageDependency> = report
        .dependencies
        .iter()
        .flat_map(|d| {
            d.images.iter().map(move |image| ImageDependency {
                image: ImageRef::of(image),
                runtime_dependency: d.runtime.as_deref().map(ImageRef::of),
                buildtime_dependency: d.buildtime.iter().map(|b| ImageRef::of(b)).collect(),
                platform: d.platform.clone(),
            })
        })
        .collect();
    let output_images = report.output_images.clone();
    Completion {
        status: Some(status),
        output_images,
        image_dependencies: dependencies,
        error_message: report.error.clone(),
        steps: None,
    }
}
