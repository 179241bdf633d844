//! `slipway serve`'s flags: one for every declared setting
//! ([`slipway_settings::declared`]), made from the declaration, applied over the config
//! file and the `SLIPWAY_*` variables.

use anyhow::Result;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use slipway_server::Settings;
use slipway_settings::{Declared, Kind};
use std::path::PathBuf;

const AFTER_HELP: &str = "Every flag but --config is also a key of the config file (--data-dir: data_dir, \
--token: tokens) and a SLIPWAY_<KEY> environment variable: SLIPWAY_CONCURRENCY=4, lists as SLIPWAY_TOKENS=a,b, \
maps as SLIPWAY_IMAGE_ALIASES=bash=busybox:latest,az=IMAGE. Flags win over the environment, which wins over \
the file: a list given replaces the list, a map entry replaces the entry of the same key. docs/settings.md \
lists them all.";

/// The flags `slipway serve` was given: the config file, and each setting's values.
pub struct ServeArgs {
    config: Option<PathBuf>,
    given: Vec<(Declared, Vec<String>)>,
}

/// A setting's help as `--help` shows it: its text, then its default.
pub fn help_of(d: &Declared, default: Option<&String>) -> String {
    let mut text = d.help.lines().map(str::trim).collect::<Vec<_>>().join(" ").trim().to_string();
    if !text.ends_with('.') {
        text.push('.');
    }
    match default {
        Some(v) if !d.extra.secret => format!("{text} [default: {v}]"),
        _ => text,
    }
}

fn arg_of(d: &Declared, defaults: &std::collections::BTreeMap<&'static str, String>) -> Arg {
    let arg = Arg::new(d.key)
        .long(d.flag)
        .value_name(d.value_name)
        .help(help_of(d, defaults.get(d.key)));
    let arg = match d.kind {
        Kind::Switch => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .action(ArgAction::Set),
        Kind::List | Kind::Map | Kind::Tenants => arg.action(ArgAction::Append),
        Kind::Number | Kind::Text => arg.action(ArgAction::Set),
    };
    let arg = match d.extra.choices {
        [] => arg,
        choices => arg.value_parser(clap::builder::PossibleValuesParser::new(choices.iter().copied())),
    };
    // A token or a key may start with '-'.
    arg.allow_hyphen_values(d.extra.secret)
}

impl Args for ServeArgs {
    fn augment_args(cmd: Command) -> Command {
        let defaults = Settings::defaults_shown();
        cmd.after_help(AFTER_HELP)
            .arg(
                Arg::new("config")
                    .long("config")
                    .value_name("FILE")
                    .help("A TOML config file whose keys are the settings (an unknown key is refused).")
                    .value_parser(clap::value_parser!(PathBuf)),
            )
            .args(slipway_settings::declared().iter().map(|d| arg_of(d, &defaults)))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ServeArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let given = slipway_settings::declared()
            .into_iter()
            .filter_map(|d| {
                let values: Vec<String> = m.get_many::<String>(d.key)?.cloned().collect();
                Some((d, values))
            })
            .collect();
        Ok(ServeArgs {
            config: m.get_one::<PathBuf>("config").cloned(),
            given,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = ServeArgs::from_arg_matches(m)?;
        Ok(())
    }
}

/// The settings: defaults, the file, the environment (`env`), then the flags; checked.
pub fn settings(a: ServeArgs, env: impl Iterator<Item = (String, String)>) -> Result<Settings> {
    let mut s = Settings::load(a.config.as_deref(), env)?;
    for (d, values) in &a.given {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        s.apply(d, &values)?;
    }
    Ok(s.checked()?)
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
            assert!(ids.contains(&key), "setting {key} has no `slipway serve` flag");
        }
        assert_eq!(ids.len(), Settings::keys().len() + 1, "one flag per setting, and --config");
    }

