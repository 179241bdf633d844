//! The Azure Resource Manager surface the real Azure CLI drives (`az cloud register`,
//! `az login --service-principal`, `az acr …`): the cloud's metadata, an ADFS-shaped
//! token endpoint that trades a daemon token for a signed access token, and one
//! subscription, resource group and registry per daemon, named by the `arm_*` settings.
//! Every ARM call but the metadata and the token endpoint needs an access token this
//! daemon (or its fleet) issued; the caller it names sees what it sees on `/v1`.

mod blobs;
mod blocks;
pub(crate) mod crlf;
mod identity;
mod registry;
mod runs;
mod tasks;
pub mod token;

use crate::failure::Failure;
use crate::{Server, Shared};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The ARM routes: identity without a token, the registry's resources with one.
pub fn router(d: Arc<Server>) -> Router<Arc<Server>> {
    let resources = Router::new()
        .route("/subscriptions", get(registry::subscriptions))
        .route("/subscriptions/{sub}", get(registry::subscription))
        .route("/subscriptions/{sub}/resources", get(registry::resources))
        .route(REGISTRY, get(registry::show))
        .route(&format!("{REGISTRY}/listBuildSourceUploadUrl"), post(runs::upload_url))
        .route(&format!("{REGISTRY}/scheduleRun"), post(runs::schedule))
        .route(&format!("{REGISTRY}/runs"), get(runs::list))
        .route(&format!("{REGISTRY}/runs/{{id}}"), get(runs::show).patch(runs::update))
        .route(&format!("{REGISTRY}/runs/{{id}}/listLogSasUrl"), post(runs::log_url))
        .route(&format!("{REGISTRY}/runs/{{id}}/cancel"), post(runs::cancel))
        .route(&format!("{REGISTRY}/tasks"), get(tasks::list))
        .route(
            &format!("{REGISTRY}/tasks/{{task}}"),
            get(tasks::show).put(tasks::put).patch(tasks::patch).delete(tasks::delete),
        )
        .route(&format!("{REGISTRY}/tasks/{{task}}/listDetails"), post(tasks::show))
        .layer(middleware::from_fn_with_state(d, bearer));
    // Blobs carry their own proof: a shared-access signature in the query.
    let blobs = Router::new()
        .route(
            "/arm-blobs/uploads/{tenant}/{id}",
            axum::routing::put(blobs::put_upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/arm-blobs/logs/{id}", get(blobs::log).head(blobs::log));
    Router::new()
        .route("/metadata/endpoints", get(identity::metadata))
        // `az cloud register` joins the endpoint's trailing '/' with its own leading one.
        .route("//metadata/endpoints", get(identity::metadata))
        .route("/adfs/.well-known/openid-configuration", get(identity::openid_configuration))
        .route(
            "/adfs/{tenant}/v2.0/.well-known/openid-configuration",
            get(identity::tenant_configuration),
        )
        .route("/adfs/oauth2/token", post(identity::token))
        .merge(resources)
        .merge(blobs)
}

/// The registry's resource path, its parts captured.
const REGISTRY: &str = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}";

/// ARM's error shape: `{"error": {"code", "message"}}`, as `/v1` answers too.
fn arm_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    Failure(status, code, message.into()).into_response()
}

/// Checks the access token and puts its caller on the request.
async fn bearer(State(d): Shared, mut req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let claims = match d.arm.check(given, d.clock.now_ms() / 1000) {
        Ok(c) => c,
        Err(why) => return arm_error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", why),
    };
    // The daemon token it was issued for must still speak for someone.
    let Some(mut caller) = d.directory().caller_of_hash(&claims.sub) else {
        return arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "the token it was issued for is no longer accepted; log in again",
        );
    };
    if caller.role == slipway_api::tenant::Role::Operator {
        caller.tenant = claims.tid.clone();
    }
    let _pass = match d.requests.enter(&caller.token_hash) {
        Ok(pass) => pass,
        Err(full) => return arm_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", full.to_string()),
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The resource id of the daemon's registry.
fn registry_id(d: &Server) -> String {
    let s = &d.settings;
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerRegistry/registries/{}",
        s.arm_subscription, s.arm_resource_group, s.arm_registry_name
    )
}

/// The signer of this daemon's access tokens: its key derived from the fleet key (so
/// every node of a fleet accepts what another issued, and checks with the previous key
/// while it rotates), else kept in the data dir (`0600`), made at first start.
pub fn signer(settings: &slipway_settings::Settings) -> anyhow::Result<token::Signer> {
    use base64::Engine as _;
    let fleet = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t.trim()).ok())
            .map(|k| token::Signer::derive(&k))
    };
    if let Some(key) = fleet(&settings.fleet_key) {
        return Ok(token::Signer::new(key, fleet(&settings.fleet_key_previous)));
    }
    let path = settings.data_dir.join("secrets").join("arm-token.key");
    let key = match std::fs::read(&path) {
        Ok(k) if k.len() == 32 => k,
        _ => {
            let mut k = uuid::Uuid::new_v4().as_bytes().to_vec();
            k.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            slipway_worker::vault::write_private(&path, &k)?;
            k
        }
    };
    Ok(token::Signer::new(token::Signer::derive(&key), None))
}
