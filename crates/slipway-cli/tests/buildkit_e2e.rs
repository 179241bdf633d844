//! Builds on BuildKit against the real engine and registry: the default builder and the
//! classic one, cache and secret mounts, real platforms under emulation, image indexes,
//! and a layer cache that crosses nodes through the registry.

mod support;

use std::time::Duration;
use support::daemon::Daemon;
use support::*;

fn exec(dir: &std::path::Path, extra: &[&str]) -> Ran {
    let mut c = slipway();
    c.args(["exec", "-f"]).arg(dir.join("acb.yaml")).args(extra).arg(dir);
    run(&mut c)
}

fn docker(args: &[&str]) -> Ran {
    run(std::process::Command::new("docker").args(args))
}

fn registry_json(registry: &str, path: &str) -> serde_json::Value {
    rt().block_on(async {
        reqwest::Client::new()
            .get(format!("http://{registry}/v2/{path}"))
            .header("Accept", slipway_registry::ACCEPT)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

/// Emulation of arm64 is part of the test bed; in CI its absence fails the test.
fn emulation() -> bool {
    let on = std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists();
    if !on {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true and arm64 emulation is not registered; scripts/testbed.sh registers it");
        }
        eprintln!("\n!!! SKIPPED: needs arm64 emulation (scripts/testbed.sh registers qemu-aarch64) !!!\n");
    }
    on
}

#[test]
fn buildkit_is_the_default_and_the_classic_builder_a_choice() {
    let Some(tb) = testbed() else { return };
    let tag = unique_id("bk-default-");
    let ctx = dir_with(&[
        ("Dockerfile", &format!("FROM {}\nRUN echo hello-from-run\n", tb.base_image)),
        (
            "acb.yaml",
            &format!("steps:\n  - id: kit\n    build: -t {tag}:1 --no-cache .\n  - id: old\n    build: -t {tag}:2 --no-cache .\n    env: [DOCKER_BUILDKIT=0]\n"),
        ),
    ]);
    let r = exec(ctx.path(), &[]);
    assert!(r.ok, "{}", r.all());
    // BuildKit's progress as plain lines, labelled by step like every other line.
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("kit | #") && l.contains("RUN echo hello-from-run")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.lines().any(|l| l.starts_with("kit | #") && l.ends_with(" hello-from-run")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("old | Step 1/2 : FROM"),
        "the step's DOCKER_BUILDKIT=0 picks the classic builder:\n{}",
        r.stdout
    );
    assert!(!r.stdout.contains("kit | Step 1/2"), "{}", r.stdout);

    // The operator's choice: every build classic; `RUN --mount` then fails clearly.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {}\nRUN --mount=type=cache,target=/c true\n", tb.base_image),
    )
    .unwrap();
    std::fs::write(
        ctx.path().join("acb.yaml"),
        format!("steps:\n  - id: kit\n    build: -t {tag}:3 .\n"),
    )
    .unwrap();
    let r = exec(ctx.path(), &["--builder", "classic"]);
    assert!(!r.ok, "{}", r.all());
    assert!(
        r.all().contains("kit") && r.all().to_lowercase().contains("buildkit"),
        "{}",
        r.all()
    );
    let r = exec(ctx.path(), &[]);
    assert!(r.ok, "{}", r.all());
}

#[test]
fn cache_mounts_persist_between_runs_and_the_registry_cache_survives_a_pruned_builder() {
    let Some(tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let id = unique_id("c");
    // Cache mounts: runs of one repository share them (two runs of a step that runs
    // again each time, through a new build argument, count their visits in one mount;
    // --no-cache would skip cache mounts too, as BuildKit does). An upload's run has its
    // own, even with the same Dockerfile and mount id.
    let dockerfile = format!(
        "FROM {}\nARG VISIT\nRUN --mount=type=cache,id=shared,target=/cache sh -c 'echo $VISIT >> /cache/visits; echo visits=$(wc -l < /cache/visits)'\n",
        tb.base_image
    );
    let task = format!("steps:\n  - id: b\n    build: -t {id}:1 --build-arg VISIT={{{{.Run.ID}}}} .\n");
    let repo = dir_with(&[("Dockerfile", &dockerfile), ("acb.yaml", &task)]);
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "cache"]);
    let url = format!("file://{}", repo.path().display());
    for want in ["visits=1", "visits=2"] {
        let r = run(d.client().args(["run", "-f", "acb.yaml", &url]));
        assert!(r.ok && r.stdout.contains(want), "want {want}:\n{}\n{}", r.all(), d.server_log());
    }
    let upload = run(d.client().args(["run", "-f", "acb.yaml", repo.path().to_str().unwrap()]));
    assert!(
        upload.ok && upload.stdout.contains("visits=1"),
        "another source's run sees its own cache:\n{}",
        upload.all()
    );
    // A build argument cannot move a run into another namespace.
    let theirs = format!("repo:{}", slipway_api::source::normalise_repo(&url));
    let sneaky_task = task.replace(
        "--build-arg VISIT",
        &format!("--build-arg BUILDKIT_CACHE_MOUNT_NS={theirs} --build-arg VISIT"),
    );
    std::fs::write(repo.path().join("acb.yaml"), sneaky_task).unwrap();
    let sneaky = run(d.client().args(["run", "-f", "acb.yaml", repo.path().to_str().unwrap()]));
    assert!(sneaky.ok && sneaky.stdout.contains("visits=1"), "{}", sneaky.all());

    // `cache: enabled` exports the layers' cache to the registry; a builder with an
    // empty cache (pruned, as a new node's) builds from it.
    let image = format!("{}/{id}", tb.registry);
    let dockerfile = format!("FROM {}\nRUN echo {id} > /marker && sleep 1\nRUN cat /marker\n", tb.base_image);
    let task = format!("steps:\n  - id: b\n    build: -t {image}:1 .\n    cache: enabled\n");
    let ctx = dir_with(&[("Dockerfile", &dockerfile), ("acb.yaml", &task)]);
    let cold = exec(ctx.path(), &[]);
    assert!(cold.ok, "{}", cold.all());
    assert!(
        cold.stdout
            .contains(&format!("Exported the build cache to {image}:cache_quickrun_b")),
        "{}",
        cold.stdout
    );
    assert!(
        !vertex_cached(&cold.stdout, &format!("RUN echo {id}")),
        "a cold build ran the step:\n{}",
        cold.stdout
    );
    rt().block_on(async {
        let docker = slipway_engine::Docker::connect().unwrap();
        for i in [format!("{image}:1"), format!("{image}:cache_quickrun_b")] {
            let opts = bollard::query_parameters::RemoveImageOptionsBuilder::new().force(true).build();
            let _ = docker.client().remove_image(&i, Some(opts), None).await;
        }
        let opts = bollard::query_parameters::PruneBuildOptionsBuilder::new().all(true).build();
        docker.client().prune_build(Some(opts)).await.unwrap();
    });
    let warm = exec(ctx.path(), &[]);
    assert!(warm.ok, "{}", warm.all());
    assert!(
        vertex_cached(&warm.stdout, &format!("RUN echo {id}")),
        "the layer came from the registry cache:\n{}",
        warm.stdout
    );
}

