//! `slipway serve`'s flags: one for every setting (`slipway_server::Settings`), applied
//! over the config file and the `SLIPWAY_*` variables. Each field is named as its
//! setting's key, so a test can check that no setting lacks a flag.

use crate::pairs;
use anyhow::Result;
use clap::builder::BoolishValueParser;
use clap::Args;
use slipway_server::Settings;
use std::path::PathBuf;

#[derive(Args)]
#[command(after_help = "Every flag but --config is also a key of the config file (--data-dir: data_dir, \
--token: tokens) and a SLIPWAY_<KEY> environment variable: SLIPWAY_CONCURRENCY=4, lists as SLIPWAY_TOKENS=a,b, \
maps as SLIPWAY_IMAGE_ALIASES=bash=busybox:latest,az=IMAGE. Flags win over the environment, which wins over \
the file: a list given replaces the list, a map entry replaces the entry of the same key.")]
pub struct ServeArgs {
    /// A TOML config file whose keys are the settings (an unknown key is refused).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Where uploads, contexts, logs and per-run secret files live [default: ./slipway-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The queue's database: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`
    /// [default: sqlite://./slipway.db].
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Runs this daemon executes at once; 0 serves the API and fires triggers but runs
    /// nothing [default: 2].
    #[arg(long, value_name = "N")]
    concurrency: Option<u32>,
    /// A bearer token clients must present (repeatable). Without any the daemon listens
    /// on loopback only and asks for none.
    #[arg(long = "token", value_name = "TOKEN", allow_hyphen_values = true)]
    tokens: Vec<String>,
    /// A tenant's token, admin's token or repository of the daemon's registries it owns
    /// (`team-a:token=T`, `team-a:admin-token=T`, `team-a:repository=team-a/*`;
    /// repeatable; tokens never printed).
    #[arg(long = "tenant", value_name = "NAME:KIND=VALUE", allow_hyphen_values = true)]
    tenants: Vec<String>,
    /// An operator's token: sees and acts on every tenant (repeatable; never printed).
    #[arg(long = "admin-token", value_name = "TOKEN", allow_hyphen_values = true)]
    admin_tokens: Vec<String>,
    /// An image of the engine (not of a registry) runs may use by name, pinned for each
    /// run at its start (repeatable).
    #[arg(long = "local-image", value_name = "IMAGE")]
    local_images: Vec<String>,
    /// A Dockerfile frontend (`# syntax=`) runs may use, by repository or digest
    /// (repeatable) [default: docker.io/docker/dockerfile].
    #[arg(long = "allowed-frontend", value_name = "IMAGE")]
    allowed_frontends: Vec<String>,
    /// Mount the data dir nodev,nosuid at start, so steps leave no device files or
    /// set-uid programs (needs root) [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    harden_data_dir: Option<bool>,
    /// Largest upload accepted, in bytes [default: 2 GiB].
    #[arg(long, value_name = "BYTES")]
    max_upload_bytes: Option<u64>,
    /// Days to keep the contexts and logs of finished runs; 0 purges them at the next
    /// pass [default: 7].
    #[arg(long, value_name = "DAYS")]
    retention_days: Option<u64>,
    /// Seconds between purges of expired files [default: 600].
    #[arg(long, value_name = "SECONDS")]
    purge_interval_seconds: Option<u64>,
    /// How long a worker's claim on a run lasts without renewal, in seconds [default: 15].
    #[arg(long, value_name = "SECONDS")]
    lease_seconds: Option<u64>,
    /// Re-queue a run once when its worker is lost instead of ending it as Error.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    requeue_lost_runs: Option<bool>,
    /// Warn about unknown keys in task files instead of refusing them.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    allow_unknown_keys: Option<bool>,
    /// Let steps run privileged (root on the host).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    allow_privileged: Option<bool>,
    /// Let steps and builds use the host's network (`network: host`).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    allow_host_network: Option<bool>,
    /// Let steps publish ports on non-loopback addresses.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    allow_public_ports: Option<bool>,
    /// How steps reach the engine: `proxy` (a per-run API proxy confined to the run), `full`
    /// (the engine's own socket: root on the host) or `none` [default: proxy].
    #[arg(long, value_name = "ACCESS", value_parser = ["proxy", "full", "none"])]
    engine_access: Option<String>,
    /// The builder of `build` steps: `buildkit` (when the engine offers it) or `classic`;
    /// a step's `DOCKER_BUILDKIT=0|1` overrides it [default: buildkit].
    #[arg(long, value_name = "BUILDER", value_parser = ["buildkit", "classic"])]
    builder: Option<String>,
    /// Largest expanded size of an uploaded or downloaded context, in bytes [default: 8 GiB].
    #[arg(long, value_name = "BYTES")]
    max_context_bytes: Option<u64>,
    /// Most entries an uploaded or downloaded context may hold [default: 500000].
    #[arg(long, value_name = "N")]
    max_context_entries: Option<u64>,
    /// A directory `file://` git sources may come from (repeatable; none by default).
    #[arg(long = "file-source-dir", value_name = "DIR")]
    file_source_dirs: Vec<PathBuf>,
    /// A host or network (`git.internal`, `10.0.0.0/8`, `127.0.0.1`) URL sources may reach
    /// although it is loopback, private, link-local or unspecified (repeatable).
    #[arg(long = "allowed-source-host", value_name = "HOST")]
    allowed_source_hosts: Vec<String>,
    /// A host or network outbound webhooks may reach although it is loopback, private,
    /// link-local or unspecified (repeatable).
    #[arg(long = "allowed-webhook-host", value_name = "HOST")]
    allowed_webhook_hosts: Vec<String>,
    /// Seconds one webhook delivery attempt may take [default: 10].
    #[arg(long, value_name = "SECONDS")]
    webhook_timeout_seconds: Option<u64>,
    /// Seconds before a failed webhook delivery is tried again, doubled each time up to
    /// an hour [default: 10].
    #[arg(long, value_name = "SECONDS")]
    webhook_retry_seconds: Option<u64>,
    /// Seconds during which a webhook delivery is retried before it is given up
    /// [default: 86400].
    #[arg(long, value_name = "SECONDS")]
    webhook_retry_period_seconds: Option<u64>,
    /// The daemon's address as others reach it, for links in run events [default: the
    /// listen address].
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Seconds to wait for a source server to accept a connection [default: 10].
    #[arg(long, value_name = "SECONDS")]
    fetch_connect_timeout_seconds: Option<u64>,
    /// Seconds a source server may stay silent during a fetch [default: 60].
    #[arg(long, value_name = "SECONDS")]
    fetch_read_timeout_seconds: Option<u64>,
    /// Seconds a client has to send a request's head; idle keep-alive connections close
    /// after as long [default: 30].
    #[arg(long, value_name = "SECONDS")]
    http_header_timeout_seconds: Option<u64>,
    /// Seconds a shutdown waits for running runs before stopping them as Error [default: 30].
    #[arg(long, value_name = "SECONDS")]
    shutdown_grace_seconds: Option<u64>,
    /// Map a `cmd` image alias to an image, e.g. `bash=busybox:latest` (repeatable).
    #[arg(long = "image-alias", value_name = "ALIAS=IMAGE")]
    image_aliases: Vec<String>,
    /// Credentials for a registry runs pull from and push to (repeatable; never printed).
    #[arg(long = "registry-credential", value_name = "REGISTRY=USER:PASSWORD")]
    registry_credentials: Vec<String>,
    /// Credentials for HTTP(S) git sources on HOST (with its port, if any; repeatable;
    /// never printed).
    #[arg(long = "git-credential", value_name = "HOST=USER:TOKEN")]
    git_credentials: Vec<String>,
    /// This machine's name in a fleet; worker names start with it [default: the host name].
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// The image that holds a run's network namespace in shared network mode (needs
    /// `sleep`) [default: busybox:latest].
    #[arg(long, value_name = "IMAGE")]
    sandbox_image: Option<String>,
    /// The registry runs build for (`{{.Run.Registry}}`, `$Registry`).
    #[arg(long, value_name = "HOST")]
    registry: Option<String>,
    /// Seconds between polls of tracked base images; 0 never polls [default: 300].
    #[arg(long, value_name = "SECONDS")]
    poll_interval_seconds: Option<u64>,
    /// The value registries send in `X-Slipway-Registry-Secret` with their notifications
    /// (never printed).
    #[arg(long, value_name = "SECRET", allow_hyphen_values = true)]
    registry_notification_secret: Option<String>,
    /// Where uploads and finished logs are kept: an object store a fleet shares
    /// (`azure://CONTAINER`) [default: the data dir].
    #[arg(long, value_name = "URL")]
    blob_store: Option<String>,
    /// An option of the blob store, `object_store`'s key and a value, e.g.
    /// `azure_storage_account_name=ACCOUNT` (repeatable; never printed).
    #[arg(long = "blob-store-option", value_name = "KEY=VALUE")]
    blob_store_options: Vec<String>,
    /// Connections one run's steps may hold open to its engine proxy (hijacked attach and
    /// exec streams count); more are answered 429. [default: 64].
    #[arg(long, value_name = "N")]
    max_proxy_connections_per_run: Option<u64>,
    /// Connections every run's engine proxy together may hold open. [default: 2048].
    #[arg(long, value_name = "N")]
    max_proxy_connections: Option<u64>,
    /// Log follows (`?follow=true`) and dashboard live feeds one token may hold open. [default: 32].
    #[arg(long, value_name = "N")]
    max_follows_per_token: Option<u64>,
    /// API requests one token may have in flight at once. [default: 32].
    #[arg(long, value_name = "N")]
    max_requests_per_token: Option<u64>,
    /// Log follows and live feeds the daemon holds open in all. [default: 1024].
    #[arg(long, value_name = "N")]
    max_follows: Option<u64>,
    /// API connections one client address may hold open; more are closed at once. [default: 256].
    #[arg(long, value_name = "N")]
    max_connections_per_client: Option<u64>,
    /// Bytes of a run's log kept; past them the log says "log truncated at N bytes" and the run goes on. [default: 100 MiB].
    #[arg(long, value_name = "N")]
    max_log_bytes: Option<u64>,
    /// Uploaded contexts a tenant may keep at once. [default: 200].
    #[arg(long, value_name = "N")]
    max_uploads_per_tenant: Option<u64>,
    /// Bytes of uploaded contexts a tenant may keep at once. [default: 20 GiB].
    #[arg(long, value_name = "N")]
    max_upload_bytes_per_tenant: Option<u64>,
    /// Hours after which an upload no queued run and no task names is removed. [default: 24].
    #[arg(long, value_name = "N")]
    unused_upload_hours: Option<u64>,
    /// Runs a tenant may have queued at once; more are refused (429), triggers' skipped. [default: 500].
    #[arg(long, value_name = "N")]
    max_queued_runs_per_tenant: Option<u64>,
    /// Runs of one tenant running at once in the whole fleet (0: no cap beyond fair claims). [default: 0].
    #[arg(long, value_name = "N")]
    max_running_runs_per_tenant: Option<u64>,
    /// Tasks a tenant may have. [default: 500].
    #[arg(long, value_name = "N")]
    max_tasks_per_tenant: Option<u64>,
    /// Timer triggers a tenant's tasks may have in all. [default: 100].
    #[arg(long, value_name = "N")]
    max_timers_per_tenant: Option<u64>,
    /// The shortest time between two firings of a timer that a tenant (not an operator) may set. [default: 300].
    #[arg(long, value_name = "N")]
    min_timer_period_seconds: Option<u64>,
    /// Bytes a run's `/workspace` may hold; checked while steps run, then the run ends as Failed. [default: 10 GiB].
    #[arg(long, value_name = "N")]
    max_workspace_bytes: Option<u64>,
    /// Memory of a step container that asks for none (`cmd: -m 2g …` asks). [default: 4 GiB].
    #[arg(long, value_name = "N")]
    step_memory_bytes: Option<u64>,
    /// The most memory a step container may ask for. [default: 16 GiB].
    #[arg(long, value_name = "N")]
    max_step_memory_bytes: Option<u64>,
    /// Processes a step container may run when it asks for no number (`--pids-limit`). [default: 1024].
    #[arg(long, value_name = "N")]
    step_pids: Option<u64>,
    /// The most processes a step container may ask for. [default: 4096].
    #[arg(long, value_name = "N")]
    max_step_pids: Option<u64>,
    /// `/dev/shm` of a step container that asks for no size (`--shm-size`). [default: 64 MiB].
    #[arg(long, value_name = "N")]
    step_shm_bytes: Option<u64>,
    /// The largest `/dev/shm` a step container may ask for. [default: 1 GiB].
    #[arg(long, value_name = "N")]
    max_step_shm_bytes: Option<u64>,
    /// Size of a tmpfs a container started through the proxy mounts without one. [default: 256 MiB].
    #[arg(long, value_name = "N")]
    step_tmpfs_bytes: Option<u64>,
    /// The largest tmpfs a container started through the proxy may mount. [default: 2 GiB].
    #[arg(long, value_name = "N")]
    max_step_tmpfs_bytes: Option<u64>,
    /// The fleet's key for every secret it keeps, 32 bytes in base64 (never printed).
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    fleet_key: Option<String>,
    /// The fleet key `--fleet-key` replaces: secrets it sealed still open, and are sealed
    /// again under the new key at start (never printed).
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    fleet_key_previous: Option<String>,
}

