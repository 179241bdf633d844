//! The client side of a BuildKit session: what the engine asks the builder's client for
//! while a build runs (secrets for `RUN --mount=type=secret`, registry credentials for
//! base images and cache sources).
//!
//! A session is an HTTP connection to `POST /session` upgraded to `h2c`, on which the
//! *engine* is the gRPC client and we serve. We write it here rather than use bollard's:
//! bollard 0.21.1's build session serves registry credentials only, its gRPC driver
//! serves secrets from files or this process's environment only and streams no
//! progress, and the release that joins the two is not out (see ARCHITECTURE.md). The
//! services are bollard's generated ones (`bollard-buildkit-proto`); secrets stay in
//! memory and are handed out by id to this build alone.

use super::connection::{self, Endpoint};
use crate::{BuildSecret, EngineError, RegistryCredential};
use bollard_buildkit_proto::health::health_check_response::ServingStatus;
use bollard_buildkit_proto::health::health_server::{Health, HealthServer};
use bollard_buildkit_proto::health::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use bollard_buildkit_proto::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard_buildkit_proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse, GetTokenAuthorityRequest, GetTokenAuthorityResponse,
    VerifyTokenAuthorityRequest, VerifyTokenAuthorityResponse,
};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::pin::Pin;
use tonic::{Request, Response, Status};

/// The methods we serve, announced to the engine when the session opens. The engine
/// asks only for what is announced; without `FetchToken` BuildKit fetches registry
/// tokens itself with the credentials we give.
const METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
    "/moby.filesync.v1.Auth/Credentials",
];

/// An open session; closing it (dropping) ends the connection and its server.
pub(crate) struct Session {
    server: tokio::task::JoinHandle<()>,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.server.abort();
        self.connection.abort();
    }
}

/// Opens the session `id`. The engine waits for it when a build names it, so the build
/// request may be sent at the same time.
pub(crate) async fn open(
    endpoint: &Endpoint,
    id: String,
    secrets: &[BuildSecret],
    credentials: &[RegistryCredential],
) -> Result<Session, EngineError> {
    let mut request = hyper::Request::post("/session")
        .header("Host", "docker")
        .header("Connection", "Upgrade")
        .header("Upgrade", "h2c")
        .header("X-Docker-Expose-Session-Uuid", &id)
        .header("X-Docker-Expose-Session-Name", "slipway")
        .header("X-Docker-Expose-Session-Sharedkey", &id);
    for m in METHODS {
        request = request.header("X-Docker-Expose-Session-Grpc-Method", *m);
    }
    let request = request
        .body(connection::empty())
        .map_err(|e| EngineError::Build(format!("session request: {e}")))?;
    let (response, connection) = connection::send(endpoint, request).await?;
    if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status();
        let body = connection::read_text(response).await;
        return Err(EngineError::Build(format!(
            "the engine refused a BuildKit session ({status}): {body}"
        )));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| EngineError::Build(format!("the engine did not open the BuildKit session: {e}")))?;
    let io = Upgraded(TokioIo::new(upgraded));
    let secrets: HashMap<String, Vec<u8>> = secrets.iter().map(|s| (s.id.clone(), s.value.clone())).collect();
    let credentials: HashMap<String, (String, String)> = credentials
        .iter()
        .map(|c| (c.registry.clone(), (c.username.clone(), c.password.clone())))
        .collect();
    let server = tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(HealthServer::new(Healthy))
            .add_service(SecretsServer::new(SecretStore(secrets)))
            .add_service(AuthServer::new(Credentials(credentials)))
            .serve_with_incoming(futures_util::stream::iter([Ok::<_, std::io::Error>(io)]))
            .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "the BuildKit session ended");
        }
    });
    Ok(Session { server, connection })
}

/// The upgraded connection, as tonic's server takes it.
struct Upgraded(TokioIo<hyper::upgrade::Upgraded>);

impl tonic::transport::server::Connected for Upgraded {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl tokio::io::AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Upgraded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

struct Healthy;

#[tonic::async_trait]
impl Health for Healthy {
    async fn check(&self, _: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }
    async fn list(&self, _: Request<HealthListRequest>) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("list"))
    }
    type WatchStream = futures_util::stream::Empty<Result<HealthCheckResponse, Status>>;
    async fn watch(&self, _: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// The build's secrets by id. A missing id is `NotFound`, which BuildKit reports as
/// "secret ID not found" (or skips, for `required=false` mounts).
struct SecretStore(HashMap<String, Vec<u8>>);

#[tonic::async_trait]
impl Secrets for SecretStore {
    async fn get_secret(&self, request: Request<GetSecretRequest>) -> Result<Response<GetSecretResponse>, Status> {
        match self.0.get(&request.get_ref().id) {
            Some(data) => Ok(Response::new(GetSecretResponse { data: data.clone() })),
            None => Err(Status::not_found(format!("secret {} not found", request.get_ref().id))),
        }
    }
}

/// Registry credentials by host; an unknown host gets empty ones (anonymous access).
struct Credentials(HashMap<String, (String, String)>);

#[tonic::async_trait]
impl Auth for Credentials {
    async fn credentials(&self, request: Request<CredentialsRequest>) -> Result<Response<CredentialsResponse>, Status> {
        let host = &request.get_ref().host;
        let host = if host == "registry-1.docker.io" {
            "docker.io"
        } else {
            host.as_str()
        };
        let (username, secret) = self.0.get(host).cloned().unwrap_or_default();
        Ok(Response::new(CredentialsResponse { username, secret }))
    }
    async fn fetch_token(&self, _: Request<FetchTokenRequest>) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("fetch_token"))
    }
    async fn get_token_authority(&self, _: Request<GetTokenAuthorityRequest>) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("get_token_authority"))
    }
    async fn verify_token_authority(
        &self,
        _: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("verify_token_authority"))
    }
}
