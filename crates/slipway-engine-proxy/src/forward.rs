//! The HTTP plumbing: a client connection in, a request to the engine out, bodies
//! streamed both ways, and hijacked attach/exec streams spliced once both sides upgrade.

use crate::policy::{self, After, Before, Body, Decision, Facts, Finally, Forward, Need, Refusal, Respond, Target, MAX_JSON_BODY};
use crate::resolve;
use crate::tar_rewrite;
use crate::upstream::{engine_failure, send, BoxError, ProxyBody, Shared};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::UnixStream;

pub(crate) async fn serve_connection(shared: Arc<Shared>, stream: UnixStream) {
    let shared_timeout = shared.limits.header_timeout;
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(shared_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "engine proxy connection ended");
    }
}

async fn handle(shared: Arc<Shared>, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    let mut body = Some(body);
    match exchange(&shared, &parts, &mut body, client_upgrade).await {
        Ok(response) => response,
        Err(refusal) => {
            let (run_id, method, path) = (&shared.policy.scope().run_id, &parts.method, parts.uri.path());
            // A client may make the proxy refuse it without end: a burst is written, the
            // rest counted in the next line written.
            if let Some(held_back) = shared.warnings.admit() {
                if refusal.status >= 500 {
                    tracing::warn!(%run_id, %method, %path, status = refusal.status, held_back, "engine proxy failed: {}", refusal.message);
                } else {
                    tracing::warn!(%run_id, %method, %path, status = refusal.status, held_back, "engine proxy refused: {}", refusal.message);
                }
            }
            if let Some(body) = body {
                drain(body).await;
            }
            error_response(&refusal)
        }
    }
}

/// Reads and drops a refused request's body: a client still sending it (a build
/// context) would otherwise see a broken pipe instead of the refusal.
async fn drain(mut body: Incoming) {
    const MAX: usize = 1 << 30;
    let mut seen = 0;
    let reading = async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(60), reading).await;
}

/// One request: decide, forward, answer.
async fn exchange(
    shared: &Arc<Shared>,
    parts: &hyper::http::request::Parts,
    body: &mut Option<Incoming>,
    client_upgrade: OnUpgrade,
) -> Result<Response<ProxyBody>, Refusal> {
    let target = policy::parse_target(parts.uri.path(), parts.uri.query())?;
    // The engine reads a form-encoded body as query parameters, past every check here.
    let form = parts.headers.get_all(header::CONTENT_TYPE).iter().any(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .to_ascii_lowercase()
            .contains("x-www-form-urlencoded")
    });
    if form {
        return Err(Refusal::bad_request("form-encoded request bodies are not accepted"));
    }
    let mut json: Option<Value> = None;
    let (forward, held) = decide_holding_pushed_name(shared, parts, &target, body, &mut json).await?;
    run_before(shared, &forward).await?;

    let upgrade = wants_upgrade(&parts.headers);
    // A hijacked stream outlives its connection: it holds a place of its own.
    let stream_pass = match upgrade {
        true => Some(
            shared
                .limits
                .connections
                .enter(&shared.policy.scope().run_id)
                .map_err(|full| Refusal {
                    status: 429,
                    message: format!("too many connections to the engine: {full}"),
                })?,
        ),
        false => None,
    };
    let mut headers = upstream_headers(&parts.headers, upgrade);
    let uri = upstream_uri(&target, &forward)?;
    let (out_body, rewriting) = upstream_body(shared, &forward, &target, &parts.headers, body.take(), &json, &mut headers);
    let mut upstream_req = Request::new(out_body);
    *upstream_req.method_mut() = parts.method.clone();
    *upstream_req.uri_mut() = uri;
    *upstream_req.headers_mut() = headers;

    let mut response = engine_response(shared, &forward, upstream_req, rewriting).await?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let spliced = splice(client_upgrade, upstream_upgrade);
        shared.tasks.spawn(async move {
            spliced.await;
            drop(stream_pass);
        });
        let (parts, _) = response.into_parts();
        return Ok(Response::from_parts(parts, empty()));
    }
    answer(shared, &forward, response, held).await
}

