//! `build` and `push` steps: the build's context, Dockerfile scan, builder, secrets,
//! platforms and registry cache; pushes of single images and of image indexes.

use crate::outcome::{Outcome, Produced};
use crate::report::{ImageDependencies, OutputImage};
use crate::Shared;
use futures_util::StreamExt;
use slipway_engine::{BuildSecret, Builder, ImageBuild, LogSink};
use slipway_plan::{BuildSpec, Step};
use slipway_reference::Reference;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// BuildKit's own limit on a secret's size.
const MAX_SECRET_BYTES: u64 = 500 * 1024;

pub(crate) async fn build(shared: &Arc<Shared>, step: &Step, spec: &BuildSpec, sink: &LogSink, produced: &mut Produced) -> Outcome {
    // BuildKit says which names it gives the image: the task's, not the engine's.
    let sink: LogSink = match &shared.cfg.images {
        Some(_) => {
            let (run_id, inner) = (shared.cfg.run_id.clone(), sink.clone());
            Arc::new(move |line: &str| inner(&crate::images::familiar_names(&run_id, line)))
        }
        None => sink.clone(),
    };
    let sink = &sink;
    if spec.context.contains("://") || spec.context.starts_with("git@") {
        return Outcome::Error(format!(
            "remote build context {:?} is not supported by `slipway exec`; clone it in an earlier step or pass it as the run's context",
            spec.context
        ));
    }
    let prepared = match prepare(shared, step, spec, sink).await {
        Ok(p) => p,
        Err(e) => return Outcome::Error(e),
    };
    // One build per platform: the engine builds one at a time.
    let rounds: Vec<Option<String>> = if prepared.platforms.is_empty() {
        vec![None]
    } else {
        prepared.platforms.iter().cloned().map(Some).collect()
    };
    let mut built = Vec::new();
    for platform in &rounds {
        if let Some(p) = platform {
            if rounds.len() > 1 {
                sink(&format!("Building for platform {p}"));
            }
        }
        match build_one(shared, step, spec, sink, &prepared, platform, built.len()).await {
            Ok(b) => built.push(b),
            Err(outcome) => return outcome,
        }
    }
    record_built(shared, spec, &prepared, &built, sink, produced).await
}

/// What every platform's build of a step shares: the context's ignore rules, the
/// Dockerfile (as named and as read), the engine's request, the registry cache and the
/// platforms asked for.
struct Prepared {
    ignore: slipway_context::DockerIgnore,
    dockerfile: String,
    dockerfile_text: String,
    request: ImageBuild,
    registry_cache: Option<String>,
    platforms: Vec<String>,
}

/// One image built: its platform, its engine id and the base images it was built from.
type Built = (Option<String>, String, slipway_dockerfile::Dependencies);

/// Reads what a build needs from the context and the step, off the runtime, within
/// limits; the error is the step's.
async fn prepare(shared: &Arc<Shared>, step: &Step, spec: &BuildSpec, sink: &LogSink) -> Result<Prepared, String> {
    // Everything the build reads goes through this handle: beneath the run's context
    // when the task is not trusted, wherever the person pointed otherwise (as acb).
    let context = match open_dir(shared, &spec.context) {
        Ok(d) => d,
        Err(e) => return Err(format!("build context {:?}: {e}", spec.context)),
    };
    let dockerfile = if spec.dockerfile.is_empty() {
        "Dockerfile".to_string()
    } else {
        spec.dockerfile.clone()
    };
    let ignore = reading(&context, &dockerfile, |dir, name| {
        slipway_context::context_ignore(dir, name).map_err(|e| e.to_string())
    })
    .await?;
    let env = step_env(step);
    let mut build_args = build_args_of(shared, spec, &env);
    let builder = builder_of(shared, &env);
    let secrets = read_secrets(shared, &env, spec).await?;
    let dockerfile_text = read_dockerfile(shared, &context, &dockerfile).await?;
    let registry_cache = registry_cache_of(shared, step, spec, sink);
    let cache_from = cache_images(shared, spec, &registry_cache, sink).await;
    let platforms = platforms_of(spec);
    let tags = own_tags(shared, spec)?;
    let labels = run_labels(shared, spec);
    pin_syntax_frontend(shared, &mut build_args).await?;
    let request = ImageBuild {
        builder,
        tags,
        dockerfile: dockerfile.clone(),
        build_args,
        target: spec.target.clone(),
        no_cache: spec.no_cache || !step.cache,
        // With the run's images its own, every base is its own image or a registry's by
        // digest, which a pull could not make fresher.
        pull: spec.pull && shared.cfg.images.is_none(),
        labels,
        platform: None,
        network: spec.network.clone(),
        inline_cache: !cache_from.is_empty(),
        cache_from,
        extra_hosts: spec.add_hosts.clone(),
        secrets,
        cache_mount_namespace: shared.cfg.cache_mount_namespace.clone(),
    };
    Ok(Prepared {
        ignore,
        dockerfile,
        dockerfile_text,
        request,
        registry_cache,
        platforms,
    })
}

