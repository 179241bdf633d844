//! Images, when the run's are its own ([`crate::ImageRules`]): every name a step makes
//! (tag, build, load, import, commit) is rewritten into the run's namespace
//! (`slipway_reference::namespace`), every name it uses means the run's image of that
//! name, or a registry's image the run pulled itself (by digest), and nothing else;
//! answers that list or describe images show only those, under the names the step
//! used. Another run's images, the operator's by their own names, and what others
//! pulled are not there for it.

use super::gojson;
use super::{
    all, first, not_available, pass, with_param, Ask, Before, Body, Finally, Forward, Halt, Known, Policy, Refusal, Request, Respond,
};
use serde_json::Value;
use slipway_reference::{namespace, Reference};
use std::collections::HashMap;

/// What the engine says of an image, as far as the rules need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageFacts {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub labels: HashMap<String, String>,
}

/// `docker`'s credentials for one registry, from `X-Registry-Auth`: base64 (URL-safe or
/// not) of `{"username", "password"}` (an identity token counts as no credential).
pub fn registry_auth(header: Option<&str>) -> Option<(String, String)> {
    let json = decode_base64_json(header?)?;
    credential_of(&json)
}

/// The credential `X-Registry-Config` (a build's: registry → credential) holds for `registry`.
pub fn build_auth(header: Option<&str>, registry: &str) -> Option<(String, String)> {
    let json = decode_base64_json(header?)?;
    let map = json.as_object()?;
    let wanted = |k: &str| {
        let k = k.trim_start_matches("https://").trim_start_matches("http://");
        let k = k.split('/').next().unwrap_or(k);
        k == registry || (registry == "docker.io" && matches!(k, "index.docker.io" | "registry-1.docker.io"))
    };
    map.iter().find(|(k, _)| wanted(k)).and_then(|(_, v)| credential_of(v))
}

fn credential_of(v: &Value) -> Option<(String, String)> {
    let user = v.get("username").and_then(Value::as_str).filter(|u| !u.is_empty())?;
    let password = v.get("password").and_then(Value::as_str).unwrap_or("");
    Some((user.to_string(), password.to_string()))
}

fn decode_base64_json(text: &str) -> Option<Value> {
    let text = text.trim();
    let mut bits = 0u32;
    let mut have = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        bits = (bits << 6) | v as u32;
        have += 6;
        if have >= 8 {
            have -= 8;
            out.push((bits >> have) as u8);
        }
    }
    serde_json::from_slice(&out).ok()
}

/// Whether `name` is an image id (`sha256:…`, or a hex prefix the engine would match).
fn is_id(name: &str) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    (12..=64).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Policy {
    fn run_prefix(&self) -> String {
        namespace::prefix(&self.scope.run_id)
    }

    /// The engine name a name the run makes gets.
    pub(super) fn own_image(&self, name: &str) -> Result<String, Refusal> {
        let r = Reference::parse(name).map_err(|e| Refusal::bad_request(e.to_string()))?;
        if namespace::is_run_name(name) {
            return Err(Refusal::forbidden(format!("{name}: a run's image names are the run's own")));
        }
        namespace::in_run(&self.scope.run_id, &r)
            .ok_or_else(|| Refusal::bad_request(format!("{name}: this image name cannot be given to a run's image")))
    }

    /// Whether the engine's image is the run's: one of its names, or its label.
    fn owns(&self, facts: &ImageFacts) -> bool {
        let prefix = self.run_prefix();
        let (key, value) = self.label();
        facts.repo_tags.iter().any(|t| t.starts_with(&prefix)) || facts.labels.get(key).map(String::as_str) == Some(value)
    }
}