    #[test]
    fn bounds_and_choices_are_checked_once_at_load() {
        for (flags, env, words) in [
            (
                &["--webhook-timeout-seconds", "0"][..],
                &[][..],
                "webhook_timeout_seconds is 0; it must be from 1 to 3600",
            ),
            (
                &[],
                &[("SLIPWAY_ENGINE_ACCESS", "root")][..],
                "engine_access is \"root\"; it must be one of proxy, full, none",
            ),
            (&[], &[("SLIPWAY_LEASE_SECONDS", "1")][..], "lease_seconds is 1"),
            (
                &["--max-requests-per-token", "0"][..],
                &[][..],
                "max_requests_per_token is 0; it must be at least 1",
            ),
        ] {
            let e = parse(flags, env).err().unwrap().to_string();
            assert!(e.contains(words), "{e}");
        }
    }

    /// The README's `slipway serve` synopsis names only declared flags.
    #[test]
    fn the_readme_synopsis_names_declared_flags() {
        let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
        let start = readme
            .find("slipway serve [--config")
            .expect("the README shows slipway serve's synopsis");
        let block = &readme[start..start + readme[start..].find("```").unwrap()];
        let flags: Vec<String> = slipway_settings::declared().iter().map(|d| d.flag.to_string()).collect();
        let mut named = 0;
        for word in block.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if let Some(flag) = word.strip_prefix("--") {
                assert!(
                    flag == "config" || flags.iter().any(|f| f == flag),
                    "the README names --{flag}, which is no setting"
                );
                named += 1;
            }
        }
        assert!(named > 20, "{block}");
    }

    /// docs/settings.md is made from the declaration: this test writes it anew with
    /// SLIPWAY_BLESS=1, and fails when it differs.
    #[test]
    fn the_settings_page_is_the_declaration() {
        let defaults = Settings::defaults_shown();
        let mut page = String::from(
            "# `slipway serve` settings\n\nMade from the one declaration in `crates/slipway-settings` (a test checks it). \
Each setting is a key of the TOML config file, a `SLIPWAY_<KEY>` environment variable (lists and maps \
comma-separated) and a flag; flags win over the environment, which wins over the file. Secret settings \
are never printed.\n\n| key | flag | default | what it is |\n|---|---|---|---|\n",
        );
        for d in slipway_settings::declared() {
            let default = match defaults.get(d.key) {
                Some(v) if !d.extra.secret => format!("`{v}`"),
                _ => String::new(),
            };
            let repeat = if matches!(d.kind, Kind::List | Kind::Map | Kind::Tenants) {
                " (repeatable)"
            } else {
                ""
            };
            let mut what = help_of(&d, None).replace('|', "\\|");
            if d.extra.secret {
                what.push_str(" Secret.");
            }
            page.push_str(&format!(
                "| `{}` | `--{} {}`{repeat} | {default} | {what} |\n",
                d.key, d.flag, d.value_name
            ));
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/settings.md");
        if std::env::var("SLIPWAY_BLESS").as_deref() == Ok("1") {
            std::fs::write(&path, &page).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == page,
            "docs/settings.md differs from the declaration: run SLIPWAY_BLESS=1 cargo test -p slipway-cli the_settings_page"
        );
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
        assert_eq!(s.engine_access, slipway_settings::EngineAccess::None);
        assert_eq!(s.file_source_dirs, [PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]);
        assert_eq!(s.allowed_source_hosts, ["10.0.0.0/8"]);
        let aliases: Vec<_> = s.image_aliases.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(aliases, ["az=env", "bash=flag", "sh=file"]);
        assert_eq!(s.registry_credentials["reg.io"].text(), "me:pw");
        assert_eq!(s.git_credentials["git.internal:8443"].text(), "me:tok");
        assert_eq!((s.node.as_str(), s.registry_notification_secret.as_deref()), ("n1", Some("s3")));
        // Without flags, the environment and the file stand; an unknown file key is refused.
        let s = parse(&["--config", config], &[]).unwrap();
        assert!(s.allow_host_network && s.concurrency == 5 && s.engine_access == slipway_settings::EngineAccess::Proxy);
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