/// The step's `env:` as a map, `NAME=VALUE` entries only: where build arguments,
/// secrets and the builder choice are looked up.
fn step_env(step: &Step) -> HashMap<String, String> {
    step.env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The builder the step asks for with `DOCKER_BUILDKIT` in its environment, else the
/// run's.
fn builder_of(shared: &Shared, env: &HashMap<String, String>) -> Builder {
    match env.get("DOCKER_BUILDKIT").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("0" | "false") => Builder::Classic,
        Some("1" | "true") => Builder::BuildKit,
        _ => shared.cfg.builder,
    }
}

/// The build's `--secret`s, read on a blocking thread: a `src=` is a file of the run.
async fn read_secrets(shared: &Arc<Shared>, env: &HashMap<String, String>, spec: &BuildSpec) -> Result<Vec<BuildSecret>, String> {
    let (shared, env, wanted) = (shared.clone(), env.clone(), spec.secrets.clone());
    let read = tokio::task::spawn_blocking(move || wanted.iter().map(|s| secret(&shared, &env, s)).collect::<Result<Vec<_>, _>>());
    match read.await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(e.to_string()),
    }
}

/// The Dockerfile's text, the one the build is sent: with the run's images its own,
/// only under a plain path of the context.
async fn read_dockerfile(shared: &Shared, context: &slipway_context::Dir, dockerfile: &str) -> Result<String, String> {
    // The Dockerfile sent is the one read here, under the name the context has for it:
    // no `..` and no link on its path, which the engine would follow to another file.
    if shared.cfg.images.is_some() {
        if let Err(e) = plain_path(context, dockerfile) {
            return Err(format!("-f {dockerfile}: {e}"));
        }
    }
    // The dependency scan is part of every build's record. The engine reads the
    // Dockerfile from the context, so it must be inside it.
    reading(context, dockerfile, |dir, name| {
        read_beneath(dir, name).map_err(|e| format!("cannot read Dockerfile {name:?} in the build context: {e}"))
    })
    .await
}

/// The images the build imports its cache from: `--cache-from`s and the registry
/// cache, each as this run may use it; one it may not is warned about and left out.
async fn cache_images(shared: &Shared, spec: &BuildSpec, registry_cache: &Option<String>, sink: &LogSink) -> Vec<String> {
    let mut cache_from = Vec::new();
    for c in spec.cache_from.iter().map(|c| cache_source(c)).chain(registry_cache.clone()) {
        match cache_image(shared, &c).await {
            Ok(image) => cache_from.push(image),
            Err(e) => sink(&format!("Warning: the build does not use {c} as a cache: {e}")),
        }
    }
    cache_from
}