impl Ask<'_> {
    fn image_facts(&mut self, engine_name: &str) -> Known<ImageFacts> {
        match self.facts.images.get(engine_name) {
            Some(Some(f)) => Known::Yes(f.clone()),
            Some(None) => Known::No,
            None => {
                self.need(super::Need::Image(engine_name.to_string()));
                Known::Unknown
            }
        }
    }

    /// What a name the run uses means, as the engine knows it: the run's image of that
    /// name, or a registry image it pulled itself. `No` when it has neither (a create
    /// then answers 404, and the docker CLI pulls).
    pub(super) fn image(&mut self, name: &str) -> Result<Known<String>, Refusal> {
        let policy = self.policy;
        if policy.scope.images.is_none() {
            return Ok(Known::Yes(name.to_string()));
        }
        if is_id(name) {
            return Ok(match self.image_facts(name) {
                Known::Yes(f) if policy.owns(&f) => Known::Yes(f.id),
                Known::Yes(_) | Known::No => Known::No,
                Known::Unknown => Known::Unknown,
            });
        }
        if namespace::is_run_name(name) {
            return match namespace::run_of(name) {
                Some((run, _)) if run == policy.scope.run_id => Ok(Known::Yes(name.to_string())),
                _ => Err(Refusal::forbidden(format!("{name} is another run's image"))),
            };
        }
        let r = Reference::parse(name).map_err(|e| Refusal::bad_request(e.to_string()))?;
        if let Some(engine) = self.state.pulled.get(&r.to_string()) {
            return Ok(Known::Yes(engine.clone()));
        }
        if r.digest.is_some() {
            return Ok(Known::No);
        }
        let own = policy.own_image(name)?;
        Ok(match self.image_facts(&own) {
            Known::Yes(_) => Known::Yes(own),
            Known::No => Known::No,
            Known::Unknown => Known::Unknown,
        })
    }

    /// As [`Ask::image`] for a name in a request path: 404 when the run has none.
    fn path_image(&mut self, name: &str) -> Result<String, Halt> {
        match self.image(name)? {
            Known::Yes(e) => Ok(e),
            Known::No => Err(no_such_image(name).into()),
            Known::Unknown => Err(Halt::Pending),
        }
    }
}

/// The engine's own wording, which the docker CLI acts on (a create's 404 makes it pull).
pub(super) fn no_such_image(name: &str) -> Refusal {
    Refusal::not_found(format!("No such image: {name}"))
}

/// `repo` and `tag` query values as one reference (`tag` may be a digest).
fn joined(repo: &str, tag: &str) -> String {
    match tag {
        "" => repo.to_string(),
        t if t.starts_with("sha256:") => format!("{repo}@{t}"),
        t => format!("{repo}:{t}"),
    }
}

/// An engine name split as `repo`, `tag` query values.
fn split_name(name: &str) -> (String, String) {
    match name.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((repo, tag)) => (repo.to_string(), tag.to_string()),
        None => (name.to_string(), "latest".to_string()),
    }
}

/// The run's label as a Dockerfile instruction (import's and commit's `changes`).
fn label_change(policy: &Policy) -> String {
    let (k, v) = policy.label();
    format!("LABEL {k}={v}")
}

