//! The validated plan: task properties with defaults filled in and steps whose
//! dependencies are resolved. The runner sees only this, never YAML.

use crate::alias::Aliases;
use crate::build_args;
use crate::error::{ErrorKind, TaskError};
use crate::raw::{RawStep, RawTask, PUSH_STEP_KEYS};
use crate::yaml::Positions;
use base64::Engine as _;
use slipway_plan::*;
use slipway_reference::Reference;
use std::collections::{BTreeMap, HashMap, HashSet};

pub(crate) struct Context<'a> {
    pub file: &'a str,
    pub positions: &'a Positions,
    pub aliases: Option<&'a Aliases>,
    pub allow_privileged: bool,
    pub allow_host_network: bool,
    pub allow_public_ports: bool,
    pub allow_host_secrets: bool,
    pub provided_secrets: &'a HashSet<String>,
    pub network_mode: Option<NetworkMode>,
}

impl Context<'_> {
    fn err(&self, kind: ErrorKind, path: &str, message: impl Into<String>) -> TaskError {
        TaskError::new(kind, self.positions.locate(self.file, path), message)
    }
}

fn non_negative(cx: &Context, path: &str, value: Option<i64>, default: u64, what: &str) -> Result<u64, TaskError> {
    match value {
        None => Ok(default),
        Some(v) if v >= 0 => Ok(v as u64),
        Some(v) => Err(cx.err(ErrorKind::InvalidValue, path, format!("{what} must be >= 0, not {v}"))),
    }
}

/// Task env entries may hold several `k=v` pairs separated by commas; a step's own
/// entries win and come first, as acb merges them.
fn merge_env(task: &[String], step: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map(|(k, _)| k.to_string()).unwrap_or_else(|| e.to_string());
    let mut out: Vec<String> = step.to_vec();
    let mut seen: HashSet<String> = step.iter().map(|e| key(e)).collect();
    for entry in task {
        let parts: Vec<&str> = if entry.contains('=') {
            entry.split(',').collect()
        } else {
            vec![entry.as_str()]
        };
        for part in parts {
            let k = key(part);
            if seen.insert(k) {
                out.push(part.to_string());
            }
        }
    }
    out
}

/// A step's env with its `-e` flags first (they win); no entry is split.
fn with_flag_env(flags: &[String], step: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map(|(k, _)| k.to_string()).unwrap_or_else(|| e.to_string());
    let mut out = flags.to_vec();
    out.extend(step.iter().filter(|e| !flags.iter().any(|f| key(f) == key(e))).cloned());
    out
}

/// `X='v'` and `X="v w"` give `v` and `v w`, as acb's shell-style parsing does; a value
/// that is not one quoted word (`X=a b`, `X=it's`) is kept as written.
fn unquote_env(entry: &str) -> String {
    let Some((key, value)) = entry.split_once('=') else {
        return entry.to_string();
    };
    if !value.contains(['\'', '"', '\\']) {
        return entry.to_string();
    }
    match shell_words::split(value).as_deref() {
        Ok([one]) => format!("{key}={one}"),
        _ => entry.to_string(),
    }
}

fn check_image(cx: &Context, path: &str, image: &str, what: &str) -> Result<(), TaskError> {
    Reference::parse(image)
        .map(|_| ())
        .map_err(|e| cx.err(ErrorKind::InvalidImage, path, format!("{what}: {e}")))
}