/// The platforms asked for, `--platform a,b` split; none means the engine's own.
fn platforms_of(spec: &BuildSpec) -> Vec<String> {
    spec.platform
        .iter()
        .flat_map(|p| p.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The build's `-t`s under the names the run gives its images while it runs.
fn own_tags(shared: &Shared, spec: &BuildSpec) -> Result<Vec<String>, String> {
    let mut tags = Vec::with_capacity(spec.tags.len());
    for t in &spec.tags {
        match crate::images::own_name(shared, t) {
            Ok(n) => tags.push(n),
            Err(e) => return Err(format!("-t {e}")),
        }
    }
    Ok(tags)
}

/// The build's `--label`s, and with the run's images its own the run's label, by
/// which what the build leaves untagged is found and removed with the run.
fn run_labels(shared: &Shared, spec: &BuildSpec) -> HashMap<String, String> {
    let mut labels = labels_of(spec);
    if shared.cfg.images.is_some() {
        labels.insert(slipway_engine::RUN_LABEL.to_string(), shared.cfg.run_id.clone());
    }
    labels
}

/// With the run's images its own, a `BUILDKIT_SYNTAX` frontend is pinned to the image
/// the run may use, as a base would be.
async fn pin_syntax_frontend(shared: &Shared, build_args: &mut HashMap<String, String>) -> Result<(), String> {
    if shared.cfg.images.is_none() {
        return Ok(());
    }
    if let Some(frontend) = build_args.get("BUILDKIT_SYNTAX").cloned() {
        match crate::images::registry_frontend(shared, &frontend).await {
            Ok(pinned) => {
                build_args.insert("BUILDKIT_SYNTAX".into(), pinned);
            }
            Err(e) => return Err(format!("--build-arg BUILDKIT_SYNTAX={frontend}: {e}")),
        }
    }
    Ok(())
}

/// A build's `--build-arg`s: `NAME=VALUE` as given, `NAME` from the step's environment
/// (as docker reads it), and from this process's only when the task is trusted.
fn build_args_of(shared: &Shared, spec: &BuildSpec, env: &HashMap<String, String>) -> HashMap<String, String> {
    let mut build_args = HashMap::new();
    for a in &spec.build_args {
        match a.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
            // `--build-arg NAME` takes the value from the step's environment, as docker
            // does, and from this process's only when the task is trusted.
            None => match from_env(shared, env, a) {
                Some(v) => build_args.insert(a.clone(), v),
                None => continue,
            },
        };
    }
    build_args
}

/// `cache: enabled` (acb): the layer cache is imported from the registry and exported
/// there again, under a tag of the first image's repository.
fn registry_cache_of(shared: &Shared, step: &Step, spec: &BuildSpec, sink: &LogSink) -> Option<String> {
    if step.registry_cache {
        match spec.tags.first().and_then(|t| Reference::parse(t).ok()) {
            Some(r) => Some(format!(
                "{}/{}:cache_{}_{}",
                r.registry, r.repository, shared.cfg.task_name, step.id
            )),
            None => {
                sink("cache: enabled needs a tagged image (-t) to name the cache after; building without registry cache");
                None
            }
        }
    } else {
        None
    }
}

/// A build's `--label`s, a label without `=` empty.
fn labels_of(spec: &BuildSpec) -> HashMap<String, String> {
    spec.labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .unwrap_or((l.clone(), String::new()))
        })
        .collect()
}

/// One platform's build: the Dockerfile checked, its URLs fetched and its image names
/// rewritten, the context streamed again, the engine's build.
async fn build_one(
    shared: &Arc<Shared>,
    step: &Step,
    spec: &BuildSpec,
    sink: &LogSink,
    prepared: &Prepared,
    platform: &Option<String>,
    round: usize,
) -> Result<Built, Outcome> {
    let Prepared {
        ignore,
        dockerfile,
        dockerfile_text,
        request,
        ..
    } = prepared;
    let deps = match scan(dockerfile_text, request, platform.as_deref()) {
        Ok(d) => d,
        Err(e) => return Err(Outcome::Error(format!("{dockerfile}: {e}"))),
    };
    let options = scan_options(request, platform.as_deref());
    if let Err(e) = check_remote_sources(shared, dockerfile_text, &options).await {
        return Err(Outcome::Error(format!("{dockerfile}: {e}")));
    }
    let fetch_dir = shared
        .cfg
        .scratch_dir
        .join(format!("slipway-{}", shared.cfg.run_id))
        .join("fetched")
        .join(format!("{}-{}", step.id, round));
    let (fetched_text, added) = match fetch_remote_sources(shared, dockerfile_text, &options, &fetch_dir).await {
        Ok(f) => f,
        Err(e) => return Err(Outcome::Error(format!("{dockerfile}: {e}"))),
    };
    let sent_dockerfile = match crate::images::rewrite_dockerfile(shared, &fetched_text, &options).await {
        Ok(t) => t,
        Err(e) => return Err(Outcome::Error(format!("{dockerfile}: {e}"))),
    };
    // In a shared engine the build gets the text checked here, always: a step still
    // running could change the file on disk in between.
    let replaced = if sent_dockerfile == *dockerfile_text && shared.cfg.images.is_none() {
        Vec::new()
    } else {
        vec![(dockerfile.clone(), sent_dockerfile.into_bytes())]
    };
    shared.say(&format!(
        "Step ID: {}{} depends on runtime {} and buildtime [{}]",
        step.id,
        platform.as_deref().map(|p| format!(" ({p})")).unwrap_or_default(),
        deps.runtime.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "none".into()),
        deps.buildtime.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
    ));
    let credentials: Vec<_> = deps
        .runtime
        .iter()
        .chain(deps.buildtime.iter())
        .map(|r| r.to_string())
        .chain(request.cache_from.iter().cloned())
        .filter_map(|r| shared.credential_for(&r))
        .collect();
    let mut request = request.clone();
    request.platform = platform.clone();
    // The context is read again for each platform: it is a stream.
    let tar = slipway_context::tar_stream(
        match open_dir(shared, &spec.context) {
            Ok(d) => d,
            Err(e) => return Err(Outcome::Error(format!("build context {:?}: {e}", spec.context))),
        },
        ignore.clone(),
        vec![dockerfile.clone(), ".dockerignore".into()],
        slipway_context::Overlay { replaced, added },
    )
    .boxed();
    let result = shared.engine.build(request, tar, credentials.clone(), sink.clone()).await;
    if fetch_dir.exists() {
        let _ = tokio::fs::remove_dir_all(&fetch_dir).await;
    }
    match result {
        Ok(id) => {
            sink(&format!(
                "Successfully built {id}{}",
                platform.as_deref().map(|p| format!(" for {p}")).unwrap_or_default()
            ));
            Ok((platform.clone(), id, deps))
        }
        Err(e) => Err(Outcome::Failed(e.to_string())),
    }
}