/// The policy's decision and, for a push, the hold on the pushed name: a push names
/// the image for its length, so it is held against every other push of that name and
/// decided again once held, so what it gives back is what was there.
async fn decide_holding_pushed_name(
    shared: &Arc<Shared>,
    parts: &hyper::http::request::Parts,
    target: &Target,
    body: &mut Option<Incoming>,
    json: &mut Option<Value>,
) -> Result<(Forward, Option<crate::NameGuard>), Refusal> {
    let registry_auth = parts.headers.get("x-registry-auth").and_then(|v| v.to_str().ok());
    let mut forward = decide(shared, parts.method.as_str(), target, registry_auth, body, json).await?;
    let pushed = forward.before.iter().find_map(|b| match b {
        Before::Tag { target, .. } => Some(target.clone()),
        _ => None,
    });
    let held = match (pushed, &shared.policy.scope().images) {
        (Some(name), Some(rules)) => {
            let guard = (rules.hold_name)(name).await;
            forward = decide(shared, parts.method.as_str(), target, registry_auth, body, json).await?;
            Some(guard)
        }
        _ => None,
    };
    Ok((forward, held))
}

/// Does what the policy asked for before the request goes to the engine, in order.
async fn run_before(shared: &Arc<Shared>, forward: &Forward) -> Result<(), Refusal> {
    for before in &forward.before {
        match before {
            Before::CreateVolume { client, engine } => resolve::create_volume(shared, client, engine).await?,
            Before::Remember { client, engine } => {
                shared.state().pulled.insert(client.clone(), engine.clone());
            }
            Before::Tag { source, target } => resolve::tag(shared, source, target).await?,
        }
    }
    Ok(())
}

/// The client's end-to-end headers for the engine, asking again for the upgrade the
/// client asked for, and naming a host when the client named none.
fn upstream_headers(client: &HeaderMap, upgrade: bool) -> HeaderMap {
    let mut headers = end_to_end(client);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Some(protocol) = client.get(header::UPGRADE) {
            headers.insert(header::UPGRADE, protocol.clone());
        }
    }
    if !headers.contains_key(header::HOST) {
        headers.insert(header::HOST, HeaderValue::from_static("docker"));
    }
    headers
}

/// The body the engine gets, as the policy decided: the checked JSON, the client's
/// stream, a rewritten archive (with the slot its failure is told in), or nothing;
/// `Content-Length` is set or removed to match.
fn upstream_body(
    shared: &Arc<Shared>,
    forward: &Forward,
    target: &Target,
    client_headers: &HeaderMap,
    body: Option<Incoming>,
    json: &Option<Value>,
    headers: &mut HeaderMap,
) -> (ProxyBody, Option<tar_rewrite::Failure>) {
    match (&forward.body, body, json) {
        (Body::Json(value), _, _) | (Body::Stream | Body::LoadTar | Body::BuildTar { .. }, None, Some(value)) => {
            let bytes = serde_json::to_vec(value).unwrap_or_default();
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            (full(bytes), None)
        }
        (Body::Stream, Some(body), _) => (body.map_err(BoxError::from).boxed(), None),
        (Body::LoadTar | Body::BuildTar { .. }, Some(body), _) => {
            headers.remove(header::CONTENT_LENGTH);
            let (stream, failure) = rewritten_request(shared, &forward.body, target, client_headers, body);
            (stream, Some(failure))
        }
        (Body::Stream | Body::LoadTar | Body::BuildTar { .. }, None, None) | (Body::Empty, _, _) => {
            headers.remove(header::CONTENT_LENGTH);
            (empty(), None)
        }
    }
}

