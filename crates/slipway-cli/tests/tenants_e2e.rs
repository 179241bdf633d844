//! Two tenants on one farm, each trying to harm the other, through the real daemon,
//! engine and registry. One test per way issue 17 found one tenant could reach the
//! other; each is written as the attack, and asserts that it did no harm.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::daemon::Daemon;
use support::*;

const A: &str = "team-a-token-1";
const A_ADMIN: &str = "team-a-admin-1";
const B: &str = "team-b-token-1";
const OPS: &str = "operator-token-1";

/// A shared farm as the README sets one up: two tenants, each owning its repositories
/// of the daemon's registry, an operator, and no loopback in reach of sources.
fn farm(tb: &Testbed) -> Daemon {
    farm_reaching(tb, "")
}

/// The farm, with sources (and so a Dockerfile's `ADD URL`) allowed to reach `hosts`.
fn farm_reaching(tb: &Testbed, hosts: &str) -> Daemon {
    Daemon::start_full(
        None,
        &[
            "--tenant",
            &format!("team-a:token={A}"),
            "--tenant",
            &format!("team-a:admin-token={A_ADMIN}"),
            "--tenant",
            "team-a:repository=team-a/*",
            "--tenant",
            &format!("team-b:token={B}"),
            "--tenant",
            "team-b:repository=team-b/*",
            "--admin-token",
            OPS,
            "--registry",
            &tb.registry,
        ],
        &[("SLIPWAY_ALLOWED_SOURCE_HOSTS", hosts)],
    )
}

fn cli_image() -> String {
    std::env::var("SLIPWAY_TEST_CLI_IMAGE").unwrap_or_else(|_| "slipway-docker-cli:latest".into())
}

/// The client, as `token`'s caller.
fn client(d: &Daemon, token: &str) -> std::process::Command {
    let mut c = d.client();
    c.env("SLIPWAY_TOKEN", token);
    c
}