/// After every platform's build: the tags on the first image (a push sends them all),
/// the registry cache exported, and the base images recorded with their digests.
async fn record_built(
    shared: &Arc<Shared>,
    spec: &BuildSpec,
    prepared: &Prepared,
    built: &[Built],
    sink: &LogSink,
    produced: &mut Produced,
) -> Outcome {
    let (request, registry_cache) = (&prepared.request, &prepared.registry_cache);
    if built.len() > 1 {
        // The tags name the first platform's image locally; a push sends them all.
        let (_, first, _) = &built[0];
        for tag in &request.tags {
            if let Err(e) = shared.engine.tag_image(first, tag).await {
                return Outcome::Error(e.to_string());
            }
        }
        let variants: Vec<(String, String)> = built.iter().map(|(p, id, _)| (p.clone().unwrap_or_default(), id.clone())).collect();
        let mut all = shared.platform_images.lock().unwrap_or_else(|p| p.into_inner());
        for tag in &spec.tags {
            all.insert(slipway_plan::with_default_tag(tag), variants.clone());
        }
    }
    if let (Some(cache), Some((_, id, _))) = (&registry_cache, built.first()) {
        export_cache(shared, id, cache, sink).await;
    }
    let images: Vec<String> = spec
        .tags
        .iter()
        .map(|t| Reference::parse(t).map(|r| r.to_string()).unwrap_or_else(|_| t.clone()))
        .collect();
    for (platform, _, deps) in built {
        let runtime = match &deps.runtime {
            Some(r) => Some(pin_digest(shared, r).await),
            None => None,
        };
        let mut buildtime = Vec::new();
        for b in &deps.buildtime {
            buildtime.push(pin_digest(shared, b).await);
        }
        produced.dependencies.push(ImageDependencies {
            images: images.clone(),
            runtime,
            buildtime,
            platform: platform.clone(),
        });
    }
    Outcome::Ok
}

/// How a build for one platform reads its Dockerfile: its arguments, its target, and
/// the platform arguments BuildKit sets (`TARGETARCH`…) where the build does not.
fn scan_options(request: &ImageBuild, platform: Option<&str>) -> slipway_dockerfile::ScanOptions {
    slipway_dockerfile::ScanOptions {
        build_args: request.build_args.clone().into_iter().collect(),
        target: request.target.clone(),
        predefined: slipway_dockerfile::platform_args(platform),
    }
}

/// The Dockerfile's base images for one platform.
fn scan(dockerfile: &str, request: &ImageBuild, platform: Option<&str>) -> Result<slipway_dockerfile::Dependencies, String> {
    slipway_dockerfile::scan(dockerfile, &scan_options(request, platform)).map_err(|e| e.to_string())
}

