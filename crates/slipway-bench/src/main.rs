//! `cargo run --release -p slipway-bench`: times `slipway exec` against a shell script
//! of docker CLI calls doing the same work and against the engine's floor (the bare API
//! calls), all in this one run on this machine, and prints the ratios with the goals.
//! Needs the test bed (`scripts/testbed.sh`) and a release build of `slipway`.
//!
//! `slipway-bench runner` (the default) measures `slipway exec`; `slipway-bench daemon`
//! measures the queue and the daemon; `slipway-bench triggers` measures tasks and
//! triggers at 1,000 and 10,000 tasks; `slipway-bench builds` measures builds on
//! BuildKit and the classic builder against the docker CLI; `slipway-bench fleet`
//! measures daemons sharing PostgreSQL and Azurite; `slipway-bench dashboard` measures
//! the web dashboard's runs page and live log; `slipway-bench webhooks` measures outgoing
//! webhook deliveries; `slipway-bench floods` measures `/healthz` during a hostile
//! tenant's floods; `slipway-bench az` measures the real Azure CLI against `slipway
//! build` and the log's way to `az`; `slipway-bench all` does all but the fleet and az.

mod az;
mod builds;
mod daemon;
mod dashboard;
mod fleet;
mod floods;
mod triggers;
mod webhooks;

