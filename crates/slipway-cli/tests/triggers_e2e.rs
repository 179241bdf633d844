//! Tasks and their triggers end to end: real git repositories, a real registry sending
//! real notifications, the real daemon and engine, and a real minute boundary.

mod support;

use hmac::{KeyInit, Mac};
use std::process::Command;
use std::time::{Duration, Instant};
use support::daemon::Daemon;
use support::*;

/// A repository with a Dockerfile and `msg`, one commit.
fn repo(dockerfile: &str, msg: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    git(d.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(d.path().join("msg"), msg).unwrap();
    git(d.path(), &["add", "."]);
    git(d.path(), &["commit", "-q", "-m", "first"]);
    d
}

fn commit(repo: &std::path::Path, msg: &str) -> String {
    std::fs::write(repo.join("msg"), msg).unwrap();
    git(repo, &["commit", "-q", "-am", msg]);
    git(repo, &["rev-parse", "HEAD"])
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn post_with(d: &Daemon, path: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, serde_json::Value) {
    rt().block_on(async {
        let mut r = reqwest::Client::new().post(format!("{}{path}", d.url())).body(body.to_vec());
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    })
}

fn task_runs(d: &Daemon, task: &str) -> Vec<serde_json::Value> {
    let (code, body) = d.get(&format!("/v1/tasks/{task}/runs?top=50"));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["value"]
        .as_array()
        .unwrap()
        .clone()
}

fn task(d: &Daemon, args: &[&str]) {
    let r = run(d.client().args(["task", "create"]).args(args));
    assert!(r.ok, "task create {args:?}: {}", r.all());
}

#[test]
fn a_push_webhook_builds_exactly_the_pushed_commit_once_and_a_bad_signature_nothing() {
    let Some(tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let src = repo(
        &format!("FROM {}\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n", tb.base_image),
        "first\n",
    );
    let url = format!("file://{}", src.path().display());
    let image = format!("{}/hooked", tb.registry);
    task(
        &d,
        &[
            "-n",
            "hooked-task",
            "--context",
            &format!("{url}#main"),
            "--file",
            "Dockerfile",
            "-t",
            &format!("{image}:{{{{.Run.Commit}}}}"),
            "--commit-trigger-enabled",
            "true",
            "--webhook-secret",
            "hook-secret-1",
        ],
    );
    task(
        &d,
        &[
            "-n",
            "not-watching",
            "--context",
            &format!("{url}#main"),
            "--file",
            "Dockerfile",
            "--no-push",
            "--webhook-secret",
            "hook-secret-1",
        ],
    );
    let pushed = commit(src.path(), "second\n");
    commit(src.path(), "third, not pushed to the hook\n");
    let body =
        serde_json::to_vec(&serde_json::json!({"ref": "refs/heads/main", "after": pushed, "repository": {"clone_url": url}})).unwrap();
    let good = vec![
        ("X-GitHub-Event", "push".to_string()),
        ("X-GitHub-Delivery", "delivery-1".to_string()),
        ("X-Hub-Signature-256", format!("sha256={}", hmac_hex("hook-secret-1", &body))),
    ];
    let bad = vec![
        ("X-GitHub-Event", "push".to_string()),
        ("X-Hub-Signature-256", format!("sha256={}", hmac_hex("wrong", &body))),
    ];
    let (code, answer) = post_with(&d, "/v1/webhooks/github", &body, &bad);
    assert_eq!(code, 401, "{answer}");
    let (code, answer) = post_with(&d, "/v1/webhooks/github", &body, &bad[..1]);
    assert_eq!(code, 401, "a missing signature: {answer}");
    assert!(task_runs(&d, "hooked-task").is_empty(), "a bad signature started a run");
    let (code, answer) = post_with(&d, "/v1/webhooks/github", &body, &good);
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["runs"].as_array().unwrap().len(), 1, "{answer}");
    let (code, again) = post_with(&d, "/v1/webhooks/github", &body, &good);
    assert_eq!(
        (code, again["runs"].as_array().unwrap().len()),
        (202, 0),
        "the same delivery twice starts one run"
    );
    let id = answer["runs"][0].as_str().unwrap().to_string();
    let end = d.wait_status(&id, &["Succeeded", "Failed", "Error"], Duration::from_secs(60));
    assert_eq!(end["status"], "Succeeded", "{end}\n{}", d.get(&format!("/v1/runs/{id}/log")).1);
    assert_eq!(end["task"], "hooked-task");
    assert_eq!(end["runType"], "AutoBuild");
    let t = &end["sourceTrigger"];
    assert_eq!(
        (
            t["eventType"].as_str(),
            t["commitId"].as_str(),
            t["branchName"].as_str(),
            t["providerType"].as_str()
        ),
        (Some("commit"), Some(pushed.as_str()), Some("main"), Some("github"))
    );
    assert_eq!(task_runs(&d, "hooked-task").len(), 1);
    assert!(
        task_runs(&d, "not-watching").is_empty(),
        "a task whose commit trigger is off started"
    );
    // Built at exactly the pushed commit, not at the branch's newer head.
    let task_file = dir_with(&[("acb.yaml", &format!("steps:\n  - cmd: {image}:{pushed}\n"))]);
    let r = run(slipway().args([
        "exec",
        "-f",
        task_file.path().join("acb.yaml").to_str().unwrap(),
        task_file.path().to_str().unwrap(),
    ]));
    assert!(r.stdout.contains("acb_step_0 | second"), "{}", r.all());
    // The generic form, for a git post-receive hook.
    let next = git(src.path(), &["rev-parse", "HEAD"]);
    let body = serde_json::to_vec(&serde_json::json!({"id": "g1", "repositoryUrl": url, "branch": "main", "commit": next})).unwrap();
    let (code, answer) = post_with(
        &d,
        "/v1/webhooks/generic",
        &body,
        &[("X-Slipway-Signature", format!("sha256={}", hmac_hex("hook-secret-1", &body)))],
    );
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["runs"].as_array().unwrap().len(), 1);
    // GitLab (a token header) and Gitea (a bare hex signature), each for a new commit.
    let gl_commit = commit(src.path(), "gitlab\n");
    let gl =
        serde_json::to_vec(&serde_json::json!({"ref": "refs/heads/main", "checkout_sha": gl_commit, "project": {"git_http_url": url}}))
            .unwrap();
    let (code, answer) = post_with(
        &d,
        "/v1/webhooks/gitlab",
        &gl,
        &[("X-Gitlab-Event", "Push Hook".into()), ("X-Gitlab-Token", "wrong".into())],
    );
    assert_eq!(code, 401, "{answer}");
    let (code, answer) = post_with(
        &d,
        "/v1/webhooks/gitlab",
        &gl,
        &[("X-Gitlab-Event", "Push Hook".into()), ("X-Gitlab-Token", "hook-secret-1".into())],
    );
    assert_eq!((code, answer["runs"].as_array().unwrap().len()), (202, 1), "{answer}");
    let gt_commit = commit(src.path(), "gitea\n");
    let gt =
        serde_json::to_vec(&serde_json::json!({"ref": "refs/heads/main", "after": gt_commit, "repository": {"clone_url": url}})).unwrap();
    let (code, answer) = post_with(
        &d,
        "/v1/webhooks/gitea",
        &gt,
        &[
            ("X-Gitea-Event", "push".into()),
            ("X-Gitea-Signature", hmac_hex("hook-secret-1", &gt)),
        ],
    );
    assert_eq!((code, answer["runs"].as_array().unwrap().len()), (202, 1), "{answer}");
    let id = answer["runs"][0].as_str().unwrap().to_string();
    let end = d.wait_status(&id, &["Succeeded", "Failed", "Error"], Duration::from_secs(60));
    assert_eq!(
        (end["status"].as_str(), end["sourceTrigger"]["providerType"].as_str()),
        (Some("Succeeded"), Some("gitea")),
        "{end}"
    );
}

/// A registry on a free port that sends its notifications to the daemon.
struct Registry {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    host: String,
}

impl Registry {
    fn start(notify: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((url, secret)) = notify {
            config.push_str(&format!(
                "notifications:\n  endpoints:\n    - name: slipway\n      url: {url}/v1/registry/notifications\n      headers:\n        X-Slipway-Registry-Secret: [{secret}]\n      timeout: 2s\n      threshold: 3\n      backoff: 1s\n"
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", dir.path().join("config.yml").to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            _dir: dir,
            host: format!("127.0.0.1:{port}"),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds a new base image (its content differs each time) and pushes it.
fn push_base(image: &str, base: &str, content: &str) {
    let dir = dir_with(&[
        ("Dockerfile", &format!("FROM {base}\nRUN echo '{content}' > /base-version\n")),
        (
            "acb.yaml",
            &format!("steps:\n  - build: -t {image} --no-cache .\n  - push: [\"{image}\"]\n"),
        ),
    ]);
    let r = run(slipway().args([
        "exec",
        "-f",
        dir.path().join("acb.yaml").to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]));
    assert!(r.ok, "pushing {image}: {}", r.all());
}

/// Pushes the image that is already local again: same digest.
fn repush(image: &str) {
    let dir = dir_with(&[("acb.yaml", &format!("steps:\n  - push: [\"{image}\"]\n"))]);
    let r = run(slipway().args([
        "exec",
        "-f",
        dir.path().join("acb.yaml").to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]));
    assert!(r.ok, "{}", r.all());
}

fn wait_runs(d: &Daemon, task: &str, n: usize, limit: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let runs = task_runs(d, task);
        if runs.len() >= n
            && runs
                .iter()
                .all(|r| !matches!(r["status"].as_str(), Some("Queued" | "Started" | "Running")))
        {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "task {task} has {} runs, waiting for {n}:\n{runs:#?}\n{}",
            runs.len(),
            d.server_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_new_base_image_rebuilds_its_dependents_in_turn_and_a_repush_nothing() {
    let Some(tb) = testbed() else { return };
    let config = dir_with(&[(
        "slipway.toml",
        "registry_notification_secret = \"reg-secret\"\npoll_interval_seconds = 0\n",
    )]);
    let d = Daemon::start(&["--config", config.path().join("slipway.toml").to_str().unwrap()]);
    let reg = Registry::start(Some((&d.url(), "reg-secret")));
    let base = format!("{}/base:1", reg.host);
    push_base(&base, &tb.base_image, "v1");
    let a_src = repo(&format!("FROM {base}\nRUN cat /base-version\n"), "a\n");
    let b_src = repo(&format!("FROM {}/app-a:latest\nRUN cat /base-version\n", reg.host), "b\n");
    task(
        &d,
        &[
            "-n",
            "task-app-a",
            "--context",
            &format!("file://{}#main", a_src.path().display()),
            "--file",
            "Dockerfile",
            "-t",
            &format!("{}/app-a:latest", reg.host),
            "--base-image-trigger-enabled",
            "true",
        ],
    );
    task(
        &d,
        &[
            "-n",
            "task-app-b",
            "--context",
            &format!("file://{}#main", b_src.path().display()),
            "--file",
            "Dockerfile",
            "-t",
            &format!("{}/app-b:latest", reg.host),
            "--base-image-trigger-enabled",
            "true",
        ],
    );
    // A task with the trigger off and a disabled task never rebuild.
    task(
        &d,
        &[
            "-n",
            "task-off",
            "--context",
            &format!("file://{}#main", a_src.path().display()),
            "--file",
            "Dockerfile",
            "--no-push",
        ],
    );
    task(
        &d,
        &[
            "-n",
            "task-disabled",
            "--context",
            &format!("file://{}#main", a_src.path().display()),
            "--file",
            "Dockerfile",
            "--no-push",
            "--base-image-trigger-enabled",
            "true",
        ],
    );
    for t in ["task-app-a", "task-app-b", "task-off", "task-disabled"] {
        let r = run(d.client().args(["task", "run", "-n", t]));
        assert!(r.ok, "{t}: {}", r.all());
    }
    let r = run(d.client().args(["task", "update", "-n", "task-disabled", "--status", "Disabled"]));
    assert!(r.ok, "{}", r.all());
    let shown = run(d.client().args(["task", "show", "-n", "task-app-a", "-o", "json"]));
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let dep = &shown["dependencies"][0];
    assert_eq!(
        (dep["image"].as_str(), dep["kind"].as_str()),
        (Some(base.as_str()), Some("runtime")),
        "{shown}"
    );
    assert!(
        dep["digest"].as_str().unwrap().starts_with("sha256:"),
        "the digest the build used is recorded: {shown}"
    );

    push_base(&base, &tb.base_image, "v2");
    let a_runs = wait_runs(&d, "task-app-a", 2, Duration::from_secs(90));
    let b_runs = wait_runs(&d, "task-app-b", 2, Duration::from_secs(90));
    let a = &a_runs[0];
    assert_eq!(a["status"], "Succeeded", "{a}");
    assert_eq!(a["imageUpdateTrigger"]["images"][0]["repository"], "base", "{a}");
    let b = &b_runs[0];
    assert_eq!(b["status"], "Succeeded", "{b}");
    assert_eq!(b["imageUpdateTrigger"]["images"][0]["repository"], "app-a", "{b}");
    assert_eq!(b["imageUpdateTrigger"]["chain"], serde_json::json!(["task-app-a"]), "{b}");
    let (_, log) = d.get(&format!("/v1/runs/{}/log", a["runId"].as_str().unwrap()));
    assert!(log.contains("v2"), "the rebuild used the new base:\n{log}");

    // The same digest pushed again, and a new tag, rebuild nothing.
    repush(&base);
    push_base(&format!("{}/base:2", reg.host), &tb.base_image, "a new tag");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(task_runs(&d, "task-app-a").len(), 2, "a re-push of the same digest rebuilt");
    assert_eq!(task_runs(&d, "task-app-b").len(), 2);
    assert_eq!(task_runs(&d, "task-off").len(), 1, "a task with its base-image trigger off rebuilt");
    assert_eq!(task_runs(&d, "task-disabled").len(), 1, "a disabled task rebuilt");
}

#[test]
fn the_poller_finds_a_new_digest_when_the_registry_sends_nothing() {
    let Some(tb) = testbed() else { return };
    let config = dir_with(&[("slipway.toml", "poll_interval_seconds = 1\n")]);
    let d = Daemon::start(&["--config", config.path().join("slipway.toml").to_str().unwrap()]);
    let reg = Registry::start(None);
    let base = format!("{}/polled-base:1", reg.host);
    push_base(&base, &tb.base_image, "p1");
    let src = repo(&format!("FROM {base}\nRUN cat /base-version\n"), "c\n");
    task(
        &d,
        &[
            "-n",
            "task-polled",
            "--context",
            &format!("file://{}#main", src.path().display()),
            "--file",
            "Dockerfile",
            "--no-push",
            "--base-image-trigger-enabled",
            "true",
        ],
    );
    let r = run(d.client().args(["task", "run", "-n", "task-polled"]));
    assert!(r.ok, "{}", r.all());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(task_runs(&d, "task-polled").len(), 1, "polling an unchanged digest rebuilt");
    push_base(&base, &tb.base_image, "p2");
    let runs = wait_runs(&d, "task-polled", 2, Duration::from_secs(60));
    assert_eq!(runs[0]["status"], "Succeeded", "{}", runs[0]);
    assert!(runs[0]["imageUpdateTrigger"].is_object());
}

#[test]
fn timers_fire_once_per_occurrence_at_a_real_minute_boundary() {
    let Some(_tb) = testbed() else { return };
    // Set up early in a minute, so the set-up never straddles the boundary we wait for.
    let second = chrono::Timelike::second(&chrono::Utc::now());
    if second > 40 {
        std::thread::sleep(Duration::from_secs(61 - second as u64));
    }
    // Timers every minute are the operator's to allow.
    let d = Daemon::start(&["--min-timer-period-seconds", "60"]);
    task(
        &d,
        &[
            "-n",
            "ticking",
            "--cmd",
            "slipway-busybox echo tick",
            "--schedule",
            "every:* * * * *",
            "--schedule",
            "also:*/1 * * * *",
        ],
    );
    task(
        &d,
        &[
            "-n",
            "ticking-disabled",
            "--cmd",
            "slipway-busybox echo no",
            "--schedule",
            "every:* * * * *",
            "--status",
            "Disabled",
        ],
    );
    task(
        &d,
        &[
            "-n",
            "timer-off",
            "--cmd",
            "slipway-busybox echo no",
            "--schedule",
            "every:* * * * *",
        ],
    );
    let r = run(d.client().args([
        "task",
        "timer",
        "update",
        "-n",
        "timer-off",
        "--timer-name",
        "every",
        "--enabled",
        "false",
    ]));
    assert!(r.ok, "{}", r.all());
    let bad = run(d.client().args([
        "task",
        "timer",
        "add",
        "-n",
        "timer-off",
        "--timer-name",
        "bad",
        "--schedule",
        "0 25 * * *",
    ]));
    assert!(!bad.ok && bad.stderr.contains("hour"), "{}", bad.all());
    // Wait for the next real minute boundary, and a little more.
    let now = chrono::Utc::now();
    let next_minute = 60 - chrono::Timelike::second(&now) as u64;
    std::thread::sleep(Duration::from_secs(next_minute + 5));
    let runs = wait_runs(&d, "ticking", 2, Duration::from_secs(30));
    assert_eq!(runs.len(), 2, "two timers due the same minute each start one run: {runs:#?}");
    let mut names: Vec<&str> = runs
        .iter()
        .map(|r| r["timerTrigger"]["timerTriggerName"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["also", "every"]);
    let occurrence = runs[0]["timerTrigger"]["scheduleOccurrence"].as_str().unwrap();
    assert!(occurrence.ends_with(":00Z"), "{occurrence}");
    assert!(runs.iter().all(|r| r["status"] == "Succeeded" && r["runType"] == "AutoRun"));
    assert!(task_runs(&d, "ticking-disabled").is_empty(), "a disabled task fired");
    assert!(task_runs(&d, "timer-off").is_empty(), "a disabled timer fired");
    let list = run(d.client().args(["task", "list-runs", "-n", "ticking"]));
    assert!(list.stdout.contains("Timer"), "{}", list.stdout);
}

#[test]
fn the_example_post_receive_hook_starts_a_build_on_git_push() {
    let Some(tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let work = repo(&format!("FROM {}\nCOPY msg /msg\n", tb.base_image), "one\n");
    let server = tempfile::tempdir().unwrap();
    let bare = server.path().join("app.git");
    git(
        server.path(),
        &["clone", "-q", "--bare", work.path().to_str().unwrap(), bare.to_str().unwrap()],
    );
    std::fs::copy(repo_root().join("examples/git-hooks/post-receive"), bare.join("hooks/post-receive")).unwrap();
    let url = format!("file://{}", bare.display());
    git(&bare, &["config", "slipway.server", &d.url()]);
    git(&bare, &["config", "slipway.secret", "hook-example-secret"]);
    git(&bare, &["config", "slipway.url", &url]);
    task(
        &d,
        &[
            "-n",
            "hook-example",
            "--context",
            &format!("{url}#main"),
            "--file",
            "Dockerfile",
            "--no-push",
            "--commit-trigger-enabled",
            "true",
            "--webhook-secret",
            "hook-example-secret",
        ],
    );
    git(work.path(), &["remote", "add", "origin", bare.to_str().unwrap()]);
    let pushed = commit(work.path(), "two\n");
    let out = Command::new("git")
        .args(["push", "-q", "origin", "main"])
        .current_dir(work.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("slipway: notified"), "{said}");
    let runs = wait_runs(&d, "hook-example", 1, Duration::from_secs(60));
    assert_eq!(runs[0]["status"], "Succeeded", "{}", runs[0]);
    assert_eq!(runs[0]["sourceTrigger"]["commitId"], pushed.as_str());
}

#[test]
fn tasks_that_are_each_others_base_rebuild_once_each_and_stop() {
    let Some(tb) = testbed() else { return };
    let config = dir_with(&[(
        "slipway.toml",
        "registry_notification_secret = \"loop-secret\"\npoll_interval_seconds = 0\n",
    )]);
    let d = Daemon::start(&["--config", config.path().join("slipway.toml").to_str().unwrap()]);
    let reg = Registry::start(Some((&d.url(), "loop-secret")));
    let (img_a, img_b) = (format!("{}/loop-a:latest", reg.host), format!("{}/loop-b:latest", reg.host));
    push_base(&img_a, &tb.base_image, "seed a");
    push_base(&img_b, &tb.base_image, "seed b");
    // A builds FROM B's image and pushes A's; B builds FROM A's image and pushes B's.
    let a_src = repo(&format!("FROM {img_b}\nRUN date > /built-a\n"), "a\n");
    let b_src = repo(&format!("FROM {img_a}\nRUN date > /built-b\n"), "b\n");
    task(
        &d,
        &[
            "-n",
            "loop-task-a",
            "--context",
            &format!("file://{}#main", a_src.path().display()),
            "--file",
            "Dockerfile",
            "-t",
            &img_a,
            "--base-image-trigger-enabled",
            "true",
        ],
    );
    task(
        &d,
        &[
            "-n",
            "loop-task-b",
            "--context",
            &format!("file://{}#main", b_src.path().display()),
            "--file",
            "Dockerfile",
            "-t",
            &img_b,
            "--base-image-trigger-enabled",
            "true",
        ],
    );
    for t in ["loop-task-a", "loop-task-b"] {
        let r = run(d.client().args(["task", "run", "-n", t]));
        assert!(r.ok, "{t}: {}", r.all());
    }
    // The manual runs' pushes started the other task once each; let that settle.
    std::thread::sleep(Duration::from_secs(6));
    let settled_a = task_runs(&d, "loop-task-a").len();
    let settled_b = task_runs(&d, "loop-task-b").len();
    // An outside change to B's image starts A, whose push starts B, whose push would
    // start A again: A is in the chain, so it stops there.
    push_base(&img_b, &tb.base_image, "outside change");
    let a_runs = wait_runs(&d, "loop-task-a", settled_a + 1, Duration::from_secs(90));
    let b_runs = wait_runs(&d, "loop-task-b", settled_b + 1, Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        task_runs(&d, "loop-task-a").len(),
        settled_a + 1,
        "A rebuilt more than once: {a_runs:#?}"
    );
    assert_eq!(
        task_runs(&d, "loop-task-b").len(),
        settled_b + 1,
        "B rebuilt more than once: {b_runs:#?}"
    );
    assert_eq!(
        task_runs(&d, "loop-task-b")[0]["imageUpdateTrigger"]["chain"],
        serde_json::json!(["loop-task-a"])
    );
}
