//! `slipway`: the command line. It wires the crates together and owns all printing.

mod cli;
mod pairs;
mod serve;

use cli::{client, task_cmd, webhook_cmd};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use slipway_engine::{Docker, Engine, RegistryCredential};
use slipway_taskfile::{Loaded, NetworkMode, Options, RunVars, SecretSource};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "slipway",
    version,
    about = "Run ACR-style multi-step container build tasks on your own Docker engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once per process: the size of its largest variant (serve's flags) costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run a multi-step task file against the local Docker engine.
    Exec(ExecArgs),
    /// Print the rendered, validated plan of a task file as JSON, without touching Docker.
    Plan(PlanArgs),
    /// Print a Dockerfile's image dependencies as JSON.
    Scan(ScanArgs),
    /// Run the daemon: the HTTP API, the job queue and its workers.
    Serve(serve::ServeArgs),
    /// Queue a quick build on the daemon (like `az acr build`) and stream its log.
    Build {
        #[command(flatten)]
        server: client::ServerArgs,
        #[command(flatten)]
        args: client::BuildArgs,
    },
    /// Queue a task run on the daemon (like `az acr run`) and stream its log.
    Run {
        #[command(flatten)]
        server: client::ServerArgs,
        #[command(flatten)]
        args: client::RunArgs,
    },
    /// List, show or cancel runs on the daemon.
    Runs {
        #[command(flatten)]
        server: client::ServerArgs,
        #[command(subcommand)]
        command: client::RunsCommand,
    },
    /// Create, change, run and inspect tasks and their triggers (like `az acr task`).
    Task {
        #[command(flatten)]
        server: client::ServerArgs,
        #[command(subcommand)]
        command: task_cmd::TaskCommand,
    },
    /// Create, change and inspect the webhooks Slipway notifies of pushes and runs
    /// (like `az acr webhook`).
    Webhook {
        #[command(flatten)]
        server: client::ServerArgs,
        #[command(subcommand)]
        command: webhook_cmd::WebhookCommand,
    },
    /// Print a run's log; -f follows it until the run ends.
    Logs {
        #[command(flatten)]
        server: client::ServerArgs,
        /// The run whose log to print.
        run_id: String,
        /// Keep printing the log as it grows until the run ends.
        #[arg(short = 'f', long)]
        follow: bool,
    },
}

#[derive(Args, Clone)]
struct TaskArgs {
    /// The task file.
    #[arg(short = 'f', long = "file", default_value = "acb.yaml")]
    file: PathBuf,
    /// A value for `{{.Values.NAME}}` (repeatable; wins over --values).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// A secret value for `{{.Values.NAME}}` (as `az acr run --set-secret`), `{{.Secrets.NAME}}`
    /// or a task secret's id (repeatable; never logged).
    #[arg(long = "set-secret", value_name = "NAME=VALUE")]
    set_secret: Vec<String>,
    /// A YAML file of values.
    #[arg(long)]
    values: Option<PathBuf>,
    /// The run's registry (`{{.Run.Registry}}`, `$Registry`).
    #[arg(short = 'r', long, default_value = "")]
    registry: String,
    /// The run id (default: a new one).
    #[arg(long)]
    id: Option<String>,
    /// The commit the run builds (`{{.Run.Commit}}`).
    #[arg(long, default_value = "")]
    commit: String,
    /// The branch the run builds (`{{.Run.Branch}}`).
    #[arg(long, default_value = "")]
    branch: String,
    /// The task's name (`{{.Run.TaskName}}`).
    #[arg(long = "task-name", default_value = "quickrun")]
    task_name: String,
    /// Warn about unknown keys instead of refusing them (for files written for ACR).
    #[arg(long)]
    allow_unknown_keys: bool,
    /// Allow steps with `privileged: true`.
    #[arg(long)]
    allow_privileged: bool,
    /// Map a `cmd` image alias to an image, e.g. `bash=busybox:latest` (repeatable).
    #[arg(long = "image-alias", value_name = "ALIAS=IMAGE")]
    image_alias: Vec<String>,
    /// `per-step` (default, as ACR) or `shared` (every step in one network namespace).
    #[arg(long = "network-mode")]
    network_mode: Option<NetworkMode>,
}

