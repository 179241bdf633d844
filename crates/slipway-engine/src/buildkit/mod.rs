//! Builds through the engine's BuildKit (`POST /build?version=2`) with a session we
//! serve: secrets, registry credentials, progress as plain lines.

pub(crate) mod connection;
mod progress;
mod session;

pub(crate) use connection::Endpoint;

use crate::{ContextStream, EngineError, ImageBuild, LogSink, RegistryCredential};
use base64::Engine as _;
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use prost::Message as _;

/// The largest line of the build's JSON stream we hold (a progress message carries a
/// step's log output, which BuildKit cuts into pieces far smaller than this).
const MAX_MESSAGE: usize = 16 << 20;

/// Builds `build` from `context`; returns the image id.
pub(crate) async fn build(
    endpoint: &Endpoint,
    build: &ImageBuild,
    context: ContextStream,
    credentials: &[RegistryCredential],
    log: &LogSink,
) -> Result<String, EngineError> {
    let id = connection::random_id();
    let uri = format!("/build?{}", query(build, &id));
    // The body must be `Sync`; a channel fed from the context stream is.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let feeder = tokio::spawn(async move {
        let mut context = context;
        while let Some(chunk) = context.next().await {
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    let _feeder = AbortOnDrop(feeder);
    let frames = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let body = BodyExt::boxed(http_body_util::StreamBody::new(frames.map_ok(hyper::body::Frame::data)));
    let request = hyper::Request::post(uri)
        .header("Host", "docker")
        .header("Content-Type", "application/x-tar")
        .body(body)
        .map_err(|e| EngineError::Build(format!("build request: {e}")))?;
    // The session and the build go out together: one round trip fewer.
    let (session, (response, _connection)) = tokio::try_join!(
        session::open(endpoint, id, &build.secrets, credentials),
        connection::send(endpoint, request)
    )?;
    if !response.status().is_success() {
        let status = response.status();
        return Err(EngineError::Build(format!(
            "the engine refused the build ({status}): {}",
            error_text(&connection::read_text(response).await)
        )));
    }
    let mut body = response.into_body();
    let mut pending: Vec<u8> = Vec::new();
    let mut progress = progress::Progress::default();
    let mut image_id = None;
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => return Err(EngineError::Build(format!("the build's output stream broke: {e}"))),
        };
        let Some(data) = frame.data_ref() else { continue };
        pending.extend_from_slice(data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if let Some(id) = message(&line, &mut progress, log)? {
                image_id = Some(id);
            }
        }
        if pending.len() > MAX_MESSAGE {
            return Err(EngineError::Build("the engine sent an oversized build message".into()));
        }
    }
    if let Some(id) = message(&pending, &mut progress, log)? {
        image_id = Some(id);
    }
    drop(session);
    image_id.ok_or_else(|| EngineError::Build("the engine reported no image id".into()))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Handles one JSON message of the build stream; returns the image id when it is that.
fn message(line: &[u8], progress: &mut progress::Progress, log: &LogSink) -> Result<Option<String>, EngineError> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Ok(None);
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
        log(&String::from_utf8_lossy(line));
        return Ok(None);
    };
    if let Some(e) = v.pointer("/errorDetail/message").or(v.get("error")).and_then(|e| e.as_str()) {
        return Err(EngineError::Build(e.to_string()));
    }
    match v.get("id").and_then(|i| i.as_str()) {
        Some("moby.buildkit.trace") => {
            let raw = v.get("aux").and_then(|a| a.as_str()).unwrap_or_default();
            let status = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .ok()
                .and_then(|b| bollard_buildkit_proto::moby::buildkit::v1::StatusResponse::decode(b.as_slice()).ok());
            if let Some(status) = status {
                for l in progress.lines(&status) {
                    log(&l);
                }
            }
            Ok(None)
        }
        Some("moby.image.id") => Ok(v.pointer("/aux/ID").and_then(|i| i.as_str()).map(str::to_string)),
        _ => {
            if let Some(text) = v.get("stream").and_then(|s| s.as_str()) {
                crate::emit_lines(log, text);
            }
            Ok(None)
        }
    }
}

/// The engine's error body is `{"message": …}`.
fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.to_string())
}

/// The `/build` query of a BuildKit build.
fn query(build: &ImageBuild, session: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("version", "2");
    q.append_pair("session", session);
    q.append_pair(
        "dockerfile",
        if build.dockerfile.is_empty() {
            "Dockerfile"
        } else {
            &build.dockerfile
        },
    );
    for t in &build.tags {
        q.append_pair("t", t);
    }
    let mut args = build.build_args.clone();
    if build.inline_cache {
        args.insert("BUILDKIT_INLINE_CACHE".into(), "1".into());
    }
    if let Some(ns) = &build.cache_mount_namespace {
        args.insert("BUILDKIT_CACHE_MOUNT_NS".into(), ns.clone());
    }
    q.append_pair("buildargs", &serde_json::to_string(&args).unwrap_or_default());
    q.append_pair("labels", &serde_json::to_string(&build.labels).unwrap_or_default());
    if build.no_cache {
        q.append_pair("nocache", "1");
    }
    if build.pull {
        q.append_pair("pull", "1");
    }
    if let Some(t) = &build.target {
        q.append_pair("target", t);
    }
    if let Some(p) = &build.platform {
        q.append_pair("platform", p);
    }
    if let Some(n) = &build.network {
        q.append_pair("networkmode", n);
    }
    if !build.cache_from.is_empty() {
        q.append_pair("cachefrom", &serde_json::to_string(&build.cache_from).unwrap_or_default());
    }
    if !build.extra_hosts.is_empty() {
        q.append_pair("extrahosts", &build.extra_hosts.join(","));
    }
    q.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_carries_every_option_and_no_secret() {
        let b = ImageBuild {
            tags: vec!["a:1".into(), "a:2".into()],
            dockerfile: "sub/Dockerfile".into(),
            target: Some("final".into()),
            no_cache: true,
            platform: Some("linux/arm64".into()),
            cache_from: vec!["reg/a:cache".into()],
            inline_cache: true,
            build_args: [
                ("X".to_string(), "1".to_string()),
                ("BUILDKIT_CACHE_MOUNT_NS".to_string(), "other".to_string()),
            ]
            .into(),
            cache_mount_namespace: Some("task:mine".into()),
            secrets: vec![crate::BuildSecret {
                id: "tok".into(),
                value: b"hunter2".to_vec(),
            }],
            ..ImageBuild::default()
        };
        let q = query(&b, "S");
        for part in [
            "version=2",
            "session=S",
            "t=a%3A1",
            "t=a%3A2",
            "dockerfile=sub%2FDockerfile",
            "target=final",
            "nocache=1",
            "platform=linux%2Farm64",
            "BUILDKIT_INLINE_CACHE",
            "cachefrom=%5B%22reg%2Fa%3Acache%22%5D",
        ] {
            assert!(q.contains(part), "{part} missing from {q}");
        }
        assert!(!q.contains("hunter2") && !q.contains("tok"), "{q}");
        assert!(q.contains("task%3Amine") && !q.contains("other"), "the run's namespace wins: {q}");
    }
}
