//! `slipway-bench az`: the real Azure CLI against a daemon (issue 20). `az acr build` of
//! a small context against `slipway build` of the same context through the same daemon
//! (both over HTTPS, both `--no-push`), with `az acr show` as the floor of any `az acr`
//! command; and the time from a step writing a log line to `az acr run` printing it,
//! against a `/v1` follower of the same run as the baseline. Needs the test bed's `az`
//! (`SLIPWAY_TEST_AZ`, set by `scripts/testbed.sh`).

use crate::daemon::verdict;
use crate::{median_of, progress, say, Row};
use anyhow::{bail, Context, Result};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;
const TOKEN: &str = "bench-token";

struct TlsDaemon {
    child: Child,
    url: String,
    ca: PathBuf,
}

impl Drop for TlsDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(slipway: &Path, dir: &Path) -> Result<TlsDaemon> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=slipway-bench", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("openssl")?;
    if !made.status.success() {
        bail!("openssl: {}", String::from_utf8_lossy(&made.stderr));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(dir.join("serve.log"))?;
    let child = Command::new(slipway)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--token", TOKEN, "--data-dir"])
        .arg(dir.join("data"))
        .arg("--database")
        .arg(format!("sqlite://{}", dir.join("slipway.db").display()))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("SLIPWAY_LOCAL_IMAGES", std::env::var("SLIPWAY_TEST_BASE_IMAGE").unwrap_or_default())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()?;
    let d = TlsDaemon {
        child,
        url: format!("https://127.0.0.1:{port}"),
        ca: cert,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the daemon did not start; see {}", dir.join("serve.log").display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(d)
}

/// `az` with its own config dir, trusting the daemon's certificate.
fn az(bin: &Path, config: &Path, ca: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env("AZURE_CONFIG_DIR", config)
        .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
        .env("AZURE_CORE_NO_COLOR", "true")
        .env("REQUESTS_CA_BUNDLE", ca);
    c
}

/// Runs `c` to its end and returns its wall time; it must succeed.
fn timed(mut c: Command, what: &str) -> Result<f64> {
    let start = Instant::now();
    let out = c.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(start.elapsed().as_secs_f64())
}

pub fn run(slipway: &Path, image: &str) -> Result<()> {
    let bin = PathBuf::from(std::env::var("SLIPWAY_TEST_AZ").context("SLIPWAY_TEST_AZ is not set; run scripts/testbed.sh")?);
    let work = tempfile::tempdir()?;
    let d = start(slipway, work.path())?;
    let config = work.path().join("az");
    let base = format!("{}/", d.url);
    for args in [
        &["cloud", "register", "--name", "Slipway", "--endpoint-resource-manager", &base][..],
        &["cloud", "set", "--name", "Slipway"],
        &["login", "--service-principal", "-u", "slipway", "-p", TOKEN, "--tenant", "slipway"],
        &["configure", "--defaults", "acr=slipway"],
    ] {
        timed(az(&bin, &config, &d.ca, args), &format!("az {}", args[..2].join(" ")))?;
    }
    say(format!("az benchmark: median of {ROUNDS} rounds, {}, image {image}\n", d.url));

    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx)?;
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {image}\nCOPY . /ctx/\nRUN echo built\n"))?;
    for i in 0..20 {
        std::fs::write(ctx.join(format!("f{i}.txt")), format!("file {i}\n"))?;
    }
    let ctx_arg = ctx.to_str().context("a UTF-8 temp path")?;
    progress("az acr show, az acr build, slipway build…".into());
    // What any `az acr` command costs: Python, the acr module, the lookups.
    let floor = median_of(ROUNDS, || timed(az(&bin, &config, &d.ca, &["acr", "show"]), "az acr show"))?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        theirs.push(timed(
            az(&bin, &config, &d.ca, &["acr", "build", "--no-push", "-t", "bench-az:1", ctx_arg]),
            "az acr build",
        )?);
        let mut c = Command::new(slipway);
        c.args([
            "build",
            "--no-push",
            "-t",
            "bench-az:1",
            "--server",
            &d.url,
            "--token",
            TOKEN,
            ctx_arg,
        ])
        .env("SSL_CERT_FILE", &d.ca);
        ours.push(timed(c, "slipway build")?);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (ours, theirs) = (med(&mut ours), med(&mut theirs));
    say(format!(
        "{:<28} {:>10} {:>10} {:>8} {:>7}",
        "case", "baseline", "ours", "ratio", "goal"
    ));
    Row::new("az acr build, small", "slipway build", ours, theirs, f64::NAN).print();
    Row::new("  less az acr show", "slipway build", ours, theirs - floor, 1.5).print();
    say(format!("(az acr show alone: {floor:.2} s)"));

    // A long log read back whole: az reads it 4 KiB at a time.
    progress("a long log, read back…".into());
    let (ours, theirs) = long_log(slipway, &bin, &config, &d, image)?;
    Row::new("az acr task logs, 3.5 MB", "slipway logs", ours, theirs, f64::NAN).print();

    let lat = line_latency(&bin, &config, &d, image)?;
    let median = lat[lat.len() / 2];
    say(format!(
        "\nstep log line -> printed by az acr run, less the same line seen by a /v1 follower: median {:.0} ms, max {:.0} ms over {} lines (goal median <= 200 ms; the log blob's HEAD waits for the next line): {}",
        median * 1000.0,
        lat.last().copied().unwrap_or_default() * 1000.0,
        lat.len(),
        verdict(median <= 0.2)
    ));
    Ok(())
}

