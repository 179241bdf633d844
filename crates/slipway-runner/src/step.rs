//! One step: start delay, retries, repeats, timeout, and the engine calls for its type.

use crate::report::{ImageDependencies, OutputImage, StepReport, StepStatus};
use crate::Shared;
use futures_util::StreamExt;
use slipway_engine::{ContainerSpec, ImageBuild, LogSink};
use slipway_plan::{BuildSpec, Step, StepKind};
use slipway_reference::Reference;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How one execution ended.
enum Outcome {
    Ok,
    /// The command ran and failed (non-zero exit); retries apply.
    Failed(String),
    /// Something around the command failed (image, engine); not retried.
    Error(String),
    TimedOut,
    Canceled,
}

#[derive(Default)]
struct Produced {
    images: Vec<OutputImage>,
    dependencies: Vec<ImageDependencies>,
}

pub(crate) async fn execute(shared: Arc<Shared>, step: Step, cancel: CancellationToken) -> StepReport {
    let started = Instant::now();
    let sink = shared.step_sink(&step.id);
    let mut report = StepReport::skipped(&step.id);
    if step.start_delay > 0 {
        shared.say(&format!("Step ID: {} waits {} s before it starts", step.id, step.start_delay));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(step.start_delay)) => {}
            _ = cancel.cancelled() => { report.status = StepStatus::Canceled; return report; }
        }
    }
    shared.say(&format!(
        "Executing step ID: {}. Timeout(sec): {}, Working directory: '{}', Network: '{}'",
        step.id, step.timeout, step.working_directory, step.network
    ));
    let mut produced = Produced::default();
    let mut outcome = Outcome::Ok;
    'repeat: for round in 0..=step.repeat {
        for attempt in 0..=step.retries {
            report.executions += 1;
            outcome = once(&shared, &step, &sink, &cancel, &mut produced, report.executions).await;
            match &outcome {
                Outcome::Failed(why) if attempt < step.retries && retry_applies(&step, why) => {
                    shared.say(&format!(
                        "Step ID: {} failed ({why}); retry {} of {} in {} s",
                        step.id,
                        attempt + 1,
                        step.retries,
                        step.retry_delay
                    ));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(step.retry_delay)) => {}
                        _ = cancel.cancelled() => { outcome = Outcome::Canceled; break 'repeat; }
                    }
                }
                Outcome::Ok => break,
                _ => break 'repeat,
            }
        }
        if !matches!(outcome, Outcome::Ok) {
            break;
        }
        if round < step.repeat {
            shared.say(&format!("Step ID: {} repeats ({} of {})", step.id, round + 1, step.repeat));
        }
    }
    report.duration_secs = started.elapsed().as_secs_f64();
    report.output_images = produced.images;
    report.dependencies = produced.dependencies;
    let elapsed = report.duration_secs;
    match outcome {
        Outcome::Ok => {
            report.status = StepStatus::Succeeded;
            shared.say(&format!(
                "Step ID: {} marked as successful (elapsed time in seconds: {elapsed:.3})",
                step.id
            ));
        }
        Outcome::Failed(e) | Outcome::Error(e) => {
            let e = shared.redactor.mask(&e);
            report.status = if step.ignore_errors {
                StepStatus::FailedIgnored
            } else {
                StepStatus::Failed
            };
            shared.say(&format!(
                "Step ID: {} marked as failed{} (elapsed time in seconds: {elapsed:.3}): {e}",
                step.id,
                if step.ignore_errors { ", errors ignored" } else { "" }
            ));
            report.error = Some(e);
        }
        Outcome::TimedOut => {
            report.status = if step.ignore_errors {
                StepStatus::FailedIgnored
            } else {
                StepStatus::TimedOut
            };
            let e = format!("timed out after {} s", step.timeout);
            shared.say(&format!("Step ID: {} {e}; its container was killed", step.id));
            report.error = Some(e);
        }
        Outcome::Canceled => {
            report.status = StepStatus::Canceled;
            report.error = Some("canceled".into());
            shared.say(&format!("Step ID: {} was canceled", step.id));
        }
    }
    report
}

/// `retryOnErrors` limits retries to failures whose message contains one of its entries.
fn retry_applies(step: &Step, why: &str) -> bool {
    step.retry_on_errors.is_empty() || step.retry_on_errors.iter().any(|e| why.contains(e.as_str()))
}