/// Runs `acb.yaml` of `dir` as `token`'s caller; the run's id and how it went.
fn run_dir(d: &Daemon, token: &str, dir: &Path) -> (String, Ran) {
    let r = run(client(d, token).args(["run", "-f", "acb.yaml", dir.to_str().unwrap()]));
    let id = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Queued a run with ID: "))
        .unwrap_or_else(|| panic!("no run was queued:\n{}\n{}", r.all(), d.server_log()))
        .trim()
        .to_string();
    (id, r)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

fn engine_image_id(image: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", image])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits for `token`'s run to finish; its record and log.
fn finished(d: &Daemon, token: &str, id: &str) -> (serde_json::Value, String) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (code, body) = d.call("GET", &format!("/v1/runs/{id}"), None, Some(token), &[]);
        assert_eq!(code, 200, "{body}");
        let r = json(&body);
        if ["Succeeded", "Failed", "Error", "Timeout", "Canceled"]
            .iter()
            .any(|s| r["status"] == *s)
        {
            let log = d.call("GET", &format!("/v1/runs/{id}/log"), None, Some(token), &[]).1;
            return (r, log);
        }
        assert!(Instant::now() < deadline, "run {id} did not finish:\n{}", d.server_log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_log(d: &Daemon, token: &str, id: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = d.call("GET", &format!("/v1/runs/{id}/log"), None, Some(token), &[]).1;
        if log.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "run {id}'s log never showed {needle:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Row 1: a tenant renames the operator's base image, and the image another tenant's
/// steps run, to its own code, by every way a run makes image names.
#[test]
fn one_tenants_image_names_never_become_anothers_images() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let base = &tb.base_image;
    let cli = cli_image();
    let (base_before, cli_before) = (engine_image_id(base), engine_image_id(&cli));
    let evil = dir_with(&[
        ("Dockerfile.evil", &format!("FROM {base}\nRUN echo pwned-by-a > /marker\n")),
        (
            "acb.yaml",
            &format!(
                r#"steps:
  - id: proxied
    cmd: {cli} sh -c 'DOCKER_BUILDKIT=0 docker build -q -t {base} -f Dockerfile.evil . && docker tag {base} {cli} && docker save -o /workspace/img.tar {base} && docker load -i /workspace/img.tar && docker commit $(docker create {base} true) {base}'
  - id: over
    build: -t {base} -t {cli} -f Dockerfile.evil .
  - id: own
    cmd: {base} cat /marker
"#
            ),
        ),
    ]);
    let (a_run, r) = run_dir(&d, A, evil.path());
    assert!(r.ok, "{}\n{}", r.all(), d.server_log());
    assert!(
        r.stdout.contains("own | pwned-by-a"),
        "within its own run, a tenant's names are its images:\n{}",
        r.stdout
    );
    // Nothing of it is left, and the engine's images are the operator's still.
    assert!(leftovers(&a_run).is_empty(), "{:?}", leftovers(&a_run));
    assert_eq!((engine_image_id(base), engine_image_id(&cli)), (base_before, cli_before));

    let victim = dir_with(&[
        ("Dockerfile", &format!("FROM {base}\nRUN test ! -e /marker && echo clean-build\n")),
        (
            "acb.yaml",
            &format!(
                r#"steps:
  - cmd: {base} sh -c 'test ! -e /marker && echo clean-base'
  - build: -t b-app --no-cache .
  - cmd: {cli} sh -c 'docker run --rm {base} sh -c "test ! -e /marker && echo clean-through-proxy"'
"#
            ),
        ),
    ]);
    let (_, r) = run_dir(&d, B, victim.path());
    assert!(r.ok, "{}", r.all());
    for clean in ["clean-base", "clean-build", "clean-through-proxy"] {
        assert!(r.stdout.contains(clean), "{clean}:\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("pwned-by-a"), "{}", r.stdout);

    // A local image as BuildKit's frontend (`# syntax=`) is refused, saying why.
    let frontend = dir_with(&[
        ("Dockerfile", &format!("# syntax={base}\nFROM {base}\n")),
        ("acb.yaml", "steps:\n  - build: -t f .\n"),
    ]);
    let (_, r) = run_dir(&d, A, frontend.path());
    assert!(!r.ok && r.all().contains("frontends come only from a registry"), "{}", r.all());
    // A registry's frontend the operator did not list is refused too, by both ways of
    // naming one; one it listed gets past the check (busybox is no frontend, so the
    // build then fails in BuildKit).
    let listed = format!("{}/shared/frontend-{}", tb.registry, unique_id(""));
    host_docker(&["tag", base, &format!("{listed}:1")], None);
    host_docker(&["push", &format!("{listed}:1")], None);
    host_docker(&["rmi", &format!("{listed}:1")], None);
    for (dockerfile, acb) in [
        (
            format!("# syntax={listed}:1\nFROM {base}\n"),
            "steps:\n  - build: -t f .\n".to_string(),
        ),
        (
            format!("FROM {base}\n"),
            format!("steps:\n  - build: -t f --build-arg BUILDKIT_SYNTAX={listed}:1 .\n"),
        ),
    ] {
        let dir = dir_with(&[("Dockerfile", &dockerfile), ("acb.yaml", &acb)]);
        let (_, r) = run_dir(&d, A, dir.path());
        assert!(!r.ok && r.all().contains("allowed_frontends"), "{}", r.all());
    }
    let mut d = d;
    d.terminate();
    let d = Daemon::start_full(
        None,
        &[
            "--tenant",
            &format!("team-a:token={A}"),
            "--registry",
            &tb.registry,
            "--allowed-frontend",
            &listed,
        ],
        &[("SLIPWAY_ALLOWED_SOURCE_HOSTS", "")],
    );
    let dir = dir_with(&[
        ("Dockerfile", &format!("# syntax={listed}:1\nFROM {base}\n")),
        ("acb.yaml", "steps:\n  - build: -t f .\n"),
    ]);
    let (_, r) = run_dir(&d, A, dir.path());
    assert!(!r.ok && !r.all().contains("allowed_frontends"), "{}", r.all());
    // The forms BuildKit also reads a frontend from are refused, not left unpinned.
    for dockerfile in [
        format!("#!x\n# syntax=evil/frontend:1\nFROM {base}\n"),
        format!("//syntax=evil/frontend:1\nFROM {base}\n"),
    ] {
        std::fs::write(dir.path().join("Dockerfile"), &dockerfile).unwrap();
        let (_, r) = run_dir(&d, A, dir.path());
        assert!(!r.ok && r.all().contains("does not pin"), "{dockerfile}: {}", r.all());
    }
}

/// Row 2: a tenant reads another's unpushed image while it is being built and after.
#[test]
fn a_tenants_unpushed_images_are_out_of_anothers_reach() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let base = &tb.base_image;
    let cli = cli_image();
    let secret = format!("B-build-secret-{}", unique_id(""));
    let b_dir = dir_with(&[
        (
            "Dockerfile",
            &format!("FROM {base}\nARG B_SECRET\nRUN echo \"$B_SECRET\" > /b-secret\n"),
        ),
        (
            "acb.yaml",
            &format!("steps:\n  - build: -t b-private:1 --build-arg B_SECRET={secret} .\n  - cmd: {base} sleep 60\n"),
        ),
    ]);
    let r = run(client(&d, B).args(["run", "--no-wait", "-f", "acb.yaml", b_dir.path().to_str().unwrap()]));
    let b_run = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Queued a run with ID: "))
        .unwrap()
        .trim()
        .to_string();
    wait_log(&d, B, &b_run, "Successfully built");
    let b_image = format!("slipway.invalid/{b_run}/docker.io/library/b-private:1");
    let thief = dir_with(&[
        ("Dockerfile", &format!("FROM {base}\nCOPY --from={b_image} /b-secret /x\n")),
        (
            "acb.yaml",
            &format!(
                r#"steps:
  - id: look
    cmd: {cli} sh -c 'echo listed:; docker images --format json; docker history --no-trunc {b_image} || echo history-refused; docker save {b_image} -o /tmp/x || echo save-refused; docker run --rm {b_image} cat /b-secret || echo run-refused; docker tag {b_image} {reg}/team-a/stolen || echo tag-refused; docker history b-private:1 || echo short-name-refused; docker info --format json'
"#,
                reg = tb.registry
            ),
        ),
    ]);
    let (_, r) = run_dir(&d, A, thief.path());
    assert!(r.ok, "{}", r.all());
    for refused in [
        "history-refused",
        "save-refused",
        "run-refused",
        "tag-refused",
        "short-name-refused",
    ] {
        assert!(r.stdout.contains(refused), "{refused}:\n{}", r.stdout);
    }
    // Its listing and its counts are its own: the operator's images pinned for it.
    let listed: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("look | "))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let names: Vec<String> = listed.iter().filter_map(|i| i["Repository"].as_str().map(str::to_string)).collect();
    assert!(names.iter().any(|n| n == "slipway-busybox"), "{names:?}");
    assert!(
        names.iter().all(|n| !n.contains("b-private") && !n.contains("slipway.invalid")),
        "{names:?}"
    );
    let images = listed.iter().find_map(|i| i["Images"].as_u64()).expect("docker info's counts");
    let pinned = LOCAL_IMAGES.split(',').count() as u64;
    assert!(images <= pinned, "{images} images through the socket");
    assert!(!r.all().contains(&secret), "{}", r.all());
    // A build that copies from it fails, naming why.
    std::fs::write(thief.path().join("acb.yaml"), "steps:\n  - build: -t t .\n").unwrap();
    let (_, r) = run_dir(&d, A, thief.path());
    assert!(!r.ok && r.all().contains("another run's image"), "{}", r.all());
    assert!(!r.all().contains(&secret));
    // When B's run ends, its image goes with it.
    assert_eq!(d.call("POST", &format!("/v1/runs/{b_run}/cancel"), None, Some(B), &[]).0, 200);
    finished(&d, B, &b_run);
    assert!(engine_image_id(&b_image).is_empty(), "B's image outlived its run");
    assert!(leftovers(&b_run).is_empty(), "{:?}", leftovers(&b_run));
}

/// Row 3: a tenant's token used on another tenant's runs, logs, tasks, webhooks,
/// uploads, metrics and dashboard, and on a task's secrets by moving its source.
#[test]
fn a_token_reaches_only_its_tenants_things() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let base = &tb.base_image;
    let body = |v: serde_json::Value| Some(serde_json::to_vec(&v).unwrap());
    let task = serde_json::json!({"cmd": format!("{base} echo task-of-a"), "values": [{"name": "v", "value": "a-only", "isSecret": true}]});
    assert_eq!(d.call("PUT", "/v1/tasks/build-app", body(task), Some(A), &[]).0, 201);
    let (code, started) = d.call("POST", "/v1/tasks/build-app/runs", None, Some(A), &[]);
    assert_eq!(code, 201, "{started}");
    let a_run = json(&started)["runId"].as_str().unwrap().to_string();
    finished(&d, A, &a_run);

    // B: every lookup of A's is a 404, as of something that does not exist.
    for (method, path) in [
        ("GET", format!("/v1/runs/{a_run}")),
        ("GET", format!("/v1/runs/{a_run}/log")),
        ("POST", format!("/v1/runs/{a_run}/cancel")),
        ("GET", "/v1/tasks/build-app".to_string()),
        ("POST", "/v1/tasks/build-app/runs".to_string()),
        ("GET", "/v1/tasks/build-app/runs".to_string()),
        ("DELETE", "/v1/tasks/build-app".to_string()),
    ] {
        let (code, text) = d.call(method, &path, None, Some(B), &[]);
        assert_eq!(code, 404, "{method} {path}: {text}");
    }
    let (_, list) = d.call("GET", "/v1/runs", None, Some(B), &[]);
    assert!(!list.contains(&a_run), "{list}");
    assert!(!d.call("GET", "/v1/tasks", None, Some(B), &[]).1.contains("build-app"));
    // B's own task of the same name is B's, and A's stays A's.
    let b_task = serde_json::json!({"cmd": format!("{base} echo task-of-b")});
    let (code, text) = d.call("PUT", "/v1/tasks/build-app", body(b_task), Some(B), &[]);
    assert_eq!(code, 201, "{text}");
    assert!(d.call("GET", "/v1/tasks/build-app", None, Some(A), &[]).1.contains("task-of-a"));
    assert!(d.call("GET", "/v1/tasks/build-app", None, Some(B), &[]).1.contains("task-of-b"));
    // Webhooks and metrics, too.
    let hook = serde_json::json!({"uri": "https://93.184.216.34/a", "actions": ["push"]});
    assert_eq!(d.call("PUT", "/v1/outgoing-webhooks/deploy", body(hook), Some(A), &[]).0, 201);
    assert_eq!(d.call("GET", "/v1/outgoing-webhooks/deploy", None, Some(B), &[]).0, 404);
    let metrics = d.call("GET", "/metrics", None, Some(B), &[]).1;
    assert!(metrics.contains("slipway_runs{status=\"Succeeded\"} 0"), "{metrics}");
    // A member cannot name another tenant; the operator sees and names either.
    assert_eq!(d.call("GET", "/v1/runs", None, Some(B), &[("X-Slipway-Tenant", "team-a")]).0, 403);
    assert_eq!(d.call("GET", &format!("/v1/runs/{a_run}"), None, Some(OPS), &[]).0, 200);
    assert!(d
        .call("GET", "/v1/tasks/build-app", None, Some(OPS), &[("X-Slipway-Tenant", "team-b")])
        .1
        .contains("task-of-b"));

    // An upload is its sender's tenant's.
    let ctx = dir_with(&[("Dockerfile", &format!("FROM {base}\n"))]);
    let r = run(client(&d, A).args(["build", "--no-push", "--no-wait", "-t", "x"]).arg(ctx.path()));
    assert!(r.ok, "{}", r.all());
    let uploads: Vec<String> = std::fs::read_dir(d.data_dir().join("uploads"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().trim_end_matches(".tar.gz").to_string())
        .collect();
    let steal =
        serde_json::json!({"type": "DockerBuildRequest", "sourceLocation": format!("upload://{}", uploads[0]), "imageNames": ["x"]});
    let (code, text) = d.call("POST", "/v1/runs", body(steal), Some(B), &[]);
    assert!(code == 400 && text.contains("does not exist"), "{code} {text}");

    // The dashboard shows B only B's.
    let (code, page) = signed_in_get(&d, B, "/");
    assert!(code == 200 && !page.contains(&a_run), "{code}");
    assert_eq!(signed_in_get(&d, B, &format!("/runs/{a_run}")).0, 404);
}

/// Row 3, the secrets half: a task's secret argument, its source moved by a member
/// (a run's overrides, a PATCH), never reaches the member's Dockerfile.
#[test]
fn a_tasks_secrets_stay_with_its_source() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let base = &tb.base_image;
    let secret = format!("task-secret-{}", unique_id(""));
    let repo = |dockerfile: &str| {
        let dir = dir_with(&[("Dockerfile", dockerfile)]);
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["add", "."]);
        git(dir.path(), &["commit", "-q", "-m", "one"]);
        dir
    };
    let own = repo(&format!(
        "FROM {base}\nARG TOKEN\nRUN test -n \"$TOKEN\" && echo own-source-got-it\n"
    ));
    let evil = repo(&format!("FROM {base}\nARG TOKEN\nRUN echo \"token=[$TOKEN]\"\n"));
    let own_url = format!("file://{}#main", own.path().display());
    let evil_url = format!("file://{}#main", evil.path().display());
    let task = serde_json::json!({
        "contextPath": own_url, "file": "Dockerfile", "imageNames": ["t"], "isPushEnabled": false,
        "arguments": [{"name": "TOKEN", "value": secret, "isSecret": true}],
    });
    let body = |v: serde_json::Value| Some(serde_json::to_vec(&v).unwrap());
    assert_eq!(d.call("PUT", "/v1/tasks/secret-task", body(task), Some(A), &[]).0, 201);
    let start = |token: &str, overrides: serde_json::Value| {
        let (code, text) = d.call("POST", "/v1/tasks/secret-task/runs", body(overrides), Some(token), &[]);
        (code, json(&text)["runId"].as_str().unwrap_or_default().to_string(), text)
    };
    let (_, id, _) = start(A, serde_json::json!({}));
    let (r, log) = finished(&d, A, &id);
    assert_eq!(r["status"], "Succeeded", "{log}");
    assert!(log.contains("own-source-got-it"), "{log}");
    // A member moves the source: the task's secret stays behind.
    let (_, id, _) = start(A, serde_json::json!({"contextPath": evil_url}));
    let (_, log) = finished(&d, A, &id);
    assert!(log.contains("token=[]"), "{log}");
    // Keeping it is the tenant admin's to say.
    let (code, _, text) = start(A, serde_json::json!({"contextPath": evil_url, "keepSecrets": true}));
    assert!(code == 403 && text.contains("admin"), "{code} {text}");
    let (code, id, text) = start(A_ADMIN, serde_json::json!({"contextPath": evil_url, "keepSecrets": true}));
    assert_eq!(code, 201, "{text}");
    let (_, log) = finished(&d, A_ADMIN, &id);
    assert!(log.contains("token=[*****]"), "the admin kept it (masked):\n{log}");
    // A PATCH that moves it drops the task's secrets for good.
    assert_eq!(
        d.call(
            "PATCH",
            "/v1/tasks/secret-task",
            body(serde_json::json!({"contextPath": evil_url})),
            Some(A),
            &[]
        )
        .0,
        200
    );
    let (_, id, _) = start(A, serde_json::json!({}));
    let (_, log) = finished(&d, A, &id);
    assert!(log.contains("token=[]"), "{log}");
    // A task's command is its source too: a member that rewrites it gets no secret.
    let cmd_task = serde_json::json!({
        "cmd": format!("{base} echo own=[{{{{.Values.s}}}}]"),
        "values": [{"name": "s", "value": secret, "isSecret": true}],
    });
    assert_eq!(d.call("PUT", "/v1/tasks/cmd-task", body(cmd_task), Some(A_ADMIN), &[]).0, 201);
    let run_cmd_task = || {
        let (code, text) = d.call("POST", "/v1/tasks/cmd-task/runs", body(serde_json::json!({})), Some(A), &[]);
        assert_eq!(code, 201, "{text}");
        finished(&d, A, json(&text)["runId"].as_str().unwrap()).1
    };
    assert!(run_cmd_task().contains("own=[*****]"));
    let patch = serde_json::json!({"cmd": format!("{base} echo stolen=[{{{{.Values.s}}}}]")});
    assert_eq!(d.call("PATCH", "/v1/tasks/cmd-task", body(patch), Some(A), &[]).0, 200);
    let log = run_cmd_task();
    assert!(log.contains("stolen=[]"), "{log}");
    assert!(!d.server_log().contains(&secret));
}

/// The dashboard's answer for `path`, signed in with `token`.
fn signed_in_get(d: &Daemon, token: &str, path: &str) -> (u16, String) {
    d.signed_in_get(token, path)
}

/// Row 4: a tenant writes into a build-cache mount another tenant's builds of the same
/// repository read.
#[test]
fn build_caches_are_each_tenants_own() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let base = &tb.base_image;
    let mount = "--mount=type=cache,id=shared,target=/c";
    let repo = dir_with(&[
        (
            "poison.Dockerfile",
            &format!("FROM {base}\nARG N\nRUN {mount} sh -c 'echo poisoned-by-a > /c/x; echo wrote $N'\n"),
        ),
        (
            "Dockerfile",
            &format!("FROM {base}\nARG N\nRUN {mount} sh -c 'echo read=$(cat /c/x 2>/dev/null || echo nothing) $N'\n"),
        ),
    ]);
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "one"]);
    let url = format!("file://{}#main", repo.path().display());
    let build = |token: &str, file: &str| {
        let n = unique_id("n");
        run(client(&d, token).args(["build", "--no-push", "-t", "c", "-f", file, "--build-arg", &format!("N={n}"), &url]))
    };
    let r = build(A, "poison.Dockerfile");
    assert!(r.ok && r.stdout.contains("wrote"), "{}", r.all());
    let r = build(B, "Dockerfile");
    assert!(r.ok, "{}", r.all());
    assert!(
        r.stdout.contains("read=nothing") && !r.stdout.contains("poisoned-by-a"),
        "{}",
        r.stdout
    );
    // Within A, the repository's builds share their cache, as they should.
    let r = build(A, "Dockerfile");
    assert!(r.stdout.contains("read=poisoned-by-a"), "{}", r.stdout);
}