/// An image request of a run whose images are its own: the engine call it becomes, or
/// why not.
pub(super) fn route(policy: &Policy, ask: &mut Ask, req: &Request, segments: &[&str]) -> Result<Forward, Halt> {
    let query = &req.target.query;
    match (req.method, segments) {
        ("GET", ["images", "json"]) => {
            // `reference` filters name images as the step calls them: applied here.
            let mut forward = pass(req);
            let (filters, references) = without_reference_filters(first(query, "filters"))?;
            forward.query = with_param(query, "filters", &filters);
            forward.respond = Respond::ImageList { references };
            Ok(forward)
        }
        ("GET", ["images", "get"]) => {
            let mut names = Vec::new();
            for n in all(query, "names") {
                names.push(ask.path_image(n)?);
            }
            let mut forward = pass(req);
            forward.query = names.into_iter().map(|n| ("names".to_string(), n)).collect();
            forward.respond = Respond::SavedImages;
            Ok(forward)
        }
        ("POST", ["images", "load"]) => Ok(Forward {
            body: Body::LoadTar,
            ..pass(req)
        }),
        ("POST", ["images", "create"]) => create(policy, ask, req),
        ("DELETE", ["images", name @ ..]) if !name.is_empty() => remove(policy, ask, req, &name.join("/")),
        ("GET", ["images", name @ .., action @ ("json" | "history" | "get")]) if !name.is_empty() => {
            let engine = ask.path_image(&name.join("/"))?;
            Ok(Forward {
                path: format!("/images/{engine}/{action}"),
                respond: match *action {
                    "json" => Respond::ImageInspect,
                    "history" => Respond::History,
                    _ => Respond::SavedImages,
                },
                ..pass(req)
            })
        }
        ("POST", ["images", name @ .., "tag"]) if !name.is_empty() => {
            let engine = ask.path_image(&name.join("/"))?;
            let target = joined(first(query, "repo").unwrap_or(""), first(query, "tag").unwrap_or(""));
            let (repo, tag) = split_name(&policy.own_image(&target)?);
            let q = with_param(&with_param(query, "repo", &repo), "tag", &tag);
            Ok(Forward {
                path: format!("/images/{engine}/tag"),
                query: q,
                ..pass(req)
            })
        }
        ("POST", ["images", name @ .., "push"]) if !name.is_empty() => push(policy, ask, req, &name.join("/")),
        ("POST", ["commit"]) => {
            let c = ask.path_container(first(query, "container").unwrap_or(""))?;
            let mut q = with_param(query, "container", &c.id);
            if let Some(repo) = first(query, "repo").filter(|r| !r.is_empty()) {
                let (repo, tag) = split_name(&policy.own_image(&joined(repo, first(query, "tag").unwrap_or("")))?);
                q = with_param(&with_param(&q, "repo", &repo), "tag", &tag);
            }
            q.push(("changes".into(), label_change(policy)));
            Ok(Forward { query: q, ..pass(req) })
        }
        _ => Err(not_available(req).into()),
    }
}

/// A removal of the run's image: never a registry's image other runs may share, and by
/// id only when every name the image has is the run's.
fn remove(policy: &Policy, ask: &mut Ask, req: &Request, name: &str) -> Result<Forward, Halt> {
    let engine = ask.path_image(name)?;
    if !is_id(&engine) && !engine.starts_with("sha256:") && !engine.starts_with(&policy.run_prefix()) {
        // A registry's image by digest: other runs may be using the same one.
        return Err(Refusal::forbidden(format!(
            "{name} is a registry's image, which other runs may use too: it goes when no run needs it"
        ))
        .into());
    }
    if is_id(&engine) || engine.starts_with("sha256:") {
        // By id, an image goes with all its names: only if they are all the run's.
        if let Known::Yes(f) = ask.image_facts(&engine) {
            let prefix = policy.run_prefix();
            // Its registry digests are other runs' pulls of it too.
            if f.repo_tags.iter().any(|t| !t.starts_with(&prefix)) || !f.repo_digests.is_empty() {
                return Err(Refusal::forbidden(format!("{name} has names that are not this run's: remove the run's names instead")).into());
            }
        }
    }
    Ok(Forward {
        path: format!("/images/{engine}"),
        ..pass(req)
    })
}

