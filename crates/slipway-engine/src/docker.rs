//! The Docker Engine API through bollard.

use crate::{ContainerSpec, ContextStream, Engine, EngineError, Exit, ImageBuild, LogSink, RegistryCredential, RUN_LABEL};
use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, HostConfigLogConfig, NetworkCreateRequest, NetworkingConfig, PortBinding,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder, PushImageOptionsBuilder, RemoveContainerOptionsBuilder,
    TagImageOptionsBuilder,
};
use bollard::{body_try_stream, container::LogOutput};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A Docker engine reached through `DOCKER_HOST` or the local socket.
#[derive(Clone)]
pub struct Docker {
    client: bollard::Docker,
    endpoint: String,
    /// Whether the engine offers BuildKit, asked once.
    buildkit: Arc<tokio::sync::OnceCell<Option<crate::buildkit::Endpoint>>>,
}

impl Docker {
    /// Connects as the docker CLI would: `DOCKER_HOST`, else the local socket.
    /// Nothing is sent until the first call; use [`Engine::ping`] to check.
    pub fn connect() -> Result<Docker, EngineError> {
        let endpoint = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let client = bollard::Docker::connect_with_defaults().map_err(|e| EngineError::Unreachable {
            endpoint: endpoint.clone(),
            message: e.to_string(),
        })?;
        // Builds and pushes can be silent for long; our own step timeouts bound them.
        let client = client.with_timeout(std::time::Duration::from_secs(3600));
        Ok(Docker {
            client,
            endpoint,
            buildkit: Arc::default(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where to open BuildKit sessions, when the engine offers BuildKit: a Linux
    /// engine with API 1.39 or later, reached on a socket or plain TCP.
    async fn buildkit(&self) -> Option<crate::buildkit::Endpoint> {
        // An engine that does not answer is asked again next time, not taken as one
        // without BuildKit for the life of the process.
        self.buildkit
            .get_or_try_init(|| async {
                let version = self.client.version().await.map_err(|_| ())?;
                let api: Vec<u32> = version
                    .api_version
                    .as_deref()
                    .unwrap_or("0")
                    .split('.')
                    .map(|n| n.parse().unwrap_or(0))
                    .collect();
                let recent = api.first().copied().unwrap_or(0) > 1 || (api.first() == Some(&1) && api.get(1).copied().unwrap_or(0) >= 39);
                Ok::<_, ()>(
                    (recent && version.os.as_deref() == Some("linux"))
                        .then(|| crate::buildkit::Endpoint::parse(&self.endpoint))
                        .flatten(),
                )
            })
            .await
            .ok()
            .cloned()
            .flatten()
    }

    /// The architecture (with variant) an image was built for: `arm64`, `arm/v7`.
    async fn image_platform(&self, image: &str) -> Option<String> {
        let i = self.client.inspect_image(image).await.ok()?;
        let os = i.os.unwrap_or_default();
        let arch = i.architecture.unwrap_or_default();
        Some(match i.variant.filter(|v| !v.is_empty()) {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        })
    }

    /// The bollard client, for what the trait does not cover (test set-up, imports).
    pub fn client(&self) -> &bollard::Docker {
        &self.client
    }
}

impl Docker {
    /// A build through the engine's classic builder (`/build` without a session).
    async fn classic_build(
        &self,
        build: &ImageBuild,
        context: ContextStream,
        creds: &[RegistryCredential],
        log: &LogSink,
    ) -> Result<String, EngineError> {
        let first_tag = build.tags.first().cloned().unwrap_or_default();
        let mut opts = BuildImageOptionsBuilder::new()
            .dockerfile(if build.dockerfile.is_empty() {
                "Dockerfile"
            } else {
                &build.dockerfile
            })
            .nocache(build.no_cache)
            .rm(true)
            .forcerm(true)
            .buildargs(&build.build_args)
            .labels(&build.labels);
        if !first_tag.is_empty() {
            opts = opts.t(&first_tag);
        }
        if build.pull {
            opts = opts.pull("1");
        }
        if let Some(t) = &build.target {
            opts = opts.target(t);
        }
        if let Some(p) = &build.platform {
            opts = opts.platform(p);
        }
        if let Some(n) = &build.network {
            opts = opts.networkmode(n);
        }
        if !build.cache_from.is_empty() {
            opts = opts.cachefrom(&build.cache_from);
        }
        if !build.extra_hosts.is_empty() {
            opts = opts.extrahosts(&build.extra_hosts.join(","));
        }
        let auth: HashMap<String, DockerCredentials> = creds.iter().map(|c| (c.registry.clone(), credentials(c))).collect();
        let mut stream = self.client.build_image(opts.build(), Some(auth), Some(body_try_stream(context)));
        let mut image_id = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref() {
                        crate::emit_lines(log, text);
                    }
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        return Err(EngineError::Build(e));
                    }
                    if let Some(id) = info.aux.and_then(|a| a.id) {
                        image_id = Some(id);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => return Err(EngineError::Build(error)),
                Err(e) => return Err(EngineError::Build(e.to_string())),
            }
        }
        let image_id = match image_id {
            Some(id) => id,
            None if !first_tag.is_empty() => self
                .image_id(&first_tag)
                .await
                .ok_or_else(|| EngineError::Build("the engine reported no image id".into()))?,
            None => return Err(EngineError::Build("the engine reported no image id".into())),
        };
        Ok(image_id)
    }
}

/// `linux/arm64` against what the engine recorded (`linux/arm64`, `linux/arm64/v8`);
/// `linux/arm64/v8` and `linux/arm64` are the same platform.
fn same_platform(wanted: &str, got: &str) -> bool {
    let norm = |p: &str| {
        let p = p.to_ascii_lowercase();
        let parts: Vec<&str> = p.split('/').collect();
        match parts.as_slice() {
            [os, "arm64", "v8"] | [os, "arm64"] | [os, "aarch64"] => format!("{os}/arm64"),
            [os, "x86_64"] | [os, "amd64"] => format!("{os}/amd64"),
            _ => p.clone(),
        }
    };
    norm(wanted) == norm(got)
}

fn api(e: bollard::errors::Error) -> EngineError {
    EngineError::Api(e.to_string())
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

fn credentials(c: &RegistryCredential) -> DockerCredentials {
    DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.password.clone()),
        serveraddress: Some(c.registry.clone()),
        ..Default::default()
    }
}

/// Splits an image into the name the engine knows it by and the tag (or digest) the
/// push and create-image endpoints want, as `slipway-reference` reads the reference:
/// `reg:5000/a/b:v1` → (`reg:5000/a/b`, `v1`), `a@sha256:…` → (`a`, `sha256:…`).
fn repo_and_tag(image: &str) -> (String, String) {
    let Ok(r) = slipway_reference::Reference::parse(image) else {
        return (image.to_string(), "latest".to_string());
    };
    let mut repo = image;
    if let Some(d) = &r.digest {
        repo = repo.strip_suffix(d.as_str()).and_then(|x| x.strip_suffix('@')).unwrap_or(repo);
    }
    if let Some(t) = &r.explicit_tag {
        repo = repo.strip_suffix(t.as_str()).and_then(|x| x.strip_suffix(':')).unwrap_or(repo);
    }
    let tag = r.digest.clone().unwrap_or_else(|| r.tag().to_string());
    (repo.to_string(), tag)
}

impl Docker {
    /// After a push under `name`: the name back on the image that had it, or none.
    async fn restore_name(&self, name: &str, before: Option<&str>) -> Result<(), EngineError> {
        match before {
            Some(id) => self.tag_image(id, name).await,
            None => self.untag(name).await,
        }
    }

