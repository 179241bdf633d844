//! The HTTP plumbing: a client connection in, a request to the engine out, bodies
//! streamed both ways, and hijacked attach/exec streams spliced once both sides upgrade.

use crate::policy::{self, After, Before, Body, Decision, Facts, Forward, Need, Refusal, Target, MAX_JSON_BODY};
use crate::resolve;
use crate::upstream::{engine_failure, send, BoxError, ProxyBody, Shared};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
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
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "engine proxy connection ended");
    }
}

async fn handle(shared: &Shared, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    let mut body = Some(body);
    match exchange(shared, &parts, &mut body, client_upgrade).await {
        Ok(response) => response,
        Err(refusal) => {
            let (run_id, method, path) = (&shared.policy.scope().run_id, &parts.method, parts.uri.path());
            if refusal.status >= 500 {
                tracing::warn!(%run_id, %method, %path, status = refusal.status, "engine proxy failed: {}", refusal.message);
            } else {
                tracing::warn!(%run_id, %method, %path, status = refusal.status, "engine proxy refused: {}", refusal.message);
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
    shared: &Shared,
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
    let forward = decide(shared, parts.method.as_str(), &target, body, &mut json).await?;

    for before in &forward.before {
        match before {
            Before::CreateVolume { client, engine } => resolve::create_volume(shared, client, engine).await?,
        }
    }

    let upgrade = wants_upgrade(&parts.headers);
    let mut headers = end_to_end(&parts.headers);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Some(protocol) = parts.headers.get(header::UPGRADE) {
            headers.insert(header::UPGRADE, protocol.clone());
        }
    }
    if !headers.contains_key(header::HOST) {
        headers.insert(header::HOST, HeaderValue::from_static("docker"));
    }
    let uri = upstream_uri(&target, &forward)?;
    let out_body = match (&forward.body, body.take(), &json) {
        (Body::Json(value), _, _) | (Body::Stream, None, Some(value)) => {
            let bytes = serde_json::to_vec(value).unwrap_or_default();
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            full(bytes)
        }
        (Body::Stream, Some(body), _) => body.map_err(BoxError::from).boxed(),
        (Body::Stream, None, None) | (Body::Empty, _, _) => {
            headers.remove(header::CONTENT_LENGTH);
            empty()
        }
    };
    let mut upstream_req = Request::new(out_body);
    *upstream_req.method_mut() = parts.method.clone();
    *upstream_req.uri_mut() = uri;
    *upstream_req.headers_mut() = headers;

    let mut response = send(shared, upstream_req).await?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        shared.tasks.spawn(splice(client_upgrade, upstream_upgrade));
        let (parts, _) = response.into_parts();
        return Ok(Response::from_parts(parts, empty()));
    }
    let (mut parts, body) = response.into_parts();
    parts.headers = end_to_end(&parts.headers);
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
