//! What a run's steps may ask of the engine, and how their requests are rewritten.
//!
//! Pure: a request (method, decoded path, query pairs and, once read, its JSON body) and
//! what is known about the run (its [`Scope`], the names it created through the proxy,
//! answers to earlier lookups) go in; a [`Decision`] comes out. What only the engine or
//! the file system can tell (does this container carry the run's label? where does this
//! workspace path lead?) the decision asks for with [`Decision::Need`]; the caller finds
//! out and asks again.
//!
//! Default deny: an endpoint not matched below is refused.

mod container;
mod gojson;
pub mod images;
mod network;
mod state;
mod target;
mod volume;

pub use state::State;

pub use target::{encode_path, parse_target, Target};

use crate::Scope;
use gojson::Object;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// The largest JSON body the policy reads; bigger ones are refused with 413.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// A refused request: the HTTP status and what to tell the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    pub fn forbidden(message: impl Into<String>) -> Refusal {
        Refusal {
            status: 403,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Refusal {
        Refusal {
            status: 404,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal {
            status: 400,
            message: message.into(),
        }
    }
}

/// One request as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub target: &'a Target,
    /// The JSON body, once the policy asked for it ([`Need::Body`]); `Null` when empty.
    pub body: Option<&'a Value>,
    /// `X-Registry-Auth`: the client's credential for a pull or a push.
    pub registry_auth: Option<&'a str>,
}

/// What the policy needs to know before it can decide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Need {
    /// The request's JSON body.
    Body,
    /// Which container, if any, this reference means for the run.
    Container(String),
    /// Whether the engine has this network and whether it carries the run's label.
    Network(String),
    /// Whether the engine has this volume and whether it carries the run's label.
    Volume(String),
    /// Where a path beneath the workspace leads once symlinks are resolved.
    Workspace(String),
    /// What the engine says of an image (by name or id), if it has it.
    Image(String),
    /// A registry's digest for an image, asked with these credentials.
    Digest { image: String, auth: Option<(String, String)> },
}

/// A container of this run, as the engine names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
}

/// Whose a network or volume is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The run's, under this engine name.
    Run(String),
    /// It exists but is not the run's.
    Other,
    /// The engine has nothing by that name.
    Absent,
}

/// Answers to [`Need`]s, for one request.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Reference → the run's container it means, or `None` when it means none of them.
    pub containers: HashMap<String, Option<ContainerInfo>>,
    pub networks: HashMap<String, Owner>,
    pub volumes: HashMap<String, Owner>,
    /// Path relative to the workspace → the host path, or `None` when it leads outside.
    pub workspace: HashMap<String, Option<String>>,
    /// Engine name or id → what the engine says of it, or `None` when it has no such image.
    pub images: HashMap<String, Option<images::ImageFacts>>,
    /// Image → its registry's digest, or the registry's refusal.
    pub digests: HashMap<String, Result<String, String>>,
}

/// What to send upstream instead of the client's body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// The client's body, streamed as it comes.
    Stream,
    /// This JSON (the body as read and checked, rewritten where the policy says).
    Json(Value),
    /// No body at all.
    Empty,
    /// An image archive (`docker load`), its names rewritten into the run's namespace.
    LoadTar,
    /// A build context, its Dockerfile (at this path) rewritten for the run.
    BuildTar { dockerfile: String },
}

/// Something to do upstream before forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Before {
    /// Create a volume the client named but the engine does not have, as the engine
    /// would on first use, but carrying the run's label.
    CreateVolume { client: String, engine: String },
    /// Remember that the run pulled `client` as `engine` (a registry image by digest).
    Remember { client: String, engine: String },
    /// Give the run's image `source` the name `target` (for a push under it).
    Tag { source: String, target: String },
}

/// Something to do once the engine's answer has been passed on whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finally {
    /// Remove a name that existed only for this request.
    Untag(String),
    /// Give a name back to the image (id) that had it before this request.
    Restore { name: String, image: String },
}