/// A pull (`fromImage`) or an import (`fromSrc=-`).
fn create(policy: &Policy, ask: &mut Ask, req: &Request) -> Result<Forward, Halt> {
    let query = &req.target.query;
    let from_image = first(query, "fromImage").filter(|i| !i.is_empty());
    if first(query, "fromSrc").is_some_and(|s| !s.is_empty()) && from_image.is_some() {
        // The engine pulls when both are given: the import's checks would not be the ones that apply.
        return Err(Refusal::bad_request("fromSrc and fromImage together: give one (an import or a pull)").into());
    }
    if first(query, "fromSrc") == Some("-") {
        let mut q = query.clone();
        if let Some(repo) = first(query, "repo").filter(|r| !r.is_empty()) {
            let (repo, tag) = split_name(&policy.own_image(&joined(repo, first(query, "tag").unwrap_or("")))?);
            q = with_param(&with_param(&q, "repo", &repo), "tag", &tag);
        }
        q.push(("changes".into(), label_change(policy)));
        return Ok(Forward { query: q, ..pass(req) });
    }
    let name = joined(first(query, "fromImage").unwrap_or(""), first(query, "tag").unwrap_or(""));
    if namespace::is_run_name(&name) {
        return Err(Refusal::forbidden(format!("{name} is a run's image: it cannot be pulled")).into());
    }
    let r = Reference::parse(&name).map_err(|e| Refusal::bad_request(e.to_string()))?;
    // By digest, with the client's credentials: the registry says whether the run may
    // have it (also when the step gives the digest: the engine would otherwise hand out
    // an image another run pulled), and no name is made in the engine for others to read.
    let asked = match &r.digest {
        Some(d) => format!("{}@{d}", r.name()),
        None => r.to_string(),
    };
    let digest = match ask.digest(&asked, registry_auth(req.registry_auth))? {
        Known::Yes(d) => d,
        Known::No | Known::Unknown => return Err(Halt::Pending),
    };
    if let Some(given) = r.digest.as_ref().filter(|given| **given != digest) {
        return Err(Refusal::not_found(format!("{name}: its registry has {digest} there, not {given}")).into());
    }
    let engine = format!("{}@{digest}", r.name());
    ask.before.push(Before::Remember {
        client: r.to_string(),
        engine: engine.clone(),
    });
    let q = with_param(&with_param(query, "fromImage", &r.name()), "tag", &digest);
    Ok(Forward { query: q, ..pass(req) })
}

/// A push of the run's image: under its real name only while it is pushed, and only
/// where the run may push.
fn push(policy: &Policy, ask: &mut Ask, req: &Request, name: &str) -> Result<Forward, Halt> {
    let Some(rules) = &policy.scope.images else {
        return Ok(pass(req));
    };
    let tag = first(&req.target.query, "tag").unwrap_or("");
    let real = joined(name, if tag.is_empty() { "latest" } else { tag });
    if namespace::is_run_name(&real) {
        return Err(Refusal::forbidden(format!("{real} is a run's own name: tag the image with the name to push it as")).into());
    }
    let r = Reference::parse(&real).map_err(|e| Refusal::bad_request(e.to_string()))?;
    let operators = rules.operator_images.iter().filter_map(|o| Reference::parse(o).ok());
    if operators.into_iter().any(|o| o.tagged() == r.tagged()) {
        return Err(Refusal::forbidden(format!(
            "{real} is the name of one of the operator's images: a run cannot push under it"
        ))
        .into());
    }
    (rules.may_push)(&r.registry, &r.repository).map_err(Refusal::forbidden)?;
    let own = policy.own_image(&real)?;
    let held = ask.image_facts(&real);
    let source = ask.image_facts(&own);
    let afterwards = match (source, held) {
        (Known::Unknown, _) | (_, Known::Unknown) => return Err(Halt::Pending),
        (Known::No, _) => return Err(no_such_image(&real).into()),
        // A name some image had (not the operator's: no run reads it) goes back to it.
        (Known::Yes(_), Known::Yes(before)) => Finally::Restore {
            name: real.clone(),
            image: before.id,
        },
        (Known::Yes(_), Known::No) => Finally::Untag(real.clone()),
    };
    ask.before.push(Before::Tag { source: own, target: real });
    Ok(Forward {
        finally: vec![afterwards],
        ..pass(req)
    })
}

/// The client's `filters` without its `reference` entries, and those entries.
fn without_reference_filters(filters: Option<&str>) -> Result<(String, Vec<String>), Refusal> {
    let invalid = || Refusal::bad_request("filters must be a JSON object of filter names to values");
    let mut map = match filters.filter(|f| !f.is_empty()) {
        None => serde_json::Map::new(),
        Some(raw) => match serde_json::from_str::<Value>(raw).map_err(|_| invalid())? {
            Value::Object(m) => m,
            Value::Null => serde_json::Map::new(),
            _ => return Err(invalid()),
        },
    };
    for name in map.keys() {
        super::refuse_lookup_filter(name)?;
    }
    let references = match map.remove("reference") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(set)) => set.keys().cloned().collect(),
        Some(Value::Array(list)) => list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(_) => return Err(invalid()),
    };
    Ok((Value::Object(map).to_string(), references))
}

