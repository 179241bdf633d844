//! The proxy against the real engine, with the docker CLI as its client (and raw HTTP
//! where the CLI cannot say something hostile). Each test is a run of its own, with a
//! unique run id, and removes whatever carries that id's label when it ends.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use slipway_engine_proxy::{Limits, Proxy, Scope};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const ENGINE: &str = "/var/run/docker.sock";
const DOCKER: &str = "/usr/local/bin/docker";
const IMAGE: &str = "slipway-busybox:latest";
const LABEL: &str = "io.slipway.run";

/// Whether the engine and the CLI are here; without them a test is skipped, loudly,
/// except in CI, where it fails.
fn engine_here(test: &str) -> bool {
    let here = std::os::unix::net::UnixStream::connect(ENGINE).is_ok() && Path::new(DOCKER).exists();
    if !here {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but there is no Docker engine at {ENGINE} or no docker CLI at {DOCKER}");
        }
        eprintln!("!!! SKIPPED {test}: no Docker engine at {ENGINE} or no docker CLI at {DOCKER}");
    }
    here
}

/// One run: a proxy, its socket and workspace in a temp dir, and clean-up on drop.
struct Run {
    id: String,
    proxy: Option<Proxy>,
    socket: PathBuf,
    workspace: PathBuf,
    dir: tempfile::TempDir,
    images: Vec<String>,
}

impl Run {
    async fn start(name: &str) -> Run {
        Run::start_with(name, |_| {}).await
    }