/// Row 5: a Dockerfile makes the engine fetch from the host's own loopback.
#[test]
fn a_build_cannot_fetch_from_the_hosts_loopback() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let base = &tb.base_image;
    let served = tempfile::tempdir().unwrap();
    std::fs::write(served.path().join("secret"), "host-loopback-secret\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = std::process::Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(served.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let cli = cli_image();
    for (dockerfile, why) in [
        (
            format!("FROM {base}\nADD http://127.0.0.1:{port}/secret /s\n"),
            "allowed_source_hosts",
        ),
        (
            format!("ARG H=127.0.0.1\nFROM {base}\nARG H\nADD http://${{H}}:{port}/secret /s\n"),
            "allowed_source_hosts",
        ),
        (format!("FROM {base}\nADD $FROM_THE_BASE/secret /s\n"), "cannot be checked"),
    ] {
        let dir = dir_with(&[("Dockerfile", &dockerfile), ("acb.yaml", "steps:\n  - build: -t fetch .\n")]);
        let (_, r) = run_dir(&d, A, dir.path());
        assert!(!r.ok && r.all().contains(why), "{dockerfile}:\n{}", r.all());
        assert!(!r.all().contains("host-loopback-secret"));
        // Built through the run's engine socket (the classic builder), the same.
        std::fs::write(
            dir.path().join("acb.yaml"),
            format!("steps:\n  - cmd: {cli} sh -c 'DOCKER_BUILDKIT=0 docker build -t fetch2 .'\n"),
        )
        .unwrap();
        let (_, r) = run_dir(&d, A, dir.path());
        assert!(
            !r.ok && r.all().contains("fetches no URL"),
            "through the proxy, {dockerfile} ({why}):\n{}",
            r.all()
        );
        assert!(!r.all().contains("host-loopback-secret"));
    }
    server.kill().unwrap();
    let _ = server.wait();
    let mut stderr = String::new();
    std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("GET /secret"), "the server was reached:\n{stderr}");
}