/// Refuses what `ADD` would fetch from where the run may not reach: the engine
/// fetches it from the host's own network, so the same rules as sources apply.
async fn check_remote_sources(shared: &Shared, text: &str, options: &slipway_dockerfile::ScanOptions) -> Result<(), String> {
    let Some(check) = shared.cfg.url_check.clone() else { return Ok(()) };
    let remote = slipway_dockerfile::remote_sources(text, options).map_err(|e| e.to_string())?;
    for source in remote {
        let Some(url) = source.url else {
            return Err(format!(
                "line {}: ADD {}: it uses a variable this Dockerfile does not set (the base image's), so where it fetches from cannot be checked; write the address out",
                source.line, source.written
            ));
        };
        // `git@host:path` is ssh to host.
        let as_url = match url.strip_prefix("git@") {
            Some(rest) => format!("ssh://{}", rest.split(':').next().unwrap_or(rest)),
            None => url.clone(),
        };
        let check = check.clone();
        let verdict = tokio::task::spawn_blocking(move || check(&as_url))
            .await
            .map_err(|e| e.to_string())?;
        verdict.map_err(|e| format!("line {}: ADD {url}: {e}", source.line))?;
    }
    Ok(())
}

/// Refuses a path with `..` or a linked directory on it: the context's archive holds
/// such a directory as a link, so the checked text would not be the entry the engine
/// reads. (The file itself may be a link beneath the context: it is sent as the text.)
fn plain_path(dir: &slipway_context::Dir, path: &str) -> Result<(), String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let mut at = std::path::PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        if *part == ".." {
            return Err("name the Dockerfile without `..`".into());
        }
        at.push(part);
        if i + 1 < parts.len() && dir.symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("{} is a link: name the directory it leads to", at.display()));
        }
    }
    Ok(())
}

/// Where the files the daemon fetched for `ADD` go in the build context.
const FETCHED_DIR: &str = ".slipway-fetched";

/// With a fetcher (`slipway serve`), each http(s) URL an `ADD` names is fetched by the
/// daemon and the `ADD` becomes a `COPY` of that file: the engine would fetch from the
/// host's own network, following redirects and resolving names again unchecked. Git
/// sources stay the builder's (checked by [`check_remote_sources`]). Returns the
/// Dockerfile to build and the files to add to the context.
async fn fetch_remote_sources(
    shared: &Shared,
    text: &str,
    options: &slipway_dockerfile::ScanOptions,
    dir: &std::path::Path,
) -> Result<(String, Vec<(String, std::path::PathBuf)>), String> {
    let Some(fetch) = shared.cfg.url_fetch.clone() else {
        return Ok((text.to_string(), Vec::new()));
    };
    let remote = slipway_dockerfile::remote_sources(text, options).map_err(|e| e.to_string())?;
    let mut fetched: HashMap<String, String> = HashMap::new();
    let mut added = Vec::new();
    for source in remote.iter().filter(|r| !r.onbuild) {
        let Some(url) = source.url.as_ref().filter(|u| !is_git_source(u)) else {
            continue;
        };
        if fetched.contains_key(url) {
            continue;
        }
        let line = text.lines().nth(source.line.saturating_sub(1)).unwrap_or_default();
        if let Some(flag) = ["--checksum", "--unpack"].into_iter().find(|f| line.contains(f)) {
            return Err(format!(
                "line {}: ADD {flag} with a URL: here the daemon fetches the file and the build copies it, which takes no {flag}; check or unpack it in a RUN",
                source.line
            ));
        }
        let n = fetched.len();
        let name = url_file_name(url);
        let host = dir.join(n.to_string()).join(&name);
        tokio::fs::create_dir_all(host.parent().unwrap_or(dir))
            .await
            .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        fetch(url.clone(), host.clone())
            .await
            .map_err(|e| format!("line {}: ADD {url}: {}", source.line, shared.redactor.mask(&e)))?;
        let rel = format!("{FETCHED_DIR}/{n}/{name}");
        fetched.insert(url.clone(), rel.clone());
        added.push((rel, host));
    }
    if fetched.is_empty() {
        return Ok((text.to_string(), added));
    }
    let text = slipway_dockerfile::fetched_by_daemon(text, options, &|r| r.url.as_ref().and_then(|u| fetched.get(u).cloned()))
        .map_err(|e| e.to_string())?;
    Ok((text, added))
}

/// Whether an `ADD` source is a git repository (BuildKit clones those).
fn is_git_source(url: &str) -> bool {
    let bare = url.split('#').next().unwrap_or(url);
    url.starts_with("git@") || url.starts_with("git://") || bare.ends_with(".git")
}