/// Checks a task and fills in its defaults: the plan the runner runs.
pub(crate) fn build(cx: &Context, raw: RawTask) -> Result<Plan, TaskError> {
    let version = version(cx, &raw)?;
    let (step_timeout, total_timeout) = timeouts(cx, &raw)?;
    let network_mode = match (cx.network_mode, raw.network_mode.as_deref()) {
        (Some(m), _) => m,
        (None, None) => NetworkMode::PerStep,
        (None, Some(s)) => s.parse().map_err(|e: String| cx.err(ErrorKind::InvalidValue, "networkMode", e))?,
    };
    let task_env = raw.env.clone().unwrap_or_default();
    let task_wd = raw.working_directory.clone().unwrap_or_default();

    let secrets = secrets(cx, &raw)?;
    let volumes = volumes(cx, &raw)?;
    let networks = networks(cx, &raw)?;
    let default_network = networks.iter().find(|n| n.is_default).map(|n| n.name.clone()).unwrap_or_default();

    let raw_steps = raw.steps.unwrap_or_default();
    if raw_steps.is_empty() {
        return Err(cx.err(ErrorKind::InvalidValue, "steps", "the task has no steps"));
    }
    let volume_names: HashSet<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    let mut order = StepOrder::new(&raw_steps);
    for (i, rs) in raw_steps.iter().enumerate() {
        let path = format!("steps[{i}]");
        let step = step(
            cx,
            &path,
            i,
            rs,
            step_timeout,
            &task_env,
            &task_wd,
            &default_network,
            &volume_names,
            &networks,
        )?;
        order.add(cx, &path, i, rs, step)?;
    }
    Ok(Plan {
        version,
        step_timeout,
        total_timeout,
        working_directory: task_wd,
        env: task_env,
        network_mode,
        networks,
        volumes,
        secrets,
        steps: order.steps,
    })
}

/// The task's `version`, the default when it gives none; refused unless it is one this
/// parser reads.
fn version(cx: &Context, raw: &RawTask) -> Result<String, TaskError> {
    let version = raw.version.clone().unwrap_or_else(|| DEFAULT_VERSION.to_string());
    if !VERSIONS.contains(&version.as_str()) {
        return Err(cx.err(
            ErrorKind::InvalidVersion,
            "version",
            format!("invalid version {version:?}: supported versions are {}", VERSIONS.join(", ")),
        ));
    }
    Ok(version)
}

/// The task's `stepTimeout` and `totalTimeout` in seconds, defaults filled in; refused
/// unless positive, and the total unless within [`MAX_TOTAL_TIMEOUT`].
fn timeouts(cx: &Context, raw: &RawTask) -> Result<(u64, u64), TaskError> {
    let step_timeout = match raw.step_timeout {
        None => DEFAULT_STEP_TIMEOUT,
        Some(t) if t > 0 => t as u64,
        Some(t) => return Err(cx.err(ErrorKind::InvalidValue, "stepTimeout", format!("stepTimeout must be > 0, not {t}"))),
    };
    let total_timeout = match raw.total_timeout {
        None => DEFAULT_TOTAL_TIMEOUT,
        Some(t) if t > 0 && t as u64 <= MAX_TOTAL_TIMEOUT => t as u64,
        Some(t) => {
            return Err(cx.err(
                ErrorKind::InvalidValue,
                "totalTimeout",
                format!("totalTimeout must be between 1 and {MAX_TOTAL_TIMEOUT}, not {t}"),
            ))
        }
    };
    Ok((step_timeout, total_timeout))
}

/// The steps in file order, each `when` resolved against the steps before it: a step
/// waits only for earlier ones, so the plan has no cycles.
struct StepOrder<'a> {
    raw: &'a [RawStep],
    /// All ids, to tell a forward reference (or a cycle) from an unknown id.
    all_ids: Vec<String>,
    steps: Vec<Step>,
    index_of: HashMap<String, usize>,
}

impl<'a> StepOrder<'a> {
    fn new(raw: &'a [RawStep]) -> Self {
        StepOrder {
            raw,
            all_ids: raw
                .iter()
                .enumerate()
                .map(|(i, s)| s.id.clone().unwrap_or_else(|| format!("acb_step_{i}")))
                .collect(),
            steps: Vec::with_capacity(raw.len()),
            index_of: HashMap::new(),
        }
    }

    /// Adds the next step, refusing a reserved or repeated id, with its `when` resolved.
    fn add(&mut self, cx: &Context, path: &str, i: usize, rs: &RawStep, mut step: Step) -> Result<(), TaskError> {
        if step.id == ROOT_ID {
            return Err(cx.err(
                ErrorKind::ReservedId,
                &format!("{path}.id"),
                format!("{ROOT_ID} is a reserved id; choose another"),
            ));
        }
        if self.index_of.contains_key(&step.id) {
            return Err(cx.err(
                ErrorKind::DuplicateId,
                &format!("{path}.id"),
                format!("step id {:?} is used by an earlier step; ids must be unique", step.id),
            ));
        }
        step.when = self.when(cx, path, rs, &step.id)?;
        self.index_of.insert(step.id.clone(), i);
        self.steps.push(step);
        Ok(())
    }

