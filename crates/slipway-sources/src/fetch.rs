//! A run's `sourceLocation` → a directory on disk: an upload, a git repository at a
//! branch, tag or commit (with an optional subfolder), a tar.gz URL, or nothing.

use crate::reach::Reach;
use crate::uploads;
use slipway_api::source::{is_git, is_tarball, parse_git, GitSource};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where a run's context came from, for its run variables.
#[derive(Debug, Default, Clone)]
pub struct Source {
    pub dir: PathBuf,
    pub commit: String,
    pub branch: String,
    pub repository: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Invalid(String),
    #[error("upload {0} does not exist (or was purged)")]
    UnknownUpload(String),
    #[error("{0}")]
    Upload(#[from] uploads::UploadError),
    #[error("git: {0}")]
    Git(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the fetch was canceled")]
    Canceled,
    #[error("the fetch did not finish within the run's timeout")]
    TimedOut,
}

/// Checks a `sourceLocation` when a run is requested, so a bad one is refused at once:
/// its form, and what it would make the daemon reach (names are resolved at the fetch).
pub fn validate(location: Option<&str>, data_dir: &Path, reach: &Reach) -> Result<(), SourceError> {
    let Some(loc) = location.filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    if let Some(id) = loc.strip_prefix("upload://") {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) || !uploads::archive_path(data_dir, id).exists() {
            return Err(SourceError::UnknownUpload(id.chars().take(64).collect()));
        }
        return Ok(());
    }
    if is_git(loc) {
        let git = parse_git(loc).map_err(SourceError::Invalid)?;
        if git.url.starts_with("file://") {
            reach.check_file(&git.url).map_err(SourceError::Invalid)?;
        } else if !git.url.starts_with("git@") {
            reach.check_url_literal(&git.url).map_err(SourceError::Invalid)?;
        }
        return Ok(());
    }
    if is_tarball(loc) {
        return reach.check_url_literal(loc).map_err(SourceError::Invalid);
    }
    Err(SourceError::Invalid(format!(
        "sourceLocation {:?} is not an upload (upload://ID), a git URL (…/repo.git#ref:subfolder, git://, file://) or an http(s) tar.gz URL",
        loc.chars().take(200).collect::<String>()
    )))
}

/// What fetching a source may need besides the location.
#[derive(Clone)]
pub struct FetchOptions {
    /// Host (with port) → `user:token`, for git over HTTP(S). Never logged.
    pub git_credentials: std::collections::BTreeMap<String, slipway_api::secrets::Credential>,
    /// Largest tar.gz accepted from a URL.
    pub max_bytes: u64,
    /// How big a context may be once unpacked.
    pub limits: slipway_context::archive::Limits,
    pub reach: Arc<Reach>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// The whole fetch ends by then (the run's own timeout).
    pub deadline: Duration,
}

/// Materialises the source into `dest`. Cancel or the deadline end it at once: the
/// worker is free again, and a git transfer still in flight stops at its next packet.
pub async fn fetch(
    location: Option<&str>,
    data_dir: &Path,
    dest: &Path,
    opts: &FetchOptions,
    cancel: &CancellationToken,
) -> Result<Source, SourceError> {
    let stop = Arc::new(AtomicBool::new(false));
    let work = fetch_inner(location, data_dir, dest, opts, stop.clone());
    let result = tokio::select! {
        r = work => r,
        _ = cancel.cancelled() => Err(SourceError::Canceled),
        _ = tokio::time::sleep(opts.deadline) => Err(SourceError::TimedOut),
    };
    stop.store(true, Ordering::SeqCst);
    result
}

async fn fetch_inner(
    location: Option<&str>,
    data_dir: &Path,
    dest: &Path,
    opts: &FetchOptions,
    stop: Arc<AtomicBool>,
) -> Result<Source, SourceError> {
    tokio::fs::create_dir_all(dest).await?;
    let here = |dir: &Path| Source {
        dir: dir.to_path_buf(),
        ..Default::default()
    };
    let Some(loc) = location.filter(|l| !l.is_empty()).map(str::to_string) else {
        return Ok(here(dest));
    };
    validate(Some(&loc), data_dir, &opts.reach)?;
    let blocking = |f: Box<dyn FnOnce() -> Result<Source, SourceError> + Send>| async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| SourceError::Io(std::io::Error::other(e.to_string())))?
    };
    if let Some(id) = loc.strip_prefix("upload://") {
        let (archive, into, limits) = (uploads::archive_path(data_dir, id), dest.to_path_buf(), opts.limits);
        return blocking(Box::new(move || {
            uploads::extract(&archive, &into, &limits)?;
            Ok(here(&into))
        }))
        .await;
    }
    if is_tarball(&loc) {
        let archive = dest.with_extension("download.tar.gz");
        let downloaded = download(&loc, &archive, opts).await;
        let result = match downloaded {
            Ok(()) => {
                let (archive, into, limits) = (archive.clone(), dest.to_path_buf(), opts.limits);
                blocking(Box::new(move || {
                    uploads::extract(&archive, &into, &limits)?;
                    Ok(here(&into))
                }))
                .await
            }
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&archive).await;
        let mut source = result?;
        source.repository = loc;
        return Ok(source);
    }
    let git = parse_git(&loc).map_err(SourceError::Invalid)?;
    if !git.url.starts_with("file://") {
        let (reach, url) = (opts.reach.clone(), git.url.clone());
        tokio::task::spawn_blocking(move || reach.check_url(&url))
            .await
            .map_err(|e| SourceError::Io(std::io::Error::other(e.to_string())))?
            .map_err(SourceError::Invalid)?;
    }
    let (dest, credentials) = (dest.to_path_buf(), opts.git_credentials.clone());
    blocking(Box::new(move || clone(&git, &dest, &credentials, &stop))).await
}