    /// Each platform's image pushed under `image` in turn, then the index put there.
    async fn push_variants(
        &self,
        image: &str,
        variants: &[(String, String)],
        credential: Option<RegistryCredential>,
        log: LogSink,
    ) -> Result<(String, Vec<(String, String)>), EngineError> {
        let failed = |message: String| EngineError::Push {
            image: image.to_string(),
            message,
        };
        let (repo, _) = repo_and_tag(image);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let auth = credential.as_ref().map(|c| (c.username.clone(), c.password.clone()));
        let mut entries = Vec::new();
        let mut digests = Vec::new();
        // Each platform's image goes up under the tag in turn; the index replaces the
        // tag at the end and keeps every platform's manifest referenced.
        for (platform, id) in variants {
            log(&format!("Pushing the {platform} image"));
            self.tag_image(id, image).await?;
            let digest = self.push(image, credential.clone(), log.clone()).await?;
            let described = slipway_registry::describe(&http, &format!("{repo}@{digest}"), auth.clone())
                .await
                .map_err(failed)?;
            entries.push(slipway_registry::IndexEntry {
                manifest: described,
                platform: platform.clone(),
            });
            digests.push((platform.clone(), digest));
        }
        let index = slipway_registry::put_index(&http, image, &entries, auth).await.map_err(failed)?;
        log(&format!("{image}: image index {index} of {} platforms", entries.len()));
        Ok((index, digests))
    }
}

/// Holds the name `name` against every other push of it in this process (the runner's
/// and the runs' engine proxies alike) until the guard is dropped.
pub async fn hold_name(name: &str) -> tokio::sync::OwnedMutexGuard<()> {
    name_lock(name).lock_owned().await
}

/// One lock per image name: a push names the image for as long as it takes.
fn name_lock(name: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::OnceLock<std::sync::Mutex<HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>>> =
        std::sync::OnceLock::new();
    let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    locks.retain(|_, w| w.strong_count() > 0);
    if let Some(l) = locks.get(name).and_then(std::sync::Weak::upgrade) {
        return l;
    }
    let l = Arc::new(tokio::sync::Mutex::new(()));
    locks.insert(name.to_string(), Arc::downgrade(&l));
    l
}

impl Docker {
    /// A run's images: the names in its namespace, and the ids of images labelled
    /// with it that no name holds (what its builds left untagged).
    async fn run_images(&self, run_id: &str) -> Result<(Vec<String>, Vec<String>), EngineError> {
        let prefix = slipway_reference::namespace::prefix(run_id);
        let all = self
            .client
            .list_images(Some(bollard::query_parameters::ListImagesOptionsBuilder::new().all(false).build()))
            .await
            .map_err(api)?;
        let named: Vec<String> = all
            .iter()
            .flat_map(|i| i.repo_tags.iter())
            .filter(|t| t.starts_with(&prefix))
            .cloned()
            .collect();
        let labelled = self
            .client
            .list_images(Some(
                bollard::query_parameters::ListImagesOptionsBuilder::new()
                    .all(false)
                    .filters(&run_filter(run_id))
                    .build(),
            ))
            .await
            .map_err(api)?
            .into_iter()
            .filter(|i| i.repo_tags.iter().all(|t| t.starts_with(&prefix) || t == "<none>:<none>"))
            .map(|i| i.id)
            .collect();
        Ok((named, labelled))
    }

