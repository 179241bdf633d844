//! The real Azure CLI (`azure-cli` from PyPI, installed by `scripts/testbed.sh`) drives
//! a real daemon over HTTPS, with a self-signed CA the test makes (issue 20): `az cloud
//! register`, `az login --service-principal` with a daemon token, `az acr build` (logs
//! live, the exit code following the run), `az acr run` with `--cmd` and with a task
//! file, `--set` and `--set-secret`. Tenants stay apart on this surface as on `/v1`, and a
//! forged token is refused.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::daemon::Daemon;
use support::*;

/// The `az` of the test bed; `None` (loudly, or a failure in CI) without it.
fn az_binary() -> Option<PathBuf> {
    match std::env::var("SLIPWAY_TEST_AZ") {
        Ok(p) if Path::new(&p).exists() => Some(PathBuf::from(p)),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true but SLIPWAY_TEST_AZ names no az"),
        _ => {
            eprintln!("\n!!! SKIPPED: SLIPWAY_TEST_AZ is not set (scripts/testbed.sh installs azure-cli) !!!\n");
            None
        }
    }
}

/// One person's `az`: its own config dir, trusting the test's CA, telemetry off.
struct Az {
    bin: PathBuf,
    config: tempfile::TempDir,
    ca: PathBuf,
}

impl Az {
    fn new(bin: &Path, ca: &Path) -> Az {
        Az {
            bin: bin.to_path_buf(),
            config: tempfile::tempdir().unwrap(),
            ca: ca.to_path_buf(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("AZURE_CONFIG_DIR", self.config.path())
            .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
            .env("AZURE_CORE_NO_COLOR", "true")
            .env("AZURE_CORE_ONLY_SHOW_ERRORS", "false")
            .env("REQUESTS_CA_BUNDLE", &self.ca);
        c
    }

    fn run(&self, args: &[&str]) -> Ran {
        run(&mut self.cmd(args))
    }

    /// The four lines of the README: the cloud, the login, the default registry.
    fn sign_in(&self, d: &Daemon, token: &str) {
        let base = format!("{}/", d.url());
        for args in [
            &["cloud", "register", "--name", "Slipway", "--endpoint-resource-manager", &base][..],
            &["cloud", "set", "--name", "Slipway"],
            &["login", "--service-principal", "-u", "slipway", "-p", token, "--tenant", "slipway"],
            &["configure", "--defaults", "acr=slipway"],
        ] {
            let r = self.run(args);
            assert!(r.ok, "az {}: {}", args[..2].join(" "), r.all());
        }
    }
}

#[test]
fn the_azure_cli_builds_and_runs_unchanged() {
    let Some(tb) = testbed() else { return };
    let Some(bin) = az_binary() else { return };
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let d = Daemon::start_tls(
        &cert,
        &cert,
        &key,
        &[
            "--tenant",
            "team-a:token=tok-a",
            "--tenant",
            "team-a:repository=team-a/*",
            "--tenant",
            "team-b:token=tok-b",
            "--registry",
            &tb.registry,
        ],
    );
    let a = Az::new(&bin, &cert);
    a.sign_in(&d, "tok-a");

    // A local build: the context uploaded (honouring .dockerignore), the log live.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nARG WHO\nCOPY . /ctx/\nRUN test ! -e /ctx/ignored.txt && echo built-for-$WHO\n",
            tb.base_image
        ),
    )
    .unwrap();
    std::fs::write(ctx.path().join("ignored.txt"), "x").unwrap();
    std::fs::write(ctx.path().join(".dockerignore"), "ignored.txt\n").unwrap();
    // `-t` is within the daemon's registry, as in ACR; team-a owns team-a/* there.
    let tag = format!("team-a/app:{}", unique_id(""));
    let built = a.run(&["acr", "build", "-t", &tag, "--build-arg", "WHO=az", ctx.path().to_str().unwrap()]);
    assert!(built.ok, "{}", built.all());
    assert!(
        built.stdout.contains("built-for-az"),
        "the step's output, streamed: {}",
        built.all()
    );
    // It was pushed to the daemon's registry.
    let (pushed, version) = tag.split_once(':').unwrap();
    let tags = reqwest::blocking::get(format!("http://{}/v2/{pushed}/tags/list", tb.registry))
        .unwrap()
        .text()
        .unwrap();
    assert!(tags.contains(version), "{tags}");

