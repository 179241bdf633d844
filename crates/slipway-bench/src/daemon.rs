//! The daemon's benchmark: queue claim throughput with an instant runner, latency from
//! `POST /v1/runs` to the first step starting, and the daemon's peak resident memory
//! while a 1 GiB context is uploaded and built.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use rand::RngCore;
use slipway_store::{Completion, NewRun, RunStatus, RunType, Store, SystemClock};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn run(slipway: &Path, image: &str) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let (enqueue_rate, claim_rate) = rt.block_on(claim_throughput(10_000, 4))?;
    crate::say(format!("queue: enqueued 10,000 runs at {enqueue_rate:.0}/s; claimed and completed them at {claim_rate:.0} runs/s with 4 instant workers (goal >= 2,000/s): {}", verdict(claim_rate >= 2000.0)));

    let work = tempfile::tempdir()?;
    let daemon = Daemon::start(slipway, work.path())?;
    let mut latencies: Vec<f64> = Vec::new();
    for _ in 0..10 {
        latencies.push(rt.block_on(first_step_latency(&daemon.url, image))?);
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = latencies[latencies.len() / 2];
    crate::say(format!(
        "latency from POST /v1/runs to the first step starting on an idle worker: median {:.1} ms, min {:.1} ms, max {:.1} ms (goal <= 50 ms): {}",
        median * 1000.0,
        latencies[0] * 1000.0,
        latencies[latencies.len() - 1] * 1000.0,
        verdict(median <= 0.050)
    ));

    let ctx = work.path().join("big");
    make_big_context(&ctx, 1024, image)?;
    let start = Instant::now();
    let out = Command::new(slipway)
        .args(["build", "--no-push", "-t", "slipway-bench-big:latest", "--server", &daemon.url])
        .arg(&ctx)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !out.success() {
        bail!("the 1 GiB build failed; see {}", work.path().join("serve.log").display());
    }
    let rss = daemon.peak_rss_mib()?;
    crate::say(format!(
        "1 GiB context uploaded and built through the daemon in {:.1} s; daemon peak resident memory {rss:.1} MiB (goal <= 100 MiB): {}",
        start.elapsed().as_secs_f64(),
        verdict(rss <= 100.0)
    ));
    Ok(())
}

/// `met` or `MISSED`, as every goal line ends.
pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

async fn claim_throughput(n: usize, workers: usize) -> Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    claim_throughput_on(&format!("sqlite://{}", dir.path().join("bench.db").display()), n, workers).await
}

/// Enqueues `n` runs, then claims and completes them with `workers` instant workers on
/// the queue at `url`; returns enqueues per second and claims per second.
pub(crate) async fn claim_throughput_on(url: &str, n: usize, workers: usize) -> Result<(f64, f64)> {
    let store = slipway_store::open(url, Arc::new(SystemClock)).await?;
    let start = Instant::now();
    for i in 0..n {
        store
            .enqueue(NewRun {
                tenant: "default".into(),
                cache_namespace: None,
                id: format!("r{i}"),
                run_type: RunType::QuickRun,
                task: None,
                platform: "linux/amd64".into(),
                request: serde_json::from_value(serde_json::json!({"type": "DockerBuildRequest"})).expect("a request"),
                image_names: vec![],
                triggers: Default::default(),
            })
            .await?;
    }
    let enqueue_rate = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store: Arc<dyn Store> = store.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("bench-{w}");
            let mut done = 0usize;
            loop {
                let claimed = store.claim(&name, 1, Duration::from_secs(30), 0).await?;
                let Some(run) = claimed.into_iter().next() else {
                    return Ok::<_, anyhow::Error>(done);
                };
                let ok = store
                    .complete(
                        &run.id,
                        &name,
                        run.attempt,
                        Completion {
                            status: Some(RunStatus::Succeeded),
                            ..Default::default()
                        },
                    )
                    .await?;
                if !ok {
                    bail!("completion of {} was refused", run.id);
                }
                done += 1;
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    if total != n {
        bail!("claimed {total} runs, expected {n}");
    }
    Ok((enqueue_rate, n as f64 / start.elapsed().as_secs_f64()))
}

pub(crate) struct Daemon {
    child: Child,
    pub url: String,
}

impl Daemon {
    fn start(slipway: &Path, dir: &Path) -> Result<Daemon> {
        let db = format!("sqlite://{}", dir.join("slipway.db").display());
        Daemon::start_with(slipway, dir, &db, 2, &[])
    }

    /// A daemon on `database` with `concurrency` workers and these environment variables.
    pub(crate) fn start_with(slipway: &Path, dir: &Path, database: &str, concurrency: u32, envs: &[(&str, String)]) -> Result<Daemon> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(dir.join("serve.log"))?;
        let child = Command::new(slipway)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--concurrency",
                &concurrency.to_string(),
                "--data-dir",
            ])
            .arg(dir.join("data"))
            .arg("--database")
            .arg(database)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if Command::new("curl")
                .args(["-fsS", &format!("{url}/healthz")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the daemon did not start");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Daemon { child, url })
    }

    fn peak_rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .context("no VmHWM")?
            .parse()?;
        Ok(kb / 1024.0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Seconds from sending the request to the log saying the first step is executing.
async fn first_step_latency(url: &str, image: &str) -> Result<f64> {
    use futures_util::StreamExt;
    let task = format!("steps:\n  - cmd: {image} true\n");
    let body =
        serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": base64::engine::general_purpose::STANDARD.encode(task)});
    let client = reqwest::Client::new();
    let start = Instant::now();
    let created: serde_json::Value = client.post(format!("{url}/v1/runs")).json(&body).send().await?.json().await?;
    let id = created["runId"].as_str().context("no run id")?.to_string();
    let mut seen = String::new();
    let elapsed = loop {
        let resp = client
            .get(format!("{url}/v1/runs/{id}/log?follow=true&offset={}", seen.len()))
            .send()
            .await?;
        let mut stream = resp.bytes_stream();
        let mut found = None;
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk?));
            if seen.contains("Executing step ID") {
                found = Some(start.elapsed().as_secs_f64());
                break;
            }
        }
        if let Some(f) = found {
            break f;
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("the run never started a step:\n{seen}");
        }
    };
    // Let the run finish before the next one, so the worker is idle again.
    loop {
        let r: serde_json::Value = client.get(format!("{url}/v1/runs/{id}")).send().await?.json().await?;
        if !matches!(r["status"].as_str(), Some("Queued" | "Started" | "Running")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(elapsed)
}

/// `mib` files of 1 MiB of random bytes (random so that compression cannot shrink them).
fn make_big_context(dir: &Path, mib: usize, image: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("Dockerfile"), format!("FROM {image}\nCOPY . /ctx\n"))?;
    let mut rng = rand::rng();
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..mib {
        rng.fill_bytes(&mut buf);
        std::fs::write(dir.join(format!("blob{i:04}")), &buf)?;
    }
    Ok(())
}
