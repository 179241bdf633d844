//! The trust boundary of `slipway serve`, end to end: what an untrusted task author
//! cannot reach of the daemon's host, its environment or its files.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};
use support::daemon::Daemon;
use support::*;

fn upload_dir(d: &Daemon, dir: &std::path::Path) -> String {
    let mut body = Vec::new();
    slipway_sources::uploads::pack(dir, "Dockerfile", &mut body).unwrap();
    let (code, text) = d.post("/v1/uploads", body, Some(support::daemon::TOKEN));
    assert_eq!(code, 201, "{text}");
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["sourceLocation"]
        .as_str()
        .unwrap()
        .to_string()
}

fn queue_with_source(d: &Daemon, yaml: &str, source: &str) -> String {
    use base64::Engine as _;
    let body = serde_json::json!({
        "type": "EncodedTaskRunRequest",
        "encodedTaskContent": base64::engine::general_purpose::STANDARD.encode(yaml),
        "sourceLocation": source,
    });
    let (code, text) = d.post("/v1/runs", serde_json::to_vec(&body).unwrap(), Some(support::daemon::TOKEN));
    assert_eq!(code, 201, "{text}");
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string()
}

fn log_of(d: &Daemon, id: &str) -> String {
    d.get(&format!("/v1/runs/{id}/log")).1
}

/// `build: … ../..` and absolute contexts made the daemon's data dir the build
/// context (other tasks' secrets in the log). They now fail, naming the path.
#[test]
fn builds_cannot_read_outside_the_run_source() {
    let Some(tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let ctx = dir_with(&[("Dockerfile", &format!("FROM {}\nCOPY . /ctx\n", tb.base_image))]);
    let source = upload_dir(&d, ctx.path());
    for (context, dockerfile) in [("../..", ""), ("/", ""), (".", "../../../secrets/x"), ("/etc", "")] {
        let file = if dockerfile.is_empty() {
            String::new()
        } else {
            format!("-f {dockerfile} ")
        };
        let yaml = format!("steps:\n  - build: -t {}/escape:1 {file}{context}\n", tb.registry);
        let id = queue_with_source(&d, &yaml, &source);
        let run = d.wait_status(&id, &["Failed", "Succeeded", "Error"], Duration::from_secs(60));
        let log = log_of(&d, &id);
        assert_eq!(run["status"], "Failed", "{context} {dockerfile}: {log}");
        assert!(
            log.contains("outside the run's source") || log.contains("cannot read Dockerfile"),
            "{context} {dockerfile}: {log}"
        );
    }
    // The data dir is the daemon's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.data_dir()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "data dir mode {mode:o}");
}

/// `--build-arg NAME` without a value took NAME from the daemon's own environment
/// (tokens, database passwords) and printed it. A run only sees its own values.
#[test]
fn the_daemons_environment_does_not_reach_a_build() {
    let Some(tb) = testbed() else { return };
    let canary = "canary-7f3a9c2e";
    let d = Daemon::start_with_env(&[], &[("SLIPWAY_TEST_CANARY", canary)]);
    let ctx = dir_with(&[(
        "Dockerfile",
        &format!(
            "FROM {}\nARG SLIPWAY_TEST_CANARY\nRUN echo \"seen=[$SLIPWAY_TEST_CANARY]\"\n",
            tb.base_image
        ),
    )]);
    let source = upload_dir(&d, ctx.path());
    let yaml = format!(
        "steps:\n  - build: -t {}/canary:{} --no-cache --build-arg SLIPWAY_TEST_CANARY .\n",
        tb.registry,
        unique_id("t")
    );
    let id = queue_with_source(&d, &yaml, &source);
    let run = d.wait_status(&id, &["Failed", "Succeeded", "Error"], Duration::from_secs(90));
    let log = log_of(&d, &id);
    assert_eq!(run["status"], "Succeeded", "{log}");
    assert!(log.contains("seen=[]"), "{log}");
    assert!(!log.contains(canary), "{log}");
    // Task secrets that read the daemon's environment or files are refused, located.
    let yaml = "secrets:\n  - id: tok\n    env: SLIPWAY_TEST_CANARY\nsteps:\n  - cmd: busybox echo {{.Secrets.tok}}\n";
    use base64::Engine as _;
    let body =
        serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": base64::engine::general_purpose::STANDARD.encode(yaml)});
    let (code, text) = d.post("/v1/runs", serde_json::to_vec(&body).unwrap(), Some(support::daemon::TOKEN));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("task:3") && text.contains("secrets[0].env"), "{text}");
}

/// A git source whose subfolder is a symlink to a host directory had that directory
/// bind-mounted read-write at /workspace.
#[test]
fn a_git_subfolder_symlink_cannot_mount_a_host_directory() {
    let Some(_tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let repo = tempfile::tempdir().unwrap();
    let p = repo.path();
    git(p, &["init", "-q", "-b", "main"]);
    std::os::unix::fs::symlink("/etc", p.join("sub")).unwrap();
    std::fs::write(p.join("acb.yaml"), "steps:\n  - cmd: busybox ls /workspace\n").unwrap();
    git(p, &["add", "-A"]);
    git(p, &["commit", "-qm", "x"]);
    let source = format!("file://{}#main:sub", p.display());
    let id = queue_with_source(&d, "steps:\n  - cmd: busybox cat /workspace/passwd\n", &source);
    let run = d.wait_status(&id, &["Failed", "Succeeded", "Error"], Duration::from_secs(60));
    let log = log_of(&d, &id);
    assert_eq!(run["status"], "Failed", "{log}");
    assert!(log.contains("subfolder \"sub\"") && !log.contains("root:x:0"), "{log}");
}

/// A client that connects and sends nothing (or stays idle between requests) is cut
/// off instead of holding a connection forever.
#[test]
fn idle_connections_are_closed() {
    let Some(_tb) = testbed() else { return };
    let d = Daemon::start_with_env(&[], &[("SLIPWAY_HTTP_HEADER_TIMEOUT_SECONDS", "2")]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the connection is closed, not answered");
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    // A half-sent request head is cut off the same way.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let _ = s.read(&mut buf);
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(d.get_raw("/healthz", None).unwrap().0, 200);
}

/// A full disk: the run fails with the real reason in its record (the log cannot be
/// written), nothing half-unpacked stays, and the daemon keeps serving.
#[test]
fn a_full_disk_keeps_the_failure_reason_and_leaves_no_partial_files() {
    let Some(_tb) = testbed() else { return };
    let mut d = Daemon::start(&[]);
    d.kill9();
    let data = d.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&data)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and tmpfs cannot be mounted (needs root)"
        );
        eprintln!("\n!!! SKIPPED: mounting a small tmpfs needs root !!!\n");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(data.clone());
    d.spawn();
    // 3 MB that does not compress: the upload fits, unpacking it beside the upload does not.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("noise"), &noise).unwrap();
    let source = upload_dir(&d, ctx.path());
    let id = queue_with_source(&d, "steps:\n  - cmd: busybox true\n", &source);
    let run = d.wait_status(&id, &["Failed", "Succeeded", "Error"], Duration::from_secs(60));
    assert_eq!(run["status"], "Failed", "{run}");
    let why = run["runErrorMessage"].as_str().unwrap_or("");
    assert!(why.contains("No space left on device"), "{run}");
    assert!(!data.join("contexts").join(&id).exists(), "a half-unpacked context stayed");
    assert_eq!(d.get_raw("/healthz", None).unwrap().0, 200);
    drop(d);
}