/// A build through the proxy (the classic builder): its tags are the run's, its
/// images labelled, its intermediate containers removed whatever happens, its
/// Dockerfile rewritten on the way (`Body::BuildTar`).
pub(super) fn build(policy: &Policy, req: &Request, forward: &mut Forward) -> Result<(), Halt> {
    if policy.scope.images.is_none() {
        return Ok(());
    }
    let query = &req.target.query;
    let mut q: Vec<(String, String)> = Vec::new();
    for (k, v) in query {
        match k.as_str() {
            "t" => q.push(("t".into(), policy.own_image(v)?)),
            // Every base is resolved to the run's image or a registry's digest.
            "pull" | "rm" | "forcerm" | "labels" | "cachefrom" => {}
            _ => q.push((k.clone(), v.clone())),
        }
    }
    let mut labels = match first(query, "labels").filter(|l| !l.is_empty()) {
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(m)) => m,
            _ => return Err(Refusal::bad_request("labels must be a JSON object").into()),
        },
        None => serde_json::Map::new(),
    };
    let (k, v) = policy.label();
    labels.insert(k.to_string(), Value::String(v.to_string()));
    q.push(("labels".into(), Value::Object(labels).to_string()));
    q.push(("rm".into(), "1".into()));
    q.push(("forcerm".into(), "1".into()));
    forward.query = q;
    let dockerfile = first(query, "dockerfile").filter(|d| !d.is_empty()).unwrap_or("Dockerfile");
    if dockerfile.split('/').any(|p| p == "..") {
        // The engine would read a path the rewrite never looks for.
        return Err(Refusal::bad_request(format!("dockerfile={dockerfile}: name the Dockerfile without `..`")).into());
    }
    forward.body = Body::BuildTar {
        dockerfile: dockerfile.to_string(),
    };
    Ok(())
}

