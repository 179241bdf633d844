//! `slipway task …`: tasks and their triggers, shaped like `az acr task`.

use super::client::{stream_log, Client, Output, ServerArgs};
use crate::pairs;
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use slipway_api::model::{Page, Run};
use slipway_api::task::{TaskView, Timer};
use std::process::ExitCode;

#[derive(Args, Clone, Default)]
pub struct TaskFields {
    /// A git URL (`…/repo.git#branch:subfolder`) or a tar.gz URL.
    #[arg(short = 'c', long = "context")]
    pub context: Option<String>,
    /// A Dockerfile, or a task file when it ends in .yaml/.yml.
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Run one command (`IMAGE ARGS`) instead of a file.
    #[arg(long)]
    pub cmd: Option<String>,
    /// Image to build and push (repeatable).
    #[arg(short = 't', long = "image")]
    pub image: Vec<String>,
    /// Build without pushing.
    #[arg(long = "no-push")]
    pub no_push: bool,
    /// A build argument (repeatable).
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    pub arg: Vec<String>,
    /// A secret build argument (repeatable; never logged, stored in the database or shown).
    #[arg(long = "secret-arg", value_name = "NAME=VALUE")]
    pub secret_arg: Vec<String>,
    /// A value for `{{.Values.NAME}}` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// A secret value for `{{.Values.NAME}}` (repeatable; never logged, stored in the
    /// database or shown).
    #[arg(long = "set-secret", value_name = "NAME=VALUE")]
    pub set_secret: Vec<String>,
    /// The Dockerfile stage to build (the last one when not given).
    #[arg(long)]
    pub target: Option<String>,
    /// A run's time limit in seconds (default 3600).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// The platform recorded for runs, `OS/ARCH` (default linux/amd64).
    #[arg(long)]
    pub platform: Option<String>,
    /// Whether pushes to the context's git repository start the task (true or false).
    #[arg(long = "commit-trigger-enabled")]
    pub commit_trigger_enabled: Option<bool>,
    /// Branch whose pushes start the task (repeatable; default: the context's branch).
    #[arg(long = "branch")]
    pub branch: Vec<String>,
    /// Whether an update of a base image of the task's Dockerfile starts it (true or false).
    #[arg(long = "base-image-trigger-enabled")]
    pub base_image_trigger_enabled: Option<bool>,
    /// Which base images trigger: `Runtime` (the final stage's) or `All` (build stages' too).
    #[arg(long = "base-image-trigger-type", value_parser = ["Runtime", "All"])]
    pub base_image_trigger_type: Option<String>,
    /// A timer, `NAME:CRON` (5 fields, UTC; repeatable; replaces the task's timers).
    #[arg(long = "schedule", value_name = "NAME:CRON")]
    pub schedule: Vec<String>,
    /// The secret push webhook deliveries are signed with (never shown).
    #[arg(long = "webhook-secret", allow_hyphen_values = true)]
    pub webhook_secret: Option<String>,
    /// Credentials for a registry the task pulls from or pushes to (repeatable; never shown).
    #[arg(long = "registry-credential", value_name = "REGISTRY=USER:PASSWORD")]
    pub registry_credential: Vec<String>,
    /// Credentials for the task's git context on HOST, with its port if any (repeatable;
    /// never shown).
    #[arg(long = "git-credential", value_name = "HOST=USER:TOKEN")]
    pub git_credential: Vec<String>,
    /// `Disabled` stops the task's triggers; it can still be run by hand.
    #[arg(long, value_parser = ["Enabled", "Disabled"])]
    pub status: Option<String>,
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Create a task.
    Create {
        /// The task's name.
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        fields: TaskFields,
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Change a task; only the fields given change.
    Update {
        /// The task's name.
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        fields: TaskFields,
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show a task, its base-image dependencies and its timers.
    Show {
        /// The task's name.
        #[arg(short = 'n', long)]
        name: String,
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// List the tasks.
    List {
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Delete a task.
    Delete {
        /// The task's name.
        #[arg(short = 'n', long)]
        name: String,
    },
    /// Run a task now and stream its log.
    Run {
        /// The task's name.
        #[arg(short = 'n', long)]
        name: String,
        /// A value for `{{.Values.NAME}}` for this run (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// A secret value for this run (repeatable; never logged, stored or shown).
        #[arg(long = "set-secret", value_name = "NAME=VALUE")]
        set_secret: Vec<String>,
        /// A build argument for this run (repeatable).
        #[arg(long = "arg", value_name = "NAME=VALUE")]
        arg: Vec<String>,
        /// A secret build argument for this run (repeatable; never logged, stored or shown).
        #[arg(long = "secret-arg", value_name = "NAME=VALUE")]
        secret_arg: Vec<String>,
        /// The Dockerfile stage to build, instead of the task's.
        #[arg(long)]
        target: Option<String>,
        /// The Dockerfile or task file to use, instead of the task's.
        #[arg(short = 'f', long = "file")]
        file: Option<String>,
        /// The git or tar.gz URL to build from, instead of the task's context.
        #[arg(short = 'c', long = "context")]
        context: Option<String>,
        /// Do not stream the log; wait quietly and print the final status.
        #[arg(long)]
        no_logs: bool,
        /// Print the run id and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// The log of a task's latest run (or of --run-id).
    Logs {
        /// The task's name.
        #[arg(short = 'n', long)]
        name: String,
        /// The run whose log to print (default: the task's latest run).
        #[arg(long = "run-id")]
        run_id: Option<String>,
    },
    /// A task's runs, newest first.
    ListRuns {
        /// The task's name.
        #[arg(short = 'n', long)]
        name: String,
        /// How many runs to list (1 to 1000).
        #[arg(long, default_value_t = 20)]
        top: u32,
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// A task's timers.
    Timer {
        #[command(subcommand)]
        command: TimerCommand,
    },
}

#[derive(Subcommand)]
pub enum TimerCommand {
    /// Add a timer to a task.
    Add {
        /// The task's name.
        #[arg(short = 'n', long)]
        name: String,
        /// The timer's name, unique within the task.
        #[arg(long = "timer-name")]
        timer_name: String,
        /// When the timer fires: a 5-field cron expression, in UTC.
        #[arg(long)]
        schedule: String,
        /// Whether the timer fires (true or false; default true).
        #[arg(long)]
        enabled: Option<bool>,
    },
    /// Change a timer's schedule or whether it fires.
    Update {
        /// The task's name.
        #[arg(short = 'n', long)]
        name: String,
        /// The timer to change.
        #[arg(long = "timer-name")]
        timer_name: String,
        /// A new schedule: a 5-field cron expression, in UTC.
        #[arg(long)]
        schedule: Option<String>,
        /// Whether the timer fires (true or false).
        #[arg(long)]
        enabled: Option<bool>,
    },
    /// Remove a timer from a task.
    Remove {
        /// The task's name.
        #[arg(short = 'n', long)]
        name: String,
        /// The timer to remove.
        #[arg(long = "timer-name")]
        timer_name: String,
    },
    /// List a task's timers.
    List {
        /// The task's name.
        #[arg(short = 'n', long)]
        name: String,
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
}

/// Arguments or values as the API takes them.
fn kv(list: &[String], flag: &str, secret: bool) -> Result<Vec<Value>> {
    Ok(pairs::split_all(flag, list, "NAME=VALUE")?
        .into_iter()
        .map(|(k, v)| json!({"name": k, "value": v, "isSecret": secret}))
        .collect())
}

/// Credentials as the API takes them: host → `user:secret`.
fn map(list: &[String], flag: &str, shape: &str) -> Result<Map<String, Value>> {
    Ok(pairs::split_all(flag, list, shape)?
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect())
}

/// The JSON fields the flags set (only those given, so it serves create and update).
fn body(f: &TaskFields) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    if let Some(c) = &f.context {
        put("contextPath", json!(c));
    }
    if let Some(x) = &f.file {
        put("file", json!(x));
    }
    if let Some(x) = &f.cmd {
        put("cmd", json!(x));
    }
    if !f.image.is_empty() {
        put("imageNames", json!(f.image));
    }
    if f.no_push {
        put("isPushEnabled", json!(false));
    }
    let mut args = kv(&f.arg, "--arg", false)?;
    args.extend(kv(&f.secret_arg, "--secret-arg", true)?);
    if !args.is_empty() {
        put("arguments", Value::Array(args));
    }
    let mut values = kv(&f.set, "--set", false)?;
    values.extend(kv(&f.set_secret, "--set-secret", true)?);
    if !values.is_empty() {
        put("values", Value::Array(values));
    }
    if let Some(x) = &f.target {
        put("target", json!(x));
    }
    if let Some(x) = f.timeout {
        put("timeout", json!(x));
    }
    if let Some(x) = &f.platform {
        put("platform", json!(x));
    }
    trigger_fields(f, &mut put)?;
    if let Some(x) = &f.webhook_secret {
        put("webhookSecret", json!(x));
    }
    if !f.registry_credential.is_empty() {
        put(
            "registryCredentials",
            Value::Object(map(&f.registry_credential, "--registry-credential", "REGISTRY=USER:PASSWORD")?),
        );
    }
    if !f.git_credential.is_empty() {
        put(
            "gitCredentials",
            Value::Object(map(&f.git_credential, "--git-credential", "HOST=USER:TOKEN")?),
        );
    }
    if let Some(x) = &f.status {
        put("status", json!(x));
    }
    Ok(m)
}

/// The fields of its triggers the flags set: the commit and base-image triggers and
/// the timers.
fn trigger_fields(f: &TaskFields, put: &mut impl FnMut(&str, Value)) -> Result<()> {
    if f.commit_trigger_enabled.is_some() || !f.branch.is_empty() {
        let mut st = Map::new();
        if let Some(e) = f.commit_trigger_enabled {
            st.insert("enabled".into(), json!(e));
        }
        if !f.branch.is_empty() {
            st.insert("branches".into(), json!(f.branch));
        }
        put("sourceTrigger", Value::Object(st));
    }
    if f.base_image_trigger_enabled.is_some() || f.base_image_trigger_type.is_some() {
        let mut bt = Map::new();
        if let Some(e) = f.base_image_trigger_enabled {
            bt.insert("enabled".into(), json!(e));
        }
        if let Some(t) = &f.base_image_trigger_type {
            bt.insert("type".into(), json!(t));
        }
        put("baseImageTrigger", Value::Object(bt));
    }
    if !f.schedule.is_empty() {
        let timers = pairs::split_all("--schedule", &f.schedule, "NAME:CRON")?
            .into_iter()
            .map(|(name, cron)| json!({"name": name, "schedule": cron}))
            .collect();
        put("timers", Value::Array(timers));
    }
    Ok(())
}

fn print_tasks(tasks: &[TaskView], output: Output) -> Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(tasks)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<9} {:<8} {:<8} {:<6} {:<40}",
        "NAME", "STATUS", "COMMIT", "BASE", "TIMERS", "CONTEXT"
    );
    println!("{:-<24} {:-<9} {:-<8} {:-<8} {:-<6} {:-<40}", "", "", "", "", "", "");
    for t in tasks {
        let t = &t.spec;
        println!(
            "{:<24} {:<9} {:<8} {:<8} {:<6} {:<40}",
            t.name,
            t.status.as_str(),
            on(t.source_trigger.enabled),
            on(t.base_image_trigger.enabled),
            t.timers.len(),
            t.context_path.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

fn on(enabled: bool) -> &'static str {
    if enabled {
        "Enabled"
    } else {
        "Disabled"
    }
}

fn print_task(t: &TaskView, output: Output) -> Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(t)?);
        return Ok(());
    }
    print_tasks(std::slice::from_ref(t), Output::Table)?;
    if !t.dependencies.is_empty() {
        println!("\nBase image dependencies:");
        for d in &t.dependencies {
            println!(
                "  {:<9} {} {} (last seen {})",
                d.kind.as_str(),
                d.image,
                d.digest,
                d.last_seen_digest.as_deref().unwrap_or("-")
            );
        }
    }
    if !t.spec.timers.is_empty() {
        println!("\nTimers:");
        print_timers(&t.spec.timers, "  ");
    }
    Ok(())
}

fn print_timers(timers: &[Timer], indent: &str) {
    for t in timers {
        println!("{indent}{:<16} {:<20} {}", t.name, t.schedule, on(t.enabled));
    }
}

pub async fn run(s: &ServerArgs, cmd: TaskCommand) -> Result<ExitCode> {
    let c = Client::new(s);
    match cmd {
        TaskCommand::Create { name, fields, output } => {
            let t = c
                .call_as(
                    reqwest::Method::PUT,
                    &format!("/v1/tasks/{name}"),
                    Some(Value::Object(body(&fields)?)),
                )
                .await?;
            print_task(&t, output)?;
        }
        TaskCommand::Update { name, fields, output } => {
            let t = c
                .call_as(
                    reqwest::Method::PATCH,
                    &format!("/v1/tasks/{name}"),
                    Some(Value::Object(body(&fields)?)),
                )
                .await?;
            print_task(&t, output)?;
        }
        TaskCommand::Show { name, output } => {
            print_task(&c.call_as(reqwest::Method::GET, &format!("/v1/tasks/{name}"), None).await?, output)?
        }
        TaskCommand::List { output } => {
            let tasks: Page<TaskView> = c.call_as(reqwest::Method::GET, "/v1/tasks", None).await?;
            print_tasks(&tasks.value, output)?;
        }
        TaskCommand::Delete { name } => {
            c.call(reqwest::Method::DELETE, &format!("/v1/tasks/{name}"), None).await?;
            println!("Deleted task {name}");
        }
        TaskCommand::Run {
            name,
            set,
            set_secret,
            arg,
            secret_arg,
            target,
            file,
            context,
            no_logs,
            no_wait,
        } => {
            let mut values = kv(&set, "--set", false)?;
            values.extend(kv(&set_secret, "--set-secret", true)?);
            let mut arguments = kv(&arg, "--arg", false)?;
            arguments.extend(kv(&secret_arg, "--secret-arg", true)?);
            let overrides = json!({"values": values, "arguments": arguments, "target": target, "file": file, "contextPath": context});
            return run_task(&c, &name, overrides, no_logs, no_wait).await;
        }
        TaskCommand::Logs { name, run_id } => {
            let id = match run_id {
                Some(id) => id,
                None => {
                    let runs: Page<Run> = c
                        .call_as(reqwest::Method::GET, &format!("/v1/tasks/{name}/runs?top=1"), None)
                        .await?;
                    runs.value
                        .into_iter()
                        .next()
                        .map(|r| r.run_id)
                        .ok_or_else(|| anyhow!("task {name} has no runs"))?
                }
            };
            stream_log(&c, &id, true).await?;
        }
        TaskCommand::ListRuns { name, top, output } => {
            let runs: Page<Run> = c
                .call_as(reqwest::Method::GET, &format!("/v1/tasks/{name}/runs?top={top}"), None)
                .await?;
            super::client::print_runs(&runs.value, output)?;
        }
        TaskCommand::Timer { command } => return timer(&c, command).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Queues a run of task `name` with `overrides`, and unless told not to, follows its
/// log and waits for it: the exit code is its outcome.
async fn run_task(c: &Client, name: &str, overrides: Value, no_logs: bool, no_wait: bool) -> Result<ExitCode> {
    let run: Run = c
        .call_as(reqwest::Method::POST, &format!("/v1/tasks/{name}/runs"), Some(overrides))
        .await?;
    let id = run.run_id;
    println!("Queued a run with ID: {id}");
    if no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    if !no_logs {
        stream_log(c, &id, true).await?;
    }
    let end = super::client::wait_finished(c, &id).await?;
    println!("Run ID: {id} finished with status {}", end.status);
    Ok(if end.status == slipway_api::RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn timer(c: &Client, cmd: TimerCommand) -> Result<ExitCode> {
    let name = match &cmd {
        TimerCommand::Add { name, .. }
        | TimerCommand::Update { name, .. }
        | TimerCommand::Remove { name, .. }
        | TimerCommand::List { name, .. } => name.clone(),
    };
    let task: TaskView = c.call_as(reqwest::Method::GET, &format!("/v1/tasks/{name}"), None).await?;
    let mut timers = task.spec.timers;
    let position = |timers: &[Timer], t: &str| timers.iter().position(|x| x.name == t);
    match cmd {
        TimerCommand::List { output, .. } => {
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&timers)?);
            } else {
                println!("{:<16} {:<20} STATUS", "NAME", "SCHEDULE");
                print_timers(&timers, "");
            }
            return Ok(ExitCode::SUCCESS);
        }
        TimerCommand::Add {
            timer_name,
            schedule,
            enabled,
            ..
        } => {
            if position(&timers, &timer_name).is_some() {
                bail!("task {name} already has a timer named {timer_name}");
            }
            timers.push(Timer {
                name: timer_name,
                schedule,
                enabled: enabled.unwrap_or(true),
            });
        }
        TimerCommand::Update {
            timer_name,
            schedule,
            enabled,
            ..
        } => {
            let i = position(&timers, &timer_name).ok_or_else(|| anyhow!("task {name} has no timer named {timer_name}"))?;
            if let Some(s) = schedule {
                timers[i].schedule = s;
            }
            if let Some(e) = enabled {
                timers[i].enabled = e;
            }
        }
        TimerCommand::Remove { timer_name, .. } => {
            let i = position(&timers, &timer_name).ok_or_else(|| anyhow!("task {name} has no timer named {timer_name}"))?;
            timers.remove(i);
        }
    }
    let t = c
        .call_as(
            reqwest::Method::PATCH,
            &format!("/v1/tasks/{name}"),
            Some(json!({ "timers": timers })),
        )
        .await?;
    print_task(&t, Output::Table)?;
    Ok(ExitCode::SUCCESS)
}
