//! A new container's config: what it may be given, with every name it uses rewritten to
//! the run's engine names.

use super::gojson::{self, Object};
use super::{first, needs_setting, pass, with_param, Ask, Before, Body, Forward, Halt, Known, Owner, Policy, Refusal, Request};
use serde_json::Value;

pub(super) fn create(policy: &Policy, ask: &mut Ask, req: &Request) -> Result<Forward, Halt> {
    let mut body = req.body.cloned().ok_or(Halt::Body)?;
    let config = gojson::strukt(&mut body, "the container config")?;
    refuse_top_level_host_config(config)?;
    gojson::stamp_label(config, policy.label())?;
    super::images::container_image(ask, config)?;
    // Without a `HostConfig` the engine reads host config fields from the top level of
    // the body; with one, it reads only that object, the one checked here.
    host_config(policy, ask, gojson::strukt_at(config, "HostConfig")?)?;
    if let Some(networking) = gojson::get_mut(config, "NetworkingConfig") {
        let networking = gojson::strukt(networking, "NetworkingConfig")?;
        if let Some(endpoints) = gojson::get_mut(networking, "EndpointsConfig") {
            endpoints_config(policy, ask, endpoints)?;
        }
    }
    let query = &req.target.query;
    let mut forward = Forward {
        body: Body::Json(body),
        ..pass(req)
    };
    if let Some(name) = first(query, "name").filter(|n| !n.is_empty()) {
        forward.query = with_param(query, "name", &policy.container_name(name));
    }
    Ok(forward)
}

/// The host config's fields (with `Resources`' and the old `Cpuset`): the engine reads
/// them from the top level of a create body too, merged past the `HostConfig` checked.
const HOST_CONFIG_FIELDS: &[&str] = &[
    "Binds",
    "ContainerIDFile",
    "LogConfig",
    "NetworkMode",
    "PortBindings",
    "RestartPolicy",
    "AutoRemove",
    "VolumeDriver",
    "VolumesFrom",
    "ConsoleSize",
    "Annotations",
    "CapAdd",
    "CapDrop",
    "CgroupnsMode",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "IpcMode",
    "Cgroup",
    "Links",
    "OomScoreAdj",
    "PidMode",
    "Privileged",
    "PublishAllPorts",
    "ReadonlyRootfs",
    "SecurityOpt",
    "StorageOpt",
    "Tmpfs",
    "UTSMode",
    "UsernsMode",
    "ShmSize",
    "Sysctls",
    "Runtime",
    "Isolation",
    "MaskedPaths",
    "ReadonlyPaths",
    "Init",
    "Mounts",
    "CpuShares",
    "Memory",
    "NanoCpus",
    "CgroupParent",
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetCpus",
    "CpusetMems",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "KernelMemory",
    "KernelMemoryTCP",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "OomKillDisable",
    "PidsLimit",
    "Ulimits",
    "CpuCount",
    "CpuPercent",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
    "Cpuset",
];

fn refuse_top_level_host_config(config: &Object) -> Result<(), Refusal> {
    match HOST_CONFIG_FIELDS.iter().find(|f| gojson::get(config, f).is_some()) {
        Some(field) => Err(Refusal::bad_request(format!(
            "{field} at the top level of a container config is read as host config past every check: give it inside HostConfig"
        ))),
        None => Ok(()),
    }
}