/// How the engine's answer is read back for the client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Respond {
    /// As it is.
    #[default]
    Pass,
    /// Only the run's images, under the step's names, these `reference` filters applied.
    ImageList {
        references: Vec<String>,
    },
    ImageInspect,
    History,
    /// An image archive: its names as the step calls them.
    SavedImages,
    /// The engine's counts replaced with the run's.
    Info,
}

/// What to remember from a successful response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// The exec id in the response's `Id`.
    Exec,
    Network {
        client: String,
        engine: String,
    },
    /// The volume in the response (`Name`), known to the client as `client`.
    Volume {
        client: String,
    },
    ForgetNetwork(String),
    ForgetVolume(String),
}

/// A request to send upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// Decoded, without the version prefix.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Body,
    pub before: Vec<Before>,
    pub after: After,
    pub finally: Vec<Finally>,
    pub respond: Respond,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Forward(Forward),
    Refuse(Refusal),
    /// Ask again once these are known.
    Need(Vec<Need>),
}

/// The policy of one run.
#[derive(Debug, Clone)]
pub struct Policy {
    scope: Scope,
    /// The proxy's own socket: a step that mounts "the engine socket" into a container it
    /// starts gets this one.
    own_socket: PathBuf,
}

/// Why deciding stopped early.
enum Halt {
    Refuse(Refusal),
    /// Lookups are pending (recorded in [`Ask`]).
    Pending,
    Body,
}

impl From<Refusal> for Halt {
    fn from(r: Refusal) -> Halt {
        Halt::Refuse(r)
    }
}

/// An answer that may not be known yet.
enum Known<T> {
    Yes(T),
    No,
    Unknown,
}

/// What the policy knows while deciding one request, and what it found it needs.
struct Ask<'a> {
    policy: &'a Policy,
    state: &'a State,
    facts: &'a Facts,
    needs: Vec<Need>,
    before: Vec<Before>,
}

impl Ask<'_> {
    fn need(&mut self, need: Need) {
        if !self.needs.contains(&need) {
            self.needs.push(need);
        }
    }

    fn container(&mut self, reference: &str) -> Known<ContainerInfo> {
        if reference.is_empty() || reference.contains('/') {
            return Known::No;
        }
        match self.facts.containers.get(reference) {
            Some(Some(c)) => Known::Yes(c.clone()),
            Some(None) => Known::No,
            None => {
                self.need(Need::Container(reference.to_string()));
                Known::Unknown
            }
        }
    }

    /// A container named in a path: the run's, or 404.
    fn path_container(&mut self, reference: &str) -> Result<ContainerInfo, Halt> {
        match self.container(reference) {
            Known::Yes(c) => Ok(c),
            Known::No => Err(no_such_container(reference).into()),
            Known::Unknown => Err(Halt::Pending),
        }
    }

    /// A container named in a body: its engine id, `None` while unknown.
    fn body_container(&mut self, reference: &str) -> Result<Option<ContainerInfo>, Refusal> {
        // The engine accepts "/name" for "name".
        let reference = reference.strip_prefix('/').unwrap_or(reference);
        match self.container(reference) {
            Known::Yes(c) => Ok(Some(c)),
            // 403, not 404: the docker CLI answers a 404 from create by pulling the image.
            Known::No => Err(Refusal::forbidden(format!("no such container in this run: {reference}"))),
            Known::Unknown => Ok(None),
        }
    }

    /// The engine name of a network the run may use.
    fn network(&mut self, name: &str) -> Known<String> {
        let scope = &self.policy.scope;
        if let Some(engine) = scope.networks.get(name) {
            return Known::Yes(engine.clone());
        }
        if scope.networks.values().any(|v| v == name) {
            return Known::Yes(name.to_string());
        }
        if let Some(engine) = self.state.network(name) {
            return Known::Yes(engine.to_string());
        }
        match self.facts.networks.get(name) {
            Some(Owner::Run(engine)) => Known::Yes(engine.clone()),
            Some(_) => Known::No,
            None => {
                self.need(Need::Network(name.to_string()));
                Known::Unknown
            }
        }
    }

    fn volume(&mut self, name: &str) -> Known<Owner> {
        if self.policy.scope.volumes.iter().any(|v| v == name) {
            return Known::Yes(Owner::Run(name.to_string()));
        }
        if let Some(engine) = self.state.volume(name) {
            return Known::Yes(Owner::Run(engine.to_string()));
        }
        match self.facts.volumes.get(name) {
            Some(owner) => Known::Yes(owner.clone()),
            None => {
                self.need(Need::Volume(name.to_string()));
                Known::Unknown
            }
        }
    }

    /// A registry's digest for `image`; its refusal when it has none for this client.
    fn digest(&mut self, image: &str, auth: Option<(String, String)>) -> Result<Known<String>, Refusal> {
        match self.facts.digests.get(image) {
            Some(Ok(d)) => Ok(Known::Yes(d.clone())),
            Some(Err(e)) => Err(Refusal::not_found(format!("pulling {image}: {e}"))),
            None => {
                self.need(Need::Digest {
                    image: image.to_string(),
                    auth,
                });
                Ok(Known::Unknown)
            }
        }
    }

    fn workspace(&mut self, relative: &str) -> Known<String> {
        match self.facts.workspace.get(relative) {
            Some(Some(host)) => Known::Yes(host.clone()),
            Some(None) => Known::No,
            None => {
                self.need(Need::Workspace(relative.to_string()));
                Known::Unknown
            }
        }
    }
}

