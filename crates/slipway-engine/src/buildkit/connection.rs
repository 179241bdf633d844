//! Plain HTTP/1.1 to the engine for what bollard does not expose: the session upgrade
//! and the BuildKit `/build` request whose session we serve ourselves.

use crate::EngineError;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;

pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// Where the engine listens: `unix:///var/run/docker.sock` or `tcp://host:port`.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl Endpoint {
    /// `None` for endpoints we cannot open a session on (ssh, named pipes, TLS).
    pub(crate) fn parse(text: &str) -> Option<Endpoint> {
        if let Some(path) = text.strip_prefix("unix://") {
            return Some(Endpoint::Unix(PathBuf::from(path)));
        }
        let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
        match text.strip_prefix("tcp://").or_else(|| text.strip_prefix("http://")) {
            Some(host) if !tls => Some(Endpoint::Tcp(host.trim_end_matches('/').to_string())),
            _ => None,
        }
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// Sends one request on a connection of its own; the returned task drives the
/// connection (and its upgrade) and ends with it.
pub(crate) async fn send(
    endpoint: &Endpoint,
    request: hyper::Request<Body>,
) -> Result<(hyper::Response<hyper::body::Incoming>, tokio::task::JoinHandle<()>), EngineError> {
    let unreachable = |e: std::io::Error| EngineError::Unreachable {
        endpoint: format!("{endpoint:?}"),
        message: e.to_string(),
    };
    let io: Box<dyn Io> = match endpoint {
        Endpoint::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await.map_err(unreachable)?),
        Endpoint::Tcp(host) => Box::new(tokio::net::TcpStream::connect(host).await.map_err(unreachable)?),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| EngineError::Api(format!("engine handshake: {e}")))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "engine connection ended");
        }
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| EngineError::Api(format!("engine request: {e}")))?;
    Ok((response, driver))
}

pub(crate) fn empty() -> Body {
    http_body_util::Empty::new().map_err(|never| match never {}).boxed()
}

/// A response body as text, at most 64 KiB of it (for error messages).
pub(crate) async fn read_text(response: hyper::Response<hyper::body::Incoming>) -> String {
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(d) = frame.data_ref() {
            text.extend_from_slice(d);
        }
        if text.len() > 64 << 10 {
            break;
        }
    }
    String::from_utf8_lossy(&text).trim().to_string()
}

/// 128 random bits in hex: session ids and keys.
pub(crate) fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