    // A failing build makes az exit non-zero.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("Dockerfile"), format!("FROM {}\nRUN exit 3\n", tb.base_image)).unwrap();
    let failed = a.run(&["acr", "build", "-t", "team-a/bad:1", "--no-push", bad.path().to_str().unwrap()]);
    assert!(!failed.ok && failed.all().contains("Run failed"), "{}", failed.all());

    // az acr run: a command with no context, and a task file with values and a secret.
    let cmd = format!("{} echo ran-by-az", tb.base_image);
    let ran = a.run(&["acr", "run", "--cmd", &cmd, "/dev/null"]);
    assert!(ran.ok && ran.stdout.contains("ran-by-az"), "{}", ran.all());
    std::fs::write(
        ctx.path().join("acb.yaml"),
        format!(
            "steps:\n  - cmd: {} echo value={{{{.Values.who}}}} secret={{{{.Values.pw}}}}\n",
            tb.base_image
        ),
    )
    .unwrap();
    let secret = format!("Az-Secret-{}", unique_id(""));
    let file_run = a.run(&[
        "acr",
        "run",
        "-f",
        "acb.yaml",
        "--set",
        "who=me",
        "--set-secret",
        &format!("pw={secret}"),
        ctx.path().to_str().unwrap(),
    ]);
    assert!(
        file_run.ok && file_run.stdout.contains("value=me secret=*****"),
        "{}",
        file_run.all()
    );
    assert!(!file_run.all().contains(&secret));
    let run_id = queued_id(&file_run);

