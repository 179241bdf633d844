//! ACR Tasks YAML, from text to a validated plan, with no I/O.
//!
//! The pipeline is acb's: aliases (v1.1.0), then Go templates, then YAML, then
//! image aliases for the first word of each `cmd`, then validation into a [`Plan`]
//! whose steps carry every property with its default and their resolved `when`.
//! Files the task refers to (alias `src`) are read by the caller through a closure,
//! so this crate stays pure and its tests are data.
//!
//! ```
//! use slipway_taskfile::{load, Options, RunVars};
//! let text = "steps:\n  - id: hello\n    cmd: busybox echo {{.Run.ID}}\n  - cmd: busybox true\n    when: [\"-\"]\n";
//! let opts = Options::new(RunVars::new("cf1", "", chrono::Utc::now()));
//! let loaded = load("acb.yaml", text, &opts, &|_| Err("no files".into())).unwrap();
//! assert_eq!(loaded.plan.steps[0].id, "hello");
//! assert_eq!(loaded.plan.steps[1].when, Vec::<String>::new());
//! ```

pub mod alias;
pub mod build_args;
mod error;
mod plan;
mod raw;
pub mod run_flags;
mod run_vars;
mod yaml;

pub use error::{ErrorKind, Location, TaskError, Warning};
pub use run_vars::{format_date, registry_name, template_data, RunVars};
pub use slipway_plan::*;

use alias::Aliases;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// What a task file is loaded with.
#[derive(Debug, Clone)]
pub struct Options {
    pub run: RunVars,
    /// `{{.Values.*}}`: the values file, then `--set` pairs over it.
    pub values: Value,
    /// Secret values by id, for `{{.Secrets.*}}` and secrets given with `--set-secret`.
    pub secrets: BTreeMap<String, String>,
    /// Turn unknown keys into warnings (for files written for ACR).
    pub allow_unknown_keys: bool,
    pub allow_privileged: bool,
    /// Steps and builds may use the host's network (`network: host`, `--network host`).
    pub allow_host_network: bool,
    /// Steps may publish ports on addresses other than loopback.
    pub allow_public_ports: bool,
    /// Task `secrets` may read this machine's environment (`env:`) and files (`file:`).
    /// True for `slipway exec`; in `slipway serve` they would be the daemon's own.
    pub allow_host_secrets: bool,
    /// Image aliases that replace acb's defaults (`bash` → a local image).
    pub image_aliases: BTreeMap<String, String>,
    /// Overrides the task's `networkMode`.
    pub network_mode: Option<NetworkMode>,
    /// What rendering the task's templates may cost.
    pub template_limits: slipway_template::Limits,
}

impl Options {
    pub fn new(run: RunVars) -> Options {
        Options {
            run,
            values: Value::Object(Default::default()),
            secrets: BTreeMap::new(),
            allow_unknown_keys: false,
            allow_privileged: false,
            allow_host_network: false,
            allow_public_ports: false,
            allow_host_secrets: false,
            image_aliases: BTreeMap::new(),
            network_mode: None,
            template_limits: slipway_template::Limits::default(),
        }
    }
}

impl Options {
    /// Gives the task what acb gives it on a person's own machine: the host's network,
    /// ports on any address, and secrets from the environment and files.
    pub fn trusting_host(mut self) -> Options {
        self.allow_host_network = true;
        self.allow_public_ports = true;
        self.allow_host_secrets = true;
        self
    }

    /// Secret values given by name (`--set-secret`, a request's `isSecret` values): a
    /// task reads each as `{{.Values.NAME}}`, as ACR tasks do, and as `{{.Secrets.NAME}}`
    /// or a task secret's id; every printout masks it.
    pub fn set_secret_values(&mut self, pairs: &[(String, String)]) {
        set_values(&mut self.values, pairs);
        self.secrets.extend(pairs.iter().cloned());
    }
}

/// A loaded task: the plan, the text it was built from, and any warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub plan: Plan,
    /// The task file after aliases and templates.
    pub rendered: String,
    pub warnings: Vec<Warning>,
    /// Every secret value the task was loaded with, whatever its source: what callers
    /// mask in anything they print or store.
    pub secret_values: Vec<String>,
}

/// Reads a file the task refers to (an alias `src` file), relative to the task file.
pub type ReadFile<'a> = dyn Fn(&str) -> Result<String, String> + 'a;