fn no_such_container(reference: &str) -> Refusal {
    Refusal::not_found(format!("no such container in this run: {reference}"))
}

fn not_available(req: &Request) -> Refusal {
    Refusal::forbidden(format!(
        "{} {} is not available through this run's engine socket",
        req.method, req.target.path
    ))
}

/// A refusal an operator setting would lift.
fn needs_setting(what: &str, setting: &str) -> Refusal {
    Refusal::forbidden(format!(
        "{what} is not allowed in this run (the operator setting {setting} allows it)"
    ))
}

fn buildkit_refused() -> Refusal {
    Refusal::forbidden(
        "BuildKit builds are not available through this run's engine socket: set DOCKER_BUILDKIT=0 to use the classic builder",
    )
}

fn first<'q>(query: &'q [(String, String)], key: &str) -> Option<&'q str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Every value of `key`: the engine reads the first, but a check reads them all.
fn all<'q>(query: &'q [(String, String)], key: &'q str) -> impl Iterator<Item = &'q str> + 'q {
    query.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The query with `key` set to one value.
fn with_param(query: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = query.iter().filter(|(k, _)| k != key).cloned().collect();
    out.push((key.to_string(), value.to_string()));
    out
}

impl Policy {
    pub fn new(scope: Scope, own_socket: PathBuf) -> Policy {
        Policy { scope, own_socket }
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    fn label(&self) -> (&str, &str) {
        (&self.scope.label.0, &self.scope.label.1)
    }

    /// `name` as the engine knows it: prefixed, unless it already is.
    fn container_name(&self, name: &str) -> String {
        let name = name.strip_prefix('/').unwrap_or(name);
        if name.starts_with(&self.scope.name_prefix) {
            name.to_string()
        } else {
            format!("{}{name}", self.scope.name_prefix)
        }
    }

    /// `name` as the engine knows a network or volume the client created.
    fn scoped_name(&self, name: &str) -> String {
        let suffix = format!("_{}", self.scope.run_id);
        if name.ends_with(&suffix) {
            name.to_string()
        } else {
            format!("{name}{suffix}")
        }
    }

    pub fn decide(&self, req: &Request, state: &State, facts: &Facts) -> Decision {
        let mut ask = Ask {
            policy: self,
            state,
            facts,
            needs: Vec::new(),
            before: Vec::new(),
        };
        match self.route(req, &mut ask) {
            Err(Halt::Refuse(r)) => Decision::Refuse(r),
            Err(Halt::Body) => Decision::Need(vec![Need::Body]),
            Err(Halt::Pending) => Decision::Need(ask.needs),
            Ok(_) if !ask.needs.is_empty() => Decision::Need(ask.needs),
            Ok(mut forward) => {
                forward.before = ask.before;
                Decision::Forward(forward)
            }
        }
    }

    fn route(&self, req: &Request, ask: &mut Ask) -> Result<Forward, Halt> {
        let path = req.target.path.as_str();
        let segments: Vec<&str> = path[1..].split('/').collect();
        let image_endpoint = matches!(segments.as_slice(), ["images", ..] | ["commit"]) && !matches!(segments.as_slice(), [_, "prune"]);
        if self.scope.images.is_some() && image_endpoint {
            return images::route(self, ask, req, &segments);
        }
        match (req.method, segments.as_slice()) {
            ("GET" | "HEAD", ["_ping"]) | ("GET", ["version"]) => Ok(pass(req)),
            ("GET", ["info"]) => Ok(Forward {
                respond: if self.scope.images.is_some() {
                    Respond::Info
                } else {
                    Respond::Pass
                },
                ..pass(req)
            }),
            ("GET", ["events"]) => self.run_only_list(req),

            ("POST", [_, "prune"]) => Err(Refusal::forbidden("pruning is not available through this run's engine socket").into()),
            ("GET", ["images", "json" | "get"]) | ("POST", ["images", "load"]) | ("POST", ["auth"]) => Ok(pass(req)),
            ("POST", ["images", "create"]) => image_create(req),
            ("DELETE", ["images", ..]) => {
                Err(Refusal::forbidden("removing images is not available through this run's engine socket").into())
            }
            ("GET", ["images", name @ .., "json" | "history" | "get"]) if !name.is_empty() => Ok(pass(req)),
            ("POST", ["images", name @ .., "tag" | "push"]) if !name.is_empty() => Ok(pass(req)),
            // The engine asks the registry with its own view of credentials: in a shared
            // engine that says what another tenant's repository holds.
            ("GET", ["distribution", name @ .., "json"]) if !name.is_empty() && self.scope.images.is_none() => Ok(pass(req)),
            ("GET", ["distribution", ..]) => Err(Refusal::forbidden(
                "asking the registry through the engine (/distribution) is not available through this run's engine socket; pull the image instead",
            )
            .into()),

            ("POST", ["build"]) => self.build(req, ask),
            (_, ["session" | "grpc"]) => Err(buildkit_refused().into()),

            ("POST", ["containers", "create"]) => container::create(self, ask, req),
            ("GET", ["containers", "json"]) => self.run_only_list(req),
            ("DELETE", ["containers", reference]) => self.container_delete(req, ask, reference),
            (method, ["containers", reference, action]) => self.container_action(req, ask, method, reference, action),
            ("POST", ["commit"]) => self.commit(req, ask),
            (method, ["exec", id, action]) => self.exec(req, ask, method, id, action),

            ("GET", ["networks"]) => self.run_only_list(req),
            ("POST", ["networks", "create"]) => network::create(self, req),
            ("GET" | "DELETE", ["networks", reference]) => network::by_reference(req, ask, reference),
            ("POST", ["networks", reference, action @ ("connect" | "disconnect")]) => network::connect(req, ask, reference, action),

            ("GET", ["volumes"]) => self.run_only_list(req),
            ("POST", ["volumes", "create"]) => volume::create(self, req),
            ("GET" | "DELETE", ["volumes", name]) => volume::by_name(req, ask, name),

            _ => Err(not_available(req).into()),
        }
    }

    /// A list or event stream, narrowed to what carries the run's label.
    fn run_only_list(&self, req: &Request) -> Result<Forward, Halt> {
        let query = &req.target.query;
        let filters = with_label_filter(first(query, "filters"), self.label())?;
        Ok(Forward {
            query: with_param(query, "filters", &filters),
            ..pass(req)
        })
    }

    fn build(&self, req: &Request, ask: &mut Ask) -> Result<Forward, Halt> {
        let query = &req.target.query;
        if all(query, "remote").any(|v| !v.is_empty()) {
            return Err(Refusal::forbidden(
                "building from a remote URL (remote=) is not available: the engine would fetch it from the host's network; send the context instead",
            )
            .into());
        }
        if all(query, "version").any(|v| v == "2") || all(query, "session").any(|v| !v.is_empty()) {
            return Err(buildkit_refused().into());
        }
        if all(query, "cgroupparent").any(|v| !v.is_empty()) {
            return Err(Refusal::forbidden("a build's cgroup parent (cgroupparent=) is not allowed in this run").into());
        }
        for raw in all(query, "ulimits").filter(|v| !v.is_empty()) {
            let list: Value = serde_json::from_str(raw).map_err(|_| Refusal::bad_request("ulimits= must be a JSON list"))?;
            container::ulimits(&list)?;
        }
        let mut forward = pass(req);
        if let Some(limits) = &self.scope.step_limits {
            forward.query = container::build_sizes(limits, &forward.query)?;
        }
        images::build(self, req, &mut forward)?;
        if let Some(mode) = first(query, "networkmode") {
            match container::network_mode(self, ask, mode)? {
                Some(engine) => forward.query = with_param(&forward.query, "networkmode", &engine),
                None => return Err(Halt::Pending),
            }
        }
        Ok(forward)
    }

    fn container_delete(&self, req: &Request, ask: &mut Ask, reference: &str) -> Result<Forward, Halt> {
        // `link=1` removes a link, named by a path we do not resolve.
        if all(&req.target.query, "link").any(go_bool) {
            return Err(Refusal::forbidden("removing links is not available through this run's engine socket").into());
        }
        let c = ask.path_container(reference)?;
        Ok(Forward {
            path: format!("/containers/{}", c.id),
            ..pass(req)
        })
    }

    fn container_action(&self, req: &Request, ask: &mut Ask, method: &str, reference: &str, action: &str) -> Result<Forward, Halt> {
        let allowed = matches!(
            (method, action),
            ("GET", "json" | "logs" | "top" | "stats" | "changes" | "export" | "archive")
                | ("HEAD" | "PUT", "archive")
                | (
                    "POST",
                    "start" | "stop" | "restart" | "kill" | "wait" | "pause" | "unpause" | "resize" | "attach" | "exec" | "rename"
                )
        );
        if !allowed {
            return Err(not_available(req).into());
        }
        let query = &req.target.query;
        if action == "start" && query.iter().any(|(k, _)| k.starts_with("checkpoint")) {
            return Err(Refusal::forbidden("starting from a checkpoint is not available through this run's engine socket").into());
        }
        let c = ask.path_container(reference)?;
        let mut forward = Forward {
            path: format!("/containers/{}/{action}", c.id),
            ..pass(req)
        };
        match action {
            // A start body is a host config in old API versions: never forward one.
            "start" => forward.body = Body::Empty,
            "rename" => {
                let name = first(query, "name").unwrap_or("");
                forward.query = with_param(query, "name", &self.container_name(name));
            }
            "exec" => {
                let mut body = req.body.cloned().ok_or(Halt::Body)?;
                let config = gojson::strukt(&mut body, "the exec config")?;
                if gojson::is_set(config, "Privileged") && !self.scope.allow_privileged {
                    return Err(needs_setting("a privileged exec", "allow_privileged").into());
                }
                forward.body = Body::Json(body);
                forward.after = After::Exec;
            }
            _ => {}
        }
        Ok(forward)
    }

    fn commit(&self, req: &Request, ask: &mut Ask) -> Result<Forward, Halt> {
        let query = &req.target.query;
        let c = ask.path_container(first(query, "container").unwrap_or(""))?;
        Ok(Forward {
            query: with_param(query, "container", &c.id),
            ..pass(req)
        })
    }

    fn exec(&self, req: &Request, ask: &mut Ask, method: &str, id: &str, action: &str) -> Result<Forward, Halt> {
        if !matches!((method, action), ("POST", "start" | "resize") | ("GET", "json")) {
            return Err(not_available(req).into());
        }
        if !ask.state.execs.contains(id) {
            return Err(Refusal::not_found(format!("no such exec instance in this run: {id}")).into());
        }
        Ok(pass(req))
    }
}

/// The request as it came, body streamed.
fn pass(req: &Request) -> Forward {
    Forward {
        path: req.target.path.clone(),
        query: req.target.query.clone(),
        body: match req.body {
            Some(v) => Body::Json(v.clone()),
            None => Body::Stream,
        },
        before: Vec::new(),
        after: After::Nothing,
        finally: Vec::new(),
        respond: Respond::Pass,
    }
}

fn image_create(req: &Request) -> Result<Forward, Halt> {
    let query = &req.target.query;
    if all(query, "fromSrc").any(|v| !v.is_empty() && v != "-") {
        return Err(Refusal::forbidden(
            "importing an image from a URL (fromSrc) is not available: the engine would fetch it from the host's network; use fromSrc=- and send the file",
        )
        .into());
    }
    if first(query, "fromImage").unwrap_or("").is_empty() && first(query, "fromSrc") != Some("-") {
        return Err(Refusal::forbidden("POST /images/create needs fromImage (a pull) or fromSrc=- (an import)").into());
    }
    Ok(pass(req))
}

/// Go's `httputils.BoolValue`.
fn go_bool(v: &str) -> bool {
    !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "no" | "false" | "none")
}

