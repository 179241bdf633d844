//! A run's `sourceLocation` → a directory on disk: an upload, a git repository at a
//! branch, tag or commit (with an optional subfolder), a tar.gz URL, or nothing.

use crate::uploads;
use std::path::{Path, PathBuf};

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
}

/// A git source: `URL[#ref[:subfolder]]`.
#[derive(Debug, PartialEq)]
pub struct GitSource {
    pub url: String,
    pub reference: Option<String>,
    pub subfolder: Option<String>,
}

/// `http(s)://…` that is not a git repository: a tar.gz to download.
pub fn is_tarball(location: &str) -> bool {
    (location.starts_with("http://") || location.starts_with("https://")) && !is_git(location)
}

pub fn is_git(location: &str) -> bool {
    let base = location.split('#').next().unwrap_or("");
    base.starts_with("git://") || base.starts_with("file://") || base.ends_with(".git") || base.starts_with("git@")
}

pub fn parse_git(location: &str) -> Result<GitSource, SourceError> {
    let (url, fragment) = match location.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (location, None),
    };
    let (reference, subfolder) = match fragment {
        None | Some("") => (None, None),
        Some(f) => match f.split_once(':') {
            Some((r, s)) => (
                Some(r.to_string()).filter(|r| !r.is_empty()),
                Some(s.trim_matches('/').to_string()).filter(|s| !s.is_empty()),
            ),
            None => (Some(f.to_string()), None),
        },
    };
    if let Some(s) = &subfolder {
        if Path::new(s).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(SourceError::Invalid(format!(
                "subfolder {s:?} must be a relative path inside the repository"
            )));
        }
    }
    Ok(GitSource {
        url: url.to_string(),
        reference,
        subfolder,
    })
}

/// Checks a `sourceLocation` when a run is requested, so a bad one is refused at once.
pub fn validate(location: Option<&str>, data_dir: &Path) -> Result<(), SourceError> {
    let Some(loc) = location.filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    if let Some(id) = loc.strip_prefix("upload://") {
        if !uploads::archive_path(data_dir, id).exists() || id.contains('/') || id.contains("..") {
            return Err(SourceError::UnknownUpload(id.to_string()));
        }
        return Ok(());
    }
    if is_git(loc) {
        parse_git(loc)?;
        return Ok(());
    }
    if is_tarball(loc) {
        return Ok(());
    }
    Err(SourceError::Invalid(format!(
        "sourceLocation {loc:?} is not an upload (upload://ID), a git URL (…/repo.git#ref:subfolder, git://, file://) or an http(s) tar.gz URL"
    )))
}

/// What fetching a source may need besides the location.
#[derive(Clone, Default)]
pub struct FetchOptions {
    /// Host (with port) → `user:token`, for git over HTTP(S). Never logged.
    pub git_credentials: std::collections::BTreeMap<String, String>,
    /// Largest tar.gz accepted from a URL.
    pub max_bytes: u64,
}

/// Materialises the source into `dest` (blocking: call from a blocking thread).
pub fn fetch(location: Option<&str>, data_dir: &Path, dest: &Path, opts: &FetchOptions) -> Result<Source, SourceError> {
    std::fs::create_dir_all(dest)?;
    let Some(loc) = location.filter(|l| !l.is_empty()) else {
        return Ok(Source {
            dir: dest.to_path_buf(),
            ..Default::default()
        });
    };
    validate(Some(loc), data_dir)?;
    if let Some(id) = loc.strip_prefix("upload://") {
        uploads::extract(&uploads::archive_path(data_dir, id), dest)?;
        return Ok(Source {
            dir: dest.to_path_buf(),
            ..Default::default()
        });
    }
    if is_tarball(loc) {
        let archive = dest.with_extension("download.tar.gz");
        let result = download(loc, &archive, opts.max_bytes).and_then(|_| Ok(uploads::extract(&archive, dest)?));
        let _ = std::fs::remove_file(&archive);
        result?;
        return Ok(Source {
            dir: dest.to_path_buf(),
            repository: loc.to_string(),
            ..Default::default()
        });
    }
    let git = parse_git(loc)?;
    clone(&git, dest, &opts.git_credentials)
}

fn download(url: &str, to: &Path, max_bytes: u64) -> Result<(), SourceError> {
    use std::io::{Read, Write};
    let fail = |m: String| SourceError::Invalid(format!("cannot download {url}: {m}"));
    let resp = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(3600))
        .build()
        .map_err(|e| fail(e.to_string()))?
        .get(url)
        .send()
        .map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("the server answered {}", resp.status())));
    }
    let mut file = std::fs::File::create(to)?;
    let mut body = resp.take(max_bytes.saturating_add(1));
    let copied = std::io::copy(&mut body, &mut file)?;
    file.flush()?;
    if max_bytes > 0 && copied > max_bytes {
        return Err(uploads::UploadError::TooLarge { limit: max_bytes }.into());
    }
    Ok(())
}

fn git_err(e: git2::Error) -> SourceError {
    SourceError::Git(e.message().to_string())
}

/// Fetch options that answer libgit2's credential requests from configuration.
fn fetch_options(url: &str, credentials: &std::collections::BTreeMap<String, String>) -> git2::FetchOptions<'static> {
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
            (Some(c), true, 1) => {
                let (user, token) = c.split_once(':').unwrap_or((c.as_str(), ""));
                git2::Cred::userpass_plaintext(user, token)
            }
            // Credentials were refused (or there are none): say so without echoing them.
            _ => Err(git2::Error::from_str(&format!(
                "authentication to {host} failed or no credentials are configured for it (git_credentials)"
            ))),
        }
    });
    let mut fo = git2::FetchOptions::new();
    fo.remote_callbacks(callbacks);
    fo
}

fn clone(src: &GitSource, dest: &Path, credentials: &std::collections::BTreeMap<String, String>) -> Result<Source, SourceError> {
    let repo_dir = dest.join("repo");
    // A branch clones shallow where the transport allows; a tag or commit needs history.
    let shallow = src.reference.as_ref().filter(|r| !looks_like_commit(r)).and_then(|branch| {
        let mut fo = fetch_options(&src.url, credentials);
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
                .fetch_options(fetch_options(&src.url, credentials))
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
    let dir = match &src.subfolder {
        Some(s) => repo_dir.join(s),
        None => repo_dir.clone(),
    };
    if !dir.is_dir() {
        return Err(SourceError::Invalid(format!(
            "subfolder {:?} does not exist at {commit}",
            src.subfolder.as_deref().unwrap_or("")
        )));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_locations() {
        assert_eq!(
            parse_git("https://host/repo.git#main:sub/dir").unwrap(),
            GitSource {
                url: "https://host/repo.git".into(),
                reference: Some("main".into()),
                subfolder: Some("sub/dir".into())
            }
        );
        assert_eq!(parse_git("file:///r.git").unwrap().reference, None);
        assert_eq!(parse_git("git://h/r#:sub").unwrap().subfolder.as_deref(), Some("sub"));
        assert!(parse_git("file:///r.git#main:../x").is_err());
        assert!(is_git("file:///tmp/x#main") && is_git("https://h/r.git") && !is_git("https://h/ctx.tar.gz"));
        assert!(is_tarball("https://h/ctx.tar.gz") && is_tarball("http://127.0.0.1:9/x.tgz") && !is_tarball("https://h/r.git#main"));
    }
}