    /// The earlier steps a step waits for: the one before it by default, none for `"-"`
    /// (alone), or the ids it names, each declared before it and named once.
    fn when(&self, cx: &Context, path: &str, rs: &RawStep, id: &str) -> Result<Vec<String>, TaskError> {
        let Some(list) = &rs.when else {
            return Ok(self.steps.last().map(|p: &Step| vec![p.id.clone()]).unwrap_or_default());
        };
        if list.iter().any(|w| w == PARALLEL) {
            if list.len() > 1 {
                return Err(cx.err(
                    ErrorKind::ParallelMixed,
                    &format!("{path}.when"),
                    "\"-\" (start at once) cannot be combined with step ids",
                ));
            }
            return Ok(Vec::new());
        }
        let mut deps = Vec::new();
        for (j, dep) in list.iter().enumerate() {
            let wpath = format!("{path}.when[{j}]");
            if dep == id {
                return Err(cx.err(ErrorKind::SelfReference, &wpath, format!("step {id:?} waits for itself")));
            }
            if !self.index_of.contains_key(dep) {
                return Err(forward_or_unknown(cx, &wpath, id, dep, &self.all_ids, self.raw));
            }
            if !deps.contains(dep) {
                deps.push(dep.clone());
            }
        }
        Ok(deps)
    }
}

/// A `when` names a step that is not declared before it: say whether that is a cycle,
/// a forward reference, or an id that does not exist at all.
fn forward_or_unknown(cx: &Context, wpath: &str, id: &str, dep: &str, all_ids: &[String], raw: &[RawStep]) -> TaskError {
    let Some(later) = all_ids.iter().position(|x| x == dep) else {
        let mut msg = format!("step {id:?} waits for {dep:?}, which is not a step id");
        if let Some(near) = nearest(dep, all_ids.iter().map(String::as_str)) {
            msg.push_str(&format!(" (did you mean {near:?}?)"));
        }
        return cx.err(ErrorKind::UnknownDependency, wpath, msg);
    };
    // Does `dep` (declared later) wait, directly or not, for `id`? Then it is a cycle.
    let deps_of = |k: usize| -> Vec<String> {
        match &raw[k].when {
            Some(w) if !w.iter().any(|x| x == PARALLEL) => w.clone(),
            Some(_) => Vec::new(),
            None if k > 0 => vec![all_ids[k - 1].clone()],
            None => Vec::new(),
        }
    };
    let mut stack = vec![later];
    let mut seen = HashSet::new();
    while let Some(k) = stack.pop() {
        if !seen.insert(k) {
            continue;
        }
        for d in deps_of(k) {
            if d == id {
                return cx.err(
                    ErrorKind::Cycle,
                    wpath,
                    format!("steps {id:?} and {dep:?} wait for each other (a cycle)"),
                );
            }
            if let Some(p) = all_ids.iter().position(|x| *x == d) {
                stack.push(p);
            }
        }
    }
    cx.err(
        ErrorKind::UnknownDependency,
        wpath,
        format!("step {id:?} waits for {dep:?}, which is declared after it; a step may only wait for steps declared before it"),
    )
}