async fn once(
    shared: &Arc<Shared>,
    step: &Step,
    sink: &LogSink,
    cancel: &CancellationToken,
    produced: &mut Produced,
    attempt_number: u32,
) -> Outcome {
    let limit = Duration::from_secs(step.timeout);
    let work = async {
        match &step.kind {
            StepKind::Cmd { image, args, .. } => cmd(shared, step, image, args, sink, cancel, attempt_number).await,
            StepKind::Build { spec, .. } => build(shared, step, spec, sink, produced).await,
            StepKind::Push { push } => push_all(shared, push, sink, produced).await,
        }
    };
    let result = tokio::select! {
        r = work => r,
        _ = tokio::time::sleep(limit) => Outcome::TimedOut,
        _ = cancel.cancelled() => Outcome::Canceled,
    };
    if matches!(result, Outcome::TimedOut | Outcome::Canceled) && matches!(step.kind, StepKind::Cmd { .. }) {
        // Dropping the future stopped our waiting; this stops the container.
        let _ = shared.engine.remove_container(&container_name(&shared.cfg.run_id, &step.id)).await;
    }
    result
}

/// Ports as the engine gets them: one given without an address is published on
/// loopback only, unless the task may publish on every interface.
pub(crate) fn host_ports(ports: &[String], public: bool) -> Vec<String> {
    ports
        .iter()
        .map(|p| {
            let spec = p.split('/').next().unwrap_or(p);
            if public || spec.starts_with('[') || spec.matches(':').count() >= 2 {
                p.clone()
            } else if spec.contains(':') {
                format!("127.0.0.1:{p}")
            } else {
                // A container port alone gets a random host port, on loopback.
                format!("127.0.0.1::{p}")
            }
        })
        .collect()
}

/// A step's environment with `HOME` on the run's home volume, unless it sets its own.
fn with_home(env: &[String]) -> Vec<String> {
    let mut out = env.to_vec();
    if !env.iter().any(|e| e.split('=').next() == Some("HOME")) {
        out.push(format!("HOME={}", crate::HOME_DIR));
    }
    out
}

pub(crate) fn container_name(run_id: &str, step_id: &str) -> String {
    format!("slipway-{run_id}-{step_id}")
}

fn working_dir(step: &Step) -> Option<String> {
    if step.disable_working_directory_override {
        return None;
    }
    let wd = step.working_directory.as_str();
    Some(if wd.starts_with('/') {
        wd.to_string()
    } else if wd.is_empty() {
        "/workspace".to_string()
    } else {
        format!("/workspace/{wd}")
    })
}

