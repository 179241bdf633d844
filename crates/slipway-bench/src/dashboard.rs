//! `slipway-bench dashboard`: the runs page with 10,000 runs in the database (time to
//! answer and weight, against the API's JSON list of the same page as the baseline),
//! and how long a line a step writes takes to reach an open run page's event stream
//! (against the API's followed log, the baseline, read at the same time).

use crate::daemon::{verdict, Daemon};
use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use slipway_store::{Completion, NewRun, RunStatus, RunType, Store, SystemClock};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 10_000;
const REQUESTS: usize = 40;

pub fn run(slipway: &Path, image: &str) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let work = tempfile::tempdir()?;
    let db = format!("sqlite://{}", work.path().join("slipway.db").display());
    crate::progress(format!("dashboard: filling the queue with {RUNS} finished runs"));
    rt.block_on(fill(&db, RUNS))?;
    // No token, on loopback: the dashboard asks for no sign-in.
    let daemon = Daemon::start_with(slipway, work.path(), &db, 2, &[])?;
    crate::say(format!(
        "dashboard: {RUNS} runs in SQLite; median and slowest of {REQUESTS} requests each"
    ));
    let client = reqwest::Client::new();
    for (what, page, baseline) in [
        ("runs page (newest 50)", "/", "/v1/runs?top=50"),
        ("runs page, one task", "/?task=bench-task-7", "/v1/runs?top=50&task=bench-task-7"),
        ("runs page, image filter", "/?image=app-3", "/v1/runs?top=50&image=app-3"),
        (
            "runs page, older page",
            "/?before=bench-05000",
            "/v1/runs?top=50&skipToken=bench-05000",
        ),
    ] {
        let (ours, bytes) = rt.block_on(timed_gets(&client, &daemon.url, page))?;
        let (theirs, _) = rt.block_on(timed_gets(&client, &daemon.url, baseline))?;
        let (median, slowest) = (ours[ours.len() / 2], ours[ours.len() - 1]);
        let base = theirs[theirs.len() / 2];
        crate::say(format!(
            "  {what:<28} {:>6.1} ms (slowest {:>5.1} ms), {:>5.1} KB; API JSON {:>5.1} ms: ratio {:.2}x; goal <= 50 ms and <= 100 KB: {}",
            median * 1e3,
            slowest * 1e3,
            bytes as f64 / 1000.0,
            base * 1e3,
            median / base,
            verdict(median <= 0.050 && bytes <= 100_000)
        ));
    }
    let (page, api) = rt.block_on(log_latency(&client, &daemon.url, image))?;
    let pct = |v: &[f64], p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize] * 1e3;
    crate::say(format!(
        "  log line to open run page    median {:>5.1} ms, p95 {:>5.1} ms over {} lines; API followed log median {:>5.1} ms, p95 {:>5.1} ms; goal <= 100 ms: {}",
        pct(&page, 0.5),
        pct(&page, 0.95),
        page.len(),
        pct(&api, 0.5),
        pct(&api, 0.95),
        verdict(pct(&page, 0.95) <= 100.0)
    ));
    crate::say("  (a line's time is read from /proc/uptime, in 10 ms steps, by the step and by the reader)".into());
    Ok(())
}

