//! The engine's side of the proxy: what every connection shares, and one request sent
//! to the engine on a connection of its own.

use crate::policy::{Policy, Refusal, State};
use crate::Tasks;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use tokio::net::UnixStream;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type ProxyBody = BoxBody<Bytes, BoxError>;

/// What every connection of one proxy shares.
pub(crate) struct Shared {
    pub policy: Policy,
    pub upstream: PathBuf,
    pub state: Mutex<State>,
    pub tasks: Tasks,
    pub limits: crate::Limits,
    /// Refusals and failures written to the log, at most a burst per period.
    pub warnings: slipway_limits::Throttle,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few maps updated in one step each: a panic cannot leave it torn.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sends a request to the engine on a connection of its own.
pub(crate) async fn send(shared: &Shared, req: Request<ProxyBody>) -> Result<Response<Incoming>, Refusal> {
    let stream = UnixStream::connect(&shared.upstream)
        .await
        .map_err(|e| engine_failure(format!("cannot reach the engine at {}: {e}", shared.upstream.display())))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| engine_failure(format!("engine handshake: {e}")))?;
    shared.tasks.spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "engine connection ended");
        }
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| engine_failure(format!("engine request: {e}")))
}

pub(crate) fn engine_failure(message: String) -> Refusal {
    Refusal { status: 502, message }
}