    async fn start_with(name: &str, adjust: impl FnOnce(&mut Scope)) -> Run {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let id = format!("px-{name}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("workspace");
        std::fs::create_dir(&workspace).unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        let mut scope = Scope {
            run_id: id.clone(),
            label: (LABEL.into(), id.clone()),
            name_prefix: format!("slipway-{id}-"),
            workspace: Some(workspace.clone()),
            ..Scope::default()
        };
        adjust(&mut scope);
        let socket = dir.path().join("docker.sock");
        let proxy = Proxy::start(scope, Limits::default(), &socket, Path::new(ENGINE)).await.unwrap();
        assert_eq!(proxy.socket(), socket);
        Run {
            id,
            proxy: Some(proxy),
            socket,
            workspace,
            dir,
            images: Vec::new(),
        }
    }

    fn prefixed(&self, name: &str) -> String {
        format!("slipway-{}-{name}", self.id)
    }

    /// The docker CLI through this run's proxy.
    async fn docker(&self, args: &[&str]) -> Output {
        cli(&format!("unix://{}", self.socket.display()), &self.dir.path().join("config"), args).await
    }

    /// Runs the CLI through the proxy and returns its stdout; it must succeed.
    async fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.docker(args).await)
    }

    /// Runs the CLI through the proxy with `input` on its standard input; it must succeed.
    async fn ok_with_input(&self, args: &[&str], input: &str) -> String {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(DOCKER)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.dir.path().join("config"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        succeeded(args, out)
    }

    /// Runs the CLI through the proxy and returns its stderr; it must fail.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "docker {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// Like [`Run::fails`], and the engine's answer is the proxy's refusal saying `what`.
    async fn refused(&self, args: &[&str], what: &str) {
        let stderr = self.fails(args).await;
        assert!(
            stderr.contains("Error response from daemon: slipway: ") && stderr.contains(what),
            "docker {args:?}: expected a refusal saying {what:?}, got: {stderr}"
        );
    }

    async fn raw(&self, method: &str, path: &str, content_type: &str, body: impl Into<Bytes>) -> (u16, serde_json::Value) {
        raw(&self.socket, method, path, content_type, body.into()).await
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Straight to the engine: whatever carries this run's label goes.
        let filter = format!("label={LABEL}={}", self.id);
        let list = |args: &[&str]| -> Vec<String> {
            let out = std::process::Command::new(DOCKER)
                .env("DOCKER_HOST", format!("unix://{ENGINE}"))
                .args(args)
                .output();
            out.map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let remove = |verb: &[&str], items: Vec<String>| {
            if !items.is_empty() {
                let mut args: Vec<&str> = verb.to_vec();
                args.extend(items.iter().map(String::as_str));
                let _ = std::process::Command::new(DOCKER)
                    .env("DOCKER_HOST", format!("unix://{ENGINE}"))
                    .args(&args)
                    .output();
            }
        };
        remove(&["rm", "-f", "-v"], list(&["ps", "-aq", "--filter", &filter]));
        remove(&["network", "rm"], list(&["network", "ls", "-q", "--filter", &filter]));
        remove(&["volume", "rm", "-f"], list(&["volume", "ls", "-q", "--filter", &filter]));
        remove(&["rmi", "-f"], self.images.clone());
    }
}

async fn cli(host: &str, config: &Path, args: &[&str]) -> Output {
    let run = tokio::process::Command::new(DOCKER)
        .env("DOCKER_HOST", host)
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", config)
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_CONTEXT")
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .unwrap_or_else(|_| panic!("docker {args:?} did not finish in 180 s"))
        .unwrap()
}

fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The docker CLI straight to the engine, to see what really happened.
async fn engine(args: &[&str]) -> String {
    let config = tempfile::tempdir().unwrap();
    succeeded(args, cli(&format!("unix://{ENGINE}"), config.path(), args).await)
}

async fn engine_has(kind: &str, name: &str) -> bool {
    let config = tempfile::tempdir().unwrap();
    cli(&format!("unix://{ENGINE}"), config.path(), &[kind, "inspect", name])
        .await
        .status
        .success()
}

async fn raw(socket: &Path, method: &str, path: &str, content_type: &str, body: Bytes) -> (u16, serde_json::Value) {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "docker")
        .header("content-type", content_type)
        .body(Full::new(body))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_run_prints_through_the_proxy() {
    if !engine_here("docker_run_prints_through_the_proxy") {
        return;
    }
    let run = Run::start("hi").await;
    // create, attach (hijacked), start, wait, and the removal --rm asks for.
    assert_eq!(run.ok(&["run", "--rm", IMAGE, "echo", "hi"]).await, "hi\n");
    // Standard input goes through the hijacked stream too, and its end.
    let out = run
        .ok_with_input(&["run", "--rm", "-i", IMAGE, "sh", "-c", "echo \"in: $(cat)\""], "typed")
        .await;
    assert_eq!(out, "in: typed\n");
    assert_eq!(engine(&["ps", "-aq", "--filter", &format!("label={LABEL}={}", run.id)]).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_container_answers_to_its_short_name() {
    if !engine_here("a_named_container_answers_to_its_short_name") {
        return;
    }
    let run = Run::start("svc").await;
    let id = run
        .ok(&["run", "-d", "--name", "svc", IMAGE, "sh", "-c", "echo started; exec sleep 300"])
        .await;
    let engine_name = run.prefixed("svc");
    let label = engine(&["inspect", "-f", &format!("{{{{index .Config.Labels \"{LABEL}\"}}}}"), &engine_name]).await;
    assert_eq!(
        label.trim(),
        run.id,
        "the engine's container is {engine_name} and carries the run's label"
    );
    assert_eq!(engine(&["inspect", "-f", "{{.Id}}", &engine_name]).await.trim(), id.trim());

    let mut logs = String::new();
    for _ in 0..50 {
        logs = run.ok(&["logs", "svc"]).await;
        if logs.contains("started") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(logs, "started\n");
    // A followed log streams while the container runs (it sleeps for minutes).
    let mut follow = tokio::process::Command::new(DOCKER)
        .env("DOCKER_HOST", format!("unix://{}", run.socket.display()))
        .env("DOCKER_CONFIG", run.dir.path().join("config"))
        .args(["logs", "-f", "svc"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(follow.stdout.take().unwrap()));
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    assert_eq!(
        first
            .expect("a followed log line arrives while the container runs")
            .unwrap()
            .as_deref(),
        Some("started")
    );
    drop(follow);
    assert_eq!(run.ok(&["exec", "svc", "echo", "x"]).await, "x\n");
    assert_eq!(run.ok(&["exec", "-i", "svc", "cat"]).await, "", "exec with stdin, which is empty");
    assert!(run.ok(&["top", "svc"]).await.contains("sleep 300"));
    std::fs::write(run.workspace.join("copied.txt"), "copied in\n").unwrap();
    run.ok(&["cp", run.workspace.join("copied.txt").to_str().unwrap(), "svc:/tmp/copied.txt"])
        .await;
    assert_eq!(run.ok(&["exec", "svc", "cat", "/tmp/copied.txt"]).await, "copied in\n");
    let names = run.ok(&["ps", "--format", "{{.Names}}"]).await;
    assert_eq!(names.trim(), engine_name);

    run.ok(&["stop", "-t", "1", "svc"]).await;
    assert_eq!(run.ok(&["wait", "svc"]).await.trim(), "137");
    run.ok(&["rm", "svc"]).await;
    assert!(!engine_has("container", &engine_name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_runs_containers_are_out_of_sight_and_reach() {
    if !engine_here("another_runs_containers_are_out_of_sight_and_reach") {
        return;
    }
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    let a = Run::start("a").await;
    let b = Run::start("b").await;
    let id = a
        .ok(&["run", "-d", "--name", "svc", IMAGE, "sleep", "300"])
        .await
        .trim()
        .to_string();
    let a_name = a.prefixed("svc");

    assert_eq!(a.ok(&["ps", "-a", "--format", "{{.Names}}"]).await.trim(), a_name);
    assert_eq!(
        b.ok(&["ps", "-a", "--format", "{{.Names}}"]).await.trim(),
        "",
        "B sees none of A's containers"
    );

    for reference in ["svc", a_name.as_str(), id.as_str(), &id[..12]] {
        b.refused(&["logs", reference], "no such container in this run").await;
        b.refused(&["exec", reference, "true"], "no such container in this run").await;
        b.refused(&["rm", reference], "no such container in this run").await;
        b.refused(&["kill", reference], "no such container in this run").await;
        b.refused(&["stop", reference], "no such container in this run").await;
        b.refused(
            &["run", "--rm", "--volumes-from", reference, IMAGE, "true"],
            "no such container in this run",
        )
        .await;
        b.refused(
            &["run", "--rm", "--network", &format!("container:{reference}"), IMAGE, "true"],
            "no such container in this run",
        )
        .await;
    }
    let state = engine(&["inspect", "-f", "{{.State.Running}}", &a_name]).await;
    assert_eq!(state.trim(), "true", "A's container is untouched");

    // Events are the run's own.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let (since, until) = (since.to_string(), until.to_string());
    let events = [
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "{{.Actor.Attributes.name}}",
    ];
    let seen_by_a = a.ok(&events).await;
    let seen_by_b = b.ok(&events).await;
    assert!(seen_by_a.lines().any(|l| l == a_name), "A sees its events: {seen_by_a}");
    assert!(!seen_by_b.contains(&a_name), "B does not see A's events: {seen_by_b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_build_uses_the_classic_builder() {
    if !engine_here("docker_build_uses_the_classic_builder") {
        return;
    }
    let mut run = Run::start("build").await;
    let context = run.workspace.join("app");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {IMAGE}\nRUN echo built > /built\nCOPY hello.txt /hello.txt\n"),
    )
    .unwrap();
    std::fs::write(context.join("hello.txt"), "hello from the context\n").unwrap();
    // Bigger than any JSON body the proxy reads: a context is streamed, never read whole.
    std::fs::write(context.join("ballast.bin"), vec![7u8; 8 << 20]).unwrap();
    let tag = format!("slipway-proxy-test-{}:1", run.id);
    let copy = format!("slipway-proxy-test-{}:copy", run.id);
    run.images.extend([tag.clone(), copy.clone()]);

    let out = run.ok(&["build", "-t", &tag, context.to_str().unwrap()]).await;
    assert!(out.contains("Successfully tagged"), "{out}");
    assert_eq!(
        run.ok(&["run", "--rm", &tag, "cat", "/built", "/hello.txt"]).await,
        "built\nhello from the context\n"
    );

    // Images stream out (save) and back in (load); tag and inspect pass as they are.
    let archive = run.dir.path().join("image.tar");
    run.ok(&["tag", &tag, &copy]).await;
    run.ok(&["save", "-o", archive.to_str().unwrap(), &copy]).await;
    engine(&["rmi", &copy]).await;
    run.ok(&["load", "-i", archive.to_str().unwrap()]).await;
    assert!(run.ok(&["image", "inspect", "-f", "{{.RepoTags}}", &copy]).await.contains(&copy));
    run.refused(&["build", "--network", "host", context.to_str().unwrap()], "allow_host_network")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_requests_are_refused_with_a_clear_message() {
    if !engine_here("dangerous_requests_are_refused_with_a_clear_message") {
        return;
    }
    let run = Run::start("deny").await;
    for (flags, what) in [
        (
            &["-v", "/:/host"][..],
            "host path / cannot be mounted in this run: only /workspace and paths beneath it can",
        ),
        (&["-v", "/etc:/x"], "host path /etc cannot be mounted"),
        (&["--mount", "type=bind,source=/etc,target=/x"], "host path /etc cannot be mounted"),
        (&["-v", "/var/lib/docker:/x"], "host path /var/lib/docker cannot be mounted"),
        (
            &["--privileged"],
            "privileged mode (--privileged) is not allowed in this run (the operator setting allow_privileged allows it)",
        ),
        (
            &["--network", "host"],
            "the host network (--network host) is not allowed in this run (the operator setting allow_host_network allows it)",
        ),
        (
            &["--network", "bridge-of-nobody"],
            "network bridge-of-nobody does not belong to this run",
        ),
        (
            &["--cap-add", "SYS_ADMIN"],
            "adding capabilities (--cap-add CAP_SYS_ADMIN) is not allowed in this run",
        ),
        (&["--device", "/dev/sda"], "host devices (--device) is not allowed in this run"),
        (&["--pid", "host"], "--pid host (PidMode) is not allowed in this run"),
        (&["--ipc", "host"], "--ipc host"),
        (&["--userns", "host"], "--userns host"),
        (
            &["--security-opt", "seccomp=unconfined"],
            "security options (--security-opt seccomp=unconfined) are not allowed in this run",
        ),
        (&["--security-opt", "apparmor=unconfined"], "apparmor=unconfined"),
        (&["--sysctl", "net.ipv4.ip_forward=1"], "sysctls (--sysctl) is not allowed"),
        (&["--cgroup-parent", "/"], "cgroup parent"),
        (
            &["-p", "0.0.0.0:8080:80"],
            "publishing port 80/tcp on 0.0.0.0 is not allowed in this run (the operator setting allow_public_ports allows it)",
        ),
        (
            &["-P", "--expose", "80"],
            "publishing all ports (-P) is not allowed in this run (the operator setting allow_public_ports allows it)",
        ),
        (
            &["--log-driver", "syslog", "--log-opt", "syslog-address=udp://127.0.0.1:514"],
            "log driver syslog",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[IMAGE, "true"]);
        run.refused(&args, what).await;
    }
    run.refused(
        &[
            "volume",
            "create",
            "--opt",
            "type=none",
            "--opt",
            "o=bind",
            "--opt",
            "device=/",
            "v",
        ],
        "volume driver options (device=/,o=bind,type=none) are not allowed in this run",
    )
    .await;
    run.refused(
        &["network", "create", "-d", "macvlan", "n"],
        "network driver macvlan is not available",
    )
    .await;
    run.refused(&["network", "create", "--subnet", "192.168.0.0/16", "n"], "subnet")
        .await;
    // Names that exist nowhere and a filter nothing matches: harmless even if they got through.
    run.refused(&["rmi", "slipway-proxy-test-nothing-here:1"], "removing images is not available")
        .await;
    run.refused(
        &["system", "prune", "-f", "--filter", "label=io.slipway.never=never"],
        "pruning is not available",
    )
    .await;
    run.refused(
        &["update", "--memory", "64m", "nothing-here"],
        "is not available through this run's engine socket",
    )
    .await;
    run.refused(&["swarm", "init"], "is not available through this run's engine socket")
        .await;

    let filter = format!("label={LABEL}={}", run.id);
    assert_eq!(engine(&["ps", "-aq", "--filter", &filter]).await, "", "nothing refused was created");
    assert_eq!(engine(&["volume", "ls", "-q", "--filter", &filter]).await, "");
    assert_eq!(engine(&["network", "ls", "-q", "--filter", &filter]).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_ports_are_rewritten_to_loopback() {
    if !engine_here("published_ports_are_rewritten_to_loopback") {
        return;
    }
    let run = Run::start("ports").await;
    run.ok(&["create", "--name", "web", "-p", "8080:80", "-p", "127.0.0.1:8081:81", IMAGE, "true"])
        .await;
    let bindings = engine(&["inspect", "-f", "{{json .HostConfig.PortBindings}}", &run.prefixed("web")]).await;
    let bindings: serde_json::Value = serde_json::from_str(&bindings).unwrap();
    assert_eq!(bindings["80/tcp"], serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}]));
    assert_eq!(bindings["81/tcp"], serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "8081"}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workspace_is_the_only_host_path() {
    if !engine_here("the_workspace_is_the_only_host_path") {
        return;
    }
    let run = Run::start("ws").await;
    std::fs::create_dir_all(run.workspace.join("sub")).unwrap();
    std::fs::write(run.workspace.join("sub/file.txt"), "from the host\n").unwrap();
    std::os::unix::fs::symlink("/etc", run.workspace.join("link")).unwrap();
    std::os::unix::fs::symlink("sub", run.workspace.join("inside")).unwrap();

    assert_eq!(
        run.ok(&["run", "--rm", "-v", "/workspace:/w:ro", IMAGE, "cat", "/w/inside/file.txt"])
            .await,
        "from the host\n"
    );
    assert_eq!(
        run.ok(&[
            "run",
            "--rm",
            "--mount",
            "type=bind,source=/workspace,target=/w",
            IMAGE,
            "cat",
            "/w/sub/file.txt"
        ])
        .await,
        "from the host\n"
    );
    run.ok(&[
        "run",
        "--rm",
        "-v",
        "/workspace:/out",
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /out/out && echo back > /out/out/result",
    ])
    .await;
    assert_eq!(std::fs::read_to_string(run.workspace.join("out/result")).unwrap(), "back\n");

    // A path beneath the workspace is refused: the run could swap it for a symlink
    // between this check and the engine's mount at start.
    run.refused(
        &["run", "--rm", "-v", "/workspace/sub:/w", IMAGE, "true"],
        "only /workspace itself can",
    )
    .await;
    run.refused(&["run", "--rm", "-v", "/workspace/../etc:/x", IMAGE, "true"], "`..` is not allowed")
        .await;
    run.refused(
        &["run", "--rm", "-v", "/workspace/link:/x", IMAGE, "true"],
        "only /workspace itself can",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_mounts_the_engine_socket_gets_the_runs() {
    if !engine_here("a_container_that_mounts_the_engine_socket_gets_the_runs") {
        return;
    }
    let run = Run::start("nested").await;
    let cli_inside = run.workspace.join("docker");
    if std::fs::hard_link(DOCKER, &cli_inside).is_err() {
        std::fs::copy(DOCKER, &cli_inside).unwrap();
    }
    run.ok(&["run", "-d", "--name", "sibling", IMAGE, "sleep", "300"]).await;
    let nested = |args: &'static [&'static str]| {
        let mut all = vec![
            "run",
            "--rm",
            "-v",
            "/workspace:/ws:ro",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            IMAGE,
            "/ws/docker",
        ];
        all.extend_from_slice(args);
        all
    };
    // All states: the engine may not have marked the asking container running yet.
    let names = run.ok(&nested(&["ps", "-a", "--format", "{{.Names}}"])).await;
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), 2, "the asking container and its sibling: {names:?}");
    assert!(names.contains(&run.prefixed("sibling").as_str()), "{names:?}");
    assert_eq!(run.ok(&nested(&["logs", "sibling"])).await, "");
    let out = run.docker(&nested(&["run", "--rm", "--privileged", IMAGE, "true"])).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("slipway: privileged mode (--privileged) is not allowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_and_volumes_are_the_runs() {
    if !engine_here("networks_and_volumes_are_the_runs") {
        return;
    }
    let declared = format!("declared_{}", std::process::id());
    let run = Run::start_with("netvol", |scope| {
        let engine_name = format!("{declared}_{}", scope.run_id);
        scope.networks.insert("acb_default_network".into(), engine_name.clone());
        scope.default_network = Some(engine_name);
    })
    .await;
    // The runner creates the declared network, labelled; here the test does.
    let declared = format!("{declared}_{}", run.id);
    engine(&["network", "create", "--label", &format!("{LABEL}={}", run.id), &declared]).await;

    run.ok(&["create", "--name", "plain", IMAGE, "true"]).await;
    let mode = engine(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", &run.prefixed("plain")]).await;
    assert_eq!(mode.trim(), declared, "a container that names no network joins the run's");
    run.ok(&["run", "--rm", "--network", "acb_default_network", IMAGE, "true"]).await;

    run.ok(&["network", "create", "backend"]).await;
    let backend = format!("backend_{}", run.id);
    let label = engine(&["network", "inspect", "-f", &format!("{{{{index .Labels \"{LABEL}\"}}}}"), &backend]).await;
    assert_eq!(label.trim(), run.id);
    run.ok(&["run", "--rm", "--network", "backend", IMAGE, "true"]).await;
    run.ok(&["network", "inspect", "backend"]).await;
    let mut listed: Vec<String> = run
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .await
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    let mut expected = vec![backend.clone(), declared.clone()];
    expected.sort();
    assert_eq!(listed, expected, "only the run's networks are listed");
    run.ok(&["network", "rm", "backend"]).await;
    assert!(!engine_has("network", &backend).await);

    run.ok(&["volume", "create", "cache"]).await;
    let cache = format!("cache_{}", run.id);
    let label = engine(&["volume", "inspect", "-f", &format!("{{{{index .Labels \"{LABEL}\"}}}}"), &cache]).await;
    assert_eq!(label.trim(), run.id);
    run.ok(&["run", "--rm", "-v", "cache:/c", IMAGE, "sh", "-c", "echo kept > /c/f"])
        .await;
    assert_eq!(
        run.ok(&["run", "--rm", "--mount", "source=cache,target=/c", IMAGE, "cat", "/c/f"])
            .await,
        "kept\n"
    );
    assert_eq!(run.ok(&["volume", "ls", "--format", "{{.Name}}"]).await.trim(), cache);

    // A volume first named by a container is created for the run, labelled.
    run.ok(&["run", "--rm", "-v", "scratch:/s", IMAGE, "true"]).await;
    let scratch = format!("scratch_{}", run.id);
    let label = engine(&["volume", "inspect", "-f", &format!("{{{{index .Labels \"{LABEL}\"}}}}"), &scratch]).await;
    assert_eq!(label.trim(), run.id);

    run.ok(&["volume", "rm", "cache"]).await;
    assert!(!engine_has("volume", &cache).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_raw_requests_are_refused_or_defused() {
    if !engine_here("hostile_raw_requests_are_refused_or_defused") {
        return;
    }
    let run = Run::start("raw").await;
    let json = "application/json";

    // Host config at the top level, where the engine reads it when `HostConfig` is absent
    // (and some fields, `VolumeDriver` among them, even beside one): refused.
    for body in [
        serde_json::json!({"Image": IMAGE, "Cmd": ["true"], "Privileged": true, "Binds": ["/:/host"], "NetworkMode": "host"}),
        serde_json::json!({"Image": IMAGE, "Cmd": ["true"], "HostConfig": {}, "VolumeDriver": "evil"}),
    ] {
        let (status, answer) = run.raw("POST", "/v1.41/containers/create?name=top", json, body.to_string()).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains("at the top level"), "{answer}");
    }
    assert!(!engine_has("container", &run.prefixed("top")).await);

    for (method, path, content_type, body, status, what) in [
        (
            "POST",
            "/containers/create",
            json,
            r#"{"Image": "x", "hostconfig": {"privileged": true}}"#.to_string(),
            403,
            "allow_privileged",
        ),
        (
            "POST",
            "/containers/create",
            json,
            r#"{"Image": "x", "HostConfig": {"Privileged": false, "privileged": true}}"#.into(),
            400,
            "names one field twice",
        ),
        (
            "POST",
            "/containers/create",
            json,
            format!(r#"{{"Image": "{IMAGE}", "HostConfig": {{"Binds": ["/:/host"]}}, "HostConfig": {{}}}}"#),
            201,
            "",
        ),
        ("POST", "/containers/create", json, r#"{"Image":"#.into(), 400, "malformed JSON"),
        (
            "POST",
            "/containers/create",
            json,
            format!(r#"{{"Image": "{}"}}"#, "x".repeat(1 << 20)),
            413,
            "larger than",
        ),
        (
            "POST",
            "/build?t=x",
            "application/x-www-form-urlencoded",
            "remote=http://127.0.0.1:1/ctx.tar".into(),
            400,
            "form-encoded",
        ),
        (
            "POST",
            "/build?remote=http://127.0.0.1:1/ctx.tar",
            "application/x-tar",
            String::new(),
            403,
            "remote URL",
        ),
        (
            "POST",
            "/images/create?fromSrc=http://127.0.0.1:1/x.tar&repo=x",
            json,
            String::new(),
            403,
            "importing an image from a URL",
        ),
        (
            "POST",
            "/v1.23/containers/top/start",
            json,
            r#"{"Privileged": true, "Binds": ["/:/host"]}"#.into(),
            400,
            "API version 1.23",
        ),
        ("GET", "/containers/top/../../info", json, String::new(), 400, "`..`"),
        (
            "GET",
            "/v1.41/containers/top%2F..%2F..%2Finfo/json",
            json,
            String::new(),
            400,
            "`..`",
        ),
        (
            "POST",
            "/containers/top/update",
            json,
            r#"{"Memory": 1}"#.into(),
            403,
            "is not available",
        ),
    ] {
        let (got, answer) = run.raw(method, path, content_type, body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        if !what.is_empty() {
            let message = answer["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("slipway: ") && message.contains(what),
                "{method} {path}: {message}"
            );
        }
    }
    // The duplicate "HostConfig" above: serde and Go both keep the last one, the one checked.
    let created = engine(&["ps", "-a", "--filter", &format!("label={LABEL}={}", run.id), "--format", "{{.ID}}"]).await;
    for id in created.lines() {
        let binds = engine(&["inspect", "-f", "{{json .HostConfig.Binds}}", id]).await;
        assert_eq!(binds.trim(), "null", "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_open_streams_and_removes_the_socket() {
    if !engine_here("stopping_ends_open_streams_and_removes_the_socket") {
        return;
    }
    let mut run = Run::start("stop").await;
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&run.socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o666, "any user in a step's container may connect");
    let mut attached = tokio::process::Command::new(DOCKER)
        .env("DOCKER_HOST", format!("unix://{}", run.socket.display()))
        .env("DOCKER_CONFIG", run.dir.path().join("config"))
        .args(["run", "--name", "long", IMAGE, "sleep", "300"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let name = run.prefixed("long");
    let mut running = false;
    for _ in 0..100 {
        let config = tempfile::tempdir().unwrap();
        let out = cli(
            &format!("unix://{ENGINE}"),
            config.path(),
            &["inspect", "-f", "{{.State.Running}}", &name],
        )
        .await;
        if String::from_utf8_lossy(&out.stdout).trim() == "true" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running, "the attached container started");
    // Let the CLI settle on its attach stream and wait request.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stopping = std::time::Instant::now();
    run.proxy.take().unwrap().stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(5), "stop took {:?}", stopping.elapsed());
    assert!(!run.socket.exists(), "the socket file is removed");
    let exited = tokio::time::timeout(Duration::from_secs(10), attached.wait()).await;
    assert!(exited.is_ok(), "the attached docker CLI lost its streams when the proxy stopped");
    assert!(tokio::net::UnixStream::connect(&run.socket).await.is_err());
}

/// A run whose images are its own: nothing in a registry, pushes nowhere.
fn images_scoped(scope: &mut Scope) {
    scope.images = Some(slipway_engine_proxy::ImageRules {
        digest: std::sync::Arc::new(|_, _| Box::pin(async { Err("no registry here".to_string()) })),
        triggers: std::sync::Arc::new(|_, _| Box::pin(async { Ok(Vec::new()) })),
        operator_images: vec![IMAGE.into()],
        may_push: std::sync::Arc::new(|_: &str, _: &str| Err("no pushes here".to_string())),
        hold_name: std::sync::Arc::new(|_| Box::pin(async { Box::new(()) as slipway_engine_proxy::NameGuard })),
    });
}

/// A tar of `(name, content)` files and `(name, target)` symlinks.
fn tar_of(files: &[(&str, &str)], links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, text.as_bytes()).unwrap();
    }
    for (name, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, name, target).unwrap();
    }
    b.into_inner().unwrap()
}

/// A classic build's Dockerfile is rewritten on its way through the proxy; a context
/// that would have the engine read another one (a link, `dockerfile`, `..`, a
/// compressed archive the proxy cannot read) is refused, and nothing is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_the_proxy_reads_hold_plain_files_or_are_refused() {
    if !engine_here("archives_the_proxy_reads_hold_plain_files_or_are_refused") {
        return;
    }
    let run = Run::start_with("archives", images_scoped).await;
    let theirs = "FROM slipway.invalid/someone-else/docker.io/library/app:latest\n";
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, &tar_of(&[("Dockerfile", theirs)], &[])).unwrap();
        e.finish().unwrap()
    };
    for (what, path, body, text) in [
        (
            "a linked Dockerfile",
            "/build?t=x",
            tar_of(&[("evil", theirs)], &[("Dockerfile", "evil")]),
            "is a link",
        ),
        (
            "a linked directory",
            "/build?t=x&dockerfile=sub/Dockerfile",
            tar_of(&[("evil/Dockerfile", theirs)], &[("sub", "evil")]),
            "is a link",
        ),
        (
            "only a lowercase dockerfile",
            "/build?t=x",
            tar_of(&[("dockerfile", theirs)], &[]),
            "holds no Dockerfile",
        ),
        (
            "a path with ..",
            "/build?t=x&dockerfile=sub/../Dockerfile",
            tar_of(&[("Dockerfile", theirs)], &[]),
            "without `..`",
        ),
        ("a compressed context", "/build?t=x", gz, "compressed"),
        // And the rewrite itself: another run's image is refused by name.
        (
            "another run's base",
            "/build?t=x",
            tar_of(&[("Dockerfile", theirs)], &[]),
            "another run's image",
        ),
    ] {
        let (status, answer) = raw(&run.socket, "POST", path, "application/x-tar", Bytes::from(body)).await;
        let message = answer["message"].as_str().unwrap_or_default().to_string();
        assert!(status == 400 && message.contains(text), "{what}: {status} {answer}");
    }
    assert!(engine(&["image", "ls", "-q", "--filter", &format!("label={LABEL}={}", run.id)])
        .await
        .trim()
        .is_empty());
}