/// Row 6: sources and webhooks aimed at the machine's own interface address or at the
/// documentation ranges.
#[test]
fn the_hosts_own_addresses_and_documentation_ranges_are_refused() {
    let Some(_) = testbed() else { return };
    // An address of this machine's own, not loopback (a bridge, the uplink).
    let own = String::from_utf8(std::process::Command::new("hostname").arg("-I").output().unwrap().stdout).unwrap();
    let own = own
        .split_whitespace()
        .find(|a| a.contains('.'))
        .expect("an IPv4 address of this machine")
        .to_string();
    let octets: Vec<&str> = own.split('.').collect();
    let net = format!("{}.{}.0.0/16", octets[0], octets[1]);
    let body = |v: serde_json::Value| Some(serde_json::to_vec(&v).unwrap());
    let refused = |d: &Daemon, sources: &[String], webhooks: &[String]| {
        for source in sources {
            let req = serde_json::json!({"type": "DockerBuildRequest", "sourceLocation": source, "imageNames": ["x"]});
            let (code, text) = d.call("POST", "/v1/runs", body(req), Some(daemon::TOKEN), &[]);
            assert!(code == 400 && text.contains("allowed_source_hosts"), "{source}: {code} {text}");
        }
        for uri in webhooks {
            let hook = serde_json::json!({"uri": uri, "actions": ["push"]});
            let (code, text) = d.call("PUT", "/v1/outgoing-webhooks/hook1", body(hook), Some(daemon::TOKEN), &[]);
            assert!(code == 400 && text.contains("allowed_webhook_hosts"), "{uri}: {code} {text}");
        }
    };
    // The operator lets sources and webhooks reach the network the machine is in:
    // still not the machine itself.
    let d = Daemon::start_with_env(
        &[],
        &[("SLIPWAY_ALLOWED_SOURCE_HOSTS", &net), ("SLIPWAY_ALLOWED_WEBHOOK_HOSTS", &net)],
    );
    refused(&d, &[format!("http://{own}:8080/r.tar.gz")], &[format!("http://{own}:9/h")]);
    // The documentation ranges are no one's to reach.
    let d = Daemon::start(&[]);
    refused(
        &d,
        &["https://192.0.2.7/r.tar.gz".into(), "https://198.51.100.3/r.git".into()],
        &["https://203.0.113.5/h".into(), "https://[2001:db8::1]/h".into()],
    );
}