fn host_config(policy: &Policy, ask: &mut Ask, host: &mut Object) -> Result<(), Refusal> {
    let scope = &policy.scope;
    if !scope.trust_host {
        refuse_host_access(scope, host)?;
        limits(host)?;
        drop_capabilities(&scope.cap_drop, host)?;
    }
    if let Some(sizes) = &scope.step_limits {
        step_sizes(sizes, host)?;
    }
    for (field, _) in NAMESPACES {
        let mode = gojson::string(host, field)?.to_string();
        if let Some(reference) = container_mode(&mode) {
            if let Some(c) = ask.body_container(reference)? {
                gojson::set(host, field, Value::String(format!("container:{}", c.id)));
            }
        }
    }
    if gojson::is_set(host, "PublishAllPorts") && !scope.allow_public_ports {
        return Err(needs_setting("publishing all ports (-P)", "allow_public_ports"));
    }
    if !scope.allow_public_ports {
        if let Some(ports) = gojson::get_mut(host, "PortBindings") {
            loopback_ports(ports)?;
        }
    }
    let mode = gojson::string(host, "NetworkMode")?.to_string();
    if let Some(engine) = network_mode(policy, ask, &mode)? {
        if engine != mode {
            gojson::set(host, "NetworkMode", Value::String(engine));
        }
    }
    if let Some(binds) = gojson::get_mut(host, "Binds") {
        for bind in string_list(binds, "Binds")? {
            if let Some(rewritten) = bind_spec(policy, ask, bind)? {
                *bind = rewritten;
            }
        }
    }
    if let Some(mounts) = gojson::get_mut(host, "Mounts") {
        let Value::Array(mounts) = mounts else {
            return Err(Refusal::bad_request("Mounts must be a list"));
        };
        for m in mounts {
            mount(policy, ask, gojson::strukt(m, "a mount")?)?;
        }
    }
    if let Some(from) = gojson::get_mut(host, "VolumesFrom") {
        for spec in string_list(from, "VolumesFrom")? {
            let (reference, mode) = match spec.split_once(':') {
                Some((r, m)) => (r.to_string(), Some(m.to_string())),
                None => (spec.clone(), None),
            };
            if let Some(c) = ask.body_container(&reference)? {
                *spec = match mode {
                    Some(m) => format!("{}:{m}", c.id),
                    None => c.id,
                };
            }
        }
    }
    links(ask, host)
}

/// A negative OOM score makes the host's other processes die first; raised ulimits give
/// a container more than the engine's processes have.
fn limits(host: &Object) -> Result<(), Refusal> {
    if let Some(adj) = gojson::get(host, "OomScoreAdj") {
        if adj.as_i64().unwrap_or(0) < 0 {
            return Err(Refusal::forbidden(
                "a negative OomScoreAdj (--oom-score-adj) is not allowed in this run: the host's processes would be killed first",
            ));
        }
    }
    match gojson::get(host, "Ulimits") {
        Some(list) => ulimits(list),
        None => Ok(()),
    }
}

/// A whole number field as Go's decoder reads an `int64`: absent and null are `None`.
fn whole(map: &Object, field: &str) -> Result<Option<i64>, Refusal> {
    match gojson::get(map, field) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| Refusal::bad_request(format!("{field} must be a whole number"))),
    }
}

fn over(message: String) -> Refusal {
    Refusal::forbidden(format!("{message} (the operator's step limits)"))
}