/// Sends the request to the engine; when that fails, the policy's finally steps run
/// before the refusal goes back.
async fn engine_response(
    shared: &Arc<Shared>,
    forward: &Forward,
    upstream_req: Request<ProxyBody>,
    rewriting: Option<tar_rewrite::Failure>,
) -> Result<Response<Incoming>, Refusal> {
    let sent = send(shared, upstream_req).await;
    // A rewrite that refused the body ends it early: its reason, not the engine's view
    // of a cut stream, is the answer.
    if let Some(why) = rewriting.and_then(|f| f.lock().unwrap_or_else(|p| p.into_inner()).clone()) {
        for f in &forward.finally {
            run_finally(shared, f).await;
        }
        return Err(Refusal::bad_request(why));
    }
    match sent {
        Ok(r) => Ok(r),
        Err(e) => {
            for f in &forward.finally {
                run_finally(shared, f).await;
            }
            Err(e)
        }
    }
}

/// The engine's answer for the client: streamed on (running the finally steps once it
/// ends), rewritten for the run, or read whole to remember what it created.
async fn answer(
    shared: &Arc<Shared>,
    forward: &Forward,
    response: Response<Incoming>,
    held: Option<crate::NameGuard>,
) -> Result<Response<ProxyBody>, Refusal> {
    let (mut parts, body) = response.into_parts();
    parts.headers = end_to_end(&parts.headers);
    if !forward.finally.is_empty() {
        return Ok(Response::from_parts(
            parts,
            then_finally(shared.clone(), body, forward.finally.clone(), held),
        ));
    }
    drop(held);
    if forward.respond != Respond::Pass && parts.status.is_success() {
        return read_back(shared, parts, body, &forward.respond).await;
    }
    if forward.after == After::Nothing || !parts.status.is_success() {
        return Ok(Response::from_parts(parts, body.map_err(BoxError::from).boxed()));
    }
    // Small JSON answers (an exec id, a created network or volume) to remember.
    let bytes = Limited::new(body, MAX_JSON_BODY)
        .collect()
        .await
        .map_err(|e| engine_failure(format!("reading the engine's answer: {e}")))?
        .to_bytes();
    let value = serde_json::from_slice::<Value>(&bytes).ok();
    shared.state().remember(&forward.after, value.as_ref());
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, full(bytes)))
}

/// Asks the policy until it decides, answering what it needs in between.
async fn decide(
    shared: &Shared,
    method: &str,
    target: &Target,
    registry_auth: Option<&str>,
    body: &mut Option<Incoming>,
    json: &mut Option<Value>,
) -> Result<Forward, Refusal> {
    let mut facts = Facts::default();
    // Each round answers everything asked; a few rounds settle any request.
    for _ in 0..8 {
        let decision = {
            let state = shared.state();
            let req = policy::Request {
                method,
                target,
                body: json.as_ref(),
                registry_auth,
            };
            shared.policy.decide(&req, &state, &facts)
        };
        match decision {
            Decision::Forward(forward) => return Ok(forward),
            Decision::Refuse(refusal) => return Err(refusal),
            Decision::Need(needs) => {
                for need in needs {
                    match need {
                        Need::Body => {
                            let incoming = body.take().ok_or_else(|| internal("the body was asked for twice"))?;
                            *json = Some(read_json(incoming).await?);
                        }
                        need => resolve::answer(shared, &need, &mut facts).await?,
                    }
                }
            }
        }
    }
    Err(internal("the policy did not settle"))
}

async fn read_json(body: Incoming) -> Result<Value, Refusal> {
    let bytes = match Limited::new(body, MAX_JSON_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Refusal {
                status: 413,
                message: format!("the JSON body is larger than {} bytes", MAX_JSON_BODY),
            })
        }
        Err(e) => return Err(Refusal::bad_request(format!("reading the request body: {e}"))),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| Refusal::bad_request(format!("malformed JSON body: {e}")))
}

/// The path as the client sent it unless the policy rewrote it; the query as the policy
/// read it, so the engine sees the values that were checked.
fn upstream_uri(target: &Target, forward: &Forward) -> Result<Uri, Refusal> {
    let mut uri = if forward.path == target.path {
        target.raw_path.clone()
    } else {
        let version = target.version.as_ref().map(|v| format!("/v{v}")).unwrap_or_default();
        format!("{version}{}", policy::encode_path(&forward.path))
    };
    if !forward.query.is_empty() {
        uri.push('?');
        uri.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&forward.query)
                .finish(),
        );
    }
    uri.parse()
        .map_err(|_| Refusal::bad_request(format!("cannot forward the path {uri:?}")))
}

