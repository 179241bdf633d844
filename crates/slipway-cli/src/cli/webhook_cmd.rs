//! `slipway webhook …`: the webhooks Slipway notifies, shaped like `az acr webhook`.

use super::client::{Client, Output, ServerArgs};
use crate::pairs;
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use slipway_api::model::Page;
use slipway_api::webhook::{DeliveryView, WebhookView};
use std::process::ExitCode;

#[derive(Args, Clone, Default)]
pub struct WebhookFields {
    /// Where events are POSTed (http:// or https://).
    #[arg(long)]
    pub uri: Option<String>,
    /// What to send: push, run_queued, run_started, run_finished (repeatable or
    /// space-separated; default push).
    #[arg(long, num_args = 1.., value_parser = ["push", "run_queued", "run_started", "run_finished"])]
    pub actions: Vec<String>,
    /// Which pushes: `repo:tag`, `repo:*`, `repo` (= `repo:latest`); all when not given.
    #[arg(long)]
    pub scope: Option<String>,
    /// `enabled` or `disabled`.
    #[arg(long, value_parser = ["enabled", "disabled"])]
    pub status: Option<String>,
    /// A header sent with every delivery, `NAME=VALUE` (repeatable; replaces the
    /// webhook's headers; values never shown).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// The key of the X-Slipway-Signature-256 header, an HMAC-SHA256 of the body
    /// (never shown; "" removes it). From the environment, it stays out of `ps`.
    #[arg(long, env = "SLIPWAY_WEBHOOK_SECRET", hide_env_values = true, allow_hyphen_values = true)]
    pub secret: Option<String>,
}

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Create a webhook.
    Create {
        /// The webhook's name (5 to 50 letters or digits).
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        fields: WebhookFields,
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Change a webhook; only the fields given change.
    Update {
        /// The webhook's name.
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        fields: WebhookFields,
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Delete a webhook and its delivery history.
    Delete {
        /// The webhook's name.
        #[arg(short = 'n', long)]
        name: String,
    },
    /// List the webhooks.
    List {
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show a webhook.
    Show {
        /// The webhook's name.
        #[arg(short = 'n', long)]
        name: String,
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Send a test event and show how the receiver answered.
    Ping {
        /// The webhook's name.
        #[arg(short = 'n', long)]
        name: String,
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// List a webhook's recent deliveries, each attempt with its status and latency.
    ListEvents {
        /// The webhook's name.
        #[arg(short = 'n', long)]
        name: String,
        /// How many, newest first.
        #[arg(long, default_value_t = 20)]
        top: u32,
        /// How to print the result.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
}

fn body(f: &WebhookFields) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    if let Some(v) = &f.uri {
        m.insert("uri".into(), json!(v));
    }
    if !f.actions.is_empty() {
        m.insert("actions".into(), json!(f.actions));
    }
    if let Some(v) = &f.scope {
        m.insert("scope".into(), json!(v));
    }
    if let Some(v) = &f.status {
        m.insert("status".into(), json!(v));
    }
    if !f.headers.is_empty() {
        let headers: Map<String, Value> = pairs::split_all("--header", &f.headers, "NAME=VALUE")?
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        m.insert("customHeaders".into(), Value::Object(headers));
    }
    if let Some(v) = &f.secret {
        m.insert("secret".into(), json!(v));
    }
    Ok(m)
}

pub async fn run(s: &ServerArgs, cmd: WebhookCommand) -> Result<ExitCode> {
    let c = Client::new(s);
    let path = |name: &str| format!("/v1/outgoing-webhooks/{name}");
    match cmd {
        WebhookCommand::Create { name, fields, output } => {
            let w: WebhookView = c
                .call_as(reqwest::Method::PUT, &path(&name), Some(Value::Object(body(&fields)?)))
                .await?;
            print_webhook(&w, output)?;
        }
        WebhookCommand::Update { name, fields, output } => {
            let w: WebhookView = c
                .call_as(reqwest::Method::PATCH, &path(&name), Some(Value::Object(body(&fields)?)))
                .await?;
            print_webhook(&w, output)?;
        }
        WebhookCommand::Delete { name } => {
            c.call(reqwest::Method::DELETE, &path(&name), None).await?;
            println!("Deleted webhook {name}");
        }
        WebhookCommand::List { output } => {
            let hooks: Page<WebhookView> = c.call_as(reqwest::Method::GET, "/v1/outgoing-webhooks", None).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&hooks.value)?),
                Output::Table => print_webhooks(&hooks.value),
            }
        }
        WebhookCommand::Show { name, output } => {
            let w: WebhookView = c.call_as(reqwest::Method::GET, &path(&name), None).await?;
            print_webhook(&w, output)?;
            if output == Output::Table {
                let headers = &w.custom_header_names;
                println!("\nURI:     {}", w.spec.uri);
                println!("Headers: {}", if headers.is_empty() { "-".to_string() } else { headers.join(", ") });
                println!("Signed:  {}", yes_no(w.signed));
            }
        }
        WebhookCommand::Ping { name, output } => {
            let d: DeliveryView = c.call_as(reqwest::Method::POST, &format!("{}/ping", path(&name)), None).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&d)?),
                Output::Table => print_deliveries(std::slice::from_ref(&d)),
            }
            return Ok(if d.status == "Delivered" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        WebhookCommand::ListEvents { name, top, output } => {
            let list: Page<DeliveryView> = c
                .call_as(reqwest::Method::GET, &format!("{}/events?top={top}", path(&name)), None)
                .await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&list.value)?),
                Output::Table => print_deliveries(&list.value),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// One webhook: the object for scripts, a one-row table for people.
fn print_webhook(w: &WebhookView, output: Output) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(w)?),
        Output::Table => print_webhooks(std::slice::from_ref(w)),
    }
    Ok(())
}