async fn cmd(
    shared: &Arc<Shared>,
    step: &Step,
    image: &str,
    args: &[String],
    sink: &LogSink,
    cancel: &CancellationToken,
    attempt_number: u32,
) -> Outcome {
    let engine = &shared.engine;
    let credential = shared.credential_for(image);
    let mut pull_attempt = 0;
    loop {
        match engine.ensure_image(image, step.pull, credential.clone(), sink.clone()).await {
            Ok(()) => break,
            Err(e) if pull_attempt < step.cmd_download_retries => {
                pull_attempt += 1;
                shared.say(&format!(
                    "Step ID: {}: {e}; download retry {pull_attempt} of {}",
                    step.id, step.cmd_download_retries
                ));
                tokio::time::sleep(Duration::from_secs(step.cmd_download_retry_delay)).await;
            }
            Err(e) => return Outcome::Error(e.to_string()),
        }
    }
    let name = container_name(&shared.cfg.run_id, &step.id);
    let mut binds = vec![
        format!("{}:/workspace", shared.cfg.shared_volume),
        format!("{}:{}", crate::home_volume(&shared.cfg.run_id), crate::HOME_DIR),
    ];
    match (shared.cfg.host.engine, &shared.engine_socket) {
        (crate::EngineAccess::Full, _) => binds.push(format!("{0}:{0}", shared.cfg.docker_socket)),
        (crate::EngineAccess::Proxy, Some(proxy)) => binds.push(format!("{}:{}", proxy.display(), shared.cfg.docker_socket)),
        _ => {}
    }
    for m in &step.volume_mounts {
        if let Some(dir) = shared.volume_dirs.get(&m.name) {
            binds.push(format!("{}:{}:ro", dir.display(), m.mount_path));
        }
    }
    let network = match (&shared.sandbox, step.network.as_str()) {
        (Some(sandbox), _) => Some(format!("container:{sandbox}")),
        (None, "") => None,
        (None, n) => Some(shared.networks.get(n).cloned().unwrap_or_else(|| n.to_string())),
    };
    let joined = shared.sandbox.is_some();
    let spec = ContainerSpec {
        name: name.clone(),
        image: image.to_string(),
        cmd: args.to_vec(),
        entrypoint: step.entry_point.clone().map(|e| vec![e]),
        env: with_home(&step.env),
        working_dir: working_dir(step),
        user: step.user.clone(),
        privileged: step.privileged,
        binds,
        network,
        aliases: if joined { Vec::new() } else { vec![step.id.clone()] },
        // In shared mode ports belong to the sandbox, which owns the namespace.
        ports: if joined {
            Vec::new()
        } else {
            host_ports(&step.ports, shared.cfg.host.public_ports)
        },
        expose: if joined { Vec::new() } else { step.expose.clone() },
        labels: shared.labels.clone(),
        cpus: step.cpus,
        extra_hosts: Vec::new(),
    };
    // A container kept (`keep`) by an earlier execution of this step would clash by name.
    if attempt_number > 1 {
        let _ = engine.remove_container(&name).await;
    }
    shared.say(&format!("Launching container with name: {name}"));
    if let Err(e) = engine.create_container(&spec).await {
        return Outcome::Error(e.to_string());
    }
    if let Err(e) = engine.start_container(&name).await {
        let _ = engine.remove_container(&name).await;
        return Outcome::Error(e.to_string());
    }
    // Followed after start: the engine keeps all output until the container is removed,
    // and what a follow misses at the very end is read again once the container stops.
    let emitted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let logs = {
        let engine = engine.clone();
        let name = name.clone();
        let sink = sink.clone();
        let emitted = emitted.clone();
        tokio::spawn(async move { engine.follow_logs(&name, sink, emitted).await })
    };
    if step.detach {
        // Runs until the run ends; the run's sweep removes it. Its log keeps streaming.
        let watcher = cancel.clone();
        tokio::spawn(async move {
            watcher.cancelled().await;
            logs.abort();
        });
        return Outcome::Ok;
    }
    let exit = engine.wait_container(&name).await;
    // The log stream can outlive the container (bollard #251); give it a moment to drain,
    // then send whatever it did not (dockerd 20.10 can end a follow without the last
    // chunk of a container that exits while the follow starts).
    let mut logs = logs;
    if tokio::time::timeout(Duration::from_millis(500), &mut logs).await.is_err() {
        logs.abort();
        let _ = logs.await;
    }
    let offset = emitted.load(std::sync::atomic::Ordering::SeqCst);
    if let Err(e) = engine.logs_after(&name, offset, sink.clone()).await {
        tracing::debug!(container = %name, error = %e, "reading the end of the log failed");
    }
    if !step.keep {
        let _ = engine.remove_container(&name).await;
    }
    match exit {
        Err(e) => Outcome::Error(e.to_string()),
        Ok(exit) => {
            let ok = if !step.exited_with.is_empty() {
                step.exited_with.contains(&exit.code)
            } else if !step.exited_without.is_empty() {
                !step.exited_without.contains(&exit.code)
            } else {
                exit.code == 0
            };
            if ok {
                Outcome::Ok
            } else if exit.oom_killed {
                Outcome::Failed(format!("container ran out of memory (exit code {})", exit.code))
            } else {
                Outcome::Failed(format!("exited with code {}", exit.code))
            }
        }
    }
}