use anyhow::{bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub(crate) const ROUNDS: usize = 3;

/// Prints a result line (the only place the benchmark writes to stdout).
pub(crate) fn say(line: String) {
    println!("{line}");
}

/// Prints progress for long steps, to stderr.
pub(crate) fn progress(line: String) {
    eprintln!("{line}");
}

fn main() -> Result<()> {
    let image = std::env::var("SLIPWAY_TEST_BASE_IMAGE").unwrap_or_else(|_| "slipway-busybox:latest".into());
    let slipway = slipway_binary()?;
    let which = std::env::args().nth(1).unwrap_or_else(|| "runner".into());
    match which.as_str() {
        "runner" => runner(&slipway, &image),
        "daemon" => daemon::run(&slipway, &image),
        "triggers" => triggers::run(&slipway),
        "builds" => builds::run(&slipway, &image),
        "fleet" => fleet::run(&slipway, &image),
        "az" => az::run(&slipway, &image),
        "dashboard" => dashboard::run(&slipway, &image),
        "webhooks" => webhooks::run(&slipway, &image),
        "floods" => floods::run(&slipway, &image),
        "all" => runner(&slipway, &image)
            .and_then(|_| daemon::run(&slipway, &image))
            .and_then(|_| triggers::run(&slipway))
            .and_then(|_| builds::run(&slipway, &image))
            .and_then(|_| dashboard::run(&slipway, &image))
            .and_then(|_| webhooks::run(&slipway, &image))
            .and_then(|_| floods::run(&slipway, &image)),
        other => bail!("unknown benchmark {other:?}: use runner, daemon, triggers, builds, fleet, az, dashboard, webhooks, floods or all"),
    }
}

fn runner(slipway: &Path, image: &str) -> Result<()> {
    let slipway = slipway.to_path_buf();
    let image = image.to_string();
    let rt = tokio::runtime::Runtime::new()?;
    let docker = bollard::Docker::connect_with_defaults()?;
    rt.block_on(docker.ping())
        .context("the Docker engine is not reachable; run scripts/testbed.sh")?;
    let work = tempfile::tempdir()?;

    println!("slipway benchmark: median of {ROUNDS} rounds, image {image}\n");
    let mut rows = Vec::new();

    // (a) 10 sequential trivial steps.
    let seq_task = task(
        work.path(),
        "seq.yaml",
        &(0..10)
            .map(|i| format!("  - id: s{i}\n    cmd: {image} true\n"))
            .collect::<String>(),
    );
    let a_floor = median(|| rt.block_on(floor(&docker, &image, 10, false, &["true"])))?;
    let a_cli = median(|| {
        cli_script(&format!("set -e; n=bench-cli-$$; docker network create $n >/dev/null; for i in $(seq 10); do docker run --rm --network $n {image} true; done; docker network rm $n >/dev/null"))
    })?;
    let a_slipway = median(|| exec(&slipway, &seq_task, work.path(), &[]))?;
    let a_shared = median(|| {
        exec(
            &slipway,
            &seq_task,
            work.path(),
            &["--network-mode", "shared", "--sandbox-image", &image],
        )
    })?;
    rows.push(Row::new("(a) 10 sequential steps", "floor", a_floor, a_slipway, 1.05));
    rows.push(Row::new("(a) vs docker CLI", "cli", a_cli, a_slipway, f64::NAN));
    rows.push(Row::new("(a) shared network mode", "floor", a_floor, a_shared, 1.05));

    // (b) 8 parallel `sleep 1` steps.
    let par_task = task(
        work.path(),
        "par.yaml",
        &(0..8)
            .map(|i| format!("  - id: p{i}\n    cmd: {image} sleep 1\n    when: [\"-\"]\n"))
            .collect::<String>(),
    );
    let b_floor = median(|| rt.block_on(floor(&docker, &image, 8, true, &["sleep", "1"])))?;
    let b_cli = median(|| {
        cli_script(&format!("set -e; n=bench-cli-$$; docker network create $n >/dev/null; for i in $(seq 8); do docker run --rm --network $n {image} sleep 1 & done; wait; docker network rm $n >/dev/null"))
    })?;
    let b_slipway = median(|| exec(&slipway, &par_task, work.path(), &[]))?;
    rows.push(Row::new("(b) 8 parallel sleep 1", "floor", b_floor, b_slipway, 1.05));
    rows.push(Row::new("(b) vs docker CLI", "cli", b_cli, b_slipway, f64::NAN));

    // (c) a build of a context of 20,000 small files.
    let ctx = work.path().join("ctx");
    make_context(&ctx, 20_000, &image)?;
    let build_task = task(work.path(), "build.yaml", "  - build: -t slipway-bench:latest --no-cache .\n");
    let mut rss_mib: f64 = 0.0;
    let c_slipway = median(|| {
        let (secs, rss) = exec_measured(&slipway, &build_task, &ctx, &[])?;
        rss_mib = rss_mib.max(rss);
        Ok(secs)
    })?;
    let c_cli = median(|| {
        cli_script(&format!(
            "docker build -q --no-cache -t slipway-bench-cli:latest {} >/dev/null",
            ctx.display()
        ))
    })?;
    rows.push(Row::new("(c) build of 20,000 files", "cli", c_cli, c_slipway, 1.05));

    println!(
        "{:<28} {:>10} {:>10} {:>8} {:>7}  result",
        "case", "baseline", "slipway", "ratio", "goal"
    );
    for r in &rows {
        r.print();
    }
    println!(
        "\nslipway peak resident memory during (c): {rss_mib:.1} MiB (goal < 100 MiB): {}",
        if rss_mib < 100.0 { "met" } else { "MISSED" }
    );
    println!(
        "(a) per step: floor {:.3} s, slipway {:.3} s, shared mode {:.3} s",
        a_floor / 10.0,
        a_slipway / 10.0,
        a_shared / 10.0
    );
    Ok(())
}

pub(crate) struct Row {
    name: &'static str,
    baseline_name: &'static str,
    baseline: f64,
    ours: f64,
    goal: f64,
}

impl Row {
    pub(crate) fn new(name: &'static str, baseline_name: &'static str, baseline: f64, ours: f64, goal: f64) -> Row {
        Row {
            name,
            baseline_name,
            baseline,
            ours,
            goal,
        }
    }
    pub(crate) fn print(&self) {
        let ratio = self.ours / self.baseline;
        let (goal, verdict) = if self.goal.is_nan() {
            ("-".to_string(), "info")
        } else {
            (format!("{:.2}", self.goal), if ratio <= self.goal { "met" } else { "MISSED" })
        };
        println!(
            "{:<28} {:>8.2} s {:>8.2} s {:>7.2}x {:>7}  {verdict} (vs {})",
            self.name, self.baseline, self.ours, ratio, goal, self.baseline_name
        );
    }
}

fn slipway_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("SLIPWAY_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let p = me.with_file_name("slipway");
    if !p.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p slipway-cli) or set SLIPWAY_BIN",
            p.display()
        );
    }
    Ok(p)
}

