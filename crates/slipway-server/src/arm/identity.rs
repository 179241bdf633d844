//! Who the Azure CLI talks to and how it logs in: the cloud's metadata (what
//! `az cloud register --endpoint-resource-manager` reads), the ADFS authority's OpenID
//! configuration, and its token endpoint, where a service principal whose secret is a
//! daemon token gets an access token.

use super::token::{Claims, LIFETIME_SECONDS};
use crate::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `GET /metadata/endpoints`: the cloud as `az` registers it. The login endpoint ends in
/// `/adfs`, so MSAL reads this daemon's own OpenID configuration and asks nobody else.
pub(crate) async fn metadata(State(d): Shared) -> Json<serde_json::Value> {
    let base = d.settings.public_base();
    Json(json!({
        "name": "Slipway",
        "resourceManager": format!("{base}/"),
        "authentication": {
            "loginEndpoint": format!("{base}/adfs"),
            "audiences": [format!("{base}/")],
            "tenant": "adfs",
            "identityProvider": "ADFS",
        },
        "suffixes": {
            "acrLoginServer": "slipway.local",
            "keyVaultDns": "vault.slipway.local",
            "storage": "slipway.local",
        },
    }))
}

/// `GET /adfs/.well-known/openid-configuration`: where tokens are asked for.
pub(crate) async fn openid_configuration(State(d): Shared) -> Json<serde_json::Value> {
    let adfs = format!("{}/adfs", d.settings.public_base());
    Json(json!({
        "issuer": adfs,
        "token_endpoint": format!("{adfs}/oauth2/token"),
        "authorization_endpoint": format!("{adfs}/oauth2/authorize"),
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "scopes_supported": ["openid"],
    }))
}

/// `GET /adfs/{tenant}/v2.0/.well-known/openid-configuration`: how `az login --tenant
/// NAME` turns a name into the id it passes on (the issuer's fourth part). The name is
/// kept as it is; the ADFS authority then ignores it, and the token says the caller's.
pub(crate) async fn tenant_configuration(State(d): Shared, axum::extract::Path(tenant): axum::extract::Path<String>) -> Response {
    if slipway_api::tenant::check_name(&tenant).is_err() {
        return crate::arm::arm_error(StatusCode::NOT_FOUND, "TenantNotFound", "no such tenant");
    }
    let base = d.settings.public_base();
    Json(json!({
        "issuer": format!("{base}/{tenant}/v2.0"),
        "token_endpoint": format!("{base}/adfs/oauth2/token"),
    }))
    .into_response()
}

/// `POST /adfs/oauth2/token`: `grant_type=client_credentials`, any `client_id`, a daemon
/// token as `client_secret`, `scope=<audience>/.default`. The answer is an access token
/// for the caller the daemon token names, valid for an hour.
pub(crate) async fn token(State(d): Shared, body: Bytes) -> Response {
    let form: std::collections::HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let refuse = |code: &'static str, message: &str| {
        // OAuth's error shape, which MSAL prints.
        (StatusCode::BAD_REQUEST, Json(json!({"error": code, "error_description": message}))).into_response()
    };
    if field("grant_type") != "client_credentials" {
        return refuse(
            "unsupported_grant_type",
            "only client_credentials (a service principal) is supported",
        );
    }
    let Some(caller) = d.directory().authenticate(field("client_secret")) else {
        return refuse("invalid_client", "the client secret is not a token of this daemon");
    };
    let now = d.clock.now_ms() / 1000;
    let audience = field("scope")
        .split(' ')
        .next()
        .unwrap_or("")
        .trim_end_matches("/.default")
        .to_string();
    let client = Some(field("client_id")).filter(|c| !c.is_empty()).unwrap_or("slipway").to_string();
    // The caller's tenant (an operator's: the default one).
    let tenant = caller.tenant.clone();
    let claims = Claims {
        aud: audience,
        iss: format!("{}/adfs", d.settings.public_base()),
        iat: now,
        nbf: now,
        exp: now + LIFETIME_SECONDS,
        tid: tenant,
        appid: client.clone(),
        oid: client,
        sub: caller.token_hash.clone(),
    };
    Json(json!({
        "token_type": "Bearer",
        "expires_in": LIFETIME_SECONDS,
        "ext_expires_in": LIFETIME_SECONDS,
        "access_token": d.arm.issue(&claims),
    }))
    .into_response()
}
