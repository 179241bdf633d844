//! One step: start delay, retries, repeats, timeout, and the engine calls for its type.

use crate::outcome::{Outcome, Produced};
use crate::report::{StepReport, StepStatus};
use crate::Shared;
use slipway_engine::{ContainerSpec, LogSink, Mount};
use slipway_plan::{Step, StepKind};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One step from start to report: its start delay, its executions (retried and
/// repeated as it asks), and the status it ends with.
pub(crate) async fn execute(shared: Arc<Shared>, step: Step, cancel: CancellationToken) -> StepReport {
    let started = Instant::now();
    let sink = shared.step_sink(&step.id);
    let mut report = StepReport::skipped(&step.id);
    if !waited_start_delay(&shared, &step, &cancel).await {
        report.status = StepStatus::Canceled;
        return report;
    }
    shared.say(&format!(
        "Executing step ID: {}. Timeout(sec): {}, Working directory: '{}', Network: '{}'",
        step.id, step.timeout, step.working_directory, step.network
    ));
    let mut produced = Produced::default();
    let outcome = executions(&shared, &step, &sink, &cancel, &mut produced, &mut report).await;
    report.duration_secs = started.elapsed().as_secs_f64();
    report.output_images = produced.images;
    report.dependencies = produced.dependencies;
    conclude(&shared, &step, outcome, &mut report);
    report
}

/// Waits the step's `startDelay`, if any; false when the run is canceled meanwhile.
async fn waited_start_delay(shared: &Shared, step: &Step, cancel: &CancellationToken) -> bool {
    if step.start_delay > 0 {
        shared.say(&format!("Step ID: {} waits {} s before it starts", step.id, step.start_delay));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(step.start_delay)) => {}
            _ = cancel.cancelled() => return false,
        }
    }
    true
}

