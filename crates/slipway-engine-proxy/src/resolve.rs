//! Answers to what the policy needs to know: asked of the engine (does this container,
//! network or volume carry the run's label?) or of the file system (where does a path
//! beneath the workspace lead?).

use crate::policy::{ContainerInfo, Facts, Need, Owner, Refusal};
use crate::upstream::{send, ProxyBody, Shared};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use std::path::Path;

pub(crate) async fn answer(shared: &Shared, need: &Need, facts: &mut Facts) -> Result<(), Refusal> {
    match need {
        Need::Body => {}
        Need::Container(reference) => {
            let found = container(shared, reference).await?;
            facts.containers.insert(reference.clone(), found);
        }
        Need::Network(name) => {
            let owner = owner(shared, &format!("/networks/{}", encode_segment(name))).await?;
            facts.networks.insert(name.clone(), owner);
        }
        Need::Volume(name) => {
            let owner = owner(shared, &format!("/volumes/{}", encode_segment(name))).await?;
            facts.volumes.insert(name.clone(), owner);
        }
        Need::Workspace(relative) => {
            let leads_to = match shared.policy.scope().workspace.clone() {
                Some(root) => {
                    let relative = relative.clone();
                    tokio::task::spawn_blocking(move || beneath(&root, &relative)).await.ok().flatten()
                }
                None => None,
            };
            facts.workspace.insert(relative.clone(), leads_to);
        }
    }
    Ok(())
}

/// The run's container a reference means: `<prefix>reference` if the engine has it, else
/// what the engine finds by that name or id. Either must carry the run's label: a prefix
/// alone could be another run's, were one run id the start of another.
async fn container(shared: &Shared, reference: &str) -> Result<Option<ContainerInfo>, Refusal> {
    let prefixed = format!("{}{reference}", shared.policy.scope().name_prefix);
    for candidate in [prefixed.as_str(), reference] {
        let (status, found) = get(shared, &format!("/containers/{}/json", encode_segment(candidate))).await?;
        if status == StatusCode::OK && carries_label(shared, &found["Config"]["Labels"]) {
            return Ok(info(&found));
        }
    }
    Ok(None)
}

fn info(container: &Value) -> Option<ContainerInfo> {
    Some(ContainerInfo {
        id: container["Id"].as_str()?.to_string(),
        name: container["Name"].as_str()?.trim_start_matches('/').to_string(),
    })
}

/// Whose the network or volume at `path` is.
async fn owner(shared: &Shared, path: &str) -> Result<Owner, Refusal> {
    let (status, found) = get(shared, path).await?;
    Ok(match status {
        StatusCode::OK => match found["Name"].as_str() {
            Some(name) if carries_label(shared, &found["Labels"]) => Owner::Run(name.to_string()),
            _ => Owner::Other,
        },
        StatusCode::NOT_FOUND => Owner::Absent,
        _ => Owner::Other,
    })
}

fn carries_label(shared: &Shared, labels: &Value) -> bool {
    let (key, value) = &shared.policy.scope().label;
    labels.get(key).and_then(Value::as_str) == Some(value.as_str())
}

/// Creates a volume for the run, as the engine would have on first use, but labelled.
pub(crate) async fn create_volume(shared: &Shared, client: &str, engine: &str) -> Result<(), Refusal> {
    let (key, value) = &shared.policy.scope().label;
    let body = json!({ "Name": engine, "Driver": "local", "Labels": { key: value } });
    let (status, answer) = call(shared, Method::POST, "/volumes/create", Some(body)).await?;
    if !status.is_success() {
        let message = answer["message"].as_str().unwrap_or("the engine refused");
        return Err(Refusal {
            status: status.as_u16(),
            message: format!("creating volume {client}: {message}"),
        });
    }
    shared.state().volumes.insert(client.to_string(), engine.to_string());
    Ok(())
}

async fn get(shared: &Shared, path: &str) -> Result<(StatusCode, Value), Refusal> {
    call(shared, Method::GET, path, None).await
}

/// A small JSON call to the engine, made by the proxy itself.
async fn call(shared: &Shared, method: Method, path: &str, body: Option<Value>) -> Result<(StatusCode, Value), Refusal> {
    let body: ProxyBody = match &body {
        Some(v) => Full::new(Bytes::from(v.to_string())).map_err(|never| match never {}).boxed(),
        None => Empty::new().map_err(|never| match never {}).boxed(),
    };
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = path.parse().map_err(|_| Refusal::bad_request(format!("cannot look up {path:?}")))?;
    req.headers_mut().insert(header::HOST, header::HeaderValue::from_static("docker"));
    req.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    let response = send(shared, req).await?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), crate::policy::MAX_JSON_BODY)
        .collect()
        .await
        .map_err(|e| Refusal {
            status: 502,
            message: format!("reading the engine's answer: {e}"),
        })?
        .to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

/// One path segment, every byte that could mean something else encoded.
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Where `relative` (no `..`) leads beneath `root` once symlinks are resolved, or `None`
/// when it leaves `root`. Parts that do not exist yet are joined as they are: the engine
/// creates a missing bind source as a directory.
fn beneath(root: &Path, relative: &str) -> Option<String> {
    let root = root.canonicalize().ok()?;
    let mut path = root.clone();
    let mut parts = relative.split('/').filter(|p| !p.is_empty());
    while let Some(part) = parts.next() {
        let next = path.join(part);
        match std::fs::symlink_metadata(&next) {
            Ok(_) => {
                // A dangling symlink fails here: the engine would create its target.
                path = next.canonicalize().ok()?;
                if !path.starts_with(&root) {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                path = next;
                path.extend(parts.by_ref());
                break;
            }
            Err(_) => return None,
        }
    }
    path.into_os_string().into_string().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_beneath_the_workspace_resolve_and_symlinks_out_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("sub/dir")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub", root.join("in")).unwrap();
        std::os::unix::fs::symlink(root.join("missing"), root.join("dangling")).unwrap();
        let at = |p: &str| root.join(p).into_os_string().into_string().unwrap();

        assert_eq!(beneath(&root, ""), Some(at("")).map(|p| p.trim_end_matches('/').to_string()));
        assert_eq!(beneath(&root, "sub/dir"), Some(at("sub/dir")));
        assert_eq!(beneath(&root, "in/dir"), Some(at("sub/dir")));
        assert_eq!(beneath(&root, "new/deeper"), Some(at("new/deeper")));
        assert_eq!(beneath(&root, "out"), None);
        assert_eq!(beneath(&root, "out/passwd"), None);
        assert_eq!(beneath(&root, "dangling"), None);
    }

    #[test]
    fn segments_are_encoded_whole() {
        assert_eq!(encode_segment("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(encode_segment("slipway-r1-svc"), "slipway-r1-svc");
    }
}