pub(crate) fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[allow(clippy::too_many_arguments)]
fn step(
    cx: &Context,
    path: &str,
    index: usize,
    rs: &RawStep,
    step_timeout: u64,
    task_env: &[String],
    task_wd: &str,
    default_network: &str,
    volume_names: &HashSet<&str>,
    networks: &[Network],
) -> Result<Step, TaskError> {
    let id = step_id(cx, path, index, rs)?;
    let (kind, flags) = step_kind(cx, path, rs)?;
    let (registry_cache, cache) = step_cache(cx, path, rs)?;
    let mounts = step_mounts(cx, path, rs, &flags, volume_names)?;
    let privileged = rs.privileged.unwrap_or(false) || flags.privileged;
    if privileged && !cx.allow_privileged {
        return Err(cx.err(
            ErrorKind::NotAllowed,
            &format!("{path}.{}", if flags.privileged { "cmd" } else { "privileged" }),
            "privileged steps are not allowed here (the operator can allow them with --allow-privileged)",
        ));
    }
    let p = |k: &str| format!("{path}.{k}");
    let network = step_network(cx, path, rs, &flags, &kind, default_network, networks)?;
    let ports = step_ports(cx, path, rs, &flags)?;
    Ok(Step {
        id,
        kind,
        when: Vec::new(),
        timeout: match rs.timeout {
            None => step_timeout,
            Some(t) if t > 0 => t as u64,
            Some(t) => return Err(cx.err(ErrorKind::InvalidValue, &p("timeout"), format!("timeout must be > 0, not {t}"))),
        },
        start_delay: non_negative(cx, &p("startDelay"), rs.start_delay, 0, "startDelay")?,
        retries: non_negative(cx, &p("retries"), rs.retries, 0, "retries")?,
        retry_delay: non_negative(cx, &p("retryDelay"), rs.retry_delay, DEFAULT_RETRY_DELAY, "retryDelay")?,
        retry_on_errors: rs.retry_on_errors.clone().unwrap_or_default(),
        repeat: non_negative(cx, &p("repeat"), rs.repeat, 0, "repeat")?,
        detach: rs.detach.unwrap_or(false) || flags.detach,
        keep: rs.keep.unwrap_or(false),
        ignore_errors: rs.ignore_errors.unwrap_or(false),
        disable_working_directory_override: rs.disable_working_directory_override.unwrap_or(false),
        entry_point: rs.entry_point.clone().or(flags.entry_point.clone()),
        // `-e` flags win over the step's `env`, which wins over the task's.
        env: merge_env(task_env, &with_flag_env(&flags.env, rs.env.as_deref().unwrap_or_default()))
            .iter()
            .map(|e| unquote_env(e))
            .collect(),
        expose: rs.expose.clone().unwrap_or_default(),
        ports,
        network,
        user: rs.user.clone().or(flags.user.clone()),
        working_directory: rs
            .working_directory
            .clone()
            .filter(|w| !w.is_empty())
            .or(flags.working_directory.clone())
            .unwrap_or_else(|| task_wd.to_string()),
        privileged,
        pull: rs.pull.unwrap_or(false),
        isolation: rs.isolation.clone(),
        cpus: rs.cpus,
        memory: flags.memory,
        pids_limit: flags.pids_limit,
        shm_size: flags.shm_size,
        cache,
        registry_cache,
        volume_mounts: mounts,
        cmd_download_retries: non_negative(cx, &p("cmdDownloadRetries"), rs.cmd_download_retries, 0, "cmdDownloadRetries")?,
        cmd_download_retry_delay: non_negative(
            cx,
            &p("cmdDownloadRetryDelay"),
            rs.cmd_download_retry_delay,
            0,
            "cmdDownloadRetryDelay",
        )?,
        exited_with: rs.exited_with.clone().unwrap_or_default(),
        exited_without: rs.exited_without.clone().unwrap_or_default(),
        line: cx.positions.locate(cx.file, path).line,
    })
}

/// A step's id: given, or `acb_step_N`; letters, digits, `-`, `_`, `.` (it is also a
/// container and host name).
fn step_id(cx: &Context, path: &str, index: usize, rs: &RawStep) -> Result<String, TaskError> {
    let id = rs.id.clone().unwrap_or_else(|| format!("acb_step_{index}"));
    if id.chars().any(char::is_whitespace) {
        return Err(cx.err(
            ErrorKind::InvalidId,
            &format!("{path}.id"),
            format!("step id {id:?} contains a space"),
        ));
    }
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(cx.err(
            ErrorKind::InvalidId,
            &format!("{path}.id"),
            format!("step id {id:?} must be letters, digits, '-', '_' or '.' (it is also a container and host name)"),
        ));
    }
    Ok(id)
}

