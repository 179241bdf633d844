//! Image references as Docker reads them: `[registry/]repository[:tag][@digest]`.
//!
//! This is the one place Slipway parses an image name. It follows the grammar of
//! the Distribution project's `reference` package and Docker's normalisation:
//! a first path component is a registry only when it holds a `.` or a `:`, is
//! `localhost`, or has an uppercase letter; otherwise the image lives on Docker Hub,
//! and a single-component Hub name gets the `library/` prefix.
//!
//! ```
//! use slipway_reference::Reference;
//! let r = Reference::parse("alpine").unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
//! let r = Reference::parse("127.0.0.1:5000/team/app:v1").unwrap();
//! assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag()), ("127.0.0.1:5000", "team/app", "v1"));
//! ```

pub mod host;
pub mod namespace;

use std::fmt;

/// The registry that names without a registry component refer to.
pub const DOCKER_HUB: &str = "docker.io";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path inside the registry (`library/alpine`).
    pub repository: String,
    /// The tag, when one was written. See [`Reference::tag`] for the effective one.
    pub explicit_tag: Option<String>,
    /// The digest (`sha256:…`), when one was written.
    pub digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("invalid image reference {input:?}: {reason}")]
    Invalid { input: String, reason: String },
}

impl Reference {
    /// Parses and normalises an image reference.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let bad = |reason: &str| ReferenceError::Invalid {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.chars().any(|c| c.is_whitespace()) {
            return Err(bad("contains whitespace"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest).map_err(|r| bad(&r))?;
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                let tag = &rest[at + 1..];
                validate_tag(tag).map_err(|r| bad(&r))?;
                (&rest[..at], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(bad("missing repository name"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(bad("repository name longer than 255 characters"));
        }
        let (registry, path) = split_registry(name);
        if let Some(registry) = registry {
            validate_registry(registry).map_err(|r| bad(&r))?;
        }
        for component in path.split('/') {
            validate_path_component(component).map_err(|r| bad(&r))?;
        }
        let (registry, repository) = match registry {
            Some(r) => (r.to_string(), path.to_string()),
            None if path.contains('/') => (DOCKER_HUB.to_string(), path.to_string()),
            None => (DOCKER_HUB.to_string(), format!("library/{path}")),
        };
        Ok(Reference {
            registry,
            repository,
            explicit_tag: tag,
            digest,
        })
    }

    /// The tag, `latest` when none was written.
    pub fn tag(&self) -> &str {
        self.explicit_tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag`, ignoring any digest. This is the form a push uses.
    pub fn tagged(&self) -> String {
        format!("{}:{}", self.name(), self.tag())
    }

    /// The same reference with a digest pinned.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// The form people write: `alpine:3.19` for Docker Hub's library, `team/app:1` for
    /// other Hub repositories, `registry/repository:tag` otherwise (digest kept).
    pub fn familiar(&self) -> String {
        let name = match (self.is_docker_hub(), self.repository.strip_prefix("library/")) {
            (true, Some(short)) if !short.contains('/') => short.to_string(),
            (true, _) => self.repository.clone(),
            (false, _) => self.name(),
        };
        let mut out = match (&self.explicit_tag, &self.digest) {
            (None, Some(_)) => name,
            _ => format!("{name}:{}", self.tag()),
        };
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(d);
        }
        out
    }

    /// Whether this names an image on Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }
}

impl fmt::Display for Reference {
    /// The fully normalised form: `registry/repository:tag[@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.tagged())?;
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A registry's name as Slipway compares registries: lowercase, without a scheme or the
/// default HTTPS port, the port as a number (`05000` is `5000`), Docker Hub's other
/// names as `docker.io`, and every name of this machine's loopback (`localhost`, any
/// `127.x.x.x`, `[::1]`, `0.0.0.0`, `[::]`) as `127.0.0.1`, since a registry listening
/// on all of them answers each. Two spellings of one registry give one key.
pub fn registry_key(registry: &str) -> String {
    let r = registry.trim().to_ascii_lowercase();
    let r = r.strip_prefix("https://").or_else(|| r.strip_prefix("http://")).unwrap_or(&r);
    let r = r.trim_end_matches('/');
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (!h.contains(':') || h.ends_with(']')) => {
            (h, p.trim_start_matches('0').parse::<u32>().ok().or(Some(0)))
        }
        _ => (r, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        "localhost" => "127.0.0.1",
        h => match h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .or_else(|e| loose_ipv4(h).map(std::net::IpAddr::V4).ok_or(e))
        {
            Ok(ip) if ip.is_loopback() || ip.is_unspecified() => "127.0.0.1",
            Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_unspecified()) => "127.0.0.1",
            _ => h,
        },
    };
    match port {
        None | Some(443) => host.to_string(),
        Some(p) => format!("{host}:{p}"),
    }
}

/// An IPv4 address as the C resolver reads one (`127.1`, `2130706433`, `0x7f.0.0.1`,
/// `0177.0.0.1`), which a registry name may be spelled as.
fn loose_ipv4(host: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let number = |p: &str| -> Option<u64> {
        if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16).ok()
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse().ok()
        }
    };
    let values: Vec<u64> = parts.iter().map(|p| number(p)).collect::<Option<_>>()?;
    let (last, head) = values.split_last()?;
    if head.iter().any(|v| *v > 255) || *last >= 1u64 << (8 * (4 - head.len())) {
        return None;
    }
    let mut n: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        n |= v << (8 * (3 - i));
    }
    Some(std::net::Ipv4Addr::from((n | last) as u32))
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn validate_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || registry.starts_with('[') => (h, Some(p)),
        _ => (registry, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("registry port {port:?} is not a number"));
        }
    }
    if host.starts_with('[') && host.ends_with(']') {
        return Ok(());
    }
    let ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("registry host {host:?} is not a valid host name"))
    }
}