fn print_webhooks(hooks: &[WebhookView]) {
    println!("{:<24} {:<9} {:<40} {:<16} {:<6}", "NAME", "STATUS", "ACTIONS", "SCOPE", "SIGNED");
    println!("{:-<24} {:-<9} {:-<40} {:-<16} {:-<6}", "", "", "", "", "");
    for w in hooks {
        let spec = &w.spec;
        println!(
            "{:<24} {:<9} {:<40} {:<16} {:<6}",
            spec.name,
            spec.status,
            spec.actions.join(","),
            Some(spec.scope.as_str()).filter(|s| !s.is_empty()).unwrap_or("(all)"),
            yes_no(w.signed),
        );
    }
}

fn print_deliveries(list: &[DeliveryView]) {
    println!(
        "{:<36} {:<13} {:<10} {:<8} {:<16} {:<9} LAST ERROR / NEXT ATTEMPT",
        "EVENT ID", "ACTION", "STATUS", "ATTEMPTS", "HTTP (EACH)", "LATENCY"
    );
    println!("{:-<36} {:-<13} {:-<10} {:-<8} {:-<16} {:-<9} {:-<30}", "", "", "", "", "", "", "");
    for d in list {
        let last = d.attempts.last();
        let note = match (last.and_then(|a| a.error.as_deref()), d.next_attempt_time.as_deref()) {
            (Some(e), Some(next)) => format!("{e}; next {next}"),
            (Some(e), None) => e.to_string(),
            (None, Some(next)) => format!("next {next}"),
            (None, None) => String::new(),
        };
        // Every attempt's answer, in order (`-` where there was none).
        let codes: Vec<String> = d
            .attempts
            .iter()
            .map(|a| a.status_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()))
            .collect();
        println!(
            "{:<36} {:<13} {:<10} {:<8} {:<16} {:<9} {}",
            d.id,
            d.action,
            d.status,
            d.attempts.len(),
            if codes.is_empty() { "-".to_string() } else { codes.join(" ") },
            last.map(|a| format!("{} ms", a.latency_ms)).unwrap_or_else(|| "-".into()),
            note
        );
    }
}