/// The names an engine image shows a step: its names in the run's namespace as the
/// step wrote them, and the names it pulled by.
fn client_names(policy: &Policy, pulled: &HashMap<String, String>, tags: &[String], digests: &[String]) -> Vec<String> {
    let mut out: Vec<String> = tags
        .iter()
        .filter_map(|t| {
            namespace::run_of(t)
                .filter(|(run, _)| *run == policy.scope.run_id)
                .map(|(_, r)| r.familiar())
        })
        .collect();
    for (client, engine) in pulled {
        if digests.iter().any(|d| d == engine) {
            if let Ok(r) = Reference::parse(client) {
                if r.digest.is_none() {
                    out.push(r.familiar());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn strings_at(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Whether the listed or inspected image `v` is one the run may see.
fn visible(policy: &Policy, pulled: &HashMap<String, String>, v: &Value) -> bool {
    let facts = ImageFacts {
        id: String::new(),
        repo_tags: strings_at(v, "RepoTags"),
        repo_digests: strings_at(v, "RepoDigests"),
        labels: v
            .get("Labels")
            .or_else(|| v.get("Config").and_then(|c| c.get("Labels")))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    };
    policy.owns(&facts) || facts.repo_digests.iter().any(|d| pulled.values().any(|e| e == d))
}

/// An image as the run sees it: its names and digests only the run's.
fn shown(policy: &Policy, pulled: &HashMap<String, String>, mut v: Value) -> Value {
    let tags = strings_at(&v, "RepoTags");
    let digests = strings_at(&v, "RepoDigests");
    let names = client_names(policy, pulled, &tags, &digests);
    let kept: Vec<String> = digests.into_iter().filter(|d| pulled.values().any(|e| e == d)).collect();
    if let Some(m) = v.as_object_mut() {
        m.insert("RepoTags".into(), names.into());
        m.insert("RepoDigests".into(), kept.into());
    }
    v
}

impl Policy {
    /// `GET /images/json`'s answer narrowed to the run's images under the step's names,
    /// `references` (the client's `reference` filters) applied to those names.
    pub fn image_list(&self, pulled: &HashMap<String, String>, list: Value, references: &[String]) -> Value {
        let Value::Array(items) = list else {
            return Value::Array(Vec::new());
        };
        let out: Vec<Value> = items
            .into_iter()
            .filter(|v| visible(self, pulled, v))
            .map(|v| shown(self, pulled, v))
            .filter(|v| {
                references.is_empty()
                    || strings_at(v, "RepoTags")
                        .iter()
                        .any(|name| references.iter().any(|p| reference_matches(p, name)))
            })
            .collect();
        Value::Array(out)
    }

    /// An image's inspection, as the run may see it.
    pub fn image_inspect(&self, pulled: &HashMap<String, String>, image: Value) -> Value {
        shown(self, pulled, image)
    }

    /// An image's history with only the run's names.
    pub fn image_history(&self, pulled: &HashMap<String, String>, history: Value) -> Value {
        let Value::Array(mut items) = history else { return history };
        for item in &mut items {
            let tags = strings_at(item, "Tags");
            let names = client_names(self, pulled, &tags, &[]);
            if let Some(m) = item.as_object_mut() {
                m.insert("Tags".into(), if names.is_empty() { Value::Null } else { names.into() });
            }
        }
        Value::Array(items)
    }

    /// A name in a saved image's `manifest.json` or `repositories`, as the step calls it.
    pub fn saved_name(&self, engine_name: &str) -> Option<String> {
        namespace::run_of(engine_name)
            .filter(|(run, _)| *run == self.scope.run_id)
            .map(|(_, r)| r.familiar())
    }

    /// A name a loaded image comes with, in the run's namespace.
    pub fn loaded_name(&self, name: &str) -> Result<String, Refusal> {
        match namespace::run_of(name) {
            Some((run, _)) if run == self.scope.run_id => Ok(name.to_string()),
            Some(_) => Err(Refusal::forbidden(format!("{name} is another run's image"))),
            None => self.own_image(name),
        }
    }
}

/// What one image name of a Dockerfile built through the proxy means for the run.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// This engine name (the run's own image, or one it pulled).
    Yes(String),
    /// Neither: a registry's image, to be looked up by digest.
    No,
    Need(Vec<super::Need>),
    Refuse(Refusal),
}

impl Policy {
    /// What `name` means for the run, as [`Ask::image`] decides it within a request.
    pub fn resolve_image(&self, state: &super::State, facts: &super::Facts, name: &str) -> Answer {
        let mut ask = Ask {
            policy: self,
            state,
            facts,
            needs: Vec::new(),
            before: Vec::new(),
        };
        match ask.image(name) {
            Ok(Known::Yes(n)) => Answer::Yes(n),
            Ok(Known::No) => Answer::No,
            Ok(Known::Unknown) => Answer::Need(ask.needs),
            Err(r) => Answer::Refuse(r),
        }
    }

    /// An archive's `manifest.json` (`[{"RepoTags": […]}, …]`) with its names mapped.
    pub fn archive_manifest(&self, data: &[u8], map: &dyn Fn(&str) -> Result<Option<String>, Refusal>) -> Result<Vec<u8>, Refusal> {
        let mut v: Value = serde_json::from_slice(data).map_err(|e| Refusal::bad_request(format!("manifest.json: {e}")))?;
        for entry in v.as_array_mut().into_iter().flatten() {
            if let Some(tags) = entry.get_mut("RepoTags").and_then(Value::as_array_mut) {
                let mut out = Vec::new();
                for t in tags.iter().filter_map(Value::as_str) {
                    if let Some(n) = map(t)? {
                        out.push(Value::String(n));
                    }
                }
                *tags = out;
            }
        }
        serde_json::to_vec(&v).map_err(|e| Refusal::bad_request(e.to_string()))
    }

    /// An archive's legacy `repositories` (`{"repo": {"tag": "id"}}`) with its names mapped.
    pub fn archive_repositories(&self, data: &[u8], map: &dyn Fn(&str) -> Result<Option<String>, Refusal>) -> Result<Vec<u8>, Refusal> {
        let v: Value = serde_json::from_slice(data).map_err(|e| Refusal::bad_request(format!("repositories: {e}")))?;
        let mut out = serde_json::Map::new();
        for (repo, tags) in v.as_object().into_iter().flatten() {
            for (tag, id) in tags.as_object().into_iter().flatten() {
                if let Some(n) = map(&format!("{repo}:{tag}"))? {
                    let (r, t) = split_name(&n);
                    let slot = out.entry(r).or_insert_with(|| Value::Object(Default::default()));
                    if let Some(m) = slot.as_object_mut() {
                        m.insert(t, id.clone());
                    }
                }
            }
        }
        serde_json::to_vec(&Value::Object(out)).map_err(|e| Refusal::bad_request(e.to_string()))
    }
}

/// Docker's `reference` filter: the pattern against the familiar name, or the name and
/// tag (`*` and `?` as in Go's `path.Match`, never across `/`).
fn reference_matches(pattern: &str, name: &str) -> bool {
    let repo = name.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or(name, |(r, _)| r);
    glob(pattern, name) || glob(pattern, repo)
}

fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Positions in text each pattern prefix can end at; linear in both lengths.
    let mut at = vec![false; t.len() + 1];
    at[0] = true;
    for c in p {
        let mut next = vec![false; t.len() + 1];
        for i in 0..=t.len() {
            if !at[i] {
                continue;
            }
            match c {
                '*' => {
                    let mut j = i;
                    next[j] = true;
                    while j < t.len() && t[j] != '/' {
                        j += 1;
                        next[j] = true;
                    }
                }
                '?' if i < t.len() && t[i] != '/' => next[i + 1] = true,
                c if i < t.len() && t[i] == c => next[i + 1] = true,
                _ => {}
            }
        }
        at = next;
    }
    at[t.len()]
}

/// Reads an image's facts from the engine's inspection.
pub fn facts_of(inspect: &Value) -> Option<ImageFacts> {
    Some(ImageFacts {
        id: inspect.get("Id")?.as_str()?.to_string(),
        repo_tags: strings_at(inspect, "RepoTags"),
        repo_digests: strings_at(inspect, "RepoDigests"),
        labels: inspect
            .get("Config")
            .and_then(|c| c.get("Labels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// A container create's `Image`: the run's image (or its pull), else 404 so the docker
/// CLI pulls it first.
pub(super) fn container_image(ask: &mut Ask, config: &mut gojson::Object) -> Result<bool, Halt> {
    let name = gojson::string(config, "Image")?.to_string();
    if name.is_empty() {
        return Ok(true);
    }
    match ask.image(&name)? {
        Known::Yes(engine) => {
            gojson::set(config, "Image", Value::String(engine));
            Ok(true)
        }
        Known::No => Err(no_such_image(&name).into()),
        Known::Unknown => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_credentials_from_the_headers() {
        // {"username":"u","password":"p"} and a build's {"reg:5000": {...}}, URL-safe.
        assert_eq!(
            registry_auth(Some("eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAifQ==")),
            Some(("u".into(), "p".into()))
        );
        let config = "eyJyZWc6NTAwMCI6IHsidXNlcm5hbWUiOiAidSIsICJwYXNzd29yZCI6ICJwIn19";
        assert_eq!(build_auth(Some(config), "reg:5000"), Some(("u".into(), "p".into())));
        assert_eq!(build_auth(Some(config), "other"), None);
        assert_eq!(registry_auth(Some("not base64!")), None);
        assert_eq!(registry_auth(None), None);
    }

    #[test]
    fn reference_filters_match_as_dockers() {
        assert!(reference_matches("app", "app:latest"));
        assert!(reference_matches("app:1", "app:1"));
        assert!(reference_matches("a*", "app:1"));
        assert!(!reference_matches("a*", "team/app:1"));
        assert!(reference_matches("*/app", "team/app:1"));
        assert!(!reference_matches("app", "application:1"));
    }

    #[test]
    fn ids_are_told_from_names() {
        assert!(is_id(&format!("sha256:{}", "a".repeat(64))));
        assert!(is_id("0123456789ab"));
        assert!(!is_id("busybox"));
        assert!(!is_id("0123"));
    }
}