/// Downloads `url` to `to` with the source's timeouts, every address and redirect
/// checked, and at most `max_bytes` kept (also what the daemon fetches for a
/// Dockerfile's `ADD URL`, which the engine would fetch unchecked from the host).
pub async fn download(url: &str, to: &Path, opts: &FetchOptions) -> Result<(), SourceError> {
    use tokio::io::AsyncWriteExt;
    let fail = |m: String| SourceError::Invalid(format!("cannot download {url}: {m}"));
    let reach = opts.reach.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("more than 5 redirects");
        }
        match reach.check_url_literal(attempt.url().as_str()) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    });
    let client = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .redirect(redirects)
        .dns_resolver(opts.reach.resolver())
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut resp = client.get(url).send().await.map_err(|e| fail(source_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(fail(format!("the server answered {}", resp.status())));
    }
    let mut file = tokio::fs::File::create(to).await?;
    let mut size = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(source_chain(&e)))? {
        size += chunk.len() as u64;
        if opts.max_bytes > 0 && size > opts.max_bytes {
            return Err(uploads::UploadError::TooLarge { limit: opts.max_bytes }.into());
        }
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(())
}

/// An error with its causes, which is where reqwest says what really went wrong.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

fn git_err(e: git2::Error) -> SourceError {
    SourceError::Git(e.message().to_string())
}

/// Fetch options that answer libgit2's credential requests from configuration.
fn fetch_options(
    url: &str,
    credentials: &std::collections::BTreeMap<String, slipway_api::secrets::Credential>,
    stop: &Arc<AtomicBool>,
) -> git2::FetchOptions<'static> {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(|h| h.rsplit('@').next().unwrap_or(h).to_string())
        .unwrap_or_default();
    let creds = credentials.get(&host).cloned();
    let mut callbacks = git2::RemoteCallbacks::new();
    let mut tries = 0;
    callbacks.credentials(move |_url, _user, allowed| {
        tries += 1;
        match (&creds, allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT), tries) {
            (Some(c), true, 1) => git2::Cred::userpass_plaintext(&c.user, &c.secret),
            // Credentials were refused (or there are none): say so without echoing them.
            _ => Err(git2::Error::from_str(&format!(
                "authentication to {host} failed or no credentials are configured for it (git_credentials)"
            ))),
        }
    });
    // Returning false from a progress callback aborts the transfer: how a cancel or a
    // deadline reaches libgit2.
    let stop_transfer = stop.clone();
    callbacks.transfer_progress(move |_| !stop_transfer.load(Ordering::SeqCst));
    let stop_sideband = stop.clone();
    callbacks.sideband_progress(move |_| !stop_sideband.load(Ordering::SeqCst));
    let mut fo = git2::FetchOptions::new();
    fo.remote_callbacks(callbacks);
    // libgit2 would follow a server's redirect on the first request without asking
    // where it leads; a redirect could reach the daemon's own network.
    fo.follow_redirects(git2::RemoteRedirect::None);
    fo
}