pub(crate) fn task(dir: &Path, name: &str, steps: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("steps:\n{steps}")).unwrap();
    p
}

pub(crate) fn median(f: impl FnMut() -> Result<f64>) -> Result<f64> {
    median_of(ROUNDS, f)
}

/// The median of `rounds` measurements.
pub(crate) fn median_of(rounds: usize, mut f: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut v = Vec::new();
    for _ in 0..rounds {
        v.push(f()?);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(v[rounds / 2])
}

pub(crate) fn exec(slipway: &Path, task: &Path, context: &Path, extra: &[&str]) -> Result<f64> {
    exec_measured(slipway, task, context, extra).map(|(secs, _)| secs)
}

/// Runs `slipway exec` and returns its wall time and its own peak resident memory (MiB).
#[allow(unsafe_code)]
fn exec_measured(slipway: &Path, task: &Path, context: &Path, extra: &[&str]) -> Result<(f64, f64)> {
    let start = Instant::now();
    let child = Command::new(slipway)
        .arg("exec")
        .args(extra)
        .arg("-f")
        .arg(task)
        .arg(context)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only into `status` and `usage`, which we own.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    if pid < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("slipway exec -f {} failed", task.display());
    }
    Ok((secs, usage.ru_maxrss as f64 / 1024.0))
}

pub(crate) fn cli_script(script: &str) -> Result<f64> {
    let start = Instant::now();
    let out = Command::new("sh").arg("-c").arg(script).output()?;
    if !out.status.success() {
        bail!("docker CLI baseline failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The engine's floor: network create, then per container create/start/wait/remove.
async fn floor(docker: &bollard::Docker, image: &str, n: usize, parallel: bool, cmd: &[&str]) -> Result<f64> {
    let start = Instant::now();
    let net = format!("bench-floor-{}", std::process::id());
    docker
        .create_network(NetworkCreateRequest {
            name: net.clone(),
            driver: Some("bridge".into()),
            ..Default::default()
        })
        .await?;
    let one = |i: usize| {
        let docker = docker.clone();
        let net = net.clone();
        let image = image.to_string();
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        async move {
            let name = format!("{net}-{i}");
            let body = ContainerCreateBody {
                image: Some(image),
                cmd: Some(cmd),
                host_config: Some(HostConfig {
                    network_mode: Some(net),
                    ..Default::default()
                }),
                ..Default::default()
            };
            docker
                .create_container(Some(CreateContainerOptionsBuilder::new().name(&name).build()), body)
                .await?;
            docker.start_container(&name, None).await?;
            let _ = docker.wait_container(&name, None).next().await;
            docker
                .remove_container(&name, Some(RemoveContainerOptionsBuilder::new().force(true).build()))
                .await?;
            Ok::<_, anyhow::Error>(())
        }
    };
    if parallel {
        let results = futures_util::future::join_all((0..n).map(one)).await;
        results.into_iter().collect::<Result<Vec<_>>>()?;
    } else {
        for i in 0..n {
            one(i).await?;
        }
    }
    docker.remove_network(&net).await?;
    Ok(start.elapsed().as_secs_f64())
}

pub(crate) fn make_context(dir: &Path, files: usize, image: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("Dockerfile"), format!("FROM {image}\nCOPY . /ctx\nRUN ls /ctx | wc -l\n"))?;
    for i in 0..files {
        let sub = dir.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&sub)?;
        }
        std::fs::write(sub.join(format!("f{i}.txt")), format!("file {i}\n"))?;
    }
    Ok(())
}