/// What a step does (exactly one of `cmd`, `build` and `push`), and the `docker run`
/// flags its `cmd` gives.
fn step_kind(cx: &Context, path: &str, rs: &RawStep) -> Result<(StepKind, crate::run_flags::RunFlags), TaskError> {
    let types = [rs.cmd.is_some(), rs.build.is_some(), rs.push.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if types == 0 {
        return Err(cx.err(ErrorKind::MissingStepType, path, "step has none of cmd, build or push"));
    }
    if types > 1 {
        return Err(cx.err(
            ErrorKind::MultipleStepTypes,
            path,
            "step must have exactly one of cmd, build or push",
        ));
    }
    let mut flags = crate::run_flags::RunFlags::default();
    let kind = if let Some(text) = &rs.build {
        let spec = build_args::parse(text).map_err(|e| cx.err(ErrorKind::InvalidBuildArgs, &format!("{path}.build"), e))?;
        for tag in &spec.tags {
            check_image(cx, &format!("{path}.build"), tag, "build tag")?;
        }
        StepKind::Build { build: text.clone(), spec }
    } else if let Some(images) = &rs.push {
        if let Some(key) = rs.keys_set().into_iter().find(|k| !PUSH_STEP_KEYS.contains(k)) {
            return Err(cx.err(
                if key == "volumeMounts" {
                    ErrorKind::Mount
                } else {
                    ErrorKind::NotAllowed
                },
                &format!("{path}.{key}"),
                format!(
                    "a push step cannot have {key}; push steps accept only {}",
                    PUSH_STEP_KEYS.join(", ")
                ),
            ));
        }
        if images.is_empty() {
            return Err(cx.err(ErrorKind::InvalidValue, &format!("{path}.push"), "push lists no images"));
        }
        let mut push: Vec<String> = Vec::new();
        for (j, image) in images.iter().enumerate() {
            check_image(cx, &format!("{path}.push[{j}]"), image, "push image")?;
            let tagged = with_default_tag(image);
            if !push.contains(&tagged) {
                push.push(tagged);
            }
        }
        StepKind::Push { push }
    } else {
        let text = rs.cmd.clone().unwrap_or_default();
        let mut words = shell_words::split(&text)
            .map_err(|e| cx.err(ErrorKind::InvalidCmd, &format!("{path}.cmd"), format!("cannot split cmd: {e}")))?;
        flags = crate::run_flags::take(&mut words).map_err(|e| cx.err(ErrorKind::InvalidCmd, &format!("{path}.cmd"), e))?;
        if words.is_empty() {
            return Err(cx.err(ErrorKind::InvalidCmd, &format!("{path}.cmd"), "cmd names no image"));
        }
        let mut image = words.remove(0);
        if let Some(aliased) = cx.aliases.and_then(|a| a.image(&image)) {
            image = aliased.to_string();
        }
        check_image(cx, &format!("{path}.cmd"), &image, "cmd image")?;
        StepKind::Cmd {
            cmd: text,
            image,
            args: words,
        }
    };
    Ok((kind, flags))
}

/// `cache:` as acb reads it: whether the registry cache is used (`enabled`) and whether
/// the layer cache is (`disabled` turns it off).
fn step_cache(cx: &Context, path: &str, rs: &RawStep) -> Result<(bool, bool), TaskError> {
    let registry_cache = rs.cache.as_deref().is_some_and(|c| c.eq_ignore_ascii_case("enabled"));
    let cache = match rs.cache.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("enabled") => true,
        Some("disabled") => false,
        Some(other) => {
            return Err(cx.err(
                ErrorKind::InvalidValue,
                &format!("{path}.cache"),
                format!("cache must be \"enabled\" or \"disabled\", not {other:?}"),
            ))
        }
    };
    Ok((registry_cache, cache))
}

