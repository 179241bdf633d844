//! `slipway-bench fleet`: daemons sharing PostgreSQL and Azurite (from the test bed):
//! claims per second on PostgreSQL, 200 trivial runs on one against two worker nodes,
//! and how long a log line written on a worker node takes to reach a follower on the
//! API node.

use crate::daemon::{claim_throughput_on, Daemon};
use crate::{progress, say};
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use std::path::Path;
use std::time::{Duration, Instant};

const RUNS: usize = 200;

pub fn run(slipway: &Path, image: &str) -> Result<()> {
    let admin = std::env::var("SLIPWAY_TEST_POSTGRES").context("SLIPWAY_TEST_POSTGRES is not set; run scripts/testbed.sh")?;
    let azurite = std::env::var("SLIPWAY_TEST_AZURITE").context("SLIPWAY_TEST_AZURITE is not set; run scripts/testbed.sh")?;
    let rt = tokio::runtime::Runtime::new()?;
    say("slipway fleet benchmark (PostgreSQL and Azurite from the test bed)\n".into());

    let db = fresh_database(&rt, &admin, "slipway_bench_claims")?;
    let (enqueue, claims) = rt.block_on(claim_throughput_on(&db, 2_000, 4))?;
    say(format!(
        "queue on PostgreSQL, 2,000 runs, 4 instant workers: {enqueue:.0} enqueues/s, {claims:.0} claims+completions/s"
    ));

    let one = throughput(&rt, slipway, image, &admin, &azurite, 1)?;
    let two = throughput(&rt, slipway, image, &admin, &azurite, 2)?;
    // On one machine both worker nodes share its engine and cores: the ratio shows the
    // queue is no bottleneck, not what separate machines would give.
    say(format!(
        "{RUNS} trivial runs: 1 worker node {one:.2} runs/s, 2 worker nodes {two:.2} runs/s, ratio {:.2}x (same engine and cores)",
        two / one
    ));

    let latencies = log_latency(&rt, slipway, image, &admin, &azurite)?;
    let median = latencies[latencies.len() / 2];
    say(format!(
        "log line written on a worker node -> seen by a follower on the API node: median {:.0} ms, max {:.0} ms over {} lines (goal median <= 200 ms): {}",
        median * 1000.0,
        latencies.last().copied().unwrap_or_default() * 1000.0,
        latencies.len(),
        if median <= 0.2 { "met" } else { "MISSED" }
    ));
    Ok(())
}

fn fresh_database(rt: &tokio::runtime::Runtime, admin: &str, name: &str) -> Result<String> {
    rt.block_on(async {
        let conn = sqlx::PgPool::connect(admin).await?;
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&conn)
            .await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&conn)
            .await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(format!("{}/{name}", admin.rsplit_once('/').context("a database URL")?.0))
}

fn fleet_env(azurite: &str, node: &str, key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SLIPWAY_NODE", node.to_string()),
        ("SLIPWAY_BLOB_STORE", "azure://slipway".into()),
        ("SLIPWAY_BLOB_STORE_OPTIONS", "azure_storage_use_emulator=true".into()),
        ("AZURITE_BLOB_STORAGE_URL", azurite.trim_end_matches("/devstoreaccount1").into()),
        ("SLIPWAY_FLEET_KEY", key.to_string()),
    ]
}

/// An API node and `workers` worker nodes (two workers each) on a fresh database.
fn fleet(
    rt: &tokio::runtime::Runtime,
    slipway: &Path,
    admin: &str,
    azurite: &str,
    workers: usize,
    name: &str,
) -> Result<(Vec<Daemon>, Vec<tempfile::TempDir>)> {
    let db = fresh_database(rt, admin, name)?;
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let mut dirs = Vec::new();
    let mut daemons = Vec::new();
    for i in 0..=workers {
        let dir = tempfile::tempdir()?;
        let node = if i == 0 { "api".to_string() } else { format!("w{i}") };
        daemons.push(Daemon::start_with(
            slipway,
            dir.path(),
            &db,
            if i == 0 { 0 } else { 2 },
            &fleet_env(azurite, &node, &key),
        )?);
        dirs.push(dir);
    }
    Ok((daemons, dirs))
}