/// Memory, processes, `/dev/shm` and each tmpfs of a container a step starts: the
/// daemon's defaults where it asks for none (Docker's "0" and "-1" mean none, which
/// here is the default, not unlimited), what it asks for up to the operator's most.
fn step_sizes(limits: &slipway_limits::StepLimits, host: &mut Object) -> Result<(), Refusal> {
    let asked = |v: Option<i64>| v.filter(|n| *n > 0).map(|n| n as u64);
    let memory = limits.memory.pick("memory", asked(whole(host, "Memory")?)).map_err(over)?;
    gojson::set(host, "Memory", Value::from(memory));
    // Memory and swap together: -1 (unlimited swap) or more than twice the memory is
    // more than the limit means.
    if let Some(swap) = whole(host, "MemorySwap")? {
        if swap < 0 || swap as u64 > memory.saturating_mul(2) {
            return Err(over(format!(
                "MemorySwap (--memory-swap) of {swap} asked for; this daemon allows memory and swap of at most twice the memory, {}",
                slipway_limits::step::bytes(memory.saturating_mul(2))
            )));
        }
    }
    let pids = limits.pids.pick("processes", asked(whole(host, "PidsLimit")?)).map_err(over)?;
    gojson::set(host, "PidsLimit", Value::from(pids));
    let shm = limits.shm.pick("a /dev/shm", asked(whole(host, "ShmSize")?)).map_err(over)?;
    gojson::set(host, "ShmSize", Value::from(shm));
    if let Some(tmpfs) = gojson::get_mut(host, "Tmpfs") {
        let Value::Object(tmpfs) = tmpfs else {
            return Err(Refusal::bad_request("Tmpfs must be a map of paths to options"));
        };
        for (path, options) in tmpfs.iter_mut() {
            let Value::String(text) = options else {
                return Err(Refusal::bad_request(format!("the options of tmpfs {path} must be a string")));
            };
            *text = tmpfs_options(limits, path, text)?;
        }
    }
    // The engine keeps a container's output on its disk: in rotating files, bounded.
    let kind = match gojson::get(host, "LogConfig") {
        Some(Value::Object(log)) => gojson::string(log, "Type")?.to_string(),
        _ => String::new(),
    };
    if matches!(kind.as_str(), "" | "json-file" | "local") {
        let options: serde_json::Map<String, Value> = limits
            .engine_log_options()
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect();
        gojson::set(host, "LogConfig", serde_json::json!({"Type": "local", "Config": options}));
    }
    if let Some(Value::Array(mounts)) = gojson::get_mut(host, "Mounts") {
        for m in mounts {
            let m = gojson::strukt(m, "a mount")?;
            if gojson::string(m, "Type")? != "tmpfs" {
                continue;
            }
            let target = gojson::string(m, "Target")?.to_string();
            let options = gojson::strukt_at(m, "TmpfsOptions")?;
            let size = limits
                .tmpfs
                .pick(&format!("a tmpfs at {target}"), asked(whole(options, "SizeBytes")?))
                .map_err(over)?;
            gojson::set(options, "SizeBytes", Value::from(size));
        }
    }
    Ok(())
}

/// A classic build's `memory=`, `memswap=` and `shmsize=` (the limits of its `RUN`
/// containers) as a step container's: the defaults where none is asked for, what is
/// asked for up to the operator's most.
pub(super) fn build_sizes(limits: &slipway_limits::StepLimits, query: &[(String, String)]) -> Result<Vec<(String, String)>, Refusal> {
    let number = |key: &str| -> Result<Option<i64>, Refusal> {
        match super::first(query, key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Refusal::bad_request(format!("{key}= must be a whole number of bytes"))),
        }
    };
    let asked = |v: Option<i64>| v.filter(|n| *n > 0).map(|n| n as u64);
    let memory = limits
        .memory
        .pick("a build's memory (--memory)", asked(number("memory")?))
        .map_err(over)?;
    if let Some(swap) = number("memswap")? {
        if swap < 0 || swap as u64 > memory.saturating_mul(2) {
            return Err(over(format!(
                "a build's memswap (--memory-swap) of {swap} asked for; this daemon allows memory and swap of at most twice the memory, {}",
                slipway_limits::step::bytes(memory.saturating_mul(2))
            )));
        }
    }
    let shm = limits
        .shm
        .pick("a build's /dev/shm (--shm-size)", asked(number("shmsize")?))
        .map_err(over)?;
    let query = super::with_param(query, "memory", &memory.to_string());
    Ok(super::with_param(&query, "shmsize", &shm.to_string()))
}

/// A tmpfs's mount options with its size checked, or the default size added.
fn tmpfs_options(limits: &slipway_limits::StepLimits, path: &str, options: &str) -> Result<String, Refusal> {
    let what = format!("a tmpfs at {path}");
    let mut kept: Vec<String> = Vec::new();
    let mut asked = None;
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some((key, value)) if key.trim().eq_ignore_ascii_case("size") => {
                asked = Some(
                    slipway_limits::step::parse_size(value)
                        .ok_or_else(|| Refusal::bad_request(format!("{what}: size {value:?} must be a size such as 64m or 1g")))?,
                );
            }
            _ => kept.push(option.to_string()),
        }
    }
    let size = limits.tmpfs.pick(&what, asked.filter(|a| *a > 0)).map_err(over)?;
    kept.push(format!("size={size}"));
    Ok(kept.join(","))
}