    /// Removes a run's images: its names first, then what only it made and nothing
    /// holds. An image another run uses (a container, another name) stays.
    async fn sweep_images(&self, run_id: &str) -> Result<usize, EngineError> {
        let (named, _) = self.run_images(run_id).await?;
        let mut removed = 0;
        for name in named {
            self.untag(&name).await?;
            removed += 1;
        }
        let (_, labelled) = self.run_images(run_id).await?;
        for id in labelled {
            let opts = bollard::query_parameters::RemoveImageOptionsBuilder::new().build();
            match self.client.remove_image(&id, Some(opts), None).await {
                Ok(_) => removed += 1,
                // Another run's container or name holds it: it is theirs now too.
                Err(e) if is_not_found(&e) => {}
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {}
                Err(e) => return Err(api(e)),
            }
        }
        Ok(removed)
    }
}

fn run_filter(run_id: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])])
}

fn output_bytes(item: LogOutput) -> Option<bytes::Bytes> {
    match item {
        LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message } => Some(message),
        LogOutput::StdIn { .. } => None,
    }
}

/// The longest line kept whole: longer output without a newline (a step printing
/// gigabytes on one line) is sent in pieces of this size, so the daemon holds at most
/// this much of a step's output at a time.
const MAX_LINE: usize = 64 << 10;