/// The settings: defaults, the file, the environment (`env`), then the flags.
pub fn settings(a: ServeArgs, env: impl Iterator<Item = (String, String)>) -> Result<Settings> {
    // Each field is named once, in one of these lists: the pattern the macro builds names
    // them all, so a flag added and not applied does not compile.
    macro_rules! apply {
        ($s:ident, given: [$($g:ident),* $(,)?], listed: [$($l:ident),* $(,)?], own: [$($o:ident),* $(,)?]) => {
            let ServeArgs { config, $($g,)* $($l,)* $($o,)* } = a;
            let mut $s = Settings::load(config.as_deref(), env)?;
            $(if let Some(v) = $g { $s.$g = v; })*
            $(if !$l.is_empty() { $s.$l = $l; })*
        };
    }
    apply!(
        s,
        given: [
            listen,
            data_dir,
            database,
            concurrency,
            max_upload_bytes,
            retention_days,
            purge_interval_seconds,
            lease_seconds,
            requeue_lost_runs,
            allow_unknown_keys,
            allow_privileged,
            allow_host_network,
            allow_public_ports,
            engine_access,
            builder,
            max_context_bytes,
            max_context_entries,
            webhook_timeout_seconds,
            webhook_retry_seconds,
            webhook_retry_period_seconds,
            public_url,
            fetch_connect_timeout_seconds,
            fetch_read_timeout_seconds,
            http_header_timeout_seconds,
            shutdown_grace_seconds,
            node,
            sandbox_image,
            registry,
            poll_interval_seconds,
            blob_store,
            harden_data_dir,
            max_proxy_connections_per_run,
            max_proxy_connections,
            max_follows_per_token,
            max_requests_per_token,
            max_follows,
            max_connections_per_client,
            max_log_bytes,
            max_uploads_per_tenant,
            max_upload_bytes_per_tenant,
            unused_upload_hours,
            max_queued_runs_per_tenant,
            max_running_runs_per_tenant,
            max_tasks_per_tenant,
            max_timers_per_tenant,
            min_timer_period_seconds,
            max_workspace_bytes,
            step_memory_bytes,
            max_step_memory_bytes,
            step_pids,
            max_step_pids,
            step_shm_bytes,
            max_step_shm_bytes,
            step_tmpfs_bytes,
            max_step_tmpfs_bytes,
        ],
        listed: [tokens, admin_tokens, local_images, allowed_frontends, file_source_dirs, allowed_source_hosts, allowed_webhook_hosts],
        own: [
            tenants,
            image_aliases,
            registry_credentials,
            git_credentials,
            blob_store_options,
            registry_notification_secret,
            fleet_key,
            fleet_key_previous,
        ]
    );
    s.image_aliases
        .extend(pairs::split_all("--image-alias", &image_aliases, "ALIAS=IMAGE")?);
    s.registry_credentials.extend(pairs::split_all(
        "--registry-credential",
        &registry_credentials,
        "REGISTRY=USER:PASSWORD",
    )?);
    s.git_credentials
        .extend(pairs::split_all("--git-credential", &git_credentials, "HOST=USER:TOKEN")?);
    s.blob_store_options
        .extend(pairs::split_all("--blob-store-option", &blob_store_options, "KEY=VALUE")?);
    for entry in &tenants {
        s.add_tenant_entry(entry).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    }
    // Secrets: a given one replaces the file's or the environment's.
    if registry_notification_secret.is_some() {
        s.registry_notification_secret = registry_notification_secret;
    }
    if fleet_key.is_some() {
        s.fleet_key = fleet_key;
    }
    if fleet_key_previous.is_some() {
        s.fleet_key_previous = fleet_key_previous;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn parse(flags: &[&str], env: &[(&str, &str)]) -> Result<Settings> {
        let a = Serve::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))?.args;
        settings(a, env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn every_setting_has_a_flag() {
        let cmd = Serve::command();
        let ids: Vec<&str> = cmd.get_arguments().map(|a| a.get_id().as_str()).collect();
        for key in Settings::keys() {
            assert!(
                ids.contains(key),
                "setting {key} has no `slipway serve` flag: add a field named {key} to ServeArgs"
            );
        }
        for id in ids {
            assert!(
                id == "config" || Settings::keys().contains(&id),
                "serve flag {id} is named as no setting"
            );
        }
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slipway.toml");
        std::fs::write(
            &file,
            "concurrency = 5\nallow_host_network = true\npoll_interval_seconds = 9\n[image_aliases]\nbash = \"file\"\nsh = \"file\"\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        let s = parse(
            &[
                "--config",
                config,
                "--concurrency",
                "3",
                "--allow-host-network=false",
                "--allow-privileged",
                "--engine-access",
                "none",
                "--file-source-dir",
                "/srv/a",
                "--file-source-dir",
                "/srv/b",
                "--allowed-source-host",
                "10.0.0.0/8",
                "--image-alias",
                "bash=flag",
                "--registry-credential",
                "reg.io=me:pw",
                "--git-credential",
                "git.internal:8443=me:tok",
                "--node",
                "n1",
                "--registry-notification-secret",
                "s3",
            ],
            &[
                ("SLIPWAY_CONCURRENCY", "4"),
                ("SLIPWAY_POLL_INTERVAL_SECONDS", "8"),
                ("SLIPWAY_ALLOWED_SOURCE_HOSTS", "a,b"),
                ("SLIPWAY_IMAGE_ALIASES", "bash=env,az=env"),
            ],
        )
        .unwrap();
        assert_eq!((s.concurrency, s.poll_interval_seconds), (3, 8));
        assert!(!s.allow_host_network && s.allow_privileged && !s.allow_public_ports);
        assert_eq!(s.engine_access, "none");
        assert_eq!(s.file_source_dirs, [PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]);
        assert_eq!(s.allowed_source_hosts, ["10.0.0.0/8"]);
        let aliases: Vec<_> = s.image_aliases.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(aliases, ["az=env", "bash=flag", "sh=file"]);
        assert_eq!(s.registry_credentials["reg.io"], "me:pw");
        assert_eq!(s.git_credentials["git.internal:8443"], "me:tok");
        assert_eq!((s.node.as_str(), s.registry_notification_secret.as_deref()), ("n1", Some("s3")));
        // Without flags, the environment and the file stand; an unknown file key is refused.
        let s = parse(&["--config", config], &[]).unwrap();
        assert!(s.allow_host_network && s.concurrency == 5 && s.engine_access == "proxy");
        std::fs::write(&file, "allow_host_networks = true\n").unwrap();
        let e = parse(&["--config", config], &[]).err().unwrap().to_string();
        assert!(e.contains("allow_host_networks"), "{e}");
    }

    #[test]
    fn a_bad_credential_flag_names_no_secret() {
        for flags in [["--registry-credential", "reg.io=hunter2"], ["--git-credential", "me:hunter2"]] {
            let e = parse(&flags, &[]).err().unwrap().to_string();
            assert!(e.starts_with(flags[0]) && !e.contains("hunter2"), "{e}");
        }
        assert!(parse(&["--engine-access", "root"], &[]).is_err());
    }
}
