//! `slipway-bench webhooks`: outgoing webhooks against a real receiver on loopback.
//! How long a push event takes from the push to the receiver, and a run's
//! `run_finished` from the run's end, against the floor of one direct POST to the same
//! receiver measured in this run; how long a delivery takes when its receiver fails
//! twice (retries after 1 s and 2 s); and how fast 2,000 recorded deliveries drain.

use crate::daemon::Daemon;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver got: when, and the event.
type Got = Arc<Mutex<Vec<(Instant, chrono::DateTime<chrono::Utc>, serde_json::Value)>>>;

/// A receiver answering 500 to its first `fail_first` requests, 200 after.
fn receiver(fail_first: usize) -> Result<(u16, Got)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let got: Got = Arc::new(Mutex::new(Vec::new()));
    let shared = got.clone();
    let count = Arc::new(Mutex::new(0usize));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_nodelay(true);
            let (got, count) = (shared.clone(), count.clone());
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + len {
                        continue;
                    }
                    let (at, wall) = (Instant::now(), chrono::Utc::now());
                    let n = {
                        let mut c = count.lock().unwrap();
                        *c += 1;
                        *c
                    };
                    let code = if n <= fail_first { 500 } else { 200 };
                    if let Ok(v) = serde_json::from_slice(&buf[end..end + len]) {
                        if code == 200 {
                            got.lock().unwrap().push((at, wall, v));
                        }
                    }
                    let _ = write!(stream, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
                    buf.drain(..end + len);
                }
            });
        }
    });
    Ok((port, got))
}

fn ms(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize] * 1e3
}