/// Row 7: a step leaves device files of the host's disk and set-uid programs in the
/// data dir.
#[test]
fn steps_make_no_device_files_and_set_uid_means_nothing() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let base = &tb.base_image;
    let cli = cli_image();
    let dir = dir_with(&[(
        "acb.yaml",
        &format!(
            r#"steps:
  - cmd: {base} sh -c 'grep " /workspace " /proc/mounts; grep CapEff /proc/self/status; mknod /workspace/blk b 8 0 && echo MKNOD-WORKED || echo mknod-refused; cp /bin/busybox /workspace/sbb && chmod u+s /workspace/sbb && echo suid-copied'
  - cmd: {cli} sh -c 'docker run --rm -v /workspace:/w {base} mknod /w/chr c 1 5 && echo PROXY-MKNOD-WORKED || echo proxy-mknod-refused'
  - cmd: {base} sh -c 'grep " /acb/home " /proc/mounts'
"#
        ),
    )]);
    let (id, r) = run_dir(&d, A, dir.path());
    assert!(r.ok, "{}", r.all());
    let mounts: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains(" /workspace ") || l.contains(" /acb/home "))
        .collect();
    assert_eq!(mounts.len(), 2, "{}", r.stdout);
    for m in mounts {
        assert!(m.contains("nosuid") && m.contains("nodev"), "{m}");
    }
    assert!(
        r.stdout.contains("mknod-refused") && r.stdout.contains("proxy-mknod-refused"),
        "{}",
        r.stdout
    );
    let caps = r.stdout.lines().find_map(|l| l.split("CapEff:").nth(1)).unwrap().trim().to_string();
    let caps = u64::from_str_radix(&caps, 16).unwrap();
    assert_eq!(caps & (1 << 27 | 1 << 13), 0, "CAP_MKNOD and CAP_NET_RAW are dropped: {caps:x}");
    // On the host: no device file anywhere in the data dir, which is mounted nosuid.
    for f in walk(&d.data_dir()) {
        use std::os::unix::fs::FileTypeExt;
        let t = std::fs::symlink_metadata(&f).unwrap().file_type();
        assert!(!t.is_block_device() && !t.is_char_device(), "{}", f.display());
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let data = d.data_dir().canonicalize().unwrap();
    assert!(
        info.lines()
            .any(|l| l.split(' ').nth(4) == data.to_str() && l.contains("nosuid") && l.contains("nodev")),
        "the data dir is mounted nodev,nosuid"
    );
    assert!(leftovers(&id).is_empty());
}