/// Executes the step `repeat` more times after it succeeds, each time retrying a
/// failure `retries` times: the outcome of the last execution, or `Canceled` when the
/// run is canceled while it waits to retry. Counts the executions in `report`.
async fn executions(
    shared: &Arc<Shared>,
    step: &Step,
    sink: &LogSink,
    cancel: &CancellationToken,
    produced: &mut Produced,
    report: &mut StepReport,
) -> Outcome {
    let mut outcome = Outcome::Ok;
    'repeat: for round in 0..=step.repeat {
        for attempt in 0..=step.retries {
            report.executions += 1;
            outcome = once(shared, step, sink, cancel, produced, report.executions).await;
            match &outcome {
                Outcome::Failed(why) if attempt < step.retries && retry_applies(step, why) => {
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
    outcome
}

/// The step's status and error from its outcome, said in the run's log; a failure's
/// message masked, and a failure of a step with `ignoreErrors` marked as ignored.
fn conclude(shared: &Shared, step: &Step, outcome: Outcome, report: &mut StepReport) {
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
            StepKind::Build { spec, .. } => crate::build::build(shared, step, spec, sink, produced).await,
            StepKind::Push { push } => crate::build::push_all(shared, push, sink, produced).await,
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
pub(crate) fn host_ports(ports: &[slipway_plan::PortMapping], public: bool) -> Vec<slipway_plan::PortMapping> {
    ports
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if !public && p.host_ip.is_none() {
                p.host_ip = Some("127.0.0.1".into());
                // A container port alone gets a random host port, on loopback.
                p.host_port.get_or_insert_with(String::new);
            }
            p
        })
        .collect()
}

/// What a step's container mounts: the run's workspace and home volumes, the engine's
/// socket (or the run's proxy of it) as the run may reach it, and the task's volumes,
/// read-only.
fn step_mounts(shared: &Shared, step: &Step) -> Vec<Mount> {
    let socket = || shared.cfg.docker_socket.clone();
    let mut mounts = vec![
        Mount::Volume {
            name: shared.cfg.shared_volume.clone(),
            target: "/workspace".into(),
        },
        Mount::Volume {
            name: crate::home_volume(&shared.cfg.run_id),
            target: crate::HOME_DIR.into(),
        },
    ];
    match (shared.cfg.host.engine, &shared.engine_socket) {
        (crate::EngineAccess::Full, _) => mounts.push(Mount::Host {
            source: socket().into(),
            target: socket(),
            read_only: false,
        }),
        (crate::EngineAccess::Proxy, Some(proxy)) => mounts.push(Mount::Host {
            source: proxy.clone(),
            target: socket(),
            read_only: false,
        }),
        _ => {}
    }
    for m in &step.volume_mounts {
        if let Some(dir) = shared.volume_dirs.get(&m.name) {
            mounts.push(Mount::Host {
                source: dir.clone(),
                target: m.mount_path.clone(),
                read_only: true,
            });
        }
    }
    mounts
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

/// A `cmd` step: its image pulled, its container launched with the run's mounts,
/// network and limits, its log followed, and its exit code judged. A detached step's
/// container outlives the step; the run's sweep removes it.
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
    let resolved = match crate::images::resolve(shared, image).await {
        Ok(r) => r,
        Err(e) => return Outcome::Error(e),
    };
    let image = resolved.name();
    if let Err(e) = pull_image(shared, step, image, sink).await {
        return Outcome::Error(e);
    }
    let name = container_name(&shared.cfg.run_id, &step.id);
    let spec = match container_spec(shared, step, &name, image, args) {
        Ok(spec) => spec,
        Err(e) => return Outcome::Error(e),
    };
    if let Err(e) = launch(shared, &spec, attempt_number).await {
        return Outcome::Error(e);
    }
    let logs = LogFollow::start(shared, &name, sink);
    if step.detach {
        // Runs until the run ends; the run's sweep removes it. Its log keeps streaming.
        logs.until_canceled(cancel);
        return Outcome::Ok;
    }
    let exit = engine.wait_container(&name).await;
    logs.finish(shared, &name, sink).await;
    if !step.keep {
        let _ = engine.remove_container(&name).await;
    }
    match exit {
        Err(e) => Outcome::Error(e.to_string()),
        Ok(exit) => exit_outcome(step, &exit),
    }
}

/// Makes sure the engine has the step's image, pulled again when the step asks for it
/// (`pull`), a failed download retried as often as the step allows.
async fn pull_image(shared: &Shared, step: &Step, image: &str, sink: &LogSink) -> Result<(), String> {
    // The run's own images are local; a registry's by digest cannot be fresher.
    let always = step.pull && shared.cfg.images.is_none();
    let credential = shared.credential_for(image);
    let mut pull_attempt = 0;
    loop {
        match shared.engine.ensure_image(image, always, credential.clone(), sink.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if pull_attempt < step.cmd_download_retries => {
                pull_attempt += 1;
                shared.say(&format!(
                    "Step ID: {}: {e}; download retry {pull_attempt} of {}",
                    step.id, step.cmd_download_retries
                ));
                tokio::time::sleep(Duration::from_secs(step.cmd_download_retry_delay)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The step's container as the engine gets it: in the run's sandbox when it has one
/// (which then owns the network, aliases and ports), within the operator's limits.
fn container_spec(shared: &Shared, step: &Step, name: &str, image: &str, args: &[String]) -> Result<ContainerSpec, String> {
    let mounts = step_mounts(shared, step);
    let network = match (&shared.sandbox, step.network.as_str()) {
        (Some(sandbox), _) => Some(format!("container:{sandbox}")),
        (None, "") => None,
        (None, n) => Some(shared.networks.get(n).cloned().unwrap_or_else(|| n.to_string())),
    };
    let joined = shared.sandbox.is_some();
    let sizes = step_sizes(step, shared.cfg.step_limits.as_ref())?;
    Ok(ContainerSpec {
        name: name.to_string(),
        image: image.to_string(),
        cmd: args.to_vec(),
        entrypoint: step.entry_point.clone().map(|e| vec![e]),
        env: with_home(&step.env),
        working_dir: working_dir(step),
        user: step.user.clone(),
        privileged: step.privileged,
        mounts,
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
        cap_drop: shared.cfg.cap_drop.clone(),
        memory: sizes.memory,
        pids_limit: sizes.pids,
        shm_size: sizes.shm,
        log_driver: shared.cfg.step_limits.as_ref().map(|l| {
            let options = l.engine_log_options().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            ("local".to_string(), options)
        }),
    })
}

/// Creates and starts the step's container; one that does not start is removed.
async fn launch(shared: &Shared, spec: &ContainerSpec, attempt_number: u32) -> Result<(), String> {
    let (engine, name) = (&shared.engine, &spec.name);
    // A container kept (`keep`) by an earlier execution of this step would clash by name.
    if attempt_number > 1 {
        let _ = engine.remove_container(name).await;
    }
    shared.say(&format!("Launching container with name: {name}"));
    if let Err(e) = engine.create_container(spec).await {
        return Err(e.to_string());
    }
    if let Err(e) = engine.start_container(name).await {
        let _ = engine.remove_container(name).await;
        return Err(e.to_string());
    }
    Ok(())
}

/// The container's log followed into the step's sink, and how many bytes of it were
/// sent, so that what the follow misses can be sent after.
struct LogFollow {
    task: tokio::task::JoinHandle<()>,
    emitted: Arc<std::sync::atomic::AtomicU64>,
}

impl LogFollow {
    /// Follows after start: the engine keeps all output until the container is removed,
    /// and what a follow misses at the very end is read again once the container stops.
    fn start(shared: &Shared, name: &str, sink: &LogSink) -> LogFollow {
        let emitted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = {
            let engine = shared.engine.clone();
            let name = name.to_string();
            let sink = sink.clone();
            let emitted = emitted.clone();
            tokio::spawn(async move { engine.follow_logs(&name, sink, emitted).await })
        };
        LogFollow { task, emitted }
    }

    /// A detached container's log streams until the run is canceled or ends.
    fn until_canceled(self, cancel: &CancellationToken) {
        let (watcher, logs) = (cancel.clone(), self.task);
        tokio::spawn(async move {
            watcher.cancelled().await;
            logs.abort();
        });
    }

    /// After the container stopped: the follow given a moment to drain, then the rest
    /// of the log sent from where it stopped.
    async fn finish(self, shared: &Shared, name: &str, sink: &LogSink) {
        // The log stream can outlive the container (bollard #251); give it a moment to drain,
        // then send whatever it did not (dockerd 20.10 can end a follow without the last
        // chunk of a container that exits while the follow starts).
        let mut logs = self.task;
        if tokio::time::timeout(Duration::from_millis(500), &mut logs).await.is_err() {
            logs.abort();
            let _ = logs.await;
        }
        let offset = self.emitted.load(std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = shared.engine.logs_after(name, offset, sink.clone()).await {
            tracing::debug!(container = %name, error = %e, "reading the end of the log failed");
        }
    }
}

/// Whether the container's exit code is a success: one of `exitedWith`, none of
/// `exitedWithout`, or 0; a failure says when the container ran out of memory.
fn exit_outcome(step: &Step, exit: &slipway_engine::Exit) -> Outcome {
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

/// The sizes a step container gets, in bytes (processes for `pids`).
struct Sizes {
    memory: Option<u64>,
    pids: Option<u64>,
    shm: Option<u64>,
}

/// A step container's memory, processes and `/dev/shm`: what the step asks for within
/// the daemon's limits, its defaults where it asks for none; as asked without limits.
fn step_sizes(step: &Step, limits: Option<&slipway_limits::StepLimits>) -> Result<Sizes, String> {
    let Some(l) = limits else {
        return Ok(Sizes {
            memory: step.memory,
            pids: step.pids_limit,
            shm: step.shm_size,
        });
    };
    let over = |e: String| format!("{e} (the operator's step limits)");
    Ok(Sizes {
        memory: Some(l.memory.pick("memory (-m)", step.memory).map_err(over)?),
        pids: Some(l.pids.pick("processes (--pids-limit)", step.pids_limit).map_err(over)?),
        shm: Some(l.shm.pick("a /dev/shm (--shm-size)", step.shm_size).map_err(over)?),
    })
}