/// The declared volumes a step mounts, by `volumeMounts` and `-v`, each path once.
fn step_mounts(
    cx: &Context,
    path: &str,
    rs: &RawStep,
    flags: &crate::run_flags::RunFlags,
    volume_names: &HashSet<&str>,
) -> Result<Vec<Mount>, TaskError> {
    let mut mounts = Vec::new();
    let mut mount_paths = HashSet::new();
    for (j, m) in rs.volume_mounts.iter().flatten().enumerate() {
        let mpath = format!("{path}.volumeMounts[{j}]");
        let name = m
            .name
            .clone()
            .ok_or_else(|| cx.err(ErrorKind::Mount, &mpath, "volume mount has no name"))?;
        let mount_path = m
            .mount_path
            .clone()
            .ok_or_else(|| cx.err(ErrorKind::Mount, &mpath, "volume mount has no mountPath"))?;
        if !volume_names.contains(name.as_str()) {
            return Err(cx.err(
                ErrorKind::Mount,
                &format!("{mpath}.name"),
                format!("volume mount names {name:?}, which is not a declared volume"),
            ));
        }
        if !mount_paths.insert(mount_path.clone()) {
            return Err(cx.err(
                ErrorKind::Mount,
                &format!("{mpath}.mountPath"),
                format!("two volume mounts use the path {mount_path:?}"),
            ));
        }
        mounts.push(Mount { name, mount_path });
    }
    for (name, mount_path) in &flags.volumes {
        if !volume_names.contains(name.as_str()) {
            return Err(cx.err(
                ErrorKind::Mount,
                &format!("{path}.cmd"),
                format!("-v mounts {name:?}, which is not a declared volume"),
            ));
        }
        if !mount_paths.insert(mount_path.clone()) {
            return Err(cx.err(
                ErrorKind::Mount,
                &format!("{path}.cmd"),
                format!("two volume mounts use the path {mount_path:?}"),
            ));
        }
        mounts.push(Mount {
            name: name.clone(),
            mount_path: mount_path.clone(),
        });
    }
    Ok(mounts)
}

/// The network a step joins: its own, its `--network`, or the task's default; only the
/// task's networks unless the operator allows others.
fn step_network(
    cx: &Context,
    path: &str,
    rs: &RawStep,
    flags: &crate::run_flags::RunFlags,
    kind: &StepKind,
    default_network: &str,
    networks: &[Network],
) -> Result<String, TaskError> {
    let p = |k: &str| format!("{path}.{k}");
    let network = rs
        .network
        .clone()
        .or(flags.network.clone())
        .unwrap_or_else(|| default_network.to_string());
    let build_network = match kind {
        StepKind::Build { spec, .. } => spec.network.as_deref(),
        _ => None,
    };
    if !cx.allow_host_network {
        // Only the run's own networks: `container:X` would join another workload's
        // namespace, and a name the task did not declare is someone else's network.
        let declared = |n: &str| networks.iter().any(|d| d.name == n);
        if network != "host" && network != "none" && !declared(&network) {
            return Err(cx.err(
                ErrorKind::NotAllowed,
                &p("network"),
                format!(
                    "network {network:?} is not one of the task's networks; steps join only networks the task declares (the operator can allow others with allow_host_network)"
                ),
            ));
        }
        if let Some(n) = build_network.filter(|n| !matches!(*n, "default" | "none" | "host")) {
            return Err(cx.err(
                ErrorKind::NotAllowed,
                &p("build"),
                format!("a build's --network may only be default or none here, not {n:?} (the operator can allow others with allow_host_network)"),
            ));
        }
    }
    if !cx.allow_host_network && (network == "host" || build_network == Some("host")) {
        let field = if network == "host" { p("network") } else { p("build") };
        return Err(cx.err(
            ErrorKind::NotAllowed,
            &field,
            "the host's network is not allowed here: a step on it reaches every service on the machine (the operator can allow it with allow_host_network)",
        ));
    }
    Ok(network)
}