/// libgit2 waits for a silent server forever by default; these bound every connect and
/// every read of every git fetch in the process.
#[allow(unsafe_code)]
pub fn set_git_timeouts(connect: Duration, read: Duration) {
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: libgit2's global options; set once at start-up, before any fetch runs.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms(connect));
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms(read));
    }
}

fn clone(
    src: &GitSource,
    dest: &Path,
    credentials: &std::collections::BTreeMap<String, slipway_api::secrets::Credential>,
    stop: &Arc<AtomicBool>,
) -> Result<Source, SourceError> {
    let repo_dir = dest.join("repo");
    // A branch clones shallow where the transport allows; a tag or commit needs history.
    let shallow = src.reference.as_ref().filter(|r| !looks_like_commit(r)).and_then(|branch| {
        let mut fo = fetch_options(&src.url, credentials, stop);
        fo.depth(1);
        git2::build::RepoBuilder::new()
            .branch(branch)
            .fetch_options(fo)
            .clone(&src.url, &repo_dir)
            .ok()
            .map(|r| (r, branch.clone()))
    });
    let (repo, branch) = match shallow {
        Some((r, b)) => (r, b),
        None => {
            let _ = std::fs::remove_dir_all(&repo_dir);
            let repo = git2::build::RepoBuilder::new()
                .fetch_options(fetch_options(&src.url, credentials, stop))
                .clone(&src.url, &repo_dir)
                .map_err(git_err)?;
            let mut branch = String::new();
            if let Some(reference) = &src.reference {
                let object = repo
                    .revparse_single(reference)
                    .or_else(|_| repo.revparse_single(&format!("origin/{reference}")))
                    .or_else(|_| repo.revparse_single(&format!("refs/tags/{reference}")))
                    .map_err(|_| SourceError::Git(format!("{reference:?} is not a branch, tag or commit of {}", src.url)))?;
                let commit = object.peel_to_commit().map_err(git_err)?;
                repo.checkout_tree(commit.as_object(), Some(git2::build::CheckoutBuilder::new().force()))
                    .map_err(git_err)?;
                repo.set_head_detached(commit.id()).map_err(git_err)?;
                if repo.find_branch(&format!("origin/{reference}"), git2::BranchType::Remote).is_ok() {
                    branch = reference.clone();
                }
            } else if let Ok(head) = repo.head() {
                branch = head.shorthand().unwrap_or_default().to_string();
            }
            (repo, branch)
        }
    };
    let commit = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map(|c| c.id().to_string())
        .map_err(git_err)?;
    // A subfolder is resolved beneath the checkout: a repository whose `sub` is a
    // symlink to a host directory must not get that directory mounted at /workspace.
    let dir = match &src.subfolder {
        Some(s) => slipway_context::Beneath::open(&repo_dir)
            .and_then(|b| b.real_path(s))
            .ok()
            .filter(|d| d.is_dir())
            .ok_or_else(|| {
                SourceError::Invalid(format!(
                    "subfolder {s:?} does not exist at {commit} or leads outside the repository"
                ))
            })?,
        None => repo_dir.clone(),
    };
    Ok(Source {
        dir,
        commit,
        branch,
        repository: src.url.clone(),
    })
}

fn looks_like_commit(r: &str) -> bool {
    r.len() >= 7 && r.len() <= 40 && r.chars().all(|c| c.is_ascii_hexdigit())
}