/// The file name a download of `url` gets, as the builder names one: the path's last
/// segment.
fn url_file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let path = path.split_once("://").map(|(_, rest)| rest).unwrap_or(path);
    let last = path.split_once('/').map(|(_, p)| p).unwrap_or("").rsplit('/').next().unwrap_or("");
    if last.is_empty() || last == "." || last == ".." || last.contains('\\') {
        "__unnamed__".to_string()
    } else {
        last.to_string()
    }
}

/// The build's image also under the cache tag, pushed: its inline cache metadata is
/// what the next `cache: enabled` build imports. A failure costs speed, not the step.
async fn export_cache(shared: &Arc<Shared>, image_id: &str, cache: &str, sink: &LogSink) {
    if let Err(e) = may_push(shared, cache) {
        sink(&format!("Warning: the build cache is not exported to {cache}: {e}"));
        return;
    }
    let credential = shared.credential_for(cache);
    let result = if shared.cfg.images.is_some() {
        shared.engine.push_as(image_id, cache, credential, sink.clone()).await.map(|_| ())
    } else {
        match shared.engine.tag_image(image_id, cache).await {
            Ok(()) => shared.engine.push(cache, credential, sink.clone()).await.map(|_| ()),
            Err(e) => Err(e),
        }
    };
    match result {
        Ok(()) => sink(&format!("Exported the build cache to {cache}")),
        Err(e) => sink(&format!("Warning: exporting the build cache to {cache} failed: {e}")),
    }
}

/// Whether the run may push `image`: not under an operator's image's name (every run
/// pins those by name), and only to its tenant's repositories in the daemon's registries.
fn may_push(shared: &Shared, image: &str) -> Result<(), String> {
    let r = Reference::parse(image).map_err(|e| e.to_string())?;
    if let Some(scope) = &shared.cfg.images {
        if scope.is_operators(&r) {
            return Err(format!(
                "{image} is the name of one of the operator's images (local_images, an alias's or the sandbox image): a run cannot push under it"
            ));
        }
    }
    let Some(check) = &shared.cfg.may_push else { return Ok(()) };
    check(&r.registry, &r.repository)
}

/// The image a cache source means for this run: BuildKit reads an image of that name
/// in the engine before it asks a registry, and the engine holds every run's images, so
/// it gets the run's own image or the registry's by digest, as a base would.
async fn cache_image(shared: &Shared, name: &str) -> Result<String, String> {
    if shared.cfg.images.is_none() {
        return Ok(name.to_string());
    }
    crate::images::resolve(shared, name).await.map(|r| r.name().to_string())
}

/// `--cache-from` as docker or buildx write it: `IMAGE` or `type=registry,ref=IMAGE`.
fn cache_source(value: &str) -> String {
    value.split(',').find_map(|kv| kv.strip_prefix("ref=")).unwrap_or(value).to_string()
}

fn open_dir(shared: &Shared, path: &str) -> Result<slipway_context::Dir, slipway_context::ContextError> {
    if shared.cfg.host.confine_paths {
        slipway_context::Beneath::open(&shared.cfg.context_dir).and_then(|b| b.dir(path))
    } else {
        let dir = shared.cfg.context_dir.join(path);
        slipway_context::Dir::open_ambient_dir(&dir, slipway_context::ambient_authority())
            .map_err(|_| slipway_context::ContextError::Missing { path: dir })
    }
}

/// A variable of the step's environment, or of this process's when the task is trusted.
fn from_env(shared: &Shared, env: &HashMap<String, String>, name: &str) -> Option<String> {
    env.get(name)
        .cloned()
        .or_else(|| shared.cfg.host.build_args_from_env.then(|| std::env::var(name).ok()).flatten())
}

/// `--secret id=ID[,env=NAME|,src=PATH]`, as `docker build` reads it: `env` names a
/// variable of the step's environment (where the run's secrets are put), `src` a file
/// of the run's source; with neither, the variable named `ID`. The value is masked in
/// the log from here on and goes to the engine only through the build's session.
fn secret(shared: &Shared, env: &HashMap<String, String>, text: &str) -> Result<BuildSecret, String> {
    use slipway_plan::build_secret::{SecretSource, SecretSpec};
    let SecretSpec { id, source } = SecretSpec::parse(text)?;
    let value = match source {
        SecretSource::File(path) => read_secret_file(shared, &path).map_err(|e| format!("--secret id={id}: src={path}: {e}"))?,
        SecretSource::Env(name) => from_env(shared, env, &name)
            .ok_or_else(|| format!("--secret id={id}: {name} is not set in the step's environment (env:, or a secret of the run)"))?
            .into_bytes(),
    };
    if let Ok(text) = std::str::from_utf8(&value) {
        shared.redactor.add(text);
        shared.redactor.add(text.trim_end());
    }
    Ok(BuildSecret { id, value })
}