    // Tasks: made from a git context, listed, run (its log streamed), its runs listed,
    // its last log read, deleted.
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.path().join("Dockerfile"),
        format!("FROM {}\nARG A\nARG S\nRUN test -n \"$S\" && echo task-build-$A\n", tb.base_image),
    )
    .unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "first"]);
    let context = format!("file://{}#main", repo.path().display());
    let created = a.run(&[
        "acr",
        "task",
        "create",
        "-n",
        "build-app",
        "-c",
        &context,
        "-f",
        "Dockerfile",
        "-t",
        "team-a/task:{{.Run.ID}}",
        "--arg",
        "A=1",
        "--secret-arg",
        &format!("S={secret}"),
        "--schedule",
        "0 2 * * *",
        "--commit-trigger-enabled",
        "false",
    ]);
    assert!(created.ok, "{}", created.all());
    let listed = a.run(&["acr", "task", "list", "-o", "table"]);
    assert!(listed.ok && listed.stdout.contains("build-app"), "{}", listed.all());
    let timers = a.run(&["acr", "task", "timer", "list", "-n", "build-app"]);
    assert!(timers.ok && timers.stdout.contains("0 2 * * *"), "{}", timers.all());
    // Timers added and changed by name (PATCH), removed by sending the task back whole
    // (PUT of what listDetails showed, its secret empty): the secret stays.
    for args in [
        &[
            "acr",
            "task",
            "timer",
            "add",
            "-n",
            "build-app",
            "--timer-name",
            "t2",
            "--schedule",
            "0 4 * * *",
        ][..],
        &[
            "acr",
            "task",
            "timer",
            "update",
            "-n",
            "build-app",
            "--timer-name",
            "t2",
            "--enabled",
            "false",
        ],
        &["acr", "task", "timer", "remove", "-n", "build-app", "--timer-name", "t2"],
    ] {
        let r = a.run(args);
        assert!(r.ok, "az {}: {}", args[3], r.all());
    }
    let timers = a.run(&["acr", "task", "timer", "list", "-n", "build-app"]);
    assert!(
        timers.ok && !timers.stdout.contains("0 4 * * *") && timers.stdout.contains("0 2 * * *"),
        "{}",
        timers.all()
    );
    // az acr task update changes the step's arguments (the secret one restated).
    let updated = a.run(&[
        "acr",
        "task",
        "update",
        "-n",
        "build-app",
        "--arg",
        "A=2",
        "--secret-arg",
        &format!("S={secret}"),
    ]);
    assert!(updated.ok, "{}", updated.all());
    let shown = a.run(&["acr", "task", "show", "-n", "build-app", "--with-secure-properties"]);
    assert!(shown.ok && !shown.all().contains(&secret), "{}", shown.all());
    let task_run = a.run(&["acr", "task", "run", "-n", "build-app"]);
    assert!(task_run.ok && task_run.stdout.contains("task-build-2"), "{}", task_run.all());
    let runs = a.run(&["acr", "task", "list-runs", "-n", "build-app", "-o", "table"]);
    assert!(runs.ok && runs.stdout.contains("Succeeded"), "{}", runs.all());
    let logs = a.run(&["acr", "task", "logs", "-n", "build-app"]);
    assert!(logs.ok && logs.stdout.contains("task-build-2"), "{}", logs.all());

    // Another tenant's az sees none of team-a's runs and tasks; a forged token gets nothing.
    let b_tasks = |b: &Az| b.run(&["acr", "task", "show", "-n", "build-app"]);
    let b = Az::new(&bin, &cert);
    b.sign_in(&d, "tok-b");
    let theirs = b.run(&["acr", "task", "logs", "--run-id", &run_id]);
    assert!(!theirs.ok && !theirs.all().contains("value=me"), "{}", theirs.all());
    let their_task = b_tasks(&b);
    assert!(!their_task.ok, "{}", their_task.all());
    let deleted = a.run(&["acr", "task", "delete", "-n", "build-app", "--yes"]);
    assert!(deleted.ok, "{}", deleted.all());
    assert!(!a.run(&["acr", "task", "show", "-n", "build-app"]).ok, "deleted");
    let registry = "/subscriptions/slipway/resourceGroups/slipway/providers/Microsoft.ContainerRegistry/registries/slipway";
    let (code, _) = d.call(
        "GET",
        &format!("{registry}/runs/{run_id}?api-version=2019-06-01-preview"),
        None,
        Some("forged.token.here"),
        &[],
    );
    assert_eq!(code, 401);
    // A daemon token is not an access token.
    let (code, _) = d.call(
        "GET",
        &format!("{registry}/runs/{run_id}?api-version=2019-06-01-preview"),
        None,
        Some("tok-a"),
        &[],
    );
    assert_eq!(code, 401);

    // An upload URL is good for one context, under its own signature only.
    let http = d.http();
    let token: serde_json::Value = rt().block_on(async {
        http.post(format!("{}/adfs/oauth2/token", d.url()))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&client_id=x&client_secret=tok-a&scope=s%2F.default")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let access = token["access_token"].as_str().unwrap().to_string();
    // The runs that pushed an image, by its manifest (`list-runs --image` asks so).
    let digest = reqwest::blocking::Client::new()
        .head(format!("http://{}/v2/{pushed}/manifests/{version}", tb.registry))
        .header("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
        .send()
        .unwrap()
        .headers()["Docker-Content-Digest"]
        .to_str()
        .unwrap()
        .to_string();
    let runs_by = |filter: &str| {
        let q: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        d.call(
            "GET",
            &format!("{registry}/runs?$filter={q}&api-version=2019-06-01-preview"),
            None,
            Some(&access),
            &[],
        )
    };
    let (code, answer) = runs_by(&format!("contains(OutputImageManifests, '{pushed}@{digest}')"));
    let found: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!((code, found["value"].as_array().map(Vec::len)), (200, Some(1)), "{answer}");
    let (code, answer) = runs_by(&format!("contains(OutputImageManifests, '{pushed}@sha256:{}')", "0".repeat(64)));
    assert!(code == 200 && answer.contains("\"value\":[]"), "{answer}");
    let (code, answer) = runs_by("RunId eq 'x'");
    assert!(code == 400 && answer.contains("$filter"), "{answer}");
    let (code, answer) = d.call(
        "POST",
        &format!("{registry}/listBuildSourceUploadUrl?api-version=2019-06-01-preview"),
        None,
        Some(&access),
        &[],
    );
    assert_eq!(code, 200, "{answer}");
    let url = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["uploadUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let context = {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "Dockerfile", &b"x\n"[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap()
    };
    let put = |url: &str| {
        rt().block_on(async {
            http.put(url)
                .header("x-ms-blob-type", "BlockBlob")
                .body(context.clone())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    // In blocks, as azure-storage-blob puts a context above 64 MiB: a list naming a
    // block never put is refused, a block id is only ever a file name, the list in its
    // order makes the context.
    let put_to = |url: String, body: Vec<u8>| {
        rt().block_on(async {
            let r = http.put(url).body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let (half, rest) = context.split_at(context.len() / 2);
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let block = |id: &str| {
        let mut u = reqwest::Url::parse(&url).unwrap();
        u.query_pairs_mut().append_pair("comp", "block").append_pair("blockid", &b64(id));
        u.to_string()
    };
    assert_eq!(
        put_to(block("../../../../etc/passwd"), b"x".to_vec()).0,
        201,
        "staged, under its hex"
    );
    assert_eq!(put_to(block("b-2"), rest.to_vec()).0, 201);
    assert_eq!(put_to(block("b-1"), half.to_vec()).0, 201);
    let list = |ids: &[&str]| {
        let items: String = ids.iter().map(|i| format!("<Latest>{}</Latest>", b64(i))).collect();
        format!("<?xml version='1.0' encoding='utf-8'?>\n<BlockList>{items}</BlockList>").into_bytes()
    };
    let (code, why) = put_to(format!("{url}&comp=blocklist"), list(&["b-1", "b-3"]));
    assert!(code == 400 && why.contains("was not put"), "{code} {why}");
    let (code, why) = put_to(format!("{url}&comp=blocklist"), list(&["b-1", "b-2"]));
    assert_eq!(code, 201, "{why}");
    assert!(
        !d.data_dir().join("arm-blocks/team-a").read_dir().unwrap().any(|_| true),
        "staging removed"
    );
    assert_eq!(put(&url), 409, "a second context through one URL");
    let later = url.replace("se=", "se=9");
    assert_eq!(put(&later), 403, "an expiry moved by hand");
    let elsewhere = url.replace("/uploads/team-a/", "/uploads/team-b/");
    assert_eq!(put(&elsewhere), 403, "another tenant's path");

    // The secret is nowhere the daemon keeps or prints.
    assert!(!d.server_log().contains(&secret));
    for f in walk(d.dir.path()) {
        if f.starts_with(d.data_dir().join("secrets")) {
            continue; // the vault's 0600 files, where a task's secrets are kept
        }
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&secret),
            "{} holds the secret",
            f.display()
        );
    }
}

/// The run id `az` printed when it queued a run.
fn queued_id(r: &Ran) -> String {
    r.all()
        .split("Queued a run with ID: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no run id in {}", r.all()))
}

#[test]
fn the_azure_cli_keeps_commands_values_files_and_credentials_in_tasks() {
    let Some(tb) = testbed() else { return };
    let Some(bin) = az_binary() else { return };
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let d = Daemon::start_tls(&cert, &cert, &key, &["--tenant", "team-a:token=tok-a", "--registry", &tb.registry]);
    let a = Az::new(&bin, &cert);
    a.sign_in(&d, "tok-a");

    // A file task reading its values file from its git context.
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.path().join("acb.yaml"),
        format!("steps:\n  - cmd: {} echo from-values={{{{.Values.who}}}}\n", tb.base_image),
    )
    .unwrap();
    std::fs::write(repo.path().join("values.yaml"), "who: the-file\n").unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "first"]);
    let context = format!("file://{}#main", repo.path().display());
    let ok = |r: Ran, what: &str| {
        assert!(r.ok, "az {what}: {}", r.all());
        r
    };
    ok(
        a.run(&[
            "acr",
            "task",
            "create",
            "-n",
            "values-task",
            "-c",
            &context,
            "-f",
            "acb.yaml",
            "--values",
            "values.yaml",
            "--commit-trigger-enabled",
            "false",
        ]),
        "task create --values",
    );
    let ran = ok(a.run(&["acr", "task", "run", "-n", "values-task"]), "task run");
    assert!(ran.stdout.contains("from-values=the-file"), "{}", ran.all());

    // az acr build of a git URL: the daemon fetches it (git daemon on loopback).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let served = tempfile::tempdir().unwrap();
    let bare = served.path().join("app.git");
    git(
        served.path(),
        &["clone", "-q", "--bare", repo.path().to_str().unwrap(), bare.to_str().unwrap()],
    );
    std::fs::write(
        repo.path().join("Dockerfile"),
        format!("FROM {}\nRUN echo built-from-git\n", tb.base_image),
    )
    .unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "a Dockerfile"]);
    git(repo.path(), &["push", "-q", bare.to_str().unwrap(), "main"]);
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // git-daemon itself, not `git daemon` (which would leave it behind when killed).
    let exec_path = git(served.path(), &["--exec-path"]);
    let _git_daemon = Killed(
        std::process::Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1", &format!("--port={port}")])
            .arg(format!("--base-path={}", served.path().display()))
            .arg(served.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("git://127.0.0.1:{port}/app.git#main");
    let built = ok(
        a.run(&["acr", "build", "-t", "from-git:1", "--no-push", &url]),
        "build of a git URL",
    );
    assert!(built.stdout.contains("built-from-git"), "{}", built.all());

    // A task of one command (an encoded task), without a context.
    let cmd = format!("{} echo encoded-ran", tb.base_image);
    ok(
        a.run(&["acr", "task", "create", "-n", "cmd-task", "--cmd", &cmd, "-c", "/dev/null"]),
        "task create --cmd",
    );
    let shown = ok(a.run(&["acr", "task", "show", "-n", "cmd-task"]), "task show");
    assert!(shown.stdout.contains("EncodedTask"), "{}", shown.all());
    let ran = ok(a.run(&["acr", "task", "run", "-n", "cmd-task"]), "task run");
    assert!(ran.stdout.contains("encoded-ran"), "{}", ran.all());

    // Registry credentials: added, listed without their password, changed, refused
    // twice, removed.
    let password = format!("Reg-Pass-{}", unique_id(""));
    let cred = |verb: &str, extra: &[&str]| {
        let mut args = vec!["acr", "task", "credential", verb, "-n", "cmd-task"];
        args.extend_from_slice(extra);
        a.run(&args)
    };
    let server = ["--login-server", "other.example:5000"];
    ok(
        cred("add", &[&server[..], &["-u", "bob", "-p", &password]].concat()),
        "credential add",
    );
    let listed = ok(cred("list", &[]), "credential list");
    assert!(
        listed.stdout.contains("other.example:5000") && listed.stdout.contains("bob"),
        "{}",
        listed.all()
    );
    assert!(!listed.all().contains(&password));
    let again = cred("add", &[&server[..], &["-u", "bob", "-p", &password]].concat());
    assert!(!again.ok && again.all().contains("already exists"), "{}", again.all());
    ok(
        cred("update", &[&server[..], &["-u", "carol", "-p", &password]].concat()),
        "credential update",
    );
    let listed = ok(cred("list", &[]), "credential list");
    assert!(
        listed.stdout.contains("carol") && !listed.stdout.contains("bob"),
        "{}",
        listed.all()
    );
    let details = ok(
        a.run(&["acr", "task", "show", "-n", "cmd-task", "--with-secure-properties"]),
        "task show",
    );
    assert!(!details.all().contains(&password), "{}", details.all());
    ok(cred("remove", &server), "credential remove");
    let listed = ok(cred("list", &[]), "credential list");
    assert!(!listed.stdout.contains("other.example"), "{}", listed.all());

    // A run kept past the retention period, and no longer.
    let run_id = queued_id(&ran);
    let kept = ok(
        a.run(&["acr", "task", "update-run", "--run-id", &run_id, "--no-archive", "false"]),
        "update-run",
    );
    assert!(kept.stdout.contains("\"isArchiveEnabled\": true"), "{}", kept.all());
    let unkept = ok(
        a.run(&["acr", "task", "update-run", "--run-id", &run_id, "--no-archive", "true"]),
        "update-run",
    );
    assert!(unkept.stdout.contains("\"isArchiveEnabled\": false"), "{}", unkept.all());

    // A context above azure-storage-blob's 64 MiB single put goes up in blocks.
    let big = tempfile::tempdir().unwrap();
    let mut bytes = vec![0u8; 70 << 20];
    // New bytes each time, so no build cache holds the step's output.
    let mut x: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(big.path().join("big.bin"), &bytes).unwrap();
    let digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    drop(bytes);
    std::fs::write(
        big.path().join("Dockerfile"),
        format!("FROM {}\nCOPY big.bin /big.bin\nRUN sha256sum /big.bin\n", tb.base_image),
    )
    .unwrap();
    let built = ok(
        a.run(&["acr", "build", "-t", "big:1", "--no-push", big.path().to_str().unwrap()]),
        "build of 70 MiB",
    );
    assert!(built.stdout.contains(&digest), "the context arrived whole: {}", built.all());

    assert!(!d.server_log().contains(&password));
    for f in walk(d.dir.path()) {
        if f.starts_with(d.data_dir().join("secrets")) {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&password),
            "{} holds the password",
            f.display()
        );
    }
}