/// Whether BuildKit's progress in `log` marks the vertex whose line holds `needle`
/// (`step | #5 [2/3] RUN …`) as `#5 CACHED`.
fn vertex_cached(log: &str, needle: &str) -> bool {
    let n = log
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        .unwrap_or_else(|| panic!("no line with {needle:?}:\n{log}"));
    log.lines().any(|l| l.ends_with(&format!("{n} CACHED")))
}

#[test]
fn build_secrets_reach_the_mount_and_nothing_else() {
    let Some(tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let task_secret = format!("T4sk-Secret-{}", unique_id(""));
    let client_secret = format!("Cl1ent-Secret-{}", unique_id(""));
    // Pushed, so they can be looked into after the runs: a run's unpushed images go with it.
    let tag = format!("{}/{}", tb.registry, unique_id("secret-"));
    let dockerfile = format!(
        "FROM {}\nRUN --mount=type=secret,id=tok sh -c 'echo seen:$(cat /run/secrets/tok); wc -c < /run/secrets/tok > /len'\n",
        tb.base_image
    );
    // A task: the secret comes from the run's secrets through the step's environment.
    let task = format!(
        "steps:\n  - id: b\n    build: -t {tag}:task --no-cache --secret id=tok,env=TOK .\n    env: [\"TOK={{{{.Values.tok}}}}\"]\n  - cmd: {tag}:task cat /len\n  - push: [\"{tag}:task\"]\n"
    );
    let ctx = dir_with(&[("Dockerfile", &dockerfile), ("acb.yaml", &task)]);
    let r1 = run(d.client().args([
        "run",
        "-f",
        "acb.yaml",
        "--set-secret",
        &format!("tok={task_secret}"),
        ctx.path().to_str().unwrap(),
    ]));
    assert!(r1.ok, "{}\n{}", r1.all(), d.server_log());
    assert!(
        r1.stdout.contains("seen:*****"),
        "the mount held the secret (masked in the log):\n{}",
        r1.stdout
    );
    assert!(r1.stdout.contains(&format!("| {}", task_secret.len())), "{}", r1.stdout);
    // A quick build: `slipway build --secret id=tok,env=NAME` reads NAME here.
    let r2 = run(d
        .client()
        .env("MY_TOKEN", &client_secret)
        .args([
            "build",
            "--no-cache",
            "-t",
            &format!("{tag}:quick"),
            "--secret",
            "id=tok,env=MY_TOKEN",
        ])
        .arg(ctx.path()));
    assert!(r2.ok, "{}\n{}", r2.all(), d.server_log());
    assert!(r2.stdout.contains("seen:*****"), "{}", r2.stdout);
    // A missing secret is an error that names it.
    let r3 = run(d
        .client()
        .args([
            "build",
            "--no-push",
            "-t",
            &format!("{tag}:none"),
            "--secret",
            "id=tok,env=NOT_SET_ANYWHERE",
        ])
        .arg(ctx.path()));
    assert!(!r3.ok && r3.stderr.contains("NOT_SET_ANYWHERE"), "{}", r3.all());

    let mut seen = vec![r1.all(), r2.all(), d.server_log()];
    for image in [format!("{tag}:task"), format!("{tag}:quick")] {
        assert!(docker(&["pull", "-q", &image]).ok, "docker pull {image}");
        let out = std::process::Command::new("docker").args(["save", &image]).output().unwrap();
        assert!(out.status.success() && out.stdout.len() > 1000, "docker save {image}");
        seen.push(String::from_utf8_lossy(&out.stdout).into_owned());
        seen.push(docker(&["history", "--no-trunc", &image]).all());
    }
    let (_, list) = d.get("/v1/runs?top=10");
    seen.push(list);
    for entry in walk(d.dir.path()) {
        seen.push(String::from_utf8_lossy(&std::fs::read(&entry).unwrap_or_default()).into_owned());
    }
    for text in &seen {
        assert!(
            !text.contains(&task_secret) && !text.contains(&client_secret),
            "a secret leaked:\n{}",
            &text[..text.len().min(4000)]
        );
    }
}

#[test]
fn a_platform_is_built_for_real_or_refused_by_name() {
    let Some(tb) = testbed() else { return };
    if !emulation() {
        return;
    }
    let tag = unique_id("plat-");
    let ctx = dir_with(&[
        ("Dockerfile", "FROM slipway-busybox:${TARGETARCH}\nRUN uname -m > /arch\n"),
        (
            "acb.yaml",
            &format!("steps:\n  - id: b\n    build: -t {tag}:arm --platform linux/arm64 .\n  - id: show\n    cmd: {tag}:arm cat /arch\n"),
        ),
    ]);
    let r = exec(ctx.path(), &[]);
    assert!(r.ok, "{}", r.all());
    assert!(r.stdout.contains("show | aarch64"), "RUN ran under emulation:\n{}", r.stdout);
    assert!(
        r.stdout
            .contains("(linux/arm64) depends on runtime docker.io/library/slipway-busybox:arm64"),
        "{}",
        r.stdout
    );
    let arch = docker(&["image", "inspect", "--format", "{{.Architecture}}", &format!("{tag}:arm")]);
    assert_eq!(arch.stdout.trim(), "arm64");
    // The classic builder cannot: it says so instead of building amd64 under the tag.
    let r = exec(ctx.path(), &["--builder", "classic"]);
    assert!(!r.ok && r.all().contains("platform linux/arm64"), "{}", r.all());
    // A platform the engine has no base image or emulation for fails naming it.
    std::fs::write(
        ctx.path().join("acb.yaml"),
        format!("steps:\n  - id: b\n    build: -t {tag}:s390x --platform linux/s390x .\n"),
    )
    .unwrap();
    let r = exec(ctx.path(), &[]);
    assert!(!r.ok && r.all().contains("for platform linux/s390x"), "{}", r.all());
    let _ = tb;
}

#[test]
fn a_platform_list_pushes_an_image_index_that_pulls_back_per_platform() {
    let Some(tb) = testbed() else { return };
    if !emulation() {
        return;
    }
    let d = Daemon::start(&[]);
    let repo = unique_id("multi-");
    let image = format!("{}/{repo}:1", tb.registry);
    let ctx = dir_with(&[("Dockerfile", "FROM slipway-busybox:${TARGETARCH}\nRUN uname -m > /arch\n")]);
    let r = run(d
        .client()
        .args(["build", "-t", &image, "--platform", "linux/amd64,linux/arm64", "--no-wait"])
        .arg(ctx.path()));
    assert!(r.ok, "{}", r.all());
    let run_id = r.stdout.split_whitespace().last().unwrap_or_default().to_string();
    let done = d.wait_status(&run_id, &["Succeeded", "Failed", "Error"], Duration::from_secs(240));
    assert_eq!(
        done["status"],
        "Succeeded",
        "{done}\n{}",
        d.get(&format!("/v1/runs/{run_id}/log")).1
    );
    // The tag is an OCI index of both platforms' manifests.
    let index = registry_json(&tb.registry, &format!("{repo}/manifests/1"));
    assert_eq!(index["mediaType"], slipway_registry::OCI_INDEX, "{index}");
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    // The run names the index and each platform's digest, and records dependencies per platform.
    let outputs = done["outputImages"].as_array().unwrap();
    assert_eq!(outputs.len(), 3, "{done}");
    for (i, m) in index["manifests"].as_array().unwrap().iter().enumerate() {
        assert_eq!(outputs[i + 1]["digest"], m["digest"], "{done}");
        assert_eq!(outputs[i + 1]["platform"], format!("linux/{}", archs[i]));
    }
    let deps = done["imageDependencies"].as_array().unwrap();
    let dep_platforms: Vec<&str> = deps.iter().filter_map(|d| d["platform"].as_str()).collect();
    assert_eq!(dep_platforms, ["linux/amd64", "linux/arm64"], "{done}");
    assert_eq!(deps[1]["runtimeDependency"]["tag"], "arm64", "{done}");
    // Pulled back, each platform's image runs as that platform.
    for (platform, machine) in [("linux/arm64", "aarch64"), ("linux/amd64", "x86_64")] {
        let _ = docker(&["image", "rm", "-f", &image]);
        let pulled = docker(&["pull", "-q", "--platform", platform, &image]);
        assert!(pulled.ok, "{}", pulled.all());
        let ran = docker(&["run", "--rm", "--platform", platform, &image, "cat", "/arch"]);
        assert_eq!(ran.stdout.trim(), machine, "{}", ran.all());
    }
}

#[test]
fn a_secret_file_is_read_beneath_the_source_only() {
    let Some(tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let tag = unique_id("secret-file-");
    let dockerfile = format!(
        "FROM {}\nRUN --mount=type=secret,id=key echo key:$(cat /run/secrets/key)\n",
        tb.base_image
    );
    let task = format!(
        "steps:\n  - id: inside\n    build: -t {tag}:1 --no-cache --secret id=key,src=keys/key.txt .\n  - id: outside\n    build: -t {tag}:2 --no-cache --secret id=key,src=../../../../../../etc/hostname .\n"
    );
    let ctx = dir_with(&[
        ("Dockerfile", &dockerfile),
        ("acb.yaml", &task),
        ("keys/key.txt", "file-held-value"),
    ]);
    let r = run(d.client().args(["run", "-f", "acb.yaml", ctx.path().to_str().unwrap()]));
    assert!(!r.ok, "{}", r.all());
    assert!(r.stdout.contains("inside | #") && r.stdout.contains("key:*****"), "{}", r.stdout);
    assert!(!r.stdout.contains("file-held-value"), "{}", r.stdout);
    assert!(
        r.all().contains("--secret id=key: src=../../../../../../etc/hostname"),
        "{}",
        r.all()
    );
}
