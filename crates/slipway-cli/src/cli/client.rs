//! The `az acr build` / `az acr run`-style client of `slipway serve`.

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use futures_util::StreamExt;
use serde_json::{json, Value};
use slipway_api::model::{Argument, Run, Upload};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The daemon's address.
    #[arg(long, env = "SLIPWAY_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    pub server: String,
    /// A bearer token the daemon accepts.
    #[arg(long, env = "SLIPWAY_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// The tenant an operator's token acts for (a tenant's own token acts only for its
    /// tenant) [default: the default tenant].
    #[arg(long, env = "SLIPWAY_TENANT", global = true)]
    pub tenant: Option<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Output {
    /// Columns for people.
    Table,
    /// The daemon's JSON, for scripts.
    Json,
}

#[derive(Args)]
pub struct WaitArgs {
    /// Do not stream the log; wait quietly and print the final status.
    #[arg(long)]
    pub no_logs: bool,
    /// Print the run id and return at once.
    #[arg(long)]
    pub no_wait: bool,
    /// The run's time limit in seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
}

#[derive(Args)]
pub struct BuildArgs {
    /// Image name and tag (repeatable).
    #[arg(short = 't', long = "image")]
    pub image: Vec<String>,
    /// The Dockerfile, relative to the context.
    #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
    pub file: String,
    /// `NAME=VALUE`, or `NAME` to take the value from the environment (repeatable).
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    pub build_arg: Vec<String>,
    /// Like --build-arg, but the value is secret: never logged, stored or shown.
    #[arg(long = "secret-build-arg", value_name = "NAME[=VALUE]")]
    pub secret_build_arg: Vec<String>,
    /// The Dockerfile stage to build (the last one when not given).
    #[arg(long)]
    pub target: Option<String>,
    /// The platform to build for, `os/arch[/variant]`; a comma-separated list builds
    /// each and pushes an image index under the tag (default: the engine's own).
    #[arg(long)]
    pub platform: Option<String>,
    /// A secret for `RUN --mount=type=secret,id=ID`: `id=ID[,env=NAME|,src=FILE]`, read
    /// here from your environment (NAME, or ID when neither is given) or from FILE;
    /// sent to the daemon as a secret, never stored, logged or shown (repeatable).
    #[arg(long = "secret", value_name = "id=ID[,env=NAME|,src=FILE]")]
    pub secret: Vec<String>,
    /// Build without pushing.
    #[arg(long)]
    pub no_push: bool,
    /// Build without the engine's layer cache.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// A directory, a git URL (`…/repo.git#ref:subfolder`), or /dev/null.
    pub context: String,
}