/// The most of an engine's answer about images that is read to rewrite it.
const MAX_IMAGE_ANSWER: usize = 16 << 20;

/// A load's archive or a build's context on its way to the engine, rewritten for the
/// run (`tar_rewrite`): the names a load tags, or the Dockerfile a build reads.
fn rewritten_request(
    shared: &Arc<Shared>,
    kind: &Body,
    target: &Target,
    headers: &HeaderMap,
    body: Incoming,
) -> (ProxyBody, tar_rewrite::Failure) {
    let stream = Box::pin(body.into_data_stream());
    let (stream, failure) = match kind {
        Body::BuildTar { dockerfile } => {
            let wanted = dockerfile
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .collect::<Vec<_>>()
                .join("/");
            let opts = classic_build_options(&target.query);
            let config = headers.get("x-registry-config").and_then(|v| v.to_str().ok()).map(str::to_string);
            let shared = shared.clone();
            let transform: tar_rewrite::Transform = Arc::new(move |_name, data| {
                let (shared, opts, config) = (shared.clone(), opts.clone(), config.clone());
                Box::pin(async move {
                    let text = String::from_utf8(data).map_err(|_| "the Dockerfile is not UTF-8".to_string())?;
                    resolve::dockerfile(&shared, &text, &opts, config.as_deref())
                        .await
                        .map(String::into_bytes)
                })
            });
            let wanted = tar_rewrite::Wanted {
                names: vec![wanted],
                required: true,
            };
            let (stream, failure) = tar_rewrite::rewrite(stream, wanted, transform);
            (body_of(stream), failure)
        }
        _ => {
            let shared = shared.clone();
            let transform: tar_rewrite::Transform = Arc::new(move |name, data| {
                let shared = shared.clone();
                Box::pin(async move { archive_names(&shared, &name, &data, |p, t| p.loaded_name(t).map(Some)) })
            });
            let wanted = tar_rewrite::Wanted {
                names: vec!["manifest.json".into(), "repositories".into()],
                required: false,
            };
            let (stream, failure) = tar_rewrite::rewrite(stream, wanted, transform);
            (body_of(stream), failure)
        }
    };
    (stream, failure)
}

/// A stream of bytes as a body.
fn body_of(stream: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static) -> ProxyBody {
    BodyExt::boxed(StreamBody::new(stream.map(|r| r.map(Frame::data).map_err(BoxError::from))))
}

/// An image archive's `manifest.json` or `repositories` with its names mapped.
fn archive_names(
    shared: &Shared,
    name: &str,
    data: &[u8],
    map: impl Fn(&policy::Policy, &str) -> Result<Option<String>, Refusal>,
) -> Result<Vec<u8>, String> {
    let policy = &shared.policy;
    let map = |t: &str| map(policy, t);
    let out = if name == "manifest.json" {
        policy.archive_manifest(data, &map)
    } else {
        policy.archive_repositories(data, &map)
    };
    out.map_err(|r| r.message)
}

/// What a classic build's query says about reading its Dockerfile.
fn classic_build_options(query: &[(String, String)]) -> slipway_dockerfile::ScanOptions {
    let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let build_args = get("buildargs")
        .and_then(|raw| serde_json::from_str::<serde_json::Map<String, Value>>(raw).ok())
        .map(|m| m.into_iter().filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string()))).collect())
        .unwrap_or_default();
    slipway_dockerfile::ScanOptions {
        build_args,
        target: get("target").filter(|t| !t.is_empty()).map(str::to_string),
        predefined: Default::default(),
    }
}