/// A secret file of the run's source (anywhere when the task is trusted), at most
/// BuildKit's 500 KB.
fn read_secret_file(shared: &Shared, path: &str) -> std::io::Result<Vec<u8>> {
    // Beneath the context when the task is not trusted; where the person points
    // otherwise. Either way a regular file, opened without waiting, within the limit.
    let (root, path) = if shared.cfg.host.confine_paths {
        let root = slipway_context::Beneath::open(&shared.cfg.context_dir)
            .and_then(|b| b.dir("."))
            .map_err(std::io::Error::other)?;
        (root, path.to_string())
    } else {
        let full = shared.cfg.context_dir.join(path);
        let parent = full.parent().unwrap_or(std::path::Path::new("/")).to_path_buf();
        let name = full.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        (
            slipway_context::Dir::open_ambient_dir(&parent, slipway_context::ambient_authority())?,
            name,
        )
    };
    slipway_context::read_regular(&root, &path, MAX_SECRET_BYTES).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => std::io::Error::other("larger than BuildKit's 500 KB limit for secrets"),
        _ => e,
    })
}

/// `read` of the file `name` beneath `dir`, on a blocking thread: the file is the run's,
/// and no file of a run is read on the async runtime.
async fn reading<T: Send + 'static>(
    dir: &slipway_context::Dir,
    name: &str,
    read: impl FnOnce(&slipway_context::Dir, &str) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let dir = dir.try_clone().map_err(|e| e.to_string())?;
    let name = name.to_string();
    tokio::task::spawn_blocking(move || read(&dir, &name))
        .await
        .map_err(|e| e.to_string())?
}