/// The ports a step publishes (`ports:` and `-p`), on loopback unless the operator
/// allows other addresses.
fn step_ports(cx: &Context, path: &str, rs: &RawStep, flags: &crate::run_flags::RunFlags) -> Result<Vec<PortMapping>, TaskError> {
    let mut texts = rs.ports.clone().unwrap_or_default();
    texts.extend(flags.ports.iter().cloned());
    let mut ports = Vec::new();
    for (j, text) in texts.iter().enumerate() {
        let port = PortMapping::parse(text).map_err(|e| cx.err(ErrorKind::InvalidValue, &format!("{path}.ports[{j}]"), e))?;
        if !cx.allow_public_ports && port.is_public() {
            return Err(cx.err(
                ErrorKind::NotAllowed,
                &format!("{path}.ports[{j}]"),
                format!(
                    "port {text:?} is published on {}, which is not loopback; publish on 127.0.0.1 (the operator can allow other addresses with allow_public_ports)",
                    port.host_ip.as_deref().unwrap_or_default()
                ),
            ));
        }
        ports.push(port);
    }
    Ok(ports)
}

fn secrets(cx: &Context, raw: &RawTask) -> Result<Vec<Secret>, TaskError> {
    let mut out: Vec<Secret> = Vec::new();
    for (i, s) in raw.secrets.iter().flatten().enumerate() {
        let path = format!("secrets[{i}]");
        let id =
            s.id.clone()
                .filter(|x| !x.is_empty())
                .ok_or_else(|| cx.err(ErrorKind::Secret, &path, "secret has no id"))?;
        if out.iter().any(|o| o.id == id) {
            return Err(cx.err(ErrorKind::Secret, &format!("{path}.id"), format!("duplicate secret id {id:?}")));
        }
        if let Some(client) = &s.client_id {
            if !is_guid(client) {
                return Err(cx.err(
                    ErrorKind::Secret,
                    &format!("{path}.clientID"),
                    format!("secret {id:?}: clientID {client:?} is not a GUID"),
                ));
            }
        }
        if !cx.provided_secrets.contains(&id) && !cx.allow_host_secrets && (s.env.is_some() || s.file.is_some()) {
            let key = if s.env.is_some() { "env" } else { "file" };
            return Err(cx.err(
                ErrorKind::Secret,
                &format!("{path}.{key}"),
                format!(
                    "secret {id:?} reads the {} of the machine running the task, which is not allowed here; give its value as a secret of the run (--set-secret {id}=…)",
                    if key == "env" { "environment" } else { "files" }
                ),
            ));
        }
        let source = if cx.provided_secrets.contains(&id) {
            SecretSource::Provided
        } else if let Some(e) = &s.env {
            SecretSource::Env(e.clone())
        } else if let Some(f) = &s.file {
            SecretSource::File(f.clone())
        } else if let Some(k) = &s.keyvault {
            SecretSource::KeyVault(k.clone())
        } else {
            return Err(cx.err(
                ErrorKind::Secret,
                &path,
                format!("secret {id:?} has no source: give `env:` or `file:` in the task, or its value with --set-secret {id}=…"),
            ));
        };
        out.push(Secret { id, source });
    }
    Ok(out)
}

