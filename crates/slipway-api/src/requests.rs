//! Run requests → the task text and values the runner takes. A quick build is a task
//! of two steps (build, then push), so every request shares one runner.

use crate::model::RunType;
use crate::model::{Argument, DockerBuildRequest, EncodedTaskRunRequest, FileTaskRunRequest, RunRequest};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const DEFAULT_TIMEOUT: u64 = 3600;
pub const MAX_TIMEOUT: u64 = 28800;

/// A request checked and split into what is stored and what is kept secret.
pub struct Prepared {
    pub run_type: RunType,
    pub platform: String,
    pub image_names: Vec<String>,
    /// The request with every secret value removed: this is what the database keeps.
    pub stored: RunRequest,
    /// Secret values by argument name; written to the run's secret file, never the database.
    pub secrets: BTreeMap<String, String>,
}

/// Whose build-cache mounts (`RUN --mount=type=cache`) a run shares. Builds share a
/// cache only with builds that could not have poisoned it for them: the same tenant's
/// runs of one task as the task defines it, or the same tenant's quick builds of one
/// repository; anything a caller shaped (an inline task file, an upload, a task run with
/// overrides) keeps a cache of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOwner<'a> {
    Task(&'a str),
    /// A git or tar.gz URL.
    Repository(&'a str),
    Run,
}

/// The namespace of a run's cache mounts (BuildKit's `BUILDKIT_CACHE_MOUNT_NS`).
pub fn cache_namespace(tenant: &str, owner: CacheOwner, run_id: &str) -> String {
    match owner {
        CacheOwner::Task(task) => format!("tenant/{tenant}/task/{task}"),
        CacheOwner::Repository(url) => format!("tenant/{tenant}/repo/{}", crate::source::normalise_repo(url)),
        CacheOwner::Run => format!("run/{run_id}"),
    }
}

/// The cache owner of a run requested through the API: a build or a task file of a
/// repository (its own Dockerfile, its own task file) shares the tenant's cache of that
/// repository; an inline task file, or a run of an upload, is the run's own.
pub fn request_cache_owner(request: &RunRequest) -> CacheOwner<'_> {
    let repository = |l: &str| crate::source::is_git(l) || crate::source::is_tarball(l);
    match (request, request.source_location()) {
        (RunRequest::DockerBuildRequest(_) | RunRequest::FileTaskRunRequest(_), Some(l)) if repository(l) => CacheOwner::Repository(l),
        _ => CacheOwner::Run,
    }
}

/// What the worker runs: a task text (or a task file in the source) and its values.
pub struct Job {
    pub task: TaskSource,
    pub values_file: Option<ValuesSource>,
    pub values: Value,
    pub secrets: BTreeMap<String, String>,
    pub timeout: u64,
}

pub enum TaskSource {
    Text(String),
    /// A path inside the run's source.
    File(String),
}