/// A Dockerfile, a regular file of at most 1 MiB, read beneath the context.
fn read_beneath(dir: &slipway_context::Dir, path: &str) -> std::io::Result<String> {
    let data = slipway_context::read_regular(dir, path, 1 << 20)?;
    String::from_utf8(data).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// The image with the digest the engine has for it, when it has one.
async fn pin_digest(shared: &Arc<Shared>, r: &Reference) -> String {
    match shared.engine.image_digest(&r.tagged()).await {
        Some(d) => r.with_digest(&d).to_string(),
        None => r.to_string(),
    }
}

/// A `push` step: each image checked, pushed and recorded in turn; the first that
/// cannot be pushed fails the step.
pub(crate) async fn push_all(shared: &Arc<Shared>, images: &[String], sink: &LogSink, produced: &mut Produced) -> Outcome {
    for image in images {
        let push = match Push::checked(shared, image).await {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let (digest, per_platform) = match push.with_retries(shared, sink).await {
            Ok(pushed) => pushed,
            Err(outcome) => return outcome,
        };
        push.record(shared, &digest, per_platform, produced).await;
    }
    Outcome::Ok
}

/// One image of a `push` step, checked as the run may push it: the name it is pushed
/// under, the local image it is, how to reach its registry and its platforms' images.
struct Push<'a> {
    image: &'a str,
    source: String,
    scoped: bool,
    credential: Option<slipway_engine::RegistryCredential>,
    variants: Option<Vec<(String, String)>>,
}

impl<'a> Push<'a> {
    /// Refuses a push the run may not make, or of an image it did not build when its
    /// images are its own; otherwise what the push needs.
    async fn checked(shared: &Arc<Shared>, image: &'a str) -> Result<Push<'a>, Outcome> {
        if let Err(e) = may_push(shared, image) {
            return Err(Outcome::Failed(format!("push of {image}: {e}")));
        }
        // A run pushes the images it built (under its own names while it runs).
        let source = match crate::images::own_name(shared, image) {
            Ok(s) => s,
            Err(e) => return Err(Outcome::Failed(format!("push of {e}"))),
        };
        let scoped = shared.cfg.images.is_some();
        let variants_known = shared
            .platform_images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&slipway_plan::with_default_tag(image));
        if scoped && !variants_known && shared.engine.image_id(&source).await.is_none() {
            return Err(Outcome::Failed(format!(
                "push of {image}: no image of that name was built in this run (a run pushes the images it builds)"
            )));
        }
        let credential = shared.credential_for(image);
        let variants = shared
            .platform_images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&slipway_plan::with_default_tag(image))
            .cloned();
        Ok(Push {
            image,
            source,
            scoped,
            credential,
            variants,
        })
    }

    /// The push, tried up to three times, 1 s then 2 s apart: a registry's hiccup does
    /// not fail the step. Returns the digest and each platform's.
    async fn with_retries(&self, shared: &Shared, sink: &LogSink) -> Result<(String, Vec<(String, String)>), Outcome> {
        let image = self.image;
        let mut delay = Duration::from_secs(1);
        let mut attempt = 1;
        loop {
            sink(&format!("Pushing image: {image}, attempt {attempt}"));
            match self.once(shared, sink).await {
                Ok(pushed) => return Ok(pushed),
                Err(e) if attempt < 3 => {
                    sink(&format!("Push failed: {e}; retrying in {} s", delay.as_secs()));
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(Outcome::Failed(e.to_string())),
            }
        }
    }

    /// One push to the engine: an image index of the platforms' images, the run's own
    /// image under the pushed name, or the image of that name.
    async fn once(&self, shared: &Shared, sink: &LogSink) -> Result<(String, Vec<(String, String)>), slipway_engine::EngineError> {
        let (image, credential) = (self.image, self.credential.clone());
        match &self.variants {
            Some(v) => shared.engine.push_index(image, v, credential, sink.clone(), !self.scoped).await,
            None if self.scoped => shared
                .engine
                .push_as(&self.source, image, credential, sink.clone())
                .await
                .map(|d| (d, Vec::new())),
            None => shared.engine.push(image, credential, sink.clone()).await.map(|d| (d, Vec::new())),
        }
    }

    /// The pushed image in the run's record and told to a watcher, with the manifest's
    /// type and size as the registry describes it; each platform's image after it.
    async fn record(&self, shared: &Shared, digest: &str, per_platform: Vec<(String, String)>, produced: &mut Produced) {
        let image = self.image;
        let Ok(r) = Reference::parse(image) else { return };
        let output = |digest: &str, platform: Option<String>| OutputImage {
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            tag: r.tag().to_string(),
            digest: digest.to_string(),
            platform,
            media_type: None,
            size: None,
        };
        let mut tagged = output(digest, None);
        // What a push notification tells: the manifest's type and size.
        let auth = self.credential.as_ref().map(|c| (c.username.clone(), c.password.clone()));
        let described = match crate::images::registry_client() {
            Some(client) => slipway_registry::describe(&client, &format!("{}@{digest}", r.name()), auth).await,
            None => Err("no HTTP client".into()),
        };
        match described {
            Ok(d) => {
                tagged.media_type = Some(d.media_type);
                tagged.size = Some(d.size);
            }
            Err(e) => {
                tracing::warn!(image, error = %shared.redactor.mask(&e), "describing the pushed manifest failed");
                // What was pushed is known even when its size is not.
                if self.variants.is_some() {
                    tagged.media_type = Some("application/vnd.oci.image.index.v1+json".into());
                }
            }
        }
        if let Some(watch) = &shared.cfg.on_step {
            watch(crate::StepEvent::Pushed(&tagged));
        }
        produced.images.push(tagged);
        for (platform, d) in per_platform {
            produced.images.push(output(&d, Some(platform)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetched_files_are_named_as_the_builder_names_them() {
        assert_eq!(super::url_file_name("https://example.com/a/r.tgz?x=1#f"), "r.tgz");
        assert_eq!(super::url_file_name("https://example.com/"), "__unnamed__");
        assert_eq!(super::url_file_name("https://example.com"), "__unnamed__");
        assert_eq!(super::url_file_name("https://example.com/a/.."), "__unnamed__");
        assert!(super::is_git_source("https://example.com/r.git#main"));
        assert!(!super::is_git_source("https://example.com/r.tgz"));
    }

    #[test]
    fn cache_sources_as_docker_and_buildx_write_them() {
        assert_eq!(cache_source("reg/app:cache"), "reg/app:cache");
        assert_eq!(cache_source("type=registry,ref=reg/app:cache"), "reg/app:cache");
    }
}