/// A name that is also a file name on the host: no separators, never `.` or `..`.
fn safe_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn volumes(cx: &Context, raw: &RawTask) -> Result<Vec<Volume>, TaskError> {
    let mut out: Vec<Volume> = Vec::new();
    for (i, v) in raw.volumes.iter().flatten().enumerate() {
        let path = format!("volumes[{i}]");
        let name = v
            .name
            .clone()
            .filter(|x| !x.is_empty())
            .ok_or_else(|| cx.err(ErrorKind::Volume, &path, "volume has no name"))?;
        if !safe_name(&name) {
            return Err(cx.err(
                ErrorKind::Volume,
                &format!("{path}.name"),
                format!("volume name {name:?} is not well formed: use letters, digits, '-', '_' and '.'"),
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(cx.err(
                ErrorKind::Volume,
                &format!("{path}.name"),
                format!("duplicate volume name {name:?}"),
            ));
        }
        let Some(secret) = &v.secret else {
            return Err(cx.err(ErrorKind::Volume, &path, format!("volume {name:?} has no secret map of files")));
        };
        let mut files = BTreeMap::new();
        for (file, content) in secret {
            let fpath = format!("{path}.secret.{file}");
            if !safe_name(file) {
                return Err(cx.err(
                    ErrorKind::Volume,
                    &fpath,
                    format!("file name {file:?} is not well formed: use letters, digits, '-', '_' and '.'"),
                ));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content.trim())
                .map_err(|_| cx.err(ErrorKind::Volume, &fpath, format!("the content of {file:?} is not base64")))?;
            files.insert(file.clone(), bytes);
        }
        out.push(Volume {
            name,
            file_names: files.keys().cloned().collect(),
            files,
        });
    }
    Ok(out)
}

fn networks(cx: &Context, raw: &RawTask) -> Result<Vec<Network>, TaskError> {
    let Some(list) = &raw.networks else {
        return Ok(vec![Network {
            name: DEFAULT_NETWORK.into(),
            driver: "bridge".into(),
            ipv6: false,
            skip_creation: false,
            is_default: true,
        }]);
    };
    let mut out: Vec<Network> = Vec::new();
    for (i, n) in list.iter().enumerate() {
        let path = format!("networks[{i}]");
        let name = n
            .name
            .clone()
            .filter(|x| !x.is_empty())
            .ok_or_else(|| cx.err(ErrorKind::Network, &path, "network has no name"))?;
        if out.iter().any(|o| o.name == name) {
            return Err(cx.err(
                ErrorKind::Network,
                &format!("{path}.name"),
                format!("duplicate network name {name:?}"),
            ));
        }
        if n.skip_creation.unwrap_or(false) && !cx.allow_host_network && name != "host" {
            return Err(cx.err(
                ErrorKind::NotAllowed,
                &format!("{path}.skipCreation"),
                format!(
                    "network {name:?} is one that already exists (skipCreation), which would join other workloads; steps use networks the run creates here (the operator can allow it with allow_host_network)"
                ),
            ));
        }
        let is_default = n.is_default.unwrap_or(false);
        if is_default && out.iter().any(|o| o.is_default) {
            return Err(cx.err(
                ErrorKind::Network,
                &format!("{path}.isDefault"),
                "only one network can be the default",
            ));
        }
        out.push(Network {
            name,
            driver: n.driver.clone().unwrap_or_default(),
            ipv6: n.ipv6.unwrap_or(false),
            skip_creation: n.skip_creation.unwrap_or(false),
            is_default,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merge_matches_acb() {
        let task = vec!["key1=val1,key2=val2".to_string(), "key3=val3,key4=val4".to_string()];
        let step = vec!["key1=newVal1".to_string(), "key2=newVal2".to_string(), "key3=newVal3=".to_string()];
        assert_eq!(
            merge_env(&task, &step),
            ["key1=newVal1", "key2=newVal2", "key3=newVal3=", "key4=val4"]
        );
        assert_eq!(merge_env(&task, &[]), ["key1=val1", "key2=val2", "key3=val3", "key4=val4"]);
        assert_eq!(merge_env(&[], &["NOEQUALS".to_string()]), ["NOEQUALS"]);
    }

    #[test]
    fn env_values_are_unquoted_as_acb_does() {
        for (given, want) in [
            ("X='v'", "X=v"),
            ("X=\"a b\"", "X=a b"),
            ("X=a b", "X=a b"),
            ("X=it's", "X=it's"),
            ("X=", "X="),
            ("NOEQUALS", "NOEQUALS"),
            ("X='a'b", "X=ab"),
            ("X=a=b", "X=a=b"),
        ] {
            assert_eq!(unquote_env(given), want, "{given}");
        }
    }

    #[test]
    fn default_tags() {
        assert_eq!(with_default_tag("reg.io/app"), "reg.io/app:latest");
        assert_eq!(with_default_tag("reg.io/app:v1"), "reg.io/app:v1");
        assert_eq!(with_default_tag("127.0.0.1:5000/app"), "127.0.0.1:5000/app:latest");
    }

    #[test]
    fn suggestions() {
        assert_eq!(nearest("tiemout", crate::raw::STEP_KEYS.iter().copied()), Some("timeout"));
        assert_eq!(nearest("zzzzzzzz", crate::raw::STEP_KEYS.iter().copied()), None);
    }
}
