//! The triggers' benchmark: with 10,000 tasks, 10,000 timers and 50,000 tracked
//! dependencies, the time from a base image notification to its dependents' runs being
//! queued, the scheduler's lateness firing 10,000 timers due the same minute, and how
//! the notification cost grows from 1,000 to 10,000 tasks.
//!
//! Tasks and dependencies are written straight into the daemon's database before it
//! starts (the API would take minutes for 10,000); everything measured goes through the
//! real daemon process. The daemon runs with concurrency 0, so runs are queued, not run.

use anyhow::{bail, Result};
use slipway_api::results::DependencyKind;
use slipway_store::{Dependency, SystemClock, TaskRecord};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOT: &str = "bench.example.com/hot-base:1";
const DEPENDENTS: usize = 10;

pub fn run(slipway: &Path) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let small = rt.block_on(measure(slipway, 1_000, false))?;
    let large = rt.block_on(measure(slipway, 10_000, true))?;
    crate::say(format!(
        "base image notification -> {DEPENDENTS} dependent runs queued: {:.1} ms with 1,000 tasks, {:.1} ms with 10,000 tasks (goal <= 100 ms): {}",
        small.notify_ms,
        large.notify_ms,
        if large.notify_ms <= 100.0 { "met" } else { "MISSED" }
    ));
    crate::say(format!(
        "cost growth from 1,000 to 10,000 tasks for the same {DEPENDENTS} dependents: x{:.2} (goal: about x1, growing with affected tasks, not the total): {}",
        large.notify_ms / small.notify_ms,
        if large.notify_ms / small.notify_ms < 2.0 { "met" } else { "MISSED" }
    ));
    if let Some(late) = large.timer_late_ms {
        crate::say(format!(
            "10,000 timers due the same minute: all queued {late:.0} ms after the minute (goal <= 1,000 ms): {}",
            if late <= 1000.0 { "met" } else { "MISSED" }
        ));
    }
    Ok(())
}

struct Figures {
    notify_ms: f64,
    timer_late_ms: Option<f64>,
}

async fn seed(db: &str, tasks: usize, with_timers: bool) -> Result<()> {
    let store = slipway_store::open(db, Arc::new(SystemClock)).await?;
    for i in 0..tasks {
        let name = format!("bench-task-{i:05}");
        let timers = if with_timers {
            serde_json::json!([{"name": "every-minute", "schedule": "* * * * *"}])
        } else {
            serde_json::json!([])
        };
        let spec = serde_json::from_value(serde_json::json!({
            "name": name, "cmd": "slipway-busybox true", "timers": timers,
            "baseImageTrigger": {"enabled": true, "type": "Runtime"},
        }))?;
        store
            .put_task(
                &TaskRecord {
                    tenant: "default".into(),
                    name: name.clone(),
                    spec,
                    enabled: true,
                    create_time: 0,
                    last_updated_time: 0,
                },
                true,
            )
            .await?;
        // Five dependencies each; the first ten tasks depend on the hot image.
        let mut deps: Vec<Dependency> = (0..5)
            .map(|k| Dependency {
                tenant: "default".into(),
                task: name.clone(),
                image: format!("bench.example.com/base-{}:{k}", (i * 5 + k) % 2000),
                kind: if k == 0 {
                    DependencyKind::Runtime
                } else {
                    DependencyKind::Buildtime
                },
                digest: "sha256:old".into(),
            })
            .collect();
        if i < DEPENDENTS {
            deps[0] = Dependency {
                tenant: "default".into(),
                task: name.clone(),
                image: HOT.into(),
                kind: DependencyKind::Runtime,
                digest: "sha256:old".into(),
            };
        }
        store.set_dependencies("default", &name, &deps).await?;
    }
    Ok(())
}

struct Daemon(Child, String);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

fn start(slipway: &Path, dir: &Path, db: &str) -> Result<Daemon> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(dir.join("serve.log"))?;
    let child = Command::new(slipway)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--concurrency",
            "0",
            "--database",
            db,
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .env("SLIPWAY_POLL_INTERVAL_SECONDS", "0")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Command::new("curl")
        .args(["-fsS", &format!("{url}/healthz")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?
        .success()
    {
        if Instant::now() > deadline {
            bail!("the daemon did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Daemon(child, url))
}

fn envelope(digest: &str) -> serde_json::Value {
    serde_json::json!({"events": [{
        "action": "push",
        "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": digest, "repository": "hot-base", "tag": "1"},
        "request": {"host": "bench.example.com"}
    }]})
}

async fn measure(slipway: &Path, tasks: usize, timers: bool) -> Result<Figures> {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    let seeding = Instant::now();
    seed(&db, tasks, timers).await?;
    crate::progress(format!(
        "seeded {tasks} tasks and {} dependencies in {:.1} s",
        tasks * 5,
        seeding.elapsed().as_secs_f64()
    ));
    let daemon = start(slipway, dir.path(), &db)?;
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    for round in 0..7 {
        let digest = format!("sha256:{:064x}", round + 1);
        let start = Instant::now();
        let resp: serde_json::Value = client
            .post(format!("{}/v1/registry/notifications", daemon.1))
            .json(&envelope(&digest))
            .send()
            .await?
            .json()
            .await?;
        let elapsed = start.elapsed().as_secs_f64() * 1000.0;
        let queued = resp["runs"].as_array().map(|a| a.len()).unwrap_or(0);
        if queued != DEPENDENTS {
            bail!("a notification queued {queued} runs, expected {DEPENDENTS}: {resp}");
        }
        samples.push(elapsed);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let notify_ms = samples[samples.len() / 2];
    let timer_late_ms = if timers { Some(timer_lateness(&db, tasks).await?) } else { None };
    drop(daemon);
    Ok(Figures { notify_ms, timer_late_ms })
}

/// Waits for the next minute; returns how long after it the last of `n` timer runs was queued.
async fn timer_lateness(db: &str, n: usize) -> Result<f64> {
    let pool = sqlx::SqlitePool::connect(db).await?;
    let now = chrono::Utc::now().timestamp_millis();
    // Skip a minute that starts too soon for the daemon to have read its timers.
    let mut minute = (now / 60_000 + 1) * 60_000;
    if minute - now < 5_000 {
        minute += 60_000;
    }
    crate::progress(format!("waiting {:.0} s for the next minute…", (minute - now) as f64 / 1000.0));
    let deadline = Instant::now() + Duration::from_millis((minute - now) as u64 + 30_000);
    loop {
        let counted = count_timer_runs(&pool, minute).await?;
        if counted.0 >= n {
            return Ok((counted.1 - minute) as f64);
        }
        if Instant::now() > deadline {
            bail!("only {} of {n} timer runs were queued 30 s after the minute", counted.0);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn count_timer_runs(pool: &sqlx::SqlitePool, minute: i64) -> Result<(usize, i64)> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, COALESCE(MAX(create_time), 0) AS last FROM runs WHERE timer_trigger IS NOT NULL AND create_time >= ?",
    )
    .bind(minute)
    .fetch_one(pool)
    .await?;
    Ok((row.try_get::<i64, _>("n")? as usize, row.try_get("last")?))
}