/// Splits container output into lines, counting the bytes of the lines sent.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, bytes: &[u8], log: &LogSink) -> u64 {
        let mut sent = 0;
        // Only the new bytes are looked through, never what is carried.
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            self.partial.extend_from_slice(piece);
            if piece.ends_with(b"\n") {
                let line = std::mem::take(&mut self.partial);
                sent += line.len() as u64;
                log(String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']));
            }
            while self.partial.len() >= MAX_LINE {
                let line: Vec<u8> = self.partial.drain(..MAX_LINE).collect();
                sent += line.len() as u64;
                log(&String::from_utf8_lossy(&line));
            }
        }
        sent
    }

    /// Sends a last line without a newline.
    fn finish(&mut self, log: &LogSink) -> u64 {
        if self.partial.is_empty() {
            return 0;
        }
        let line = std::mem::take(&mut self.partial);
        log(&String::from_utf8_lossy(&line));
        line.len() as u64
    }
}

/// Turns streamed text (build output) into lines.
#[async_trait]
impl Engine for Docker {
    async fn ping(&self) -> Result<(), EngineError> {
        self.client.ping().await.map(|_| ()).map_err(|e| EngineError::Unreachable {
            endpoint: self.endpoint.clone(),
            message: e.to_string(),
        })
    }