pub fn run(slipway: &Path, image: &str) -> Result<()> {
    let registry = std::env::var("SLIPWAY_TEST_REGISTRY").context("SLIPWAY_TEST_REGISTRY is not set; run scripts/testbed.sh")?;
    let rt = tokio::runtime::Runtime::new()?;
    let work = tempfile::tempdir()?;
    let db = format!("sqlite://{}", work.path().join("slipway.db").display());
    let envs = [
        ("SLIPWAY_ALLOWED_WEBHOOK_HOSTS", "127.0.0.1".to_string()),
        ("SLIPWAY_WEBHOOK_RETRY_SECONDS", "1".to_string()),
        ("SLIPWAY_FILE_SOURCE_DIRS", std::env::temp_dir().display().to_string()),
    ];
    let daemon = Daemon::start_with(slipway, work.path(), &db, 2, &envs)?;
    let client = reqwest::Client::new();
    let (port, got) = receiver(0)?;
    let uri = format!("http://127.0.0.1:{port}/hook");
    crate::say("webhooks: a receiver on loopback; times from the event to its arrival".into());

    // The floor: the same receiver, POSTed directly.
    let mut direct = Vec::new();
    rt.block_on(async {
        for _ in 0..30 {
            let start = Instant::now();
            client.post(&uri).body("{\"action\":\"floor\"}").send().await?;
            direct.push(start.elapsed().as_secs_f64());
        }
        anyhow::Ok(())
    })?;
    direct.sort_by(|a, b| a.total_cmp(b));
    got.lock().unwrap().clear();

    let put = |name: &str, body: serde_json::Value| -> Result<()> {
        rt.block_on(async {
            let r = client
                .put(format!("{}/v1/outgoing-webhooks/{name}", daemon.url))
                .json(&body)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("creating webhook {name}: {}", r.text().await?);
            }
            Ok(())
        })
    };
    put("benchhook", serde_json::json!({"uri": uri, "actions": ["push", "run_finished"]}))?;

    // Pushes: each quick build pushes one tag.
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx)?;
    const BUILDS: usize = 8;
    for i in 0..BUILDS {
        std::fs::write(ctx.join("Dockerfile"), format!("FROM {image}\nRUN echo {i} > /n\n"))?;
        let out = std::process::Command::new(slipway)
            .args(["build", "--server", &daemon.url, "-t", &format!("{registry}/benchhook:{i}")])
            .arg(&ctx)
            .output()?;
        if !out.status.success() {
            bail!("build {i} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < 2 * BUILDS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut push = Vec::new();
    let mut finished = Vec::new();
    for (_, wall, v) in got.lock().unwrap().iter() {
        let since = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| (*wall - t.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0) as f64 / 1e6)
        };
        match v["action"].as_str() {
            Some("push") => push.extend(since(v["timestamp"].as_str().unwrap_or(""))),
            Some("run_finished") => finished.extend(since(v["run"]["finishTime"].as_str().unwrap_or(""))),
            _ => {}
        }
    }
    push.sort_by(|a, b| a.total_cmp(b));
    finished.sort_by(|a, b| a.total_cmp(b));
    let floor = ms(&direct, 0.5);
    crate::say(format!("  direct POST to the receiver (floor)   median {floor:>6.1} ms"));
    crate::say(format!(
        "  push -> delivery                      median {:>6.1} ms, slowest {:>6.1} ms over {} pushes: {:.1}x the floor",
        ms(&push, 0.5),
        ms(&push, 1.0),
        push.len(),
        ms(&push, 0.5) / floor
    ));
    crate::say(format!(
        "  run end -> run_finished delivery      median {:>6.1} ms, slowest {:>6.1} ms over {} runs: {:.1}x the floor",
        ms(&finished, 0.5),
        ms(&finished, 1.0),
        finished.len(),
        ms(&finished, 0.5) / floor
    ));

    // Retries: a receiver that fails twice; retries come after 1 s, then 2 s.
    let (flaky_port, flaky) = receiver(2)?;
    put(
        "flakyhook",
        serde_json::json!({"uri": format!("http://127.0.0.1:{flaky_port}/hook"), "actions": ["push"]}),
    )?;
    let started = Instant::now();
    let r = rt.block_on(async {
        client
            .post(format!("{}/v1/outgoing-webhooks/flakyhook/ping", daemon.url))
            .send()
            .await?
            .json::<serde_json::Value>()
            .await
    })?;
    if r["id"].is_null() {
        bail!("the ping was not queued: {r}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while flaky.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = flaky
        .lock()
        .unwrap()
        .first()
        .map(|(at, _, _)| at.duration_since(started).as_secs_f64());
    crate::say(format!(
        "  receiver failing twice: delivered after {:.2} s (the schedule's 1 s + 2 s = 3 s, plus three attempts)",
        took.unwrap_or(f64::NAN)
    ));

    // Throughput: 2,000 pings recorded at once, drained by one node.
    let (bulk_port, bulk) = receiver(0)?;
    put(
        "bulkhook",
        serde_json::json!({"uri": format!("http://127.0.0.1:{bulk_port}/hook"), "actions": ["push"]}),
    )?;
    let store = rt.block_on(slipway_store::open(&db, Arc::new(slipway_store::SystemClock)))?;
    let n = 2000;
    let deliveries: Vec<slipway_store::NewDelivery> = (0..n)
        .map(|i| slipway_store::NewDelivery {
            tenant: "default".into(),
            id: format!("bulk-{i}"),
            webhook: "bulkhook".into(),
            action: "ping".into(),
            body: format!("{{\"id\":\"bulk-{i}\",\"action\":\"ping\"}}"),
        })
        .collect();
    let started = Instant::now();
    rt.block_on(store.add_deliveries(&deliveries))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while bulk.lock().unwrap().len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let arrived = bulk.lock().unwrap().len();
    crate::say(format!(
        "  {arrived} of {n} recorded deliveries drained in {:.2} s: {:.0} deliveries/s (one node, 16 at a time)",
        started.elapsed().as_secs_f64(),
        arrived as f64 / started.elapsed().as_secs_f64()
    ));
    Ok(())
}
