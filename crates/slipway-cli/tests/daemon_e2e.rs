//! `slipway serve` end to end: the real daemon process, the real client, the real
//! engine, registry and git.

mod support;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};
use support::daemon::{Daemon, TOKEN};
use support::*;

fn registry_has(registry: &str, repo: &str, tag: &str) -> bool {
    rt().block_on(async {
        let url = format!("http://{registry}/v2/{repo}/manifests/{tag}");
        let r = reqwest::Client::new()
            .head(url)
            .header("Accept", "application/vnd.docker.distribution.manifest.v2+json")
            .send()
            .await
            .unwrap();
        r.status().is_success()
    })
}

fn remove_local_image(image: &str) {
    rt().block_on(async {
        let d = slipway_engine::Docker::connect().unwrap();
        let opts = bollard::query_parameters::RemoveImageOptionsBuilder::new().force(true).build();
        let _ = d.client().remove_image(image, Some(opts), None).await;
    });
}

#[test]
fn quick_build_of_a_directory_honours_dockerignore_pushes_and_pulls_back() {
    let Some(tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let ctx = dir_with(&[
        (
            "Dockerfile",
            &format!("FROM {}\nCOPY . /ctx\nCMD [\"ls\", \"/ctx\"]\n", tb.base_image),
        ),
        (".dockerignore", "*.secret\nlogs/\n!logs/keep.txt\n"),
        ("app.txt", "app"),
        ("key.secret", "nope"),
        ("logs/a.log", "nope"),
        ("logs/keep.txt", "kept"),
    ]);
    let image = format!("{}/daemon-ignore:{}", tb.registry, unique_id("t"));
    let r = run(d.client().args(["build", "-t", &image, ctx.path().to_str().unwrap()]));
    assert!(r.ok, "{}\n{}", r.all(), d.server_log());
    assert!(r.stdout.contains("Queued a run with ID: "), "{}", r.stdout);
    assert!(r.stdout.contains("finished with status Succeeded"), "{}", r.stdout);
    let (repo, tag) = image.split_once('/').unwrap().1.rsplit_once(':').unwrap();
    assert!(registry_has(&tb.registry, repo, tag));
    remove_local_image(&image);
    let task = dir_with(&[("acb.yaml", &format!("steps:\n  - cmd: {image}\n"))]);
    let r = run(slipway().args([
        "exec",
        "-f",
        task.path().join("acb.yaml").to_str().unwrap(),
        task.path().to_str().unwrap(),
    ]));
    assert!(r.ok, "{}", r.all());
    let listing: Vec<&str> = r.stdout.lines().filter_map(|l| l.strip_prefix("acb_step_0 | ")).collect();
    assert!(listing.contains(&"app.txt") && listing.contains(&"logs"), "{listing:?}");
    assert!(!listing.contains(&"key.secret"), "{listing:?}");
    let r = run(slipway()
        .args(["exec", "-f", task.path().join("acb.yaml").to_str().unwrap()])
        .arg(task.path()));
    assert!(r.ok);
}

#[test]
fn git_sources_at_a_branch_a_commit_and_a_subfolder() {
    let Some(tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let repo = tempfile::tempdir().unwrap();
    let p = repo.path();
    git(p, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(p.join("sub")).unwrap();
    let dockerfile = format!("FROM {}\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n", tb.base_image);
    std::fs::write(p.join("Dockerfile"), &dockerfile).unwrap();
    std::fs::write(p.join("sub/Dockerfile"), &dockerfile).unwrap();
    std::fs::write(p.join("msg"), "first\n").unwrap();
    std::fs::write(p.join("sub/msg"), "from the subfolder\n").unwrap();
    git(p, &["add", "."]);
    git(p, &["commit", "-q", "-m", "first"]);
    let first = git(p, &["rev-parse", "HEAD"]);
    git(p, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(p.join("msg"), "feature\n").unwrap();
    git(p, &["commit", "-q", "-am", "feature"]);
    git(p, &["checkout", "-q", "main"]);
    std::fs::write(p.join("msg"), "second\n").unwrap();
    git(p, &["commit", "-q", "-am", "second"]);
    let url = format!("file://{}", p.display());
    for (fragment, want) in [
        ("#feature", "feature"),
        (&format!("#{first}") as &str, "first"),
        ("#main:sub", "from the subfolder"),
        ("", "second"),
    ] {
        let image = format!("{}/daemon-git:{}", tb.registry, unique_id("g"));
        let r = run(d.client().args(["build", "-t", &image, &format!("{url}{fragment}")]));
        assert!(r.ok, "{fragment}: {}\n{}", r.all(), d.server_log());
        let task = dir_with(&[("acb.yaml", &format!("steps:\n  - cmd: {image}\n"))]);
        let r = run(slipway().args([
            "exec",
            "-f",
            task.path().join("acb.yaml").to_str().unwrap(),
            task.path().to_str().unwrap(),
        ]));
        assert!(r.stdout.contains(&format!("acb_step_0 | {want}")), "{fragment}: {}", r.stdout);
    }
}

#[test]
fn twenty_runs_with_concurrency_two_all_succeed_never_more_than_two_at_once() {
    let Some(_tb) = testbed() else { return };
    let d = Daemon::start(&["--concurrency", "2"]);
    let ids: Vec<String> = (0..20)
        .map(|_| d.queue_task("steps:\n  - cmd: slipway-busybox sleep 0.3\n"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut max_running = 0;
    loop {
        let (code, body) = d.get("/v1/runs?top=50");
        assert_eq!(code, 200);
        let runs: serde_json::Value = serde_json::from_str(&body).unwrap();
        let runs = runs["value"].as_array().unwrap().clone();
        let running = runs.iter().filter(|r| r["status"] == "Running" || r["status"] == "Started").count();
        max_running = max_running.max(running);
        let done = runs
            .iter()
            .filter(|r| ids.iter().any(|i| r["runId"] == *i) && r["status"] == "Succeeded")
            .count();
        if done == 20 {
            break;
        }
        assert!(
            runs.iter().all(|r| !matches!(r["status"].as_str(), Some("Failed" | "Error"))),
            "{runs:?}"
        );
        assert!(Instant::now() < deadline, "not all runs finished:\n{}", d.server_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(max_running <= 2, "{max_running} runs ran at once");
    assert_eq!(max_running, 2, "the two workers never overlapped");
}

#[test]
fn cancel_reaches_a_queued_and_a_running_run() {
    let Some(_tb) = testbed() else { return };
    let d = Daemon::start(&["--concurrency", "1"]);
    let running = d.queue_task("steps:\n  - cmd: slipway-busybox sleep 60\n");
    let queued = d.queue_task("steps:\n  - cmd: slipway-busybox echo never\n");
    d.wait_status(&running, &["Running"], Duration::from_secs(20));
    // Wait until the step's container exists, then cancel both.
    let deadline = Instant::now() + Duration::from_secs(20);
    while leftovers(&running).iter().all(|l| !l.starts_with("container")) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = run(d.client().args(["runs", "cancel", &queued, "-o", "json"]));
    assert!(r.ok, "{}", r.all());
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["status"], "Canceled");
    let r = run(d.client().args(["runs", "cancel", &running]));
    assert!(r.ok, "{}", r.all());
    let end = d.wait_status(&running, &["Canceled"], Duration::from_secs(15));
    assert_eq!(end["status"], "Canceled");
    assert_eq!(
        leftovers(&running),
        Vec::<String>::new(),
        "the running run's containers are removed"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.run_json(&queued)["status"], "Canceled", "the queued run never started");
    let (_, log) = d.get(&format!("/v1/runs/{queued}/log"));
    assert!(!log.contains("never"), "{log}");
}

#[test]
fn kill_9_loses_nothing_queued_and_fails_the_running_run() {
    let Some(_tb) = testbed() else { return };
    let mut d = Daemon::start(&["--concurrency", "1"]);
    let running = d.queue_task("steps:\n  - cmd: slipway-busybox sh -c 'echo before the crash; sleep 60'\n");
    let queued: Vec<String> = (0..3)
        .map(|i| d.queue_task(&format!("steps:\n  - cmd: slipway-busybox echo queued {i}\n")))
        .collect();
    d.wait_log(&running, "before the crash", Duration::from_secs(30));
    d.kill9();
    d.spawn();
    let end = d.wait_status(&running, &["Error"], Duration::from_secs(30));
    assert!(
        end["runErrorMessage"]
            .as_str()
            .unwrap()
            .contains("worker running this run was lost"),
        "{end}"
    );
    for id in &queued {
        d.wait_status(id, &["Succeeded"], Duration::from_secs(60));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !leftovers(&running).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the lost run's containers were not removed: {:?}",
            leftovers(&running)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, log) = d.get(&format!("/v1/runs/{running}/log"));
    assert!(
        log.contains("before the crash"),
        "logs written before the crash are readable:\n{log}"
    );
}

#[test]
fn a_lost_run_runs_again_once_when_configured() {
    let Some(_tb) = testbed() else { return };
    let mut d = Daemon::start(&["--concurrency", "1", "--requeue-lost-runs"]);
    let id = d.queue_task("steps:\n  - cmd: slipway-busybox sh -c 'echo attempt started; sleep 4'\n");
    d.wait_log(&id, "attempt started", Duration::from_secs(30));
    d.kill9();
    d.spawn();
    let end = d.wait_status(&id, &["Succeeded", "Failed", "Error"], Duration::from_secs(60));
    assert_eq!(end["status"], "Succeeded", "{end}");
    let (_, log) = d.get(&format!("/v1/runs/{id}/log"));
    assert_eq!(log.matches("attempt started").count(), 2, "{log}");
    assert!(log.contains("was queued again"), "{log}");
}

fn tgz_raw(name: &str, kind: u8, link: &str) -> Vec<u8> {
    slipway_test_support::gzip_tar(&slipway_test_support::raw_entry(name, kind, link))
}

#[test]
fn bad_uploads_are_refused_naming_the_entry_and_write_nothing_outside() {
    let Some(_tb) = testbed() else { return };
    let d = Daemon::start(&["--max-upload-bytes", "100000"]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[1u8; 2000]).unwrap();
    let not_tar = gz.finish().unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not gzip", b"hello, not gzip".to_vec(), 400, "not a gzip"),
        ("not tar", not_tar, 400, "not a tar"),
        ("too large", vec![0u8; 200_000], 413, "larger than the limit"),
        (
            "absolute",
            tgz_raw("/tmp/slipway-escape-abs", b'0', ""),
            400,
            "/tmp/slipway-escape-abs",
        ),
        (
            "dot dot",
            tgz_raw("../../slipway-escape-dots", b'0', ""),
            400,
            "../../slipway-escape-dots",
        ),
        ("symlink out", tgz_raw("link-out", b'2', "/etc"), 400, "link-out"),
        ("relative symlink out", tgz_raw("a/link-up", b'2', "../../.."), 400, "a/link-up"),
        ("hard link out", tgz_raw("hard-out", b'1', "../outside"), 400, "hard-out"),
        ("device", tgz_raw("dev-null", b'3', ""), 400, "dev-null"),
    ];
    for (case, body, code, needle) in cases {
        let (status, text) = d.post("/v1/uploads", body, Some(TOKEN));
        assert_eq!(status, code, "{case}: {text}");
        assert!(text.contains(needle), "{case}: {text}");
    }
    assert!(!std::path::Path::new("/tmp/slipway-escape-abs").exists());
    assert!(!d.dir.path().join("slipway-escape-dots").exists() && !d.dir.path().parent().unwrap().join("slipway-escape-dots").exists());
    let leftover: Vec<_> = std::fs::read_dir(d.data_dir().join("uploads")).unwrap().collect();
    assert!(leftover.is_empty(), "refused uploads are not kept: {leftover:?}");
}

#[test]
fn bad_requests_get_clear_4xx_answers() {
    let Some(_tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed json", "{not json".into(), 400, "not JSON"),
        ("no type", r#"{"imageNames": []}"#.into(), 400, "no \"type\""),
        (
            "unknown type",
            r#"{"type": "FrobRequest"}"#.into(),
            400,
            "unknown request type \"FrobRequest\"",
        ),
        (
            "bad image name",
            r#"{"type": "DockerBuildRequest", "imageNames": ["Bad Name"]}"#.into(),
            400,
            "imageNames",
        ),
        (
            "unknown field",
            r#"{"type": "DockerBuildRequest", "imageNamez": []}"#.into(),
            400,
            "imageNamez",
        ),
        (
            "bad source",
            r#"{"type": "DockerBuildRequest", "sourceLocation": "upload://nope"}"#.into(),
            400,
            "upload nope does not exist",
        ),
        (
            "invalid task",
            format!(
                r#"{{"type": "EncodedTaskRunRequest", "encodedTaskContent": "{}"}}"#,
                b64("steps:\n  - cmd: busybox\n    tiemout: 5\n")
            ),
            400,
            "task:3:5: steps[0].tiemout: unknown key \"tiemout\" (did you mean \"timeout\"?)",
        ),
        (
            "bad base64",
            r#"{"type": "EncodedTaskRunRequest", "encodedTaskContent": "***"}"#.into(),
            400,
            "encodedTaskContent is not base64",
        ),
    ];
    for (case, body, code, needle) in cases {
        let (status, text) = d.post("/v1/runs", body.into_bytes(), Some(TOKEN));
        assert_eq!(status, code, "{case}: {text}");
        let message = serde_json::from_str::<serde_json::Value>(&text).unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains(needle), "{case}: {message}");
    }
    for path in ["/v1/runs/nope", "/v1/runs/nope/log"] {
        let (status, text) = d.get(path);
        assert_eq!(status, 404, "{path}: {text}");
        assert!(text.contains("no run with id \\\"nope\\\""), "{text}");
    }
    let (status, text) = d.post("/v1/runs/nope/cancel", vec![], Some(TOKEN));
    assert_eq!(status, 404, "{text}");
    let (status, text) = d.get("/v1/runs?status=Bogus");
    assert_eq!(status, 400, "{text}");
    assert!(!d.server_log().contains("panicked"));
}

#[test]
fn every_endpoint_but_health_needs_a_token() {
    let Some(_tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    assert_eq!(d.get_raw("/healthz", None).unwrap().0, 200);
    for path in ["/v1/runs", "/v1/runs/x", "/v1/runs/x/log", "/metrics"] {
        let (none, body_none) = d.get_raw(path, None).unwrap();
        let (wrong, body_wrong) = d.get_raw(path, Some("not-the-token")).unwrap();
        assert_eq!((none, wrong), (401, 401), "{path}");
        assert_eq!(body_none, body_wrong, "the answer does not say which part was wrong");
    }
    assert_eq!(d.post("/v1/uploads", vec![], None).0, 401);
    assert_eq!(d.post("/v1/runs", b"{}".to_vec(), Some("nope")).0, 401);
    // Every documented endpoint is served (a missing route answers code NotFound).
    for (method, path) in slipway_server::routes::ENDPOINTS {
        let path = path.replace("{id}", "x");
        let (_, body) = if *method == "GET" {
            d.get(&path)
        } else {
            d.post(&path, b"{}".to_vec(), Some(TOKEN))
        };
        assert!(!body.contains("\"code\":\"NotFound\""), "{method} {path} is not served: {body}");
    }
    let (code, metrics) = d.get("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("slipway_queue_depth") && metrics.contains("slipway_runs{status=\"Succeeded\"}"),
        "{metrics}"
    );
}

#[test]
fn secret_values_never_reach_logs_database_api_or_errors() {
    let Some(tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let secret = "Sup3r-Secret-Build-Arg-77";
    let value_secret = "An0ther-Secret-Value-88";
    let ctx = dir_with(&[("Dockerfile", &format!("FROM {}\nARG TOKEN\nRUN echo token=$TOKEN\n", tb.base_image))]);
    let r = run(d.client().args([
        "build",
        "--no-push",
        "-t",
        "secret-test:1",
        "--no-cache",
        "--secret-build-arg",
        &format!("TOKEN={secret}"),
        ctx.path().to_str().unwrap(),
    ]));
    assert!(r.ok, "{}\n{}", r.all(), d.server_log());
    assert!(r.stdout.contains("token=*****"), "{}", r.stdout);
    let task = dir_with(&[(
        "acb.yaml",
        "steps:\n  - cmd: slipway-busybox echo value={{.Values.pw}}\n  - cmd: slipway-busybox sh -c 'exit 3'\n",
    )]);
    let r2 = run(d.client().args([
        "run",
        "-f",
        "acb.yaml",
        "--set-secret",
        &format!("pw={value_secret}"),
        task.path().to_str().unwrap(),
    ]));
    assert!(!r2.ok);
    let mut seen = vec![r.all(), r2.all(), d.server_log()];
    let (_, list) = d.get("/v1/runs?top=10");
    seen.push(list);
    for dir in [d.data_dir(), d.dir.path().to_path_buf()] {
        for entry in walk(&dir) {
            seen.push(String::from_utf8_lossy(&std::fs::read(&entry).unwrap_or_default()).into_owned());
        }
    }
    for text in &seen {
        assert!(!text.contains(secret) && !text.contains(value_secret), "a secret leaked:\n{text}");
    }
}

#[test]
fn logs_follow_and_resume_from_an_offset() {
    let Some(_tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let id = d.queue_task("steps:\n  - cmd: slipway-busybox sh -c 'for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done'\n");
    let r = run(d.client().args(["logs", &id, "-f"]));
    assert!(r.ok, "{}", r.all());
    for i in 1..=5 {
        assert!(r.stdout.contains(&format!("line {i}")), "{}", r.stdout);
    }
    let whole = d.get(&format!("/v1/runs/{id}/log")).1;
    let cut = whole.find("line 3").unwrap();
    let rest = d.get(&format!("/v1/runs/{id}/log?offset={cut}")).1;
    assert_eq!(format!("{}{}", &whole[..cut], rest), whole);
    let r = run(d.client().args(["runs", "list", "-o", "json"]));
    let runs: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(runs[0]["runId"], id.as_str());
    let r = run(d.client().args(["runs", "list"]));
    assert!(r.stdout.starts_with("RUN ID") && r.stdout.contains(&id), "{}", r.stdout);
}

/// Kills a helper process when the test ends, however it ends.
struct Helper(std::process::Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn image_prints(image: &str, want: &str) {
    let task = dir_with(&[("acb.yaml", &format!("steps:\n  - cmd: {image}\n"))]);
    let r = run(slipway().args([
        "exec",
        "-f",
        task.path().join("acb.yaml").to_str().unwrap(),
        task.path().to_str().unwrap(),
    ]));
    assert!(r.stdout.contains(&format!("acb_step_0 | {want}")), "{}", r.all());
}

#[test]
fn tarball_urls_and_git_over_http_with_configured_credentials() {
    let Some(tb) = testbed() else { return };
    let token = "gIt-T0ken-Never-Logged-55";
    let dockerfile = format!("FROM {}\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n", tb.base_image);
    // A tar.gz served over loopback HTTP.
    let web = tempfile::tempdir().unwrap();
    {
        let file = std::fs::File::create(web.path().join("ctx.tar.gz")).unwrap();
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
        for (name, content) in [("Dockerfile", dockerfile.as_str()), ("msg", "from a tarball\n")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, content.as_bytes()).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
    }
    let web_port = free_port();
    let _web = Helper(
        Command::new("python3")
            .args(["-m", "http.server", &web_port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(web.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // A bare repository behind git http-backend with basic auth.
    let git_root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(work.path().join("Dockerfile"), &dockerfile).unwrap();
    std::fs::write(work.path().join("msg"), "from git over http\n").unwrap();
    git(work.path(), &["add", "."]);
    git(work.path(), &["commit", "-q", "-m", "one"]);
    git(
        git_root.path(),
        &["clone", "-q", "--bare", work.path().to_str().unwrap(), "repo.git"],
    );
    let git_port = free_port();
    let _git = Helper(
        Command::new("python3")
            .arg(repo_root().join("tests/fixtures/git_http_server.py"))
            .args([git_root.path().to_str().unwrap(), "builder", token, &git_port.to_string()])
            .spawn()
            .unwrap(),
    );
    wait_port(web_port);
    wait_port(git_port);
    let config = dir_with(&[(
        "slipway.toml",
        &format!("[git_credentials]\n\"127.0.0.1:{git_port}\" = \"builder:{token}\"\n"),
    )]);
    let d = Daemon::start(&["--config", config.path().join("slipway.toml").to_str().unwrap()]);

    // Pushed: an image a run builds and does not push is the run's own and goes with it.
    let image = format!("{}/daemon-tarball:{}", tb.registry, unique_id("u"));
    let r = run(d
        .client()
        .args(["build", "-t", &image, &format!("http://127.0.0.1:{web_port}/ctx.tar.gz")]));
    assert!(r.ok, "{}\n{}", r.all(), d.server_log());
    image_prints(&image, "from a tarball");

    let image = format!("{}/daemon-githttp:{}", tb.registry, unique_id("h"));
    let r = run(d
        .client()
        .args(["build", "-t", &image, &format!("http://127.0.0.1:{git_port}/repo.git#main")]));
    assert!(r.ok, "{}\n{}", r.all(), d.server_log());
    image_prints(&image, "from git over http");

    // The same server under a host name with no configured credentials is refused.
    let r = run(d.client().args([
        "build",
        "--no-push",
        "-t",
        "never:1",
        &format!("http://localhost:{git_port}/repo.git#main"),
    ]));
    assert!(!r.ok);
    assert!(r.stdout.contains("no credentials are configured for it"), "{}", r.stdout);
    let missing = run(d.client().args([
        "build",
        "--no-push",
        "-t",
        "never:1",
        &format!("http://127.0.0.1:{web_port}/missing.tar.gz"),
    ]));
    assert!(!missing.ok && missing.stdout.contains("404"), "{}", missing.stdout);

    let mut seen = vec![r.all(), d.server_log(), d.get("/v1/runs?top=10").1];
    for entry in walk(d.dir.path()) {
        seen.push(String::from_utf8_lossy(&std::fs::read(&entry).unwrap_or_default()).into_owned());
    }
    for text in seen {
        assert!(!text.contains(token), "the git token leaked:\n{text}");
    }
}

#[test]
fn retention_purges_finished_runs_files_but_never_a_running_runs() {
    let Some(_tb) = testbed() else { return };
    let d = Daemon::start(&["--concurrency", "2", "--retention-days", "0", "--purge-interval-seconds", "1"]);
    let long = d.queue_task("steps:\n  - cmd: slipway-busybox sh -c 'echo still running; sleep 20'\n");
    let short = d.queue_task("steps:\n  - cmd: slipway-busybox echo done quickly\n");
    d.wait_status(&short, &["Succeeded"], Duration::from_secs(30));
    d.wait_status(&long, &["Running"], Duration::from_secs(30));
    let logs = d.data_dir().join("logs");
    let contexts = d.data_dir().join("contexts");
    let deadline = Instant::now() + Duration::from_secs(15);
    while logs.join(format!("{short}.log")).exists() || contexts.join(&short).exists() {
        assert!(Instant::now() < deadline, "the finished run's files were not purged");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        logs.join(format!("{long}.log")).exists() && contexts.join(&long).exists(),
        "a running run's files were purged"
    );
    let r = run(d.client().args(["runs", "cancel", &long]));
    assert!(r.ok);
}

#[test]
fn client_no_wait_returns_at_once_and_no_logs_prints_only_the_status() {
    let Some(_tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let started = Instant::now();
    let r = run(d.client().args([
        "run",
        "--no-wait",
        "--cmd",
        "slipway-busybox sh -c 'echo hidden; sleep 3'",
        "/dev/null",
    ]));
    assert!(r.ok && started.elapsed() < Duration::from_secs(2), "{}", r.all());
    let id = r.stdout.trim().strip_prefix("Queued a run with ID: ").unwrap().to_string();
    let r = run(d
        .client()
        .args(["run", "--no-logs", "--cmd", "slipway-busybox echo quietly", "/dev/null"]));
    assert!(r.ok, "{}", r.all());
    assert!(
        !r.stdout.contains("quietly") && r.stdout.contains("finished with status Succeeded"),
        "{}",
        r.stdout
    );
    let r = run(d.client().args(["run", "--no-logs", "--cmd", "slipway-busybox false", "/dev/null"]));
    assert!(!r.ok && r.stdout.contains("finished with status Failed"), "{}", r.stdout);
    d.wait_status(&id, &["Succeeded"], Duration::from_secs(30));
}

/// The daemon holds a socket for every run's engine proxy, follower and connection: it
/// raises its soft open-files limit to the hard one at start.
#[test]
#[allow(unsafe_code)]
fn the_daemon_raises_its_open_files_limit() {
    let Some(_tb) = testbed() else { return };
    // The daemon starts with a soft limit below its hard one, as many systems start
    // services (children inherit this process's limits).
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    let lowered = libc::rlimit {
        rlim_cur: 512.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
    let d = Daemon::start(&[]);
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let pid = d.child.as_ref().unwrap().id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_string();
    let numbers: Vec<&str> = line
        .split_whitespace()
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()) || *w == "unlimited")
        .collect();
    assert_eq!(numbers.len(), 2, "{line}");
    assert_eq!(numbers[0], numbers[1], "soft and hard limits: {line}");
}

/// A NUL in an id, a query value or a body's string is a 400 on PostgreSQL too (its
/// text cannot hold one; it answered 500), and the daemon goes on.
#[test]
fn control_characters_are_refused_before_postgresql_sees_them() {
    let Some(_tb) = testbed() else { return };
    let Some(url) = fresh_postgres(&format!("slipway_test_nul_{}", std::process::id())) else {
        return;
    };
    let d = Daemon::start_on(Some(url), &[]);
    let body = br#"{"type": "DockerBuildRequest", "sourceLocation": "", "imageNames": ["x"], "platform": "linux\u0000/amd64"}"#;
    for (method, path, body) in [
        ("GET", "/v1/runs/ab%00cd", None),
        ("GET", "/v1/runs?task=a%00b", None),
        ("GET", "/v1/tasks/t%01", None),
        ("POST", "/v1/runs", Some(body.to_vec())),
    ] {
        let (code, text) = d.call(method, path, body, Some(TOKEN), &[]);
        assert!(
            code == 400 && (text.contains("control character") || text.contains("NUL")),
            "{method} {path}: {code} {text}"
        );
    }
    assert_eq!(d.get("/healthz").0, 200);
}

#[test]
fn the_daemon_runs_its_queue_on_postgresql() {
    let Some(_tb) = testbed() else { return };
    let Some(url) = fresh_postgres(&format!("slipway_test_daemon_{}", std::process::id())) else {
        return;
    };
    // One worker, so the run queued behind the sleeping one is still queued at the crash.
    let mut d = Daemon::start_on(Some(url), &["--concurrency", "1"]);
    let ids: Vec<String> = (0..4)
        .map(|i| d.queue_task(&format!("steps:\n  - cmd: slipway-busybox echo on postgres {i}\n")))
        .collect();
    for id in &ids {
        d.wait_status(id, &["Succeeded"], Duration::from_secs(60));
    }
    // A crash loses nothing here either.
    let running = d.queue_task("steps:\n  - cmd: slipway-busybox sh -c 'echo started; sleep 60'\n");
    d.wait_log(&running, "started", Duration::from_secs(30));
    let queued = d.queue_task("steps:\n  - cmd: slipway-busybox echo after the crash\n");
    d.kill9();
    d.spawn();
    d.wait_status(&running, &["Error"], Duration::from_secs(30));
    d.wait_status(&queued, &["Succeeded"], Duration::from_secs(60));
}