    async fn create_network(&self, name: &str, driver: &str, ipv6: bool, labels: HashMap<String, String>) -> Result<(), EngineError> {
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some(if driver.is_empty() { "bridge" } else { driver }.to_string()),
            enable_ipv6: Some(ipv6),
            labels: Some(labels),
            ..Default::default()
        };
        self.client.create_network(req).await.map(|_| ()).map_err(api)
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        match self.client.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(e)),
        }
    }

    async fn networks_labelled(&self, key: &str) -> Result<Vec<(String, String)>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![key.to_string()])]);
        let networks = self
            .client
            .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(api)?;
        Ok(networks
            .into_iter()
            .filter_map(|n| {
                let value = n.labels.as_ref().and_then(|l| l.get(key)).cloned().unwrap_or_default();
                n.name.map(|name| (name, value))
            })
            .collect())
    }

    async fn create_volume(&self, name: &str, labels: HashMap<String, String>, bind: Option<&std::path::Path>) -> Result<(), EngineError> {
        let driver_opts = bind.map(|dir| {
            HashMap::from([
                ("type".to_string(), "none".to_string()),
                ("o".to_string(), "bind".to_string()),
                ("device".to_string(), dir.display().to_string()),
            ])
        });
        let req = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            driver: bind.map(|_| "local".to_string()),
            driver_opts,
            ..Default::default()
        };
        self.client.create_volume(req).await.map(|_| ()).map_err(api)
    }

    async fn ensure_image(
        &self,
        image: &str,
        always: bool,
        credential: Option<RegistryCredential>,
        log: LogSink,
    ) -> Result<(), EngineError> {
        if !always && self.client.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        let (repo, tag) = repo_and_tag(image);
        let opts = CreateImageOptionsBuilder::new().from_image(&repo).tag(&tag).build();
        let mut stream = self.client.create_image(Some(opts), None, credential.as_ref().map(credentials));
        let mut last_status = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status {
                        if status != last_status && info.progress_detail.is_none_or(|p| p.current.is_none()) {
                            log(&status);
                            last_status = status;
                        }
                    }
                }
                Err(e) => {
                    return Err(EngineError::ImageUnavailable {
                        image: image.to_string(),
                        message: e.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    async fn build(
        &self,
        build: ImageBuild,
        context: ContextStream,
        creds: Vec<RegistryCredential>,
        log: LogSink,
    ) -> Result<String, EngineError> {
        let buildkit = match build.builder {
            crate::Builder::BuildKit => self.buildkit().await,
            crate::Builder::Classic => None,
        };
        let for_platform = |e: EngineError| match (&build.platform, e) {
            (Some(p), EngineError::Build(m)) => EngineError::Build(format!("for platform {p}: {m}")),
            (_, e) => e,
        };
        let image_id = match buildkit {
            Some(endpoint) => crate::buildkit::build(&endpoint, &build, context, &creds, &log)
                .await
                .map_err(for_platform)?,
            None => {
                if build.builder == crate::Builder::BuildKit {
                    log("The engine offers no BuildKit; building with its classic builder.");
                }
                if !build.secrets.is_empty() {
                    // A Dockerfile that mounts a secret fails on this builder with its
                    // own message ("requires BuildKit"); one that does not builds.
                    log("Warning: the classic builder cannot mount secrets; --secret is ignored");
                }
                if let Some(wanted) = &build.platform {
                    // The classic builder ignores a platform it cannot build for and makes
                    // an image of the engine's own: refuse rather than mislabel.
                    let version = self.client.version().await.map_err(api)?;
                    let own = format!("{}/{}", version.os.unwrap_or_default(), version.arch.unwrap_or_default());
                    if !same_platform(wanted, &own) {
                        return Err(EngineError::Build(format!(
                            "platform {wanted}: the classic builder builds only for the engine's own platform ({own}); use BuildKit"
                        )));
                    }
                }
                let id = self.classic_build(&build, context, &creds, &log).await.map_err(for_platform)?;
                // BuildKit names the image with every tag at once; this builder, the first.
                for tag in build.tags.iter().skip(1) {
                    self.tag_image(&id, tag).await?;
                }
                id
            }
        };
        if let Some(wanted) = &build.platform {
            let got = self.image_platform(&image_id).await.unwrap_or_default();
            if !same_platform(wanted, &got) {
                return Err(EngineError::Build(format!(
                    "the build for platform {wanted} made an image for {got}: this engine cannot build {wanted}{}",
                    if build.builder == crate::Builder::BuildKit {
                        ""
                    } else {
                        " with the classic builder (use BuildKit)"
                    }
                )));
            }
        }
        Ok(image_id)
    }

    async fn tag_image(&self, image_id: &str, tag: &str) -> Result<(), EngineError> {
        let (repo, t) = repo_and_tag(tag);
        self.client
            .tag_image(image_id, Some(TagImageOptionsBuilder::new().repo(&repo).tag(&t).build()))
            .await
            .map_err(api)
    }

    async fn push_index(
        &self,
        image: &str,
        variants: &[(String, String)],
        credential: Option<RegistryCredential>,
        log: LogSink,
        keep_name: bool,
    ) -> Result<(String, Vec<(String, String)>), EngineError> {
        let lock = name_lock(image);
        let _held = lock.lock().await;
        let before = self.image_id(image).await;
        let pushed = self.push_variants(image, variants, credential, log).await;
        if keep_name {
            if let (Ok(_), Some((_, first))) = (&pushed, variants.first()) {
                self.tag_image(first, image).await?;
            }
        } else {
            self.restore_name(image, before.as_deref()).await?;
        }
        pushed
    }

    async fn push(&self, image: &str, credential: Option<RegistryCredential>, log: LogSink) -> Result<String, EngineError> {
        let (repo, tag) = repo_and_tag(image);
        let opts = PushImageOptionsBuilder::new().tag(&tag).build();
        let mut stream = self.client.push_image(&repo, Some(opts), credential.as_ref().map(credentials));
        let mut digest = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        return Err(EngineError::Push {
                            image: image.to_string(),
                            message: e,
                        });
                    }
                    if let Some(status) = info.status {
                        if let Some(d) = status.split_whitespace().skip_while(|w| *w != "digest:").nth(1) {
                            digest = Some(d.to_string());
                        }
                        if info.progress_detail.is_none_or(|p| p.current.is_none()) {
                            log(&status);
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(EngineError::Push {
                        image: image.to_string(),
                        message: error,
                    })
                }
                Err(e) => {
                    return Err(EngineError::Push {
                        image: image.to_string(),
                        message: e.to_string(),
                    })
                }
            }
        }
        digest.ok_or_else(|| EngineError::Push {
            image: image.to_string(),
            message: "the registry reported no digest".into(),
        })
    }

    async fn push_as(
        &self,
        source: &str,
        target: &str,
        credential: Option<RegistryCredential>,
        log: LogSink,
    ) -> Result<String, EngineError> {
        let lock = name_lock(target);
        let _held = lock.lock().await;
        let before = self.image_id(target).await;
        self.tag_image(source, target).await?;
        let pushed = self.push(target, credential, log).await;
        // Whatever the push did, the name goes back to what it was.
        let restored = self.restore_name(target, before.as_deref()).await;
        let digest = pushed?;
        restored?;
        Ok(digest)
    }

    async fn untag(&self, image: &str) -> Result<(), EngineError> {
        let opts = bollard::query_parameters::RemoveImageOptionsBuilder::new().noprune(false).build();
        match self.client.remove_image(image, Some(opts), None).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // Held by a container (of this run, removed later by the sweep).
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(api(e)),
        }
    }

    async fn image_digest(&self, image: &str) -> Option<String> {
        let inspect = self.client.inspect_image(image).await.ok()?;
        let (repo, _) = repo_and_tag(image);
        inspect
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find_map(|d| d.split_once('@').filter(|(r, _)| *r == repo.as_str()).map(|(_, d)| d.to_string()))
    }

    async fn image_id(&self, image: &str) -> Option<String> {
        self.client.inspect_image(image).await.ok().and_then(|i| i.id)
    }

    async fn image_triggers(&self, image: &str) -> Vec<String> {
        let inspect = self.client.inspect_image(image).await.ok();
        inspect.and_then(|i| i.config).and_then(|c| c.on_build).unwrap_or_default()
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        let mut exposed: Vec<String> = Vec::new();
        for p in &spec.ports {
            let container = p.container_key();
            port_bindings
                .entry(container.clone())
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: p.host_ip.clone(),
                    host_port: Some(p.host_port.clone().unwrap_or_default()),
                });
            exposed.push(container);
        }
        for e in &spec.expose {
            exposed.push(if e.contains('/') { e.clone() } else { format!("{e}/tcp") });
        }
        let endpoints = spec
            .network
            .as_ref()
            .filter(|n| !n.starts_with("container:") && *n != "host" && *n != "none")
            .map(|n| {
                HashMap::from([(
                    n.clone(),
                    EndpointSettings {
                        aliases: Some(spec.aliases.clone()),
                        ..Default::default()
                    },
                )])
            });
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.cmd.clone()).filter(|c| !c.is_empty()),
            entrypoint: spec.entrypoint.clone(),
            env: Some(spec.env.clone()),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            labels: Some(spec.labels.clone()),
            exposed_ports: Some(exposed).filter(|e| !e.is_empty()),
            host_config: Some(HostConfig {
                mounts: Some(spec.mounts.iter().map(engine_mount).collect()).filter(|m: &Vec<_>| !m.is_empty()),
                network_mode: spec.network.clone(),
                privileged: Some(spec.privileged),
                port_bindings: Some(port_bindings).filter(|p| !p.is_empty()),
                nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
                extra_hosts: Some(spec.extra_hosts.clone()).filter(|h| !h.is_empty()),
                cap_drop: Some(spec.cap_drop.clone()).filter(|c| !c.is_empty()),
                memory: spec.memory.map(|m| m as i64),
                pids_limit: spec.pids_limit.map(|p| p as i64),
                shm_size: spec.shm_size.map(|s| s as i64),
                log_config: spec.log_driver.as_ref().map(|(kind, options)| HostConfigLogConfig {
                    typ: Some(kind.clone()),
                    config: Some(options.iter().cloned().collect()),
                }),
                ..Default::default()
            }),
            networking_config: endpoints.map(|e| NetworkingConfig { endpoints_config: Some(e) }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::new().name(&spec.name).build();
        self.client.create_container(Some(opts), body).await.map(|_| ()).map_err(|e| {
            if is_not_found(&e) {
                EngineError::ImageUnavailable {
                    image: spec.image.clone(),
                    message: e.to_string(),
                }
            } else {
                api(e)
            }
        })
    }

    async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        self.client.start_container(name, None).await.map_err(api)
    }

    async fn follow_logs(&self, name: &str, log: LogSink, emitted: Arc<AtomicU64>) {
        let opts = LogsOptionsBuilder::new().follow(true).stdout(true).stderr(true).build();
        let mut lines = Lines::default();
        let mut stream = self.client.logs(name, Some(opts));
        while let Some(Ok(item)) = stream.next().await {
            if let Some(bytes) = output_bytes(item) {
                let sent = lines.push(&bytes, &log);
                emitted.fetch_add(sent, Ordering::SeqCst);
            }
        }
        let sent = lines.finish(&log);
        emitted.fetch_add(sent, Ordering::SeqCst);
    }

    async fn logs_after(&self, name: &str, offset: u64, log: LogSink) -> Result<(), EngineError> {
        let opts = LogsOptionsBuilder::new().follow(false).stdout(true).stderr(true).build();
        let mut stream = self.client.logs(name, Some(opts));
        let mut skip = offset;
        let mut lines = Lines::default();
        while let Some(item) = stream.next().await {
            let Some(bytes) = output_bytes(item.map_err(api)?) else { continue };
            let take = skip.min(bytes.len() as u64) as usize;
            skip -= take as u64;
            lines.push(&bytes[take..], &log);
        }
        lines.finish(&log);
        Ok(())
    }

    async fn wait_container(&self, name: &str) -> Result<Exit, EngineError> {
        let mut stream = self.client.wait_container(name, None);
        // Non-zero exits come back as errors (DEPENDENCIES.md). Only a failure needs the
        // inspect call, to tell an out-of-memory kill apart.
        let code = match stream.next().await {
            Some(Ok(r)) => Some(r.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Some(code),
            _ => None,
        };
        if code == Some(0) {
            return Ok(Exit {
                code: 0,
                oom_killed: false,
            });
        }
        let inspect = self.client.inspect_container(name, None).await.map_err(api)?;
        let state = inspect.state.unwrap_or_default();
        Ok(Exit {
            code: state.exit_code.or(code).unwrap_or(-1),
            oom_killed: state.oom_killed.unwrap_or(false),
        })
    }

    async fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        match self.client.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // Already being removed by another call.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(api(e)),
        }
    }

    async fn sweep(&self, run_id: &str) -> Result<usize, EngineError> {
        let filters = run_filter(run_id);
        let mut removed = 0;
        let containers = self
            .client
            .list_containers(Some(ListContainersOptionsBuilder::new().all(true).filters(&filters).build()))
            .await
            .map_err(api)?;
        for c in containers {
            if let Some(id) = c.id {
                self.remove_container(&id).await?;
                removed += 1;
            }
        }
        let networks = self
            .client
            .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(api)?;
        for n in networks {
            if let Some(id) = n.id {
                match self.client.remove_network(&id).await {
                    Ok(()) => removed += 1,
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(api(e)),
                }
            }
        }
        let volumes = self
            .client
            .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(api)?;
        for v in volumes.volumes.unwrap_or_default() {
            match self
                .client
                .remove_volume(&v.name, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await
            {
                Ok(()) => removed += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(api(e)),
            }
        }
        removed += self.sweep_images(run_id).await?;
        Ok(removed)
    }

    async fn leftovers(&self, run_id: &str) -> Result<Vec<String>, EngineError> {
        let filters = run_filter(run_id);
        let mut out = Vec::new();
        for c in self
            .client
            .list_containers(Some(ListContainersOptionsBuilder::new().all(true).filters(&filters).build()))
            .await
            .map_err(api)?
        {
            out.push(format!("container {}", c.names.unwrap_or_default().join(",")));
        }
        for n in self
            .client
            .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(api)?
        {
            out.push(format!("network {}", n.name.unwrap_or_default()));
        }
        for v in self
            .client
            .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(api)?
            .volumes
            .unwrap_or_default()
        {
            out.push(format!("volume {}", v.name));
        }
        let (named, labelled) = self.run_images(run_id).await?;
        out.extend(named.into_iter().map(|n| format!("image {n}")));
        out.extend(labelled.into_iter().map(|id| format!("image {id}")));
        Ok(out)
    }
}