/// Finished runs of 20 tasks with steps, images and every kind of trigger.
async fn fill(db: &str, n: usize) -> Result<()> {
    let store: Arc<dyn Store> = slipway_store::open(db, Arc::new(SystemClock)).await?;
    for i in 0..n {
        let task = format!("bench-task-{}", i % 20);
        let mut triggers = slipway_store::Triggers::default();
        match i % 4 {
            1 => {
                triggers.source = Some(serde_json::from_value(
                    serde_json::json!({"commitId": format!("{i:040x}"), "branchName": "main", "repositoryUrl": "https://git.example/app.git", "providerType": "github"}),
                )?)
            }
            2 => {
                triggers.timer = Some(serde_json::from_value(
                    serde_json::json!({"timerTriggerName": "nightly", "scheduleOccurrence": "2026-11-23T02:30:00Z"}),
                )?)
            }
            3 => {
                triggers.image_update = Some(serde_json::from_value(
                    serde_json::json!({"images": [{"registry": "registry.example", "repository": "base", "tag": "1", "digest": "sha256:abc"}]}),
                )?)
            }
            _ => {}
        }
        store
            .enqueue(NewRun {
                tenant: "default".into(),
                cache_namespace: None,
                id: format!("bench-{i:05}"),
                run_type: RunType::QuickRun,
                task: Some(task),
                platform: "linux/amd64".into(),
                request: serde_json::from_value(serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": ""}))
                    .expect("a request"),
                image_names: vec![format!("registry.example/app-{}:{i}", i % 10)],
                triggers,
            })
            .await?;
    }
    let steps: Vec<slipway_api::results::StepView> = serde_json::from_value(serde_json::json!([
        {"id": "build", "when": [], "status": "Succeeded", "startTime": "2026-11-23T10:00:00.000Z", "durationSeconds": 12.5, "executions": 1},
        {"id": "push", "when": ["build"], "status": "Succeeded", "startTime": "2026-11-23T10:00:12.500Z", "durationSeconds": 2.1, "executions": 1},
    ]))?;
    let mut done = 0;
    while done < n {
        let claimed = store.claim("bench-filler", 200, Duration::from_secs(60), 0).await?;
        if claimed.is_empty() {
            bail!("only {done} of {n} runs could be claimed");
        }
        for r in claimed {
            let status = if done % 7 == 0 { RunStatus::Failed } else { RunStatus::Succeeded };
            store
                .complete(
                    &r.id,
                    "bench-filler",
                    r.attempt,
                    Completion {
                        status: Some(status),
                        output_images: vec![slipway_api::results::OutputImage {
                            registry: "registry.example".into(),
                            repository: "app".into(),
                            tag: "1".into(),
                            digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
                            ..Default::default()
                        }],
                        steps: Some(steps.clone()),
                        ..Default::default()
                    },
                )
                .await?;
            done += 1;
        }
    }
    Ok(())
}

/// Each request's seconds (sorted) and the body's size.
async fn timed_gets(client: &reqwest::Client, url: &str, path: &str) -> Result<(Vec<f64>, usize)> {
    let mut times = Vec::new();
    let mut size = 0;
    for i in 0..REQUESTS + 3 {
        let start = Instant::now();
        let r = client.get(format!("{url}{path}")).send().await?;
        if !r.status().is_success() {
            bail!("GET {path}: {}", r.status());
        }
        let body = r.bytes().await?;
        let t = start.elapsed().as_secs_f64();
        // The first few warm the caches.
        if i >= 3 {
            times.push(t);
        }
        size = body.len();
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((times, size))
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Latencies (s) of `up=` lines read from the run page's event stream and from the
/// API's followed log, both open while the step writes them.
async fn log_latency(client: &reqwest::Client, url: &str, image: &str) -> Result<(Vec<f64>, Vec<f64>)> {
    use base64::Engine as _;
    let task = format!(
        "version: v1.1.0\nsteps:\n  - id: clock\n    cmd: {image} sh -c 'i=0; while [ $i -lt 60 ]; do i=$((i+1)); read up idle < /proc/uptime; echo up=$up; sleep 0.1; done'\n"
    );
    let body =
        serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": base64::engine::general_purpose::STANDARD.encode(task)});
    let run: serde_json::Value = client.post(format!("{url}/v1/runs")).json(&body).send().await?.json().await?;
    let id = run["runId"].as_str().context("no run id")?.to_string();
    let page = tokio::spawn(read_stream(client.get(format!("{url}/live/runs/{id}")).send()));
    let api = tokio::spawn(read_stream(client.get(format!("{url}/v1/runs/{id}/log?follow=true")).send()));
    let (page, api) = (page.await??, api.await??);
    if page.len() < 30 || api.len() < 30 {
        bail!(
            "too few lines arrived ({} on the page's stream, {} on the API's)",
            page.len(),
            api.len()
        );
    }
    Ok((page, api))
}

/// Reads a stream until it ends, timing each `up=` value it carries on arrival.
async fn read_stream(send: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>) -> Result<Vec<f64>> {
    let mut stream = send.await?.bytes_stream();
    let mut seen = Vec::new();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(Some(chunk)) = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), stream.next()).await {
        let now = uptime();
        text.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(i) = text.find("up=") {
            let rest = &text[i + 3..];
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
            if end == rest.len() {
                break; // the number may go on in the next chunk
            }
            if let Ok(up) = rest[..end].parse::<f64>() {
                seen.push((now - up).max(0.0));
            }
            text = rest[end..].to_string();
        }
    }
    seen.sort_by(|a, b| a.total_cmp(b));
    Ok(seen)
}