/// Ulimits (a create's `Ulimits`, a build's `ulimits=`) as the engine's Go decoder reads
/// them: keys in any case, one key per field. None may be raised past the engine's own.
pub(super) fn ulimits(list: &Value) -> Result<(), Refusal> {
    let list = match list {
        Value::Null => return Ok(()),
        Value::Array(list) => list,
        _ => return Err(Refusal::bad_request("Ulimits must be a list")),
    };
    for u in list {
        let mut u = u.clone();
        let u = gojson::strukt(&mut u, "a ulimit")?;
        let number = |field: &str| match gojson::get(u, field) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| Refusal::bad_request(format!("a ulimit's {field} must be a whole number"))),
        };
        let name = match gojson::get(u, "Name") {
            Some(Value::String(n)) => n.clone(),
            _ => return Err(Refusal::bad_request("a ulimit needs a Name")),
        };
        let (soft, hard) = (number("Soft")?, number("Hard")?);
        let ceiling = crate::host_limit(&name).ok_or_else(|| Refusal::bad_request(format!("unknown ulimit {name:?}")))?;
        let as_u64 = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
        if as_u64(soft) > ceiling || as_u64(hard) > ceiling {
            return Err(Refusal::forbidden(format!(
                "--ulimit {name}={soft}:{hard} is more than the engine's own limit ({ceiling}); a run may only lower ulimits"
            )));
        }
    }
    Ok(())
}

/// Adds the run's dropped capabilities to the container's `CapDrop`.
fn drop_capabilities(dropped: &[String], host: &mut Object) -> Result<(), Refusal> {
    if dropped.is_empty() {
        return Ok(());
    }
    let mut caps = gojson::strings(host, "CapDrop")?;
    for c in dropped {
        if !caps.iter().any(|x| x.trim_start_matches("CAP_").eq_ignore_ascii_case(c)) {
            caps.push(c.clone());
        }
    }
    gojson::set(host, "CapDrop", Value::Array(caps.into_iter().map(Value::String).collect()));
    Ok(())
}

/// The namespace modes a container may share with the host or another container.
const NAMESPACES: [(&str, &str); 6] = [
    ("PidMode", "--pid"),
    ("IpcMode", "--ipc"),
    ("UTSMode", "--uts"),
    ("UsernsMode", "--userns"),
    ("CgroupnsMode", "--cgroupns"),
    ("Cgroup", "--cgroup"),
];