pub enum ValuesSource {
    Text(String),
    File(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn bad(m: impl Into<String>) -> BadRequest {
    BadRequest(m.into())
}

fn check_timeout(t: Option<u64>) -> Result<u64, BadRequest> {
    match t {
        None => Ok(DEFAULT_TIMEOUT),
        Some(t) if (1..=MAX_TIMEOUT).contains(&t) => Ok(t),
        Some(t) => Err(bad(format!("timeout {t} is out of range: give 1 to {MAX_TIMEOUT} seconds"))),
    }
}

fn split_secrets(args: &[Argument], what: &str) -> Result<(Vec<Argument>, BTreeMap<String, String>), BadRequest> {
    let mut stored = Vec::new();
    let mut secrets = BTreeMap::new();
    for a in args {
        if a.name.is_empty() {
            return Err(bad(format!("{what} with an empty name")));
        }
        if a.is_secret {
            secrets.insert(a.name.clone(), a.value.clone());
            stored.push(Argument {
                name: a.name.clone(),
                value: String::new(),
                is_secret: true,
            });
        } else {
            stored.push(a.clone());
        }
    }
    Ok((stored, secrets))
}

impl Job {
    /// The values a task renders with: those of its values file, then the request's over them.
    pub fn values_over(&self, mut from_file: Value) -> Value {
        if let (Some(m), Some(extra)) = (from_file.as_object_mut(), self.values.as_object()) {
            m.extend(extra.clone());
        }
        from_file
    }
}

/// Checks image names; names with run templates (`app:{{.Run.ID}}`) are checked once rendered.
pub fn check_image_names(names: &[String]) -> Result<(), String> {
    for name in names.iter().filter(|n| !n.contains("{{")) {
        slipway_reference::Reference::parse(name).map_err(|e| format!("imageNames: {e}"))?;
    }
    Ok(())
}

/// A task-file request (`FileTaskRunRequest`, `EncodedTaskRunRequest`) once its values are split.
fn task_run(
    values: &[Argument],
    platform: &Option<String>,
    timeout: Option<u64>,
    store: impl FnOnce(Vec<Argument>) -> RunRequest,
) -> Result<Prepared, BadRequest> {
    check_timeout(timeout)?;
    let (values, secrets) = split_secrets(values, "a value")?;
    Ok(Prepared {
        run_type: RunType::QuickRun,
        platform: platform.clone().unwrap_or_else(|| "linux/amd64".into()),
        image_names: Vec::new(),
        stored: store(values),
        secrets,
    })
}

/// Checks a request and separates its secrets.
pub fn prepare(req: RunRequest) -> Result<Prepared, BadRequest> {
    match req {
        RunRequest::DockerBuildRequest(mut r) => {
            check_image_names(&r.image_names).map_err(BadRequest)?;
            if r.docker_file_path.trim().is_empty() {
                return Err(bad("dockerFilePath is empty"));
            }
            for a in &r.arguments {
                if !a.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || a.name.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(bad(format!("build argument name {:?} is not valid", a.name)));
                }
            }
            check_timeout(r.timeout)?;
            let (args, mut secrets) = split_secrets(&r.arguments, "a build argument")?;
            r.arguments = args;
            for s in &mut r.build_secrets {
                if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                    return Err(bad(format!(
                        "build secret id {:?} is not valid (letters, digits, '_', '.', '-')",
                        s.name
                    )));
                }
                secrets.insert(build_secret_key(&s.name), std::mem::take(&mut s.value));
                s.is_secret = true;
            }
            let platform = r.platform.clone().unwrap_or_else(|| "linux/amd64".into());
            let image_names = r.image_names.clone();
            Ok(Prepared {
                run_type: RunType::QuickBuild,
                platform,
                image_names,
                stored: RunRequest::DockerBuildRequest(r),
                secrets,
            })
        }
        RunRequest::FileTaskRunRequest(r) => {
            if r.task_file_path.trim().is_empty() {
                return Err(bad("taskFilePath is empty"));
            }
            let (values, platform, timeout) = (r.values.clone(), r.platform.clone(), r.timeout);
            task_run(&values, &platform, timeout, |values| {
                RunRequest::FileTaskRunRequest(FileTaskRunRequest { values, ..r })
            })
        }
        RunRequest::EncodedTaskRunRequest(r) => {
            decode("encodedTaskContent", &r.encoded_task_content)?;
            if let Some(v) = &r.encoded_values_content {
                decode("encodedValuesContent", v)?;
            }
            let (values, platform, timeout) = (r.values.clone(), r.platform.clone(), r.timeout);
            task_run(&values, &platform, timeout, |values| {
                RunRequest::EncodedTaskRunRequest(EncodedTaskRunRequest { values, ..r })
            })
        }
    }
}

/// Where a quick build's secret `id` is kept among the run's secrets and values.
fn build_secret_key(id: &str) -> String {
    format!("build-secret:{id}")
}

