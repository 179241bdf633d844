//! Answers to what the policy needs to know: asked of the engine (does this container,
//! network or volume carry the run's label?) or of the file system (where does a path
//! beneath the workspace lead?).

use crate::policy::images::Answer;
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
        Need::Image(name) => {
            let found = image(shared, name).await?;
            facts.images.insert(name.clone(), found);
        }
        Need::Digest { image, auth } => {
            let found = match &shared.policy.scope().images {
                Some(rules) => (rules.digest)(image.clone(), auth.clone()).await,
                None => Err("no registry lookups through this socket".into()),
            };
            facts.digests.insert(image.clone(), found);
        }
    }
    Ok(())
}

/// What the engine says of an image, if it has it.
async fn image(shared: &Shared, name: &str) -> Result<Option<crate::policy::images::ImageFacts>, Refusal> {
    let (status, found) = get(shared, &format!("/images/{}/json", encode_segment(name))).await?;
    Ok(match status {
        StatusCode::OK => crate::policy::images::facts_of(&found),
        _ => None,
    })
}

/// Gives the image `source` the name `target` (the proxy's own call, for a push).
pub(crate) async fn tag(shared: &Shared, source: &str, target: &str) -> Result<(), Refusal> {
    let (repo, tag) = match target.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((r, t)) => (r.to_string(), t.to_string()),
        None => (target.to_string(), "latest".to_string()),
    };
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("repo", &repo)
        .append_pair("tag", &tag)
        .finish();
    let (status, answer) = call(
        shared,
        Method::POST,
        &format!("/images/{}/tag?{query}", encode_segment(source)),
        None,
    )
    .await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(Refusal {
            status: status.as_u16(),
            message: format!("naming {target}: {}", answer["message"].as_str().unwrap_or("the engine refused")),
        })
    }
}

/// Removes a name the proxy gave for one request.
pub(crate) async fn untag(shared: &Shared, name: &str) {
    if let Err(e) = call(shared, Method::DELETE, &format!("/images/{}", encode_segment(name)), None).await {
        tracing::warn!(image = name, error = %e.message, "removing a push's name failed");
    }
}

/// The Dockerfile of a build through the proxy, rewritten for the run: each image it
/// builds from is the run's, one it pulled, or a registry's by digest (looked up with
/// the build's credentials); what `ADD` fetches is checked like a source.
pub(crate) async fn dockerfile(
    shared: &Shared,
    text: &str,
    opts: &slipway_dockerfile::ScanOptions,
    config: Option<&str>,
) -> Result<String, String> {
    let Some(rules) = shared.policy.scope().images.clone() else {
        return Ok(text.to_string());
    };
    // The engine would fetch from the host's own network, following redirects and
    // resolving names again where no check sees it: a build through the socket fetches
    // nothing (a `build` step's `ADD URL` is fetched by the daemon, checked).
    if let Some(source) = slipway_dockerfile::remote_sources(text, opts).map_err(|e| e.to_string())?.first() {
        return Err(format!(
            "Dockerfile line {}: ADD {}: a build through the run's engine socket fetches no URL; fetch it in a RUN, or build in a `build` step",
            source.line, source.written
        ));
    }
    if let Some((line, image)) = slipway_dockerfile::onbuild_images(text, opts).map_err(|e| e.to_string())?.first() {
        return Err(format!(
            "Dockerfile line {line}: ONBUILD copies from {image}: a trigger reads an image by name in a later build, where no check sees it"
        ));
    }
    let state = shared.state().clone();
    let mut replace = std::collections::BTreeMap::new();
    for r in slipway_dockerfile::image_references(text, opts).map_err(|e| e.to_string())? {
        let name = r.to_string();
        let mut facts = Facts::default();
        let auth = crate::policy::images::build_auth(config, &r.registry);
        let (engine, triggers) = loop {
            match shared.policy.resolve_image(&state, &facts, &name) {
                Answer::Yes(n) => {
                    let (_, found) = get(shared, &format!("/images/{}/json", encode_segment(&n)))
                        .await
                        .map_err(|e| e.message)?;
                    break (n, strings(&found["Config"]["OnBuild"]));
                }
                Answer::Refuse(refusal) => return Err(format!("FROM {name}: {}", refusal.message)),
                Answer::Need(needs) => {
                    for need in needs {
                        answer(shared, &need, &mut facts).await.map_err(|e| e.message)?;
                    }
                }
                Answer::No => {
                    let digest = (rules.digest)(r.to_string(), auth.clone())
                        .await
                        .map_err(|e| format!("FROM {name}: {e}"))?;
                    let image = format!("{}@{digest}", r.name());
                    let triggers = (rules.triggers)(image.clone(), auth.clone())
                        .await
                        .map_err(|e| format!("FROM {name}: its ONBUILD triggers cannot be read: {e}"))?;
                    break (image, triggers);
                }
            }
        };
        if let Some(trigger) = slipway_dockerfile::reaching_trigger(&triggers) {
            return Err(format!(
                "FROM {name} has the ONBUILD trigger `{trigger}`, which fetches a URL or copies from an image: a build here does not run it unchecked"
            ));
        }
        replace.insert(name, engine);
    }
    slipway_dockerfile::rewrite(text, opts, &replace).map_err(|e| e.to_string())
}

/// How many containers and images are the run's, for `/info`.
pub(crate) async fn run_counts(shared: &Shared) -> Result<(usize, usize, usize), Refusal> {
    let (key, value) = &shared.policy.scope().label;
    let filters = json!({ "label": [format!("{key}={value}")] }).to_string();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("all", "1")
        .append_pair("filters", &filters)
        .finish();
    let (_, containers) = get(shared, &format!("/containers/json?{query}")).await?;
    let list = containers.as_array().cloned().unwrap_or_default();
    let running = list.iter().filter(|c| c["State"] == "running").count();
    let (_, images) = get(shared, "/images/json").await?;
    let pulled = shared.state().pulled.clone();
    let images = shared.policy.image_list(&pulled, images, &[]).as_array().map_or(0, Vec::len);
    Ok((list.len(), running, images))
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
    let bytes = Limited::new(response.into_body(), 16 << 20)
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

/// The strings of a JSON list (none for anything else).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
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