/// Refuses what would give a container the host: privileges, capabilities, devices,
/// security options, host namespaces, other runtimes and drivers.
fn refuse_host_access(scope: &crate::Scope, host: &Object) -> Result<(), Refusal> {
    if gojson::is_set(host, "Privileged") && !scope.allow_privileged {
        return Err(needs_setting("privileged mode (--privileged)", "allow_privileged"));
    }
    let caps = gojson::strings(host, "CapAdd")?;
    if !caps.is_empty() {
        return Err(Refusal::forbidden(format!(
            "adding capabilities (--cap-add {}) is not allowed in this run",
            caps.join(", ")
        )));
    }
    for (field, what) in [
        ("Capabilities", "replacing the capability set (Capabilities)"),
        ("Devices", "host devices (--device)"),
        ("DeviceRequests", "device requests (--gpus)"),
        ("DeviceCgroupRules", "device cgroup rules (--device-cgroup-rule)"),
        ("Sysctls", "sysctls (--sysctl)"),
        ("CgroupParent", "a cgroup parent (--cgroup-parent)"),
    ] {
        if gojson::is_set(host, field) {
            return Err(Refusal::forbidden(format!("{what} is not allowed in this run")));
        }
    }
    // Present at all, even empty, these replace the engine's defaults.
    for field in ["ReadonlyPaths", "MaskedPaths"] {
        if gojson::get(host, field).is_some() {
            return Err(Refusal::forbidden(format!(
                "{field} is not allowed in this run: it replaces the paths the engine hides from containers"
            )));
        }
    }
    let security: Vec<String> = gojson::strings(host, "SecurityOpt")?
        .into_iter()
        .filter(|o| {
            !matches!(
                o.as_str(),
                "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
            )
        })
        .collect();
    if !security.is_empty() {
        return Err(Refusal::forbidden(format!(
            "security options (--security-opt {}) are not allowed in this run",
            security.join(", ")
        )));
    }
    let runtime = gojson::string(host, "Runtime")?;
    if !matches!(runtime, "" | "runc") {
        return Err(Refusal::forbidden(format!("the runtime {runtime} is not available in this run")));
    }
    let driver = gojson::string(host, "VolumeDriver")?;
    if !matches!(driver, "" | "local") {
        return Err(Refusal::forbidden(format!(
            "the volume driver {driver} is not available in this run"
        )));
    }
    if let Some(log) = gojson::get(host, "LogConfig") {
        let kind = match log {
            Value::Object(log) => gojson::string(log, "Type")?,
            Value::Null => "",
            _ => return Err(Refusal::bad_request("LogConfig must be a JSON object")),
        };
        if !matches!(kind, "" | "json-file" | "local" | "none") {
            return Err(Refusal::forbidden(format!(
                "the log driver {kind} is not available in this run: it would send logs from the host"
            )));
        }
    }
    for (field, flag) in NAMESPACES {
        let mode = gojson::string(host, field)?.to_string();
        if mode.eq_ignore_ascii_case("host") {
            return Err(Refusal::forbidden(format!("{flag} host ({field}) is not allowed in this run")));
        }
    }
    Ok(())
}

/// `X` of a `container:X` mode.
fn container_mode(mode: &str) -> Option<&str> {
    const PREFIX: &str = "container:";
    mode.get(..PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(PREFIX))
        .map(|_| &mode[PREFIX.len()..])
}

fn string_list<'v>(value: &'v mut Value, field: &str) -> Result<Vec<&'v mut String>, Refusal> {
    let bad = || Refusal::bad_request(format!("{field} must be a list of strings"));
    let Value::Array(items) = value else {
        return Err(bad());
    };
    items
        .iter_mut()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            _ => Err(bad()),
        })
        .collect()
}

/// The engine network for a network mode (or a network's name), `None` while unknown.
pub(super) fn network_mode(policy: &Policy, ask: &mut Ask, mode: &str) -> Result<Option<String>, Refusal> {
    let scope = &policy.scope;
    if matches!(mode, "" | "default" | "bridge") {
        return Ok(Some(scope.default_network.clone().unwrap_or_else(|| mode.to_string())));
    }
    if mode == "none" {
        return Ok(Some(mode.to_string()));
    }
    if mode.eq_ignore_ascii_case("host") {
        return if scope.allow_host_network {
            Ok(Some(mode.to_string()))
        } else {
            Err(needs_setting("the host network (--network host)", "allow_host_network"))
        };
    }
    if let Some(reference) = container_mode(mode) {
        return Ok(ask.body_container(reference)?.map(|c| format!("container:{}", c.id)));
    }
    match ask.network(mode) {
        Known::Yes(engine) => Ok(Some(engine)),
        Known::No => Err(Refusal::forbidden(format!("network {mode} does not belong to this run"))),
        Known::Unknown => Ok(None),
    }
}