/// The engine's answer passed on as it comes, then `finally` done before its end is
/// (so the client's next request finds it done).
fn then_finally(shared: Arc<Shared>, body: Incoming, finally: Vec<Finally>, held: Option<crate::NameGuard>) -> ProxyBody {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, BoxError>>(8);
    let task_shared = shared.clone();
    shared.tasks.spawn(async move {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        if tx.send(Ok(data)).await.is_err() {
                            break;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(BoxError::from(e))).await;
                    break;
                }
            }
        }
        for f in &finally {
            run_finally(&task_shared, f).await;
        }
        drop(held);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    BodyExt::boxed(StreamBody::new(stream.map(|r| r.map(Frame::data))))
}

async fn run_finally(shared: &Shared, f: &Finally) {
    match f {
        Finally::Untag(name) => resolve::untag(shared, name).await,
        Finally::Restore { name, image } => {
            if let Err(e) = resolve::tag(shared, image, name).await {
                tracing::warn!(image = name, error = %e.message, "giving a name back after a push failed");
            }
        }
    }
}

/// The engine's answer about images, as the run may see it.
async fn read_back(
    shared: &Arc<Shared>,
    parts: hyper::http::response::Parts,
    body: Incoming,
    respond: &Respond,
) -> Result<Response<ProxyBody>, Refusal> {
    let mut parts = parts;
    if *respond == Respond::SavedImages {
        parts.headers.remove(header::CONTENT_LENGTH);
        let transform_shared = shared.clone();
        let transform: tar_rewrite::Transform = Arc::new(move |name, data| {
            let shared = transform_shared.clone();
            Box::pin(async move { archive_names(&shared, &name, &data, |p, t| Ok(p.saved_name(t))) })
        });
        let (stream, _) = tar_rewrite::rewrite(
            Box::pin(body.into_data_stream()),
            tar_rewrite::Wanted {
                names: vec!["manifest.json".into(), "repositories".into()],
                required: false,
            },
            transform,
        );
        return Ok(Response::from_parts(parts, body_of(stream)));
    }
    let bytes = Limited::new(body, MAX_IMAGE_ANSWER)
        .collect()
        .await
        .map_err(|e| engine_failure(format!("reading the engine's answer: {e}")))?
        .to_bytes();
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| engine_failure(format!("the engine's answer: {e}")))?;
    let pulled = shared.state().pulled.clone();
    let policy = &shared.policy;
    let out = match respond {
        Respond::ImageList { references } => policy.image_list(&pulled, value, references),
        Respond::ImageInspect => policy.image_inspect(&pulled, value),
        Respond::History => policy.image_history(&pulled, value),
        Respond::Info => {
            let (containers, running, images) = resolve::run_counts(shared).await?;
            let mut v = value;
            if let Some(m) = v.as_object_mut() {
                m.insert("Containers".into(), containers.into());
                m.insert("ContainersRunning".into(), running.into());
                m.insert("ContainersPaused".into(), 0.into());
                m.insert("ContainersStopped".into(), (containers - running).into());
                m.insert("Images".into(), images.into());
            }
            v
        }
        Respond::Pass | Respond::SavedImages => value,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, full(serde_json::to_vec(&out).unwrap_or_default())))
}

/// Copies both ways between a hijacked client connection and the engine's.
async fn splice(client: OnUpgrade, upstream: OnUpgrade) {
    match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(error = %e, "hijacked stream ended");
            }
        }
        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
    }
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
        })
}

/// The headers without those that describe one connection (framing is redone per hop).
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    const HOP_BY_HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != header::CONTENT_LENGTH {
            out.append(name.clone(), value.clone());
        }
    }
    // Keep the engine's length where it gave one: a HEAD answer has no body to measure.
    if let Some(length) = headers.get(header::CONTENT_LENGTH) {
        out.insert(header::CONTENT_LENGTH, length.clone());
    }
    out
}

fn internal(message: &str) -> Refusal {
    Refusal {
        status: 500,
        message: message.to_string(),
    }
}

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// The engine's error shape, which the docker CLI prints as "Error response from daemon: …".
fn error_response(refusal: &Refusal) -> Response<ProxyBody> {
    let body = serde_json::json!({ "message": format!("slipway: {}", refusal.message) }).to_string();
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