#[derive(Args)]
struct ExecArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Registry credentials, `REGISTRY=USER:PASSWORD` (repeatable); else ~/.docker/config.json.
    #[arg(
        long = "credential",
        value_name = "REGISTRY=USER:PASSWORD",
        env = "SLIPWAY_CREDENTIAL",
        hide_env_values = true
    )]
    credential: Vec<String>,
    /// Do not give steps the engine's socket (same as --engine-access none).
    #[arg(long)]
    no_docker_socket: bool,
    /// How steps reach the engine: `proxy` (default: your host is yours to use, but step
    /// ids are container names and what steps start is removed with the run), `full`
    /// (the engine's own socket, as acb), or `none`.
    #[arg(long = "engine-access", default_value = "proxy")]
    engine_access: slipway_runner::EngineAccess,
    /// The image that holds the network namespace in shared network mode (needs `sleep`).
    #[arg(long = "sandbox-image", default_value = "busybox:latest", env = "SLIPWAY_SANDBOX_IMAGE")]
    sandbox_image: String,
    /// The builder of `build` steps: `buildkit` (when the engine offers it) or `classic`;
    /// a step's `DOCKER_BUILDKIT=0|1` overrides it.
    #[arg(long, default_value = "buildkit", env = "SLIPWAY_BUILDER")]
    builder: slipway_engine::Builder,
    /// The build context, mounted at /workspace.
    #[arg(default_value = ".")]
    context: PathBuf,
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    task: TaskArgs,
}