/// Renames the networks a container joins to the run's engine names.
fn endpoints_config(policy: &Policy, ask: &mut Ask, endpoints: &mut Value) -> Result<(), Refusal> {
    let Value::Object(map) = endpoints else {
        return Err(Refusal::bad_request("EndpointsConfig must be a JSON object"));
    };
    for (name, mut settings) in std::mem::take(map) {
        endpoint_links(ask, gojson::strukt(&mut settings, "an endpoint config")?)?;
        let engine = network_mode(policy, ask, &name)?.unwrap_or(name);
        map.insert(engine, settings);
    }
    Ok(())
}

/// Links in an endpoint config name containers too.
pub(super) fn endpoint_links(ask: &mut Ask, settings: &mut Object) -> Result<(), Refusal> {
    links(ask, settings)
}

/// `Links` (`name[:alias]`): the container must be the run's; the alias stays what the
/// client called it.
fn links(ask: &mut Ask, config: &mut Object) -> Result<(), Refusal> {
    let Some(list) = gojson::get_mut(config, "Links") else {
        return Ok(());
    };
    for link in string_list(list, "Links")? {
        let parts: Vec<&str> = link.split(':').collect();
        let (reference, alias) = match parts.as_slice() {
            [name] => (name.trim_start_matches('/'), name.trim_start_matches('/')),
            [name, alias] => (name.trim_start_matches('/'), alias.rsplit('/').next().unwrap_or(alias)),
            _ => return Err(Refusal::bad_request(format!("invalid link {link:?}"))),
        };
        if let Some(c) = ask.body_container(reference)? {
            *link = format!("{}:{alias}", c.name);
        }
    }
    Ok(())
}

/// Published ports stay on loopback: an address left out becomes 127.0.0.1; one given
/// that is not loopback (0.0.0.0 included: the client asked for every interface) is refused.
fn loopback_ports(ports: &mut Value) -> Result<(), Refusal> {
    let Value::Object(ports) = ports else {
        return Err(Refusal::bad_request("PortBindings must be a JSON object"));
    };
    for (port, bindings) in ports.iter_mut() {
        let bindings = match bindings {
            Value::Null => continue,
            Value::Array(b) => b,
            _ => return Err(Refusal::bad_request("PortBindings values must be lists")),
        };
        for binding in bindings {
            let binding = gojson::strukt(binding, "a port binding")?;
            let ip = gojson::string(binding, "HostIp")?.to_string();
            if ip.is_empty() {
                gojson::set(binding, "HostIp", Value::String("127.0.0.1".into()));
                continue;
            }
            let addr = slipway_reference::host::address(&ip)
                .ok_or_else(|| Refusal::bad_request(format!("invalid host address {ip:?} for port {port}")))?;
            if !slipway_reference::host::is_loopback_address(addr) {
                return Err(Refusal::forbidden(format!(
                    "publishing port {port} on {ip} is not allowed in this run (the operator setting allow_public_ports allows it); leave the address out to publish on 127.0.0.1"
                )));
            }
        }
    }
    Ok(())
}

/// A `Binds` entry (`src:dst[:opts]`, or `dst` alone for an anonymous volume).
fn bind_spec(policy: &Policy, ask: &mut Ask, spec: &str) -> Result<Option<String>, Refusal> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, rest) = match parts.as_slice() {
        [_] => return Ok(Some(spec.to_string())),
        [source, rest @ ..] if rest.len() <= 2 => (*source, rest),
        _ => return Err(Refusal::bad_request(format!("invalid bind {spec:?}"))),
    };
    let source = if source.starts_with('/') {
        host_source(policy, ask, source)?
    } else {
        volume_source(policy, ask, source)?
    };
    let Some(source) = source else {
        return Ok(None);
    };
    if source.contains(':') {
        return Err(Refusal::forbidden(format!("{source} contains ':' and cannot be given as a bind")));
    }
    Ok(Some(
        std::iter::once(source.as_str())
            .chain(rest.iter().copied())
            .collect::<Vec<_>>()
            .join(":"),
    ))
}