/// A mount as the engine's API takes it.
fn engine_mount(m: &crate::Mount) -> bollard::models::Mount {
    match m {
        crate::Mount::Volume { name, target } => bollard::models::Mount {
            typ: Some(bollard::models::MountType::VOLUME),
            source: Some(name.clone()),
            target: Some(target.clone()),
            ..Default::default()
        },
        crate::Mount::Host { source, target, read_only } => bollard::models::Mount {
            typ: Some(bollard::models::MountType::BIND),
            source: Some(source.to_string_lossy().into_owned()),
            target: Some(target.clone()),
            read_only: Some(*read_only),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_bounded() {
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink: LogSink = {
            let got = got.clone();
            std::sync::Arc::new(move |l: &str| got.lock().unwrap().push(l.to_string()))
        };
        let mut lines = Lines::default();
        let mut sent = lines.push(b"a\r\nb", &sink);
        sent += lines.push(b"c\n", &sink);
        sent += lines.push(&vec![b'x'; MAX_LINE * 2 + 5], &sink);
        assert!(lines.partial.len() < MAX_LINE, "what is carried stays bounded");
        sent += lines.finish(&sink);
        let got = got.lock().unwrap();
        assert_eq!(got[..2], ["a", "bc"]);
        assert_eq!(got[2..].iter().map(|l| l.len()).collect::<Vec<_>>(), [MAX_LINE, MAX_LINE, 5]);
        assert_eq!(sent, 3 + 3 + (MAX_LINE as u64 * 2 + 5), "every byte counted once");
    }

    #[test]
    fn repo_and_tag_split() {
        let split = |i: &str| {
            let (r, t) = repo_and_tag(i);
            (r, t)
        };
        assert_eq!(split("127.0.0.1:5000/a/b:v1"), ("127.0.0.1:5000/a/b".into(), "v1".into()));
        assert_eq!(split("127.0.0.1:5000/a/b"), ("127.0.0.1:5000/a/b".into(), "latest".into()));
        assert_eq!(split("alpine"), ("alpine".into(), "latest".into()));
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(split(&format!("reg.io/app@{digest}")), ("reg.io/app".into(), digest.clone()));
        assert_eq!(split(&format!("reg.io:5000/app:v2@{digest}")), ("reg.io:5000/app".into(), digest));
    }
}