/// A finished run whose log is 3.5 MB (400,000 short lines), read back whole by `az acr
/// task logs` and by `slipway logs`: the wall time of each.
fn long_log(slipway: &Path, bin: &Path, config: &Path, d: &TlsDaemon, image: &str) -> Result<(f64, f64)> {
    let cmd = format!("{image} seq 1 400000");
    let out = az(bin, config, &d.ca, &["acr", "run", "--cmd", &cmd, "/dev/null", "--no-logs"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let id = text
        .split("Queued a run with ID: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .with_context(|| format!("az acr run printed no run id: {text}"))?
        .to_string();
    let mut wait = Command::new(slipway);
    wait.args(["logs", "-f", &id, "--server", &d.url, "--token", TOKEN])
        .env("SSL_CERT_FILE", &d.ca);
    timed(wait, "slipway logs -f")?;
    let theirs = timed(
        az(bin, config, &d.ca, &["acr", "task", "logs", "--run-id", &id]),
        "az acr task logs",
    )?;
    let mut ours = Command::new(slipway);
    ours.args(["logs", &id, "--server", &d.url, "--token", TOKEN])
        .env("SSL_CERT_FILE", &d.ca);
    Ok((timed(ours, "slipway logs")?, theirs))
}

/// Watches `reader` and records when each `line-N` first appears; sends the run id `az`
/// prints when it queued the run.
fn watch(
    reader: impl std::io::Read + Send + 'static,
    ids: std::sync::mpsc::Sender<String>,
) -> std::thread::JoinHandle<Vec<(String, Instant)>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(reader).lines().map_while(Result::ok) {
            let now = Instant::now();
            if let Some(id) = line.split("Queued a run with ID: ").nth(1) {
                let _ = ids.send(id.trim().to_string());
            }
            if let Some(n) = line.split("line-").nth(1) {
                seen.push((n.trim().to_string(), now));
            }
        }
        seen
    })
}

/// For each line a step writes, how much later `az acr run` printed it than a `/v1`
/// follower of the run saw it.
fn line_latency(bin: &Path, config: &Path, d: &TlsDaemon, image: &str) -> Result<Vec<f64>> {
    progress("az acr run, lines timed…".into());
    let cmd = format!("{image} sh -c 'for i in $(seq 1 20); do echo line-$i; sleep 0.5; done'");
    let mut child = az(bin, config, &d.ca, &["acr", "run", "--cmd", &cmd, "/dev/null"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let out = watch(child.stdout.take().context("stdout")?, tx.clone());
    let err = watch(child.stderr.take().context("stderr")?, tx);
    let id = rx.recv_timeout(Duration::from_secs(60)).context("az acr run printed no run id")?;
    let rt = tokio::runtime::Runtime::new()?;
    let pem = std::fs::read(&d.ca)?;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
        .build()?;
    let followed: Vec<(String, Instant)> = rt.block_on(async {
        use futures_util::StreamExt;
        let resp = client
            .get(format!("{}/v1/runs/{id}/log?follow=true", d.url))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        let mut stream = resp.bytes_stream();
        let (mut text, mut seen) = (String::new(), Vec::new());
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk?));
            let now = Instant::now();
            while let Some(end) = text.find('\n') {
                let line: String = text.drain(..=end).collect();
                if let Some(n) = line.split("line-").nth(1) {
                    seen.push((n.trim().to_string(), now));
                }
            }
        }
        Ok::<_, anyhow::Error>(seen)
    })?;
    let status = child.wait()?;
    if !status.success() {
        bail!("az acr run failed");
    }
    let printed: Vec<(String, Instant)> = out
        .join()
        .map_err(|_| anyhow::anyhow!("a reader panicked"))?
        .into_iter()
        .chain(err.join().map_err(|_| anyhow::anyhow!("a reader panicked"))?)
        .collect();
    let mut lat: Vec<f64> = followed
        .iter()
        .filter_map(|(n, seen)| {
            let (_, shown) = printed.iter().find(|(m, _)| m == n)?;
            Some(shown.saturating_duration_since(*seen).as_secs_f64())
        })
        .collect();
    if lat.len() < 15 {
        bail!("only {} of 20 lines were seen both by az and the follower", lat.len());
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok(lat)
}