async fn build(shared: &Arc<Shared>, step: &Step, spec: &BuildSpec, sink: &LogSink, produced: &mut Produced) -> Outcome {
    if spec.context.contains("://") || spec.context.starts_with("git@") {
        return Outcome::Error(format!(
            "remote build context {:?} is not supported by `slipway exec`; clone it in an earlier step or pass it as the run's context",
            spec.context
        ));
    }
    if !spec.secrets.is_empty() {
        return Outcome::Error("build --secret needs BuildKit, which this engine's classic builder does not offer".into());
    }
    // Everything the build reads goes through this handle: beneath the run's context
    // when the task is not trusted, wherever the person pointed otherwise (as acb).
    let context = if shared.cfg.host.confine_paths {
        slipway_context::Beneath::open(&shared.cfg.context_dir).and_then(|b| b.dir(&spec.context))
    } else {
        let dir = shared.cfg.context_dir.join(&spec.context);
        slipway_context::Dir::open_ambient_dir(&dir, slipway_context::ambient_authority())
            .map_err(|_| slipway_context::ContextError::Missing { path: dir })
    };
    let context = match context {
        Ok(d) => d,
        Err(e) => return Outcome::Error(format!("build context {:?}: {e}", spec.context)),
    };
    let dockerfile = if spec.dockerfile.is_empty() {
        "Dockerfile".to_string()
    } else {
        spec.dockerfile.clone()
    };
    let ignore = match slipway_context::context_ignore(&context, &dockerfile) {
        Ok(i) => i,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let env: HashMap<String, String> = step
        .env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut build_args = HashMap::new();
    for a in &spec.build_args {
        match a.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
            // `--build-arg NAME` takes the value from the step's environment, as docker
            // does, and from this process's only when the task is trusted.
            None => match env
                .get(a)
                .cloned()
                .or_else(|| shared.cfg.host.build_args_from_env.then(|| std::env::var(a).ok()).flatten())
            {
                Some(v) => build_args.insert(a.clone(), v),
                None => continue,
            },
        };
    }
    // The dependency scan is part of every build's record. The engine reads the
    // Dockerfile from the context, so it must be inside it.
    let dockerfile_text = match read_beneath(&context, &dockerfile) {
        Ok(t) => t,
        Err(e) => return Outcome::Error(format!("cannot read Dockerfile {dockerfile:?} in the build context: {e}")),
    };
    let scan_opts = slipway_dockerfile::ScanOptions {
        build_args: build_args.clone().into_iter().collect(),
        target: spec.target.clone(),
    };
    let deps = match slipway_dockerfile::scan(&dockerfile_text, &scan_opts) {
        Ok(d) => d,
        Err(e) => return Outcome::Error(format!("{dockerfile}: {e}")),
    };
    shared.say(&format!(
        "Step ID: {} depends on runtime {} and buildtime [{}]",
        step.id,
        deps.runtime.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "none".into()),
        deps.buildtime.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
    ));
    let tar = slipway_context::tar_stream(context, ignore, vec![dockerfile.clone(), ".dockerignore".into()]).boxed();
    let request = ImageBuild {
        tags: spec.tags.clone(),
        dockerfile: dockerfile.clone(),
        build_args,
        target: spec.target.clone(),
        no_cache: spec.no_cache || !step.cache,
        pull: spec.pull,
        labels: spec
            .labels
            .iter()
            .map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .unwrap_or((l.clone(), String::new()))
            })
            .collect(),
        platform: spec.platform.clone(),
        network: spec.network.clone(),
        cache_from: spec.cache_from.clone(),
        extra_hosts: spec.add_hosts.clone(),
    };
    let credentials: Vec<_> = deps
        .runtime
        .iter()
        .chain(deps.buildtime.iter())
        .filter_map(|r| shared.credential_for(&r.to_string()))
        .collect();
    match shared.engine.build(request, tar, credentials, sink.clone()).await {
        Ok(id) => {
            sink(&format!("Successfully built {id}"));
            let runtime = match &deps.runtime {
                Some(r) => Some(pin_digest(shared, r).await),
                None => None,
            };
            let mut buildtime = Vec::new();
            for b in &deps.buildtime {
                buildtime.push(pin_digest(shared, b).await);
            }
            produced.dependencies.push(ImageDependencies {
                images: spec
                    .tags
                    .iter()
                    .map(|t| Reference::parse(t).map(|r| r.to_string()).unwrap_or_else(|_| t.clone()))
                    .collect(),
                runtime,
                buildtime,
            });
            Outcome::Ok
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// A Dockerfile, at most 1 MiB, read beneath the context.
fn read_beneath(dir: &slipway_context::Dir, path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    dir.open(path)?.into_std().take(1 << 20).read_to_string(&mut text)?;
    Ok(text)
}

/// A dependency with the digest of the local image the engine built from, when known.
async fn pin_digest(shared: &Arc<Shared>, r: &Reference) -> String {
    match shared.engine.image_digest(&r.tagged()).await {
        Some(d) => r.with_digest(&d).to_string(),
        None => r.to_string(),
    }
}

async fn push_all(shared: &Arc<Shared>, images: &[String], sink: &LogSink, produced: &mut Produced) -> Outcome {
    for image in images {
        let credential = shared.credential_for(image);
        let mut delay = Duration::from_secs(1);
        let mut attempt = 1;
        loop {
            sink(&format!("Pushing image: {image}, attempt {attempt}"));
            match shared.engine.push(image, credential.clone(), sink.clone()).await {
                Ok(digest) => {
                    if let Ok(r) = Reference::parse(image) {
                        produced.images.push(OutputImage {
                            registry: r.registry.clone(),
                            repository: r.repository.clone(),
                            tag: r.tag().to_string(),
                            digest,
                        });
                    }
                    break;
                }
                Err(e) if attempt < 3 => {
                    sink(&format!("Push failed: {e}; retrying in {} s", delay.as_secs()));
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Outcome::Failed(e.to_string()),
            }
        }
    }
    Outcome::Ok
}