/// A path component is lowercase alphanumerics joined by `.`, `_`, `__` or runs of `-`.
fn validate_path_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("empty path component".into());
    }
    if component.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("repository name component {component:?} must be lowercase"));
    }
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(format!(
            "repository name component {component:?} must start and end with a letter or digit"
        ));
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        let sep_len = match b {
            b'.' => 1,
            b'_' if bytes.get(i + 1) == Some(&b'_') => 2,
            b'_' => 1,
            b'-' => bytes[i..].iter().take_while(|&&c| c == b'-').count(),
            _ => {
                return Err(format!(
                    "repository name component {component:?} holds the invalid character {:?}",
                    b as char
                ))
            }
        };
        i += sep_len;
        if i >= bytes.len() || !alnum(bytes[i]) {
            return Err(format!("repository name component {component:?} has a misplaced separator"));
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!("tag {tag:?} is not valid (letters, digits, '_', '.', '-'; at most 128)"))
    }
}

fn validate_digest(digest: &str) -> Result<(), String> {
    let Some((algo, hex)) = digest.split_once(':') else {
        return Err(format!("digest {digest:?} lacks an algorithm prefix"));
    };
    let algo_ok = !algo.is_empty()
        && algo
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-_".contains(c));
    let hex_ok = hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit());
    if algo_ok && hex_ok {
        Ok(())
    } else {
        Err(format!("digest {digest:?} is not valid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_names_are_normalised() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("library/alpine:3.19"), "docker.io/library/alpine:3.19");
        assert_eq!(norm("microsoft/aspnetcore:2.0.6"), "docker.io/microsoft/aspnetcore:2.0.6");
        assert_eq!(norm("docker.io/library/alpine"), "docker.io/library/alpine:latest");
    }

    #[test]
    fn registries_are_recognised() {
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("127.0.0.1:5000/a/b:v1"), "127.0.0.1:5000/a/b:v1");
        assert_eq!(norm("myregistry.azurecr.io/hello:cf1"), "myregistry.azurecr.io/hello:cf1");
        let r = Reference::parse("Foo/bar").unwrap();
        assert_eq!(r.registry, "Foo");
    }

    #[test]
    fn registry_keys_join_spellings() {
        for (a, b) in [
            ("Registry.Example.com:443", "registry.example.com"),
            ("https://index.docker.io/", "docker.io"),
            ("localhost:5000", "127.0.0.1:5000"),
        ] {
            assert_eq!(registry_key(a), registry_key(b), "{a} {b}");
        }
        for other in [
            "127.0.0.1:05000",
            "127.0.0.2:5000",
            "[::1]:5000",
            "0.0.0.0:5000",
            "[::ffff:127.0.0.1]:5000",
            "LOCALHOST:5000",
            "127.1:5000",
            "2130706433:5000",
            "0x7f.0.0.1:5000",
            "0177.0.0.1:5000",
        ] {
            assert_eq!(registry_key(other), "127.0.0.1:5000", "{other}");
        }
        assert_ne!(registry_key("localhost:5001"), registry_key("127.0.0.1:5000"));
        assert_eq!(registry_key("localhostx:1"), "localhostx:1");
    }

    #[test]
    fn familiar_forms() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(f("docker.io/library/alpine"), "alpine:latest");
        assert_eq!(f("team/app:2"), "team/app:2");
        assert_eq!(f("127.0.0.1:5000/a/b:c"), "127.0.0.1:5000/a/b:c");
        let d = format!("sha256:{}", "b".repeat(64));
        assert_eq!(f(&format!("reg.io/app@{d}")), format!("reg.io/app@{d}"));
    }

    #[test]
    fn digests_are_kept() {
        let d = "sha256:e658e9c5d23be10fcb6bf495c8288172991e3f05097637c6edf3deadf72886fb";
        let r = Reference::parse(&format!("alpine@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d));
        assert_eq!(r.explicit_tag, None);
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "UPPER",
            "a b",
            "app:",
            ":latest",
            "app:-x",
            "a//b",
            "app@sha256:zz",
            "-app",
            "host:port/app",
            "app!",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