/// Loads the task file `text` (named `file` in messages).
pub fn load(file: &str, text: &str, opts: &Options, read: &ReadFile) -> Result<Loaded, TaskError> {
    let text = blank_comment_lines(text.strip_prefix('\u{feff}').unwrap_or(text));
    let aliases = aliases(file, &text, opts, read)?;
    let max = opts.template_limits.max_output_bytes;
    let expanded = match &aliases {
        Some(a) => a.expand(&text, max).ok_or_else(|| {
            TaskError::new(
                ErrorKind::Alias,
                Location {
                    file: file.to_string(),
                    line: 0,
                    column: 0,
                    field: Some("alias".into()),
                },
                format!(
                    "the task file with its aliases expanded would be larger than {} MiB (the limit)",
                    max >> 20
                ),
            )
        })?,
        None => text,
    };
    let data = template_data(&opts.run, &opts.values, &opts.secrets);
    let rendered = slipway_template::render_with(&expanded, &data, &opts.template_limits).map_err(|e| {
        TaskError::new(
            ErrorKind::Template,
            Location {
                file: file.to_string(),
                line: e.line,
                column: 0,
                field: None,
            },
            e.message,
        )
    })?;
    let (raw, unknown): (raw::RawTask, Vec<String>) = yaml::from_str(file, &rendered)?;
    let positions = yaml::Positions::index(&rendered);
    let mut warnings = Vec::new();
    for path in unknown {
        let (parent, key) = match path.rfind('.') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path.as_str()),
        };
        let mut message = format!("unknown key {key:?}");
        if let Some(near) = plan::nearest(key, raw::known_keys_at(parent).iter().copied()) {
            message.push_str(&format!(" (did you mean {near:?}?)"));
        }
        let location = positions.locate(file, &path);
        if !opts.allow_unknown_keys {
            message.push_str("; --allow-unknown-keys turns this into a warning");
            return Err(TaskError::new(ErrorKind::UnknownKey, location, message));
        }
        warnings.push(Warning {
            location,
            message: format!("{message}, ignored"),
        });
    }
    let provided: HashSet<String> = opts.secrets.keys().cloned().collect();
    let cx = plan::Context {
        file,
        positions: &positions,
        aliases: aliases.as_ref(),
        allow_privileged: opts.allow_privileged,
        allow_host_network: opts.allow_host_network,
        allow_public_ports: opts.allow_public_ports,
        allow_host_secrets: opts.allow_host_secrets,
        provided_secrets: &provided,
        network_mode: opts.network_mode,
    };
    let plan = plan::build(&cx, raw)?;
    Ok(Loaded {
        plan,
        rendered,
        warnings,
        secret_values: opts.secrets.values().cloned().collect(),
    })
}

/// acb drops whole-line comments before templating, so a template in a comment is
/// never run. We blank them instead, so line numbers in messages stay true.
fn blank_comment_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(if line.ends_with("\r\n") {
                "\r\n"
            } else if line.ends_with('\n') {
                "\n"
            } else {
                ""
            });
        } else {
            out.push_str(line);
        }
    }
    out
}

/// The alias table, for v1.1.0 tasks only (as acb).
fn aliases(file: &str, text: &str, opts: &Options, read: &ReadFile) -> Result<Option<Aliases>, TaskError> {
    let head: String = ["version", "alias"]
        .iter()
        .filter_map(|k| alias::top_level_block(text, k))
        .collect();
    let (header, _): (raw::AliasOnly, _) = yaml::from_str(file, &head).unwrap_or_default();
    if header.version.as_deref() != Some("v1.1.0") {
        return Ok(None);
    }
    let alias_line = text.lines().position(|l| l.starts_with("alias:")).map(|i| i + 1).unwrap_or(0);
    let at = |field: &str| Location {
        file: file.to_string(),
        line: alias_line,
        column: 0,
        field: Some(field.to_string()),
    };
    let section = header.alias.unwrap_or_default();
    let directive = match section.directive.as_deref() {
        None => '$',
        Some(d) => {
            let mut chars = d.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if !c.is_alphanumeric() && !c.is_whitespace() => c,
                _ => {
                    return Err(TaskError::new(
                        ErrorKind::Alias,
                        at("alias.directive"),
                        format!("directive {d:?} must be one character, not a letter, digit or space"),
                    ))
                }
            }
        }
    };
    let mut src_files = Vec::new();
    for src in section.src.iter().flatten() {
        let content =
            read(src).map_err(|e| TaskError::new(ErrorKind::Alias, at("alias.src"), format!("cannot read alias file {src:?}: {e}")))?;
        let (map, _): (BTreeMap<String, String>, _) = yaml::from_str(src, &content)?;
        src_files.push(map);
    }
    let inline = section.values.unwrap_or_default();
    for name in inline.keys() {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(TaskError::new(
                ErrorKind::Alias,
                at(&format!("alias.values.{name}")),
                format!("alias name {name:?} must be letters and digits only"),
            ));
        }
    }
    Ok(Some(Aliases::new(directive, &opts.image_aliases, &src_files, &inline)))
}

/// Parses `--values` file content (YAML) into the `{{.Values}}` object.
pub fn parse_values(file: &str, text: &str) -> Result<Value, TaskError> {
    let v = yaml::value_from_str(file, text)?;
    match v {
        Value::Object(_) => Ok(v),
        Value::Null => Ok(Value::Object(Default::default())),
        _ => Err(TaskError::new(
            ErrorKind::InvalidValue,
            Location {
                file: file.to_string(),
                line: 1,
                column: 1,
                field: None,
            },
            "a values file must be a mapping of names to values",
        )),
    }
}

/// Applies `--set k=v` pairs (literal keys, last wins) over `values`.
pub fn set_values(values: &mut Value, pairs: &[(String, String)]) {
    if !values.is_object() {
        *values = Value::Object(Default::default());
    }
    if let Value::Object(m) = values {
        for (k, v) in pairs {
            m.insert(k.clone(), Value::String(v.clone()));
        }
    }
}