#[derive(Args)]
pub struct RunArgs {
    /// The task file, relative to the context (or a local file when the context is /dev/null).
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// A value for `{{.Values.NAME}}`, or `NAME` to take it from the environment
    /// (repeatable).
    #[arg(long = "set", value_name = "NAME[=VALUE]")]
    pub set: Vec<String>,
    /// A secret value for `{{.Values.NAME}}`, or `NAME` to take it from the environment
    /// (repeatable; never logged, stored or shown).
    #[arg(long = "set-secret", value_name = "NAME[=VALUE]")]
    pub set_secret: Vec<String>,
    /// A values file, relative to the context (or local with /dev/null).
    #[arg(long)]
    pub values: Option<String>,
    /// Run one command instead of a task file: `"IMAGE ARGS"`.
    #[arg(long)]
    pub cmd: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// A directory, a git URL (`…/repo.git#ref:subfolder`), a tar.gz URL, or /dev/null
    /// to send the task file itself.
    pub context: String,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs with this status (Queued, Started, Running, Succeeded, Failed,
        /// Canceled, Error, Timeout).
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this type (QuickBuild, QuickRun, AutoBuild, AutoRun).
        #[arg(long = "run-type")]
        run_type: Option<String>,
        /// Only runs of this task.
        #[arg(long)]
        task: Option<String>,
        /// Only runs that build this image.
        #[arg(long)]
        image: Option<String>,
        /// How many runs to list (1 to 1000).
        #[arg(long, default_value_t = 20)]
        top: u32,
        /// How to print the runs.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show one run.
    Show {
        /// The run to show.
        run_id: String,
        /// How to print the run.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Cancel a queued or running run.
    Cancel {
        /// The run to cancel.
        run_id: String,
        /// How to print the canceled run.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
}

pub struct Client {
    base: String,
    token: Option<String>,
    tenant: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(s: &ServerArgs) -> Client {
        Client {
            base: s.server.trim_end_matches('/').to_string(),
            token: s.token.clone(),
            tenant: s.tenant.clone(),
            http: reqwest::Client::new(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.tenant {
            r = r.header("X-Slipway-Tenant", t);
        }
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<Value> {
        let resp = r
            .send()
            .await
            .with_context(|| format!("cannot reach the daemon at {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("the daemon refused the request ({status}): {}", refusal(resp).await);
        }
        Ok(resp.json().await.unwrap_or(Value::Null))
    }

    /// Sends a JSON request and reads the answer as `T`.
    pub async fn call_as<T: serde::de::DeserializeOwned>(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<T> {
        let what = format!("{method} {path}");
        let answer = self.call(method, path, body).await?;
        serde_json::from_value(answer).with_context(|| format!("the daemon's answer to {what} is not one this client reads"))
    }

    /// Sends a JSON request and returns the JSON answer (an error names the daemon's message).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        self.send(r).await
    }

    pub async fn run(&self, id: &str) -> Result<Run> {
        self.call_as(reqwest::Method::GET, &format!("/v1/runs/{id}"), None).await
    }
}

/// The daemon's message in a refusal's body (`{"error": {"code", "message"}}`).
async fn refusal(resp: reqwest::Response) -> String {
    match resp.json::<slipway_api::model::ApiError>().await {
        Ok(e) => e.error.message,
        Err(_) => "no message".to_string(),
    }
}

/// `list`, arguments of `flag`, as `Argument`s: `NAME=VALUE`, or `NAME` to take the
/// value from the environment.
fn argument_list(flag: &str, list: &[String], is_secret: bool) -> Result<Vec<Argument>> {
    list.iter()
        .map(|p| {
            let (name, value) = crate::pairs::split_or_env(flag, p)?;
            Ok(Argument { name, value, is_secret })
        })
        .collect()
}

/// Packs and uploads a directory, or passes a git URL through; `None` for /dev/null.
async fn source(client: &Client, context: &str, dockerfile: &str) -> Result<Option<String>> {
    if context == "/dev/null" {
        return Ok(None);
    }
    if slipway_api::source::is_git(context) || slipway_api::source::is_tarball(context) {
        return Ok(Some(context.to_string()));
    }
    let dir = PathBuf::from(context);
    if !dir.is_dir() {
        bail!("context {context} is not a directory, a git URL, a tar.gz URL or /dev/null");
    }
    let archive = tempfile::NamedTempFile::new()?;
    eprintln!("Packing the source code into {}…", archive.path().display());
    {
        let dir = dir.clone();
        let dockerfile = dockerfile.to_string();
        let file = archive.reopen()?;
        tokio::task::spawn_blocking(move || slipway_sources::uploads::pack(&dir, &dockerfile, std::io::BufWriter::new(file))).await??;
    }
    let size = archive.as_file().metadata()?.len();
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template("Uploading {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let file = tokio::fs::File::open(archive.path()).await?;
    let progress = bar.clone();
    let stream = tokio_util::io::ReaderStream::new(file).inspect(move |c| {
        if let Ok(c) = c {
            progress.inc(c.len() as u64);
        }
    });
    let body = client
        .send(
            client
                .req(reqwest::Method::POST, "/v1/uploads")
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await?;
    bar.finish_and_clear();
    let upload: Upload = serde_json::from_value(body)?;
    eprintln!("Sending context ({} bytes) to the daemon: done.", upload.size);
    Ok(Some(upload.source_location))
}

pub async fn build(s: &ServerArgs, a: BuildArgs) -> Result<ExitCode> {
    let client = Client::new(s);
    let source = source(&client, &a.context, &a.file).await?;
    let mut arguments = argument_list("--build-arg", &a.build_arg, false)?;
    arguments.extend(argument_list("--secret-build-arg", &a.secret_build_arg, true)?);
    let secrets = a.secret.iter().map(|s| build_secret(s)).collect::<Result<Vec<_>>>()?;
    let body = json!({
        "type": "DockerBuildRequest",
        "buildSecrets": secrets,
        "imageNames": a.image,
        "isPushEnabled": !a.no_push,
        "noCache": a.no_cache,
        "dockerFilePath": a.file,
        "target": a.target,
        "arguments": arguments,
        "platform": a.platform,
        "timeout": a.wait.timeout,
        "sourceLocation": source,
    });
    submit(&client, body, &a.wait).await
}

/// `--secret id=ID[,env=NAME|,src=FILE]` with its value read here, as `docker build`
/// reads it on the client. Errors name the id and where it was looked for, not the value.
fn build_secret(spec: &str) -> Result<serde_json::Value> {
    use slipway_plan::build_secret::{SecretSource, SecretSpec};
    let SecretSpec { id, source } = SecretSpec::parse(spec).map_err(|e| anyhow!(e))?;
    let value = match source {
        SecretSource::File(file) => std::fs::read_to_string(&file).with_context(|| format!("--secret id={id}: cannot read {file}"))?,
        SecretSource::Env(name) => {
            std::env::var(&name).map_err(|_| anyhow!("--secret id={id}: the environment variable {name} is not set"))?
        }
    };
    Ok(json!({"name": id, "value": value, "isSecret": true}))
}

pub async fn run(s: &ServerArgs, a: RunArgs) -> Result<ExitCode> {
    let client = Client::new(s);
    let mut values = argument_list("--set", &a.set, false)?;
    values.extend(argument_list("--set-secret", &a.set_secret, true)?);
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let local = a.context == "/dev/null";
    let body = match (&a.cmd, &a.file) {
        (Some(_), Some(_)) => bail!("give either --cmd or -f, not both"),
        (Some(cmd), None) => {
            let task = format!("steps:\n  - cmd: {}\n", serde_json::to_string(cmd)?);
            let source = source(&client, &a.context, "Dockerfile").await?;
            json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(&task), "values": values, "timeout": a.wait.timeout, "sourceLocation": source})
        }
        (None, None) => bail!("give a task file with -f or a command with --cmd"),
        (None, Some(file)) if local => {
            let task = std::fs::read_to_string(file).with_context(|| format!("cannot read task file {file}"))?;
            let vals = a
                .values
                .as_deref()
                .map(std::fs::read_to_string)
                .transpose()
                .context("cannot read the values file")?;
            json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(&task), "encodedValuesContent": vals.as_deref().map(b64), "values": values, "timeout": a.wait.timeout})
        }
        (None, Some(file)) => {
            if Path::new(&a.context).is_dir() && !Path::new(&a.context).join(file).is_file() {
                bail!(
                    "task file {file} is not in the context {}; -f is relative to the context",
                    a.context
                );
            }
            let source = source(&client, &a.context, "Dockerfile").await?;
            json!({"type": "FileTaskRunRequest", "taskFilePath": file, "valuesFilePath": a.values, "values": values, "timeout": a.wait.timeout, "sourceLocation": source})
        }
    };
    submit(&client, body, &a.wait).await
}

async fn submit(client: &Client, body: Value, wait: &WaitArgs) -> Result<ExitCode> {
    let created = client.send(client.req(reqwest::Method::POST, "/v1/runs").json(&body)).await?;
    let run: Run = serde_json::from_value(created)?;
    println!("Queued a run with ID: {}", run.run_id);
    if wait.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    if wait.no_logs {
        eprintln!("Waiting for the run to finish…");
    } else {
        eprintln!("Waiting for an agent…");
        stream_log(client, &run.run_id, true).await?;
    }
    let end = wait_finished(client, &run.run_id).await?;
    println!(
        "Run ID: {} finished with status {}{}",
        end.run_id,
        end.status,
        end.run_error_message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
    );
    Ok(if end.status == slipway_api::RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn wait_finished(client: &Client, id: &str) -> Result<Run> {
    loop {
        let r = client.run(id).await?;
        if r.status.is_finished() {
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Streams a run's log to stdout; reconnects from the last byte received if the
/// connection drops, so nothing is lost or repeated.
pub async fn stream_log(client: &Client, id: &str, follow: bool) -> Result<()> {
    let mut offset = 0u64;
    let mut failures = 0;
    loop {
        let path = format!("/v1/runs/{id}/log?follow={follow}&offset={offset}");
        let resp = match client.req(reqwest::Method::GET, &path).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let status = r.status();
                bail!("cannot read the log ({status}): {}", refusal(r).await);
            }
            Err(e) => {
                failures += 1;
                if failures > 20 {
                    return Err(anyhow!(e).context("the log stream kept failing"));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut body = resp.bytes_stream();
        let mut broken = false;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => {
                    offset += bytes.len() as u64;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&bytes)?;
                    out.flush()?;
                }
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if !broken {
            return Ok(());
        }
        failures += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn duration(r: &Run) -> String {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (r.start_time.as_deref().and_then(parse), r.finish_time.as_deref().and_then(parse)) {
        (Some(s), Some(f)) => format!("{:.1}s", (f - s).num_milliseconds() as f64 / 1000.0),
        _ => String::new(),
    }
}

pub fn print_runs(runs: &[Run], output: Output) -> Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(runs)?);
        return Ok(());
    }
    println!(
        "{:<12} {:<10} {:<12} {:<11} {:<13} {:<26} {:>9}",
        "RUN ID", "TASK", "PLATFORM", "STATUS", "TRIGGER", "STARTED", "DURATION"
    );
    println!("{:-<12} {:-<10} {:-<12} {:-<11} {:-<13} {:-<26} {:->9}", "", "", "", "", "", "", "");
    for r in runs {
        let trigger = if r.source_trigger.is_some() {
            "Commit"
        } else if r.image_update_trigger.is_some() {
            "Image Update"
        } else if r.timer_trigger.is_some() {
            "Timer"
        } else {
            "Manual"
        };
        println!(
            "{:<12} {:<10} {:<12} {:<11} {:<13} {:<26} {:>9}",
            r.run_id,
            r.task.as_deref().unwrap_or(""),
            r.platform.as_string(),
            r.status,
            trigger,
            r.start_time.as_deref().unwrap_or(""),
            duration(r)
        );
    }
    Ok(())
}

fn print_run(r: &Run, output: Output) -> Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    print_runs(std::slice::from_ref(r), Output::Table)?;
    if let Some(e) = &r.run_error_message {
        println!("\nError: {e}");
    }
    if !r.output_images.is_empty() {
        println!("\nOutput images:");
        for i in &r.output_images {
            let platform = i.platform.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
            println!("  {}/{}:{} {}{platform}", i.registry, i.repository, i.tag, i.digest);
        }
    }
    Ok(())
}

pub async fn runs(s: &ServerArgs, cmd: RunsCommand) -> Result<ExitCode> {
    let client = Client::new(s);
    match cmd {
        RunsCommand::List {
            status,
            run_type,
            task,
            image,
            top,
            output,
        } => {
            let mut q = vec![("top".to_string(), top.to_string())];
            for (k, v) in [("status", status), ("runType", run_type), ("task", task), ("image", image)] {
                if let Some(v) = v {
                    q.push((k.to_string(), v));
                }
            }
            let body = client.send(client.req(reqwest::Method::GET, "/v1/runs").query(&q)).await?;
            let runs: slipway_api::model::Page<Run> = serde_json::from_value(body).context("the daemon's list of runs")?;
            print_runs(&runs.value, output)?;
        }
        RunsCommand::Show { run_id, output } => print_run(&client.run(&run_id).await?, output)?,
        RunsCommand::Cancel { run_id, output } => {
            let body = client
                .send(client.req(reqwest::Method::POST, &format!("/v1/runs/{run_id}/cancel")))
                .await?;
            print_run(&serde_json::from_value(body)?, output)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn logs(s: &ServerArgs, run_id: &str, follow: bool) -> Result<ExitCode> {
    let client = Client::new(s);
    client.run(run_id).await?;
    stream_log(&client, run_id, follow).await?;
    Ok(ExitCode::SUCCESS)
}