#[derive(Args)]
struct ScanArgs {
    /// The Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// A build argument, for `ARG` substitution in `FROM` lines (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    build_arg: Vec<String>,
    /// The stage being built (as `docker build --target`); its origin is the runtime dependency.
    #[arg(long)]
    target: Option<String>,
    /// The platform built (`linux/arm64`): BuildKit's `TARGETARCH` and friends take its
    /// values in `FROM` lines. The machine's own platform when not given.
    #[arg(long)]
    platform: Option<String>,
    /// The image being built (repeatable).
    #[arg(short = 't', long = "tag")]
    tag: Vec<String>,
    /// The build context, where the Dockerfile is looked for.
    #[arg(default_value = ".")]
    context: PathBuf,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Exec(a) => exec(a),
        Command::Plan(a) => plan(a).map(|_| ExitCode::SUCCESS),
        Command::Scan(a) => scan(a).map(|_| ExitCode::SUCCESS),
        Command::Serve(a) => serve(a).map(|_| ExitCode::SUCCESS),
        Command::Build { server, args } => block_on(client::build(&server, args)),
        Command::Run { server, args } => block_on(client::run(&server, args)),
        Command::Runs { server, command } => block_on(client::runs(&server, command)),
        Command::Logs { server, run_id, follow } => block_on(client::logs(&server, &run_id, follow)),
        Command::Task { server, command } => block_on(task_cmd::run(&server, command)),
        Command::Webhook { server, command } => block_on(webhook_cmd::run(&server, command)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Runtime::new()?.block_on(f)
}

fn serve(a: serve::ServeArgs) -> Result<()> {
    let settings = serve::settings(a, std::env::vars())?;
    let scheme = if settings.tls_cert.is_some() { "https" } else { "http" };
    block_on(slipway_server::serve(settings, move |addr| {
        eprintln!("slipway: listening on {scheme}://{addr}")
    }))
}

/// Loads and validates the task file the way `exec` and `plan` both do.
fn load_task(a: &TaskArgs, run_id: &str) -> Result<Loaded> {
    let text = std::fs::read_to_string(&a.file).with_context(|| format!("cannot read task file {}", a.file.display()))?;
    let file = a.file.display().to_string();
    let mut run = RunVars::new(run_id, &a.registry, chrono::Utc::now());
    run.commit = a.commit.clone();
    run.branch = a.branch.clone();
    run.task_name = a.task_name.clone();
    let mut opts = Options::new(run).trusting_host();
    if let Some(path) = &a.values {
        let t = std::fs::read_to_string(path).with_context(|| format!("cannot read values file {}", path.display()))?;
        opts.values = slipway_taskfile::parse_values(&path.display().to_string(), &t)?;
    }
    slipway_taskfile::set_values(&mut opts.values, &pairs::split_all("--set", &a.set, "NAME=VALUE")?);
    opts.set_secret_values(&pairs::split_all("--set-secret", &a.set_secret, "NAME=VALUE")?);
    opts.allow_unknown_keys = a.allow_unknown_keys;
    opts.allow_privileged = a.allow_privileged;
    opts.image_aliases = pairs::split_all("--image-alias", &a.image_alias, "ALIAS=IMAGE")?
        .into_iter()
        .collect();
    opts.network_mode = a.network_mode;
    let base = a.file.parent().map(Path::to_path_buf).unwrap_or_default();
    let read = |p: &str| std::fs::read_to_string(base.join(p)).map_err(|e| e.to_string());
    let masked = |opts: &Options, e: slipway_taskfile::TaskError| {
        anyhow!(slipway_runner::Redactor::new(opts.secrets.values().cloned().collect()).mask(&e.to_string()))
    };
    let loaded = slipway_taskfile::load(&file, &text, &opts, &read).map_err(|e| masked(&opts, e))?;
    // Secrets read from the environment or a file are known only once the task is
    // parsed; render again so `{{.Secrets.x}}` sees them.
    let mut extra = BTreeMap::new();
    for s in &loaded.plan.secrets {
        match &s.source {
            SecretSource::Env(var) => {
                let v = std::env::var(var)
                    .map_err(|_| anyhow!("{file}: secret {:?} reads environment variable {var}, which is not set", s.id))?;
                extra.insert(s.id.clone(), v);
            }
            SecretSource::File(path) => {
                let v =
                    std::fs::read_to_string(base.join(path)).map_err(|e| anyhow!("{file}: secret {:?} reads file {path}: {e}", s.id))?;
                extra.insert(s.id.clone(), v.trim_end_matches('\n').to_string());
            }
            SecretSource::KeyVault(_) => bail!(
                "{file}: secret {:?} comes from Azure Key Vault, which Slipway cannot reach; give its value with --set-secret {}=…",
                s.id,
                s.id
            ),
            SecretSource::Provided => {}
        }
    }
    if extra.is_empty() {
        return Ok(loaded);
    }
    opts.secrets.extend(extra);
    slipway_taskfile::load(&file, &text, &opts, &read).map_err(|e| masked(&opts, e))
}

fn plan(a: PlanArgs) -> Result<()> {
    let run_id = a.task.id.clone().unwrap_or_else(slipway_runner::new_run_id);
    let loaded = load_task(&a.task, &run_id)?;
    // The plan is printed: every secret, whatever its source, as a mask.
    let redactor = slipway_runner::Redactor::new(loaded.secret_values.clone());
    for w in &loaded.warnings {
        eprintln!("warning: {}", redactor.mask(&w.to_string()));
    }
    println!("{}", redactor.mask(&serde_json::to_string_pretty(&loaded.plan)?));
    Ok(())
}

fn scan(a: ScanArgs) -> Result<()> {
    let file = a.file.clone().unwrap_or_else(|| a.context.join("Dockerfile"));
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read Dockerfile {}", file.display()))?;
    let opts = slipway_dockerfile::ScanOptions {
        build_args: pairs::split_all("--build-arg", &a.build_arg, "NAME=VALUE")?.into_iter().collect(),
        target: a.target.clone(),
        predefined: slipway_dockerfile::platform_args(a.platform.as_deref()),
    };
    let deps = slipway_dockerfile::scan(&text, &opts).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let images = a
        .tag
        .iter()
        .map(|t| slipway_reference::Reference::parse(t).map_err(|e| anyhow!("-t {t}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    println!("{}", serde_json::to_string_pretty(&slipway_dockerfile::report(&deps, &images))?);
    Ok(())
}

fn credentials(list: &[String]) -> Result<Vec<RegistryCredential>> {
    list.iter()
        .map(|c| {
            let (registry, c) = pairs::credential("--credential", c, "REGISTRY=USER:PASSWORD")?;
            Ok(RegistryCredential {
                registry,
                username: c.user,
                password: c.secret,
            })
        })
        .collect()
}

fn exec(a: ExecArgs) -> Result<ExitCode> {
    let run_id = a.task.id.clone().unwrap_or_else(slipway_runner::new_run_id);
    let loaded = load_task(&a.task, &run_id)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let context = a
        .context
        .canonicalize()
        .with_context(|| format!("build context {} does not exist", a.context.display()))?;
    if !context.is_dir() {
        bail!("build context {} is not a directory", context.display());
    }
    let credentials = credentials(&a.credential)?;
    let mut cfg = slipway_runner::RunConfig::new(&run_id, context);
    cfg.host.engine = if a.no_docker_socket {
        slipway_runner::EngineAccess::None
    } else {
        a.engine_access
    };
    cfg.sandbox_image = a.sandbox_image.clone();
    cfg.builder = a.builder;
    cfg.secret_values = loaded.secret_values.clone();
    cfg.credentials = credentials;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let docker = Docker::connect()?;
        docker.ping().await?;
        let engine: Arc<dyn Engine> = Arc::new(docker);
        let cancel = slipway_runner::CancellationToken::new();
        let ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("Interrupted: stopping the run and removing what it created…");
                ctrl_c.cancel();
            }
        });
        let log: slipway_engine::LogSink = Arc::new(|line: &str| println!("{line}"));
        println!("Run ID: {run_id}");
        let report = slipway_runner::run(engine, loaded.plan, cfg, log, cancel).await;
        Ok(if report.succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every argument of every subcommand, by its path (`slipway runs list --status`),
    /// that has no help line.
    fn without_help(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" || arg.get_help().is_some() || arg.get_long_help().is_some() {
                continue;
            }
            let name = match (arg.get_long(), arg.get_short()) {
                (Some(long), _) => format!("--{long}"),
                (None, Some(short)) => format!("-{short}"),
                (None, None) => format!("<{id}>"),
            };
            missing.push(format!("{path} {name}"));
        }
        for sub in cmd.get_subcommands() {
            without_help(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }

    #[test]
    fn every_argument_has_help() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        without_help(&cmd, "slipway", &mut missing);
        assert!(missing.is_empty(), "arguments without a help line:\n  {}", missing.join("\n  "));
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