async fn queue(client: &reqwest::Client, url: &str, task: &str) -> Result<String> {
    let body =
        serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": base64::engine::general_purpose::STANDARD.encode(task)});
    let created: serde_json::Value = client.post(format!("{url}/v1/runs")).json(&body).send().await?.json().await?;
    Ok(created["runId"].as_str().context("no run id")?.to_string())
}

/// Runs per second for `RUNS` trivial runs queued at once on the API node.
fn throughput(rt: &tokio::runtime::Runtime, slipway: &Path, image: &str, admin: &str, azurite: &str, workers: usize) -> Result<f64> {
    progress(format!("{RUNS} runs on {workers} worker node(s)…"));
    let (daemons, _dirs) = fleet(rt, slipway, admin, azurite, workers, &format!("slipway_bench_fleet_{workers}"))?;
    let api = daemons[0].url.clone();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let task = format!("steps:\n  - cmd: {image} true\n");
        let start = Instant::now();
        for _ in 0..RUNS {
            queue(&client, &api, &task).await?;
        }
        loop {
            let runs: serde_json::Value = client.get(format!("{api}/v1/runs?top={RUNS}")).send().await?.json().await?;
            let all = runs["value"].as_array().context("a list of runs")?;
            let done = all.iter().filter(|r| r["status"] == "Succeeded").count();
            if let Some(bad) = all.iter().find(|r| matches!(r["status"].as_str(), Some("Failed" | "Error"))) {
                bail!("a run did not succeed: {bad}");
            }
            if done == RUNS {
                break;
            }
            if start.elapsed() > Duration::from_secs(900) {
                bail!("{done} of {RUNS} runs done after 15 minutes");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(RUNS as f64 / start.elapsed().as_secs_f64())
    })
}

/// For each line of a run on the worker node: when a follower on the API node got it,
/// less when a follower on the worker node (which writes it) got it.
fn log_latency(rt: &tokio::runtime::Runtime, slipway: &Path, image: &str, admin: &str, azurite: &str) -> Result<Vec<f64>> {
    progress("cross-node log latency…".into());
    let (daemons, _dirs) = fleet(rt, slipway, admin, azurite, 1, "slipway_bench_fleet_logs")?;
    let (api, worker) = (daemons[0].url.clone(), daemons[1].url.clone());
    rt.block_on(async {
        let client = reqwest::Client::new();
        let task = format!("steps:\n  - cmd: {image} sh -c 'for i in $(seq 1 40); do echo line-$i; sleep 0.25; done'\n");
        let id = queue(&client, &api, &task).await?;
        let follow = |url: String| {
            let (client, id) = (client.clone(), id.clone());
            tokio::spawn(async move {
                use futures_util::StreamExt;
                let mut seen = std::collections::HashMap::new();
                let mut text = String::new();
                let resp = client.get(format!("{url}/v1/runs/{id}/log?follow=true")).send().await?;
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    text.push_str(&String::from_utf8_lossy(&chunk?));
                    let now = Instant::now();
                    for l in text.lines() {
                        if let Some(n) = l.split("| line-").nth(1) {
                            seen.entry(n.to_string()).or_insert(now);
                        }
                    }
                }
                Ok::<_, anyhow::Error>(seen)
            })
        };
        // The worker node's own follower sees a line as soon as it is written.
        let on_api = follow(api.clone());
        let on_worker = follow(worker.clone());
        let (a, w) = (on_api.await??, on_worker.await??);
        let mut lat: Vec<f64> = w
            .iter()
            .filter_map(|(n, tw)| a.get(n).map(|ta| ta.saturating_duration_since(*tw).as_secs_f64()))
            .collect();
        if lat.len() < 30 {
            bail!("only {} lines were seen on both nodes", lat.len());
        }
        lat.sort_by(|x, y| x.total_cmp(y));
        Ok(lat)
    })
}