/// Row 8: a tenant pushes over another tenant's repository in the daemon's registry.
#[test]
fn pushes_stay_in_the_tenants_repositories() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let base = &tb.base_image;
    let cli = cli_image();
    let reg = &tb.registry;
    let tag = unique_id("t");
    let dir = dir_with(&[
        ("Dockerfile", &format!("FROM {base}\nRUN echo from-a > /who\n")),
        (
            "acb.yaml",
            &format!("steps:\n  - build: -t {reg}/team-b/app:{tag} .\n  - push: [\"{reg}/team-b/app:{tag}\"]\n"),
        ),
    ]);
    let (_, r) = run_dir(&d, A, dir.path());
    assert!(
        !r.ok && r.all().contains(&format!("may not push to {reg}/team-b/app")),
        "{}",
        r.all()
    );
    // Other spellings of the daemon's registry are the same registry.
    let port = reg.rsplit(':').next().unwrap();
    for other_spelling in [
        format!("LOCALHOST:{port}"),
        format!("127.0.0.1:0{port}"),
        format!("127.0.0.2:{port}"),
    ] {
        std::fs::write(
            dir.path().join("acb.yaml"),
            format!("steps:\n  - build: -t {other_spelling}/team-b/app:{tag} .\n  - push: [\"{other_spelling}/team-b/app:{tag}\"]\n"),
        )
        .unwrap();
        let (_, r) = run_dir(&d, A, dir.path());
        assert!(!r.ok && r.all().contains("may not push to"), "{other_spelling}: {}", r.all());
    }
    std::fs::write(
        dir.path().join("acb.yaml"),
        format!("steps:\n  - build: -t {reg}/team-b/app:{tag} .\n  - push: [\"{reg}/team-b/app:{tag}\"]\n"),
    )
    .unwrap();
    // A quick build, `cache: enabled` and the engine socket: the same.
    let r = run(client(&d, A)
        .args(["build", "-t", &format!("{reg}/team-b/app:{tag}")])
        .arg(dir.path()));
    assert!(!r.ok && r.all().contains("may not push"), "{}", r.all());
    std::fs::write(
        dir.path().join("acb.yaml"),
        format!("steps:\n  - build: -t {reg}/team-a/app:{tag} .\n    cache: enabled\n  - cmd: {cli} sh -c 'docker tag {reg}/team-a/app:{tag} {reg}/team-b/app:{tag} && docker push {reg}/team-b/app:{tag}'\n"),
    )
    .unwrap();
    let (_, r) = run_dir(&d, A, dir.path());
    assert!(!r.ok && r.all().contains("may not push to"), "{}", r.all());
    // Nothing of A's reached team-b, which the registry itself says.
    let tags = rt().block_on(async {
        reqwest::get(format!("http://{reg}/v2/team-b/app/tags/list"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(!tags.contains(&tag), "{tags}");
    // Its own repositories take its pushes.
    std::fs::write(
        dir.path().join("acb.yaml"),
        format!("steps:\n  - build: -t {reg}/team-a/app:{tag} .\n  - push: [\"{reg}/team-a/app:{tag}\"]\n"),
    )
    .unwrap();
    let (_, r) = run_dir(&d, A, dir.path());
    assert!(r.ok, "{}", r.all());
    // And the pushed name does not stay in the engine for another run to read.
    assert!(engine_image_id(&format!("{reg}/team-a/app:{tag}")).is_empty());
}

/// Row 9: the engine socket's remaining gaps: a negative OOM score, raised ulimits, a
/// failing classic build's containers.
#[test]
fn the_engine_socket_refuses_what_reaches_past_the_run() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let base = &tb.base_image;
    let cli = cli_image();
    // The failing build's container, which only this test's Dockerfile makes.
    let marker = unique_id("fails-");
    let left = || {
        let out = std::process::Command::new("docker")
            .args(["ps", "-a", "--no-trunc", "--format", "{{.Command}}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().filter(|c| c.contains(&marker)).count()
    };
    let dir = dir_with(&[
        ("Dockerfile", &format!("FROM {base}\nRUN echo {marker} && false\n")),
        (
            "acb.yaml",
            &format!(
                r#"steps:
  - cmd: {cli} sh -c 'docker run --rm --oom-score-adj=-900 {base} true || echo oom-refused; docker run --rm --ulimit nofile=999999999:999999999 {base} true || echo ulimit-refused; docker run --rm --ulimit nofile=64:64 {base} sh -c "ulimit -n"; DOCKER_BUILDKIT=0 docker build --rm=false . || echo build-failed'
"#
            ),
        ),
    ]);
    let (id, r) = run_dir(&d, A, dir.path());
    assert!(r.ok, "{}", r.all());
    for said in ["oom-refused", "ulimit-refused", "build-failed"] {
        assert!(r.stdout.contains(said), "{said}:\n{}", r.stdout);
    }
    assert!(
        r.stdout.lines().any(|l| l.trim_end().ends_with("| 64")),
        "lowering a ulimit is fine:\n{}",
        r.stdout
    );
    assert_eq!(left(), 0, "the failed build left its container behind");
    assert!(leftovers(&id).is_empty());
}

/// The digest the registry has for `image` (`registry/repo:tag`).
fn registry_digest(image: &str) -> String {
    let (host_repo, tag) = image.rsplit_once(':').unwrap();
    let (host, repo) = host_repo.split_once('/').unwrap();
    rt().block_on(async {
        let resp = reqwest::Client::new()
            .head(format!("http://{host}/v2/{repo}/manifests/{tag}"))
            .header("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
            .send()
            .await
            .unwrap();
        resp.headers()["docker-content-digest"].to_str().unwrap().to_string()
    })
}

/// The host's docker CLI, which must succeed.
fn host_docker(args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut c = std::process::Command::new("docker");
    c.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .env("DOCKER_BUILDKIT", "0");
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "docker {args:?}");
}

/// Row 8, read side: a tenant's repositories in the daemon's registry are read through
/// the daemon (its credentials, or an open registry on the host's loopback) by no other
/// tenant: as a base, a step's image, a pull through the socket (by tag or by a digest
/// the engine already holds) or a cache source. Repositories no tenant owns are shared.
#[test]
fn a_tenants_repositories_are_read_by_no_other_tenant() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let base = &tb.base_image;
    let cli = cli_image();
    let reg = &tb.registry;
    let tag = unique_id("r");
    let private = format!("{reg}/team-b/private:{tag}");
    let b_dir = dir_with(&[
        ("Dockerfile", &format!("FROM {base}\nRUN echo from-b > /who\n")),
        (
            "acb.yaml",
            &format!("steps:\n  - build: -t {private} .\n  - push: [\"{private}\"]\n  - cmd: {private} cat /who\n"),
        ),
    ]);
    let (_, r) = run_dir(&d, B, b_dir.path());
    assert!(r.ok && r.stdout.contains("from-b"), "{}", r.all());
    let digest = registry_digest(&private);
    let by_digest = format!("{reg}/team-b/private@{digest}");
    let refused = format!("may not read {reg}/team-b/private");
    for (what, acb) in [
        ("a base", "steps:\n  - build: -t t -f Dockerfile.from .\n".to_string()),
        // FROM reads the global argument, whatever the stage declares after.
        ("a base by argument", "steps:\n  - build: -t t -f Dockerfile.arg .\n".to_string()),
        ("a step's image", format!("steps:\n  - cmd: {private} cat /who\n")),
        ("a step's image by digest", format!("steps:\n  - cmd: {by_digest} cat /who\n")),
    ] {
        let dir = dir_with(&[
            ("Dockerfile.from", &format!("FROM {private}\n")),
            (
                "Dockerfile.arg",
                &format!("ARG B={private}\nFROM {base}\nARG B={base}\nFROM ${{B}}\n"),
            ),
            ("acb.yaml", &acb),
        ]);
        let (_, r) = run_dir(&d, A, dir.path());
        assert!(!r.ok && r.all().contains(&refused), "{what}:\n{}", r.all());
        assert!(!r.stdout.contains("from-b"), "{what}:\n{}", r.stdout);
    }
    let dir = dir_with(&[
        ("Dockerfile", &format!("FROM {base}\nRUN echo a\n")),
        (
            "acb.yaml",
            &format!(
                r#"steps:
  - cmd: {cli} sh -c 'docker pull {private} || echo pull-refused; docker run --rm {by_digest} cat /who || echo digest-refused'
  - build: -t a-app --cache-from {private} .
"#
            ),
        ),
    ]);
    let (_, r) = run_dir(&d, A, dir.path());
    assert!(r.ok, "{}", r.all());
    assert!(
        r.stdout.contains("pull-refused") && r.stdout.contains("digest-refused"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("from-b"), "{}", r.stdout);
    assert!(r.all().contains("does not use") && r.all().contains(&refused), "{}", r.all());
    // The operator's repository that no tenant owns is everyone's to build from.
    let shared = format!("{reg}/shared/base-{tag}:1");
    host_docker(&["tag", base, &shared], None);
    host_docker(&["push", &shared], None);
    host_docker(&["rmi", &shared], None);
    let dir = dir_with(&[
        ("Dockerfile", &format!("FROM {shared}\nRUN echo built-on-shared\n")),
        ("acb.yaml", "steps:\n  - build: -t on-shared .\n"),
    ]);
    let (_, r) = run_dir(&d, A, dir.path());
    assert!(r.ok && r.all().contains("built-on-shared"), "{}", r.all());
}

/// Builder gaps: an `ONBUILD` trigger runs in a later build, where its `COPY --from`
/// names any image in the engine; neither a Dockerfile's own triggers nor a base's pass.
#[test]
fn onbuild_triggers_cannot_copy_from_others_images() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let base = &tb.base_image;
    let cli = cli_image();
    let reg = &tb.registry;
    let triggered = format!("{reg}/shared/onbuild-{}:1", unique_id(""));
    host_docker(
        &["build", "-q", "-t", &triggered, "-"],
        Some(&format!("FROM {base}\nONBUILD COPY --from={base} /bin/busybox /stolen\n")),
    );
    host_docker(&["push", &triggered], None);
    host_docker(&["rmi", &triggered], None);
    for (dockerfile, why) in [
        (format!("FROM {triggered}\nRUN true\n"), "has the ONBUILD trigger"),
        (format!("FROM {base}\nONBUILD COPY --from={base} /bin /x\n"), "ONBUILD copies from"),
    ] {
        let dir = dir_with(&[("Dockerfile", &dockerfile), ("acb.yaml", "steps:\n  - build: -t t .\n")]);
        let (_, r) = run_dir(&d, A, dir.path());
        assert!(!r.ok && r.all().contains(why), "{dockerfile}:\n{}", r.all());
        std::fs::write(
            dir.path().join("acb.yaml"),
            format!("steps:\n  - cmd: {cli} sh -c 'DOCKER_BUILDKIT=0 docker build -t t2 .'\n"),
        )
        .unwrap();
        let (_, r) = run_dir(&d, A, dir.path());
        assert!(!r.ok && r.all().contains(why), "through the socket, {dockerfile}:\n{}", r.all());
    }
}

/// A loopback web server for `ADD` (python3): `/file` answers a file, `/away`
/// redirects to `/secret` on `127.0.0.2:away_port`.
fn web_server(bind: &str, port: u16, away_port: u16) -> std::process::Child {
    let script = r#"
import http.server, sys
bind, port, away = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        sys.stderr.write("GET " + self.path + "\n"); sys.stderr.flush()
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2:%s/secret" % away)
            self.end_headers()
        elif self.path == "/secret":
            self.answer(b"host-loopback-secret\n")
        else:
            self.answer(b"fetched-by-daemon\n")
    def log_message(self, *a):
        pass
http.server.HTTPServer((bind, port), H).serve_forever()
"#;
    std::process::Command::new("python3")
        .args(["-c", script, bind, &port.to_string(), &away_port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn free_port(bind: &str) -> u16 {
    std::net::TcpListener::bind((bind, 0)).unwrap().local_addr().unwrap().port()
}

/// Row 5, the rest: where the operator lets sources reach a host, a Dockerfile's
/// `ADD URL` from it works, fetched by the daemon (each redirect checked), with both
/// builders; a redirect to where sources may not reach is refused, and the engine
/// socket's builds fetch no URL at all.
#[test]
fn add_urls_are_fetched_by_the_daemon_only_where_sources_may_reach() {
    let Some(tb) = testbed() else { return };
    let d = farm_reaching(&tb, "127.0.0.1");
    let base = &tb.base_image;
    let cli = cli_image();
    let (port, away_port) = (free_port("127.0.0.1"), free_port("127.0.0.2"));
    let mut server = web_server("127.0.0.1", port, away_port);
    let mut away = web_server("127.0.0.2", away_port, away_port);
    std::thread::sleep(Duration::from_millis(700));
    for builder in ["1", "0"] {
        let dir = dir_with(&[
            (
                "Dockerfile",
                &format!("FROM {base}\nADD http://127.0.0.1:{port}/file /fetched\nRUN cat /fetched && stat -c mode=%a /fetched\n"),
            ),
            (
                "acb.yaml",
                &format!("steps:\n  - build: -t add-{builder} --no-cache .\n    env: [\"DOCKER_BUILDKIT={builder}\"]\n"),
            ),
        ]);
        let (_, r) = run_dir(&d, A, dir.path());
        assert!(r.ok, "builder {builder}:\n{}", r.all());
        assert!(
            r.all().contains("fetched-by-daemon") && r.all().contains("mode=600"),
            "builder {builder}:\n{}",
            r.all()
        );
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!("FROM {base}\nADD http://127.0.0.1:{port}/away /s\nRUN cat /s\n"),
        )
        .unwrap();
        let (_, r) = run_dir(&d, A, dir.path());
        assert!(!r.ok && r.all().contains("allowed_source_hosts"), "builder {builder}:\n{}", r.all());
        assert!(!r.all().contains("host-loopback-secret"), "{}", r.all());
    }
    let dir = dir_with(&[
        ("Dockerfile", &format!("FROM {base}\nADD http://127.0.0.1:{port}/file /f\n")),
        (
            "acb.yaml",
            &format!("steps:\n  - cmd: {cli} sh -c 'DOCKER_BUILDKIT=0 docker build -t t3 .'\n"),
        ),
    ]);
    let (_, r) = run_dir(&d, A, dir.path());
    assert!(!r.ok && r.all().contains("fetches no URL"), "{}", r.all());
    for s in [&mut server, &mut away] {
        s.kill().unwrap();
        let _ = s.wait();
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(away.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("/secret"), "the redirect was followed:\n{stderr}");
}

/// Issue 18: one tenant floods the queue, then another queues one run; the other's run
/// starts at the next claim, before the flood's third run, on a farm of two workers.
#[test]
fn a_flooding_tenant_does_not_hold_the_workers_from_another() {
    let Some(tb) = testbed() else { return };
    let d = farm(&tb);
    let submit = |token: &str, task: &str| -> String {
        let body = serde_json::json!({
            "type": "EncodedTaskRunRequest",
            "encodedTaskContent": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, task),
        });
        let (code, text) = d.call("POST", "/v1/runs", Some(body.to_string().into_bytes()), Some(token), &[]);
        assert_eq!(code, 201, "{text}");
        json(&text)["runId"].as_str().unwrap().to_string()
    };
    let flood: Vec<String> = (0..6)
        .map(|_| submit(A, &format!("steps:\n  - cmd: {} sleep 3\n", tb.base_image)))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let quiet = submit(B, &format!("steps:\n  - cmd: {} true\n", tb.base_image));
    let (b, _) = finished(&d, B, &quiet);
    assert_eq!(b["status"], "Succeeded", "{b}");
    let start = |r: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(r["startTime"].as_str().unwrap_or_default()).unwrap();
    let b_start = start(&b);
    let later: Vec<_> = flood[2..].iter().map(|id| start(&finished(&d, A, id).0)).collect();
    assert!(
        later.iter().all(|t| *t >= b_start),
        "team-b's run started {b_start}; team-a's third and later {later:?}"
    );
}
