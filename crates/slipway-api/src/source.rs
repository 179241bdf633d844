//! Where a run's source is: `upload://ID`, a git URL (`URL#ref:subfolder`), or a tar.gz
//! URL. Parsed here once; fetching is `slipway-sources`' business.

use std::path::Path;

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

pub fn parse_git(location: &str) -> Result<GitSource, String> {
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
            return Err(format!("subfolder {s:?} must be a relative path inside the repository"));
        }
    }
    Ok(GitSource {
        url: url.to_string(),
        reference,
        subfolder,
    })
}

impl GitSource {
    /// The location again, pinned to `commit` (keeping the subfolder).
    pub fn at_commit(&self, commit: &str) -> String {
        match &self.subfolder {
            Some(sub) => format!("{}#{commit}:{sub}", self.url),
            None => format!("{}#{commit}", self.url),
        }
    }
}

/// `https://Host/Org/Repo.git/` and `host/org/repo` are the same repository.
pub fn normalise_repo(url: &str) -> String {
    let u = url.split('#').next().unwrap_or(url).trim().trim_end_matches('/');
    let u = u.split_once("://").map(|(_, rest)| rest).unwrap_or(u);
    let u = u.rsplit_once('@').map(|(_, rest)| rest).unwrap_or(u);
    u.trim_end_matches(".git").trim_end_matches('/').to_ascii_lowercase()
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