pub fn decode(field: &str, b64: &str) -> Result<String, BadRequest> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| bad(format!("{field} is not base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| bad(format!("{field} is not UTF-8 text")))
}

fn values_of(args: &[Argument], secrets: &BTreeMap<String, String>) -> Value {
    let mut m = Map::new();
    for a in args {
        let v = if a.is_secret {
            secrets.get(&a.name).cloned().unwrap_or_default()
        } else {
            a.value.clone()
        };
        m.insert(a.name.clone(), Value::String(v));
    }
    Value::Object(m)
}

/// Rebuilds the job from the stored request and the run's secrets.
pub fn job(stored: &RunRequest, secrets: BTreeMap<String, String>) -> Result<Job, BadRequest> {
    Ok(match stored {
        RunRequest::DockerBuildRequest(r) => {
            let timeout = r.timeout.unwrap_or(DEFAULT_TIMEOUT);
            let mut values = Map::new();
            for a in &r.arguments {
                let v = if a.is_secret {
                    secrets.get(&a.name).cloned().unwrap_or_default()
                } else {
                    a.value.clone()
                };
                values.insert(format!("arg:{}", a.name), Value::String(v));
            }
            for s in &r.build_secrets {
                let key = build_secret_key(&s.name);
                let v = secrets.get(&key).cloned().unwrap_or_default();
                values.insert(key, Value::String(v));
            }
            Job {
                task: TaskSource::Text(quick_build_task(r, timeout)),
                values_file: None,
                values: Value::Object(values),
                secrets,
                timeout,
            }
        }
        RunRequest::FileTaskRunRequest(r) => Job {
            task: TaskSource::File(r.task_file_path.clone()),
            values_file: r.values_file_path.clone().map(ValuesSource::File),
            values: values_of(&r.values, &secrets),
            timeout: r.timeout.unwrap_or(DEFAULT_TIMEOUT),
            secrets,
        },
        RunRequest::EncodedTaskRunRequest(r) => Job {
            task: TaskSource::Text(decode("encodedTaskContent", &r.encoded_task_content)?),
            values_file: r
                .encoded_values_content
                .as_deref()
                .map(|v| decode("encodedValuesContent", v))
                .transpose()?
                .map(ValuesSource::Text),
            values: values_of(&r.values, &secrets),
            timeout: r.timeout.unwrap_or(DEFAULT_TIMEOUT),
            secrets,
        },
    })
}

/// The task a quick build runs: `build`, then `push` unless pushing is off. Argument
/// values stay out of the text; the template reads them from the values at run time.
pub fn quick_build_task(r: &DockerBuildRequest, timeout: u64) -> String {
    let mut build = Vec::new();
    for image in &r.image_names {
        build.push(format!("-t {}", shell_words::quote(image)));
    }
    build.push(format!("-f {}", shell_words::quote(&r.docker_file_path)));
    for a in &r.arguments {
        build.push(format!("--build-arg {}", a.name));
        // A secret build argument is a build secret too, so a Dockerfile can read it
        // with `RUN --mount=type=secret,id=NAME` and keep it out of the image history.
        if a.is_secret {
            build.push(format!("--secret id={0},env={0}", a.name));
        }
    }
    if let Some(t) = &r.target {
        build.push(format!("--target {}", shell_words::quote(t)));
    }
    if r.no_cache {
        build.push("--no-cache".into());
    }
    if r.pull {
        build.push("--pull".into());
    }
    if let Some(p) = &r.platform {
        build.push(format!("--platform {}", shell_words::quote(p)));
    }
    for (i, s) in r.build_secrets.iter().enumerate() {
        build.push(format!("--secret id={},env=SLIPWAY_BUILD_SECRET_{i}", shell_words::quote(&s.name)));
    }
    build.push(".".into());
    let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut text = format!(
        "version: v1.0.0\nstepTimeout: {timeout}\ntotalTimeout: {timeout}\nsteps:\n  - id: build\n    build: {}\n",
        json(&build.join(" "))
    );
    if !r.arguments.is_empty() || !r.build_secrets.is_empty() {
        let entry = |name: &str, key: &str| format!("{{{{ printf \"%s=%s\" {} (index .Values {}) | toJson }}}}", json(name), json(key));
        let env: Vec<String> = r
            .arguments
            .iter()
            .map(|a| entry(&a.name, &format!("arg:{}", a.name)))
            .chain(
                r.build_secrets
                    .iter()
                    .enumerate()
                    .map(|(i, s)| entry(&format!("SLIPWAY_BUILD_SECRET_{i}"), &build_secret_key(&s.name))),
            )
            .collect();
        text.push_str(&format!("    env: [{}]\n", env.join(", ")));
    }
    if r.is_push_enabled && !r.image_names.is_empty() {
        let images: Vec<String> = r.image_names.iter().map(|i| json(i)).collect();
        text.push_str(&format!("  - id: push\n    push: [{}]\n", images.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn build_request() -> DockerBuildRequest {
        serde_json::from_value(serde_json::json!({
            "imageNames": ["127.0.0.1:5000/app:1"],
            "arguments": [{"name": "A", "value": "plain \"quoted\""}, {"name": "TOKEN", "value": "s3cret", "isSecret": true}],
            "target": "final"
        }))
        .unwrap()
    }

    #[test]
    fn build_secrets_and_platforms_reach_the_build_step_and_never_the_stored_request() {
        let r: DockerBuildRequest = serde_json::from_value(serde_json::json!({
            "imageNames": ["127.0.0.1:5000/app:1"],
            "platform": "linux/amd64,linux/arm64",
            "buildSecrets": [{"name": "npm-token", "value": "hunter2"}]
        }))
        .unwrap();
        let p = prepare(RunRequest::DockerBuildRequest(r)).unwrap();
        assert!(!format!("{:?}", p.stored).contains("hunter2"), "{:?}", p.stored);
        let job = job(&p.stored, p.secrets.clone()).unwrap();
        assert_eq!(job.values["build-secret:npm-token"], "hunter2");
        let TaskSource::Text(text) = &job.task else { panic!() };
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("--platform linux/amd64,linux/arm64"), "{text}");
        assert!(text.contains("--secret id=npm-token,env=SLIPWAY_BUILD_SECRET_0"), "{text}");
        let bad: DockerBuildRequest = serde_json::from_value(serde_json::json!({"buildSecrets": [{"name": "a b", "value": "x"}]})).unwrap();
        assert!(prepare(RunRequest::DockerBuildRequest(bad)).is_err());
    }

    #[test]
    fn quick_build_is_a_two_step_task_with_values_out_of_the_text() {
        let p = prepare(RunRequest::DockerBuildRequest(build_request())).unwrap();
        assert!(!format!("{:?}", p.stored).contains("s3cret"), "the stored request holds no secret");
        assert_eq!(p.secrets["TOKEN"], "s3cret");
        let job = job(&p.stored, p.secrets.clone()).unwrap();
        let TaskSource::Text(text) = &job.task else { panic!() };
        assert!(!text.contains("s3cret") && !text.contains("quoted"));
        let opts = {
            let mut o = slipway_taskfile::Options::new(slipway_taskfile::RunVars::new("r1", "", chrono::Utc::now()));
            o.values = job.values.clone();
            o
        };
        let plan = slipway_taskfile::load("quick build", text, &opts, &|_| Err(String::new()))
            .unwrap()
            .plan;
        assert_eq!(plan.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["build", "push"]);
        assert_eq!(plan.steps[0].env, ["A=plain \"quoted\"", "TOKEN=s3cret"]);
        match &plan.steps[0].kind {
            slipway_taskfile::StepKind::Build { spec, .. } => {
                assert_eq!(spec.build_args, ["A", "TOKEN"]);
                assert_eq!(spec.target.as_deref(), Some("final"));
            }
            _ => panic!(),
        }
    }

    #[test]
    fn bad_requests_are_named() {
        let mut r = build_request();
        r.image_names = vec!["Bad Name".into()];
        assert!(prepare(RunRequest::DockerBuildRequest(r)).err().unwrap().0.contains("imageNames"));
        let r = EncodedTaskRunRequest {
            encoded_task_content: "***".into(),
            encoded_values_content: None,
            values: vec![],
            platform: None,
            timeout: None,
            source_location: None,
        };
        assert!(prepare(RunRequest::EncodedTaskRunRequest(r))
            .err()
            .unwrap()
            .0
            .contains("encodedTaskContent"));
        let mut r = build_request();
        r.timeout = Some(99999);
        assert!(prepare(RunRequest::DockerBuildRequest(r)).err().unwrap().0.contains("timeout"));
    }
}
