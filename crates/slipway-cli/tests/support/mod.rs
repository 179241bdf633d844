//! Shared helpers for tests that drive the real `slipway` binary against the real
//! Docker engine and registry started by `scripts/testbed.sh`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The real parts, when they are there. In CI (`CI=true`) their absence fails the test;
/// elsewhere the test is skipped with a loud reason.
pub struct Testbed {
    pub registry: String,
    pub base_image: String,
}

pub fn testbed() -> Option<Testbed> {
    let registry = std::env::var("SLIPWAY_TEST_REGISTRY").ok();
    let docker_ok = rt().block_on(async {
        match slipway_engine::Docker::connect() {
            Ok(d) => slipway_engine::Engine::ping(&d).await.is_ok(),
            Err(_) => false,
        }
    });
    match (registry, docker_ok) {
        (Some(registry), true) => Some(Testbed {
            registry,
            base_image: std::env::var("SLIPWAY_TEST_BASE_IMAGE").unwrap_or_else(|_| "slipway-busybox:latest".into()),
        }),
        (registry, docker) => {
            let why = format!(
                "needs the real Docker engine (reachable: {docker}) and registry (SLIPWAY_TEST_REGISTRY set: {}); run scripts/test.sh, which starts them",
                registry.is_some()
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true and this test {why}");
            }
            eprintln!("\n!!! SKIPPED: this test {why} !!!\n");
            None
        }
    }
}

/// The images scripts/testbed.sh makes in the engine (nothing can be pulled here).
pub const LOCAL_IMAGES: &str = "slipway-busybox:latest,slipway-busybox:amd64,slipway-busybox:arm64,slipway-docker-cli:latest";

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

pub fn slipway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
    c.current_dir(repo_root());
    c
}

pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Ran {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub fn run(cmd: &mut Command) -> Ran {
    let start = Instant::now();
    let Output { status, stdout, stderr } = cmd.output().expect("slipway runs");
    Ran {
        ok: status.success(),
        stdout: String::from_utf8_lossy(&stdout).into(),
        stderr: String::from_utf8_lossy(&stderr).into(),
        elapsed: start.elapsed(),
    }
}

/// Writes `files` into a new temporary directory.
pub fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    d
}

pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// What the engine still holds labelled with this run id.
pub fn leftovers(run_id: &str) -> Vec<String> {
    rt().block_on(async {
        let d = slipway_engine::Docker::connect().unwrap();
        slipway_engine::Engine::leftovers(&d, run_id).await.unwrap()
    })
}

/// The duration the closing summary reports for a step.
pub fn step_seconds(stdout: &str, id: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("step {id} ")))
        .unwrap_or_else(|| panic!("no summary line for {id} in:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    words[words.len() - 2].parse().unwrap()
}

/// Runs git in `dir` with a fixed identity; panics with git's message on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub mod daemon;

/// Every file beneath `dir`, links not followed.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

/// A new, empty PostgreSQL database `name` on the test bed's server, as a URL; `None`
/// (with a loud skip, or a failure in CI) when there is no server.
pub fn fresh_postgres(name: &str) -> Option<String> {
    let admin = match std::env::var("SLIPWAY_TEST_POSTGRES") {
        Ok(a) => a,
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true but SLIPWAY_TEST_POSTGRES is not set"),
        Err(_) => {
            eprintln!("\n!!! SKIPPED: SLIPWAY_TEST_POSTGRES is not set (scripts/test.sh starts PostgreSQL) !!!\n");
            return None;
        }
    };
    rt().block_on(async {
        let conn = sqlx::PgPool::connect(&admin).await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
            .execute(&conn)
            .await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&conn)
            .await
            .unwrap();
    });
    Some(format!("{}/{name}", admin.rsplit_once('/').unwrap().0))
}

/// A self-signed certificate for 127.0.0.1 and localhost (its own CA), made by openssl.
pub fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
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
        .args(["-subj", "/CN=slipway-test", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    (cert, key)
}
