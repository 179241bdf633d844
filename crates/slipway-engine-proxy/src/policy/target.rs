//! The request line: the path the engine's router will match, and the query it will read.

use super::Refusal;

/// API versions below this one let `POST /containers/{id}/start` carry a host config,
/// which would bypass every check made at create.
const MIN_API_VERSION: &str = "1.24";

/// A request line as the policy reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The `/vX.Y` prefix's version, when the client gave one.
    pub version: Option<String>,
    /// The path as the client sent it, version prefix included.
    pub raw_path: String,
    /// Percent-decoded, without the version prefix: what the engine's router matches.
    pub path: String,
    pub query: Vec<(String, String)>,
}

/// Parses a request's path and query. The engine routes on the decoded path, so the
/// policy does too; `.`, `..` and empty segments are refused rather than interpreted.
pub fn parse_target(raw_path: &str, raw_query: Option<&str>) -> Result<Target, Refusal> {
    let decoded = percent_decode(raw_path)
        .ok_or_else(|| Refusal::bad_request(format!("the path {raw_path:?} is not valid percent-encoded UTF-8")))?;
    if !decoded.starts_with('/') || decoded.chars().any(char::is_control) {
        return Err(Refusal::bad_request(format!("the path {raw_path:?} is not an engine API path")));
    }
    let (version, path) = split_version(&decoded);
    if let Some(v) = version {
        if compare_versions(v, MIN_API_VERSION) == std::cmp::Ordering::Less {
            return Err(Refusal::bad_request(format!(
                "API version {v} is not available through this run's engine socket (the oldest is {MIN_API_VERSION})"
            )));
        }
    }
    if path != "/" && path[1..].split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(Refusal::bad_request(format!(
            "the path {raw_path:?} has empty, `.` or `..` segments"
        )));
    }
    let query = raw_query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    Ok(Target {
        version: version.map(str::to_string),
        raw_path: raw_path.to_string(),
        path: path.to_string(),
        query,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes a decoded path for a request line, keeping what needs no encoding.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits `/v1.41/containers/json` into `1.41` and `/containers/json`, as the engine's
/// router does (`/v{version:[0-9.]+}`).
fn split_version(path: &str) -> (Option<&str>, &str) {
    let Some(rest) = path.strip_prefix("/v") else {
        return (None, path);
    };
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    if end == 0 {
        return (None, path);
    }
    match &rest[end..] {
        "" => (Some(&rest[..end]), "/"),
        tail if tail.starts_with('/') => (Some(&rest[..end]), tail),
        _ => (None, path),
    }
}

/// Compares API versions as the engine does: by dot-separated numbers, a missing or
/// unreadable part counting as 0.
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let a: Vec<&str> = a.split('.').collect();
    let b: Vec<&str> = b.split('.').collect();
    let part = |v: &[&str], i: usize| v.get(i).and_then(|p| p.parse::<i64>().ok()).unwrap_or(0);
    (0..a.len().max(b.len()))
        .map(|i| part(&a, i).cmp(&part(&b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}