fn mount(policy: &Policy, ask: &mut Ask, m: &mut Object) -> Result<(), Refusal> {
    let kind = gojson::string(m, "Type")?.to_string();
    let source = gojson::string(m, "Source")?.to_string();
    let rewritten = match kind.as_str() {
        "bind" if source.starts_with('/') => host_source(policy, ask, &source)?,
        "bind" => return Err(Refusal::bad_request(format!("bind source {source:?} must be an absolute path"))),
        "volume" => {
            if let Some(options) = gojson::get_mut(m, "VolumeOptions") {
                if gojson::is_set(gojson::strukt(options, "VolumeOptions")?, "DriverConfig") {
                    return Err(Refusal::forbidden(
                        "a volume driver config in a mount is not allowed in this run: it can mount host paths",
                    ));
                }
            }
            match source.as_str() {
                "" => None, // anonymous
                name => volume_source(policy, ask, name)?,
            }
        }
        "tmpfs" => None,
        other => {
            return Err(Refusal::forbidden(format!(
                "mounts of type {other:?} are not available through this run's engine socket"
            )))
        }
    };
    if let Some(source) = rewritten {
        gojson::set(m, "Source", Value::String(source));
    }
    Ok(())
}

/// A host path to mount: the engine socket (this proxy's), or the workspace or beneath it.
fn host_source(policy: &Policy, ask: &mut Ask, source: &str) -> Result<Option<String>, Refusal> {
    if matches!(source, "/var/run/docker.sock" | "/run/docker.sock") {
        return match policy.own_socket.to_str() {
            Some(own) => Ok(Some(own.to_string())),
            None => Err(Refusal::forbidden("the engine socket cannot be mounted in this run")),
        };
    }
    let rest = match source.strip_prefix("/workspace") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        // On a person's own machine a host path is theirs to mount.
        _ if policy.scope.trust_host => return Ok(Some(source.to_string())),
        _ => {
            return Err(Refusal::forbidden(format!(
                "host path {source} cannot be mounted in this run: only /workspace and paths beneath it can"
            )))
        }
    };
    let mut relative = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(Refusal::forbidden(format!("bind source {source}: `..` is not allowed"))),
            part => relative.push(part),
        }
    }
    if policy.scope.workspace.is_none() {
        return Err(Refusal::forbidden(format!("{source} cannot be mounted: this run has no workspace")));
    }
    // A path beneath the workspace is checked now but mounted by the engine when the
    // container starts, and the run can swap one of its directories for a symlink in
    // between: only the workspace itself, which the run cannot replace, is mounted.
    if !relative.is_empty() && !policy.scope.trust_host {
        return Err(Refusal::forbidden(format!(
            "{source} cannot be mounted in this run: only /workspace itself can (mount it and use the path inside)"
        )));
    }
    match ask.workspace(&relative.join("/")) {
        Known::Yes(host) => Ok(Some(host)),
        Known::No => Err(Refusal::forbidden(format!("bind source {source} leads outside the workspace"))),
        Known::Unknown => Ok(None),
    }
}

/// A named volume to mount: the run's; one the engine lacks is created for the run, as
/// the engine itself would create it on first use.
fn volume_source(policy: &Policy, ask: &mut Ask, name: &str) -> Result<Option<String>, Refusal> {
    if name.is_empty() {
        return Ok(Some(String::new()));
    }
    let valid = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(Refusal::bad_request(format!("invalid volume name {name:?}")));
    }
    match ask.volume(name) {
        Known::Yes(Owner::Run(engine)) => Ok(Some(engine)),
        Known::Yes(Owner::Absent) => {
            let engine = policy.scoped_name(name);
            let create = Before::CreateVolume {
                client: name.to_string(),
                engine: engine.clone(),
            };
            if !ask.before.contains(&create) {
                ask.before.push(create);
            }
            Ok(Some(engine))
        }
        Known::Yes(Owner::Other) | Known::No => Err(Refusal::forbidden(format!("volume {name} does not belong to this run"))),
        Known::Unknown => Ok(None),
    }
}