/// The client's `filters` (either of the engine's JSON forms) with `label=key=value`
/// added; label filters must all match, so the client cannot widen it.
/// Filters that name another object (`before=`, `since=`, `ancestor=`) make the
/// engine look it up among everyone's, and its answer says whether it exists.
pub(super) fn refuse_lookup_filter(name: &str) -> Result<(), Refusal> {
    if matches!(name, "before" | "since" | "ancestor") {
        return Err(Refusal::forbidden(format!(
            "the {name} filter is not available through this run's engine socket: the engine would look its value up among every run's"
        )));
    }
    Ok(())
}

fn with_label_filter(filters: Option<&str>, (key, value): (&str, &str)) -> Result<String, Refusal> {
    let invalid = || Refusal::bad_request("filters must be a JSON object of filter names to values");
    let mut out = serde_json::Map::new();
    if let Some(raw) = filters.filter(|f| !f.is_empty()) {
        match serde_json::from_str::<Value>(raw).map_err(|_| invalid())? {
            Value::Null => {}
            Value::Object(given) => {
                for (name, values) in given {
                    refuse_lookup_filter(&name)?;
                    let set: Object = match values {
                        Value::Object(set) => set,
                        Value::Array(list) => list
                            .into_iter()
                            .map(|v| match v {
                                Value::String(s) => Ok((s, Value::Bool(true))),
                                _ => Err(invalid()),
                            })
                            .collect::<Result<_, _>>()?,
                        Value::Null => Object::new(),
                        _ => return Err(invalid()),
                    };
                    out.insert(name, Value::Object(set));
                }
            }
            _ => return Err(invalid()),
        }
    }
    let labels = out.entry("label").or_insert_with(|| Value::Object(Object::new()));
    if let Value::Object(labels) = labels {
        labels.insert(format!("{key}={value}"), Value::Bool(true));
    }
    Ok(Value::Object(out).to_string())
}

#[cfg(test)]
mod tests;
