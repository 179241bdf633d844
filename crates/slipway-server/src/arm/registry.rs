//! The one subscription, resource group and registry a daemon shows the Azure CLI:
//! what `az` looks up before every `az acr` command (the registry's group is parsed from
//! its id, its login server and SKU read from it).

use super::registry_id;
use crate::failure::Failure;
use crate::{Server, Shared};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use slipway_api::tenant::Caller;
use std::collections::HashMap;

type Who = axum::Extension<Caller>;

const REGISTRY_TYPE: &str = "Microsoft.ContainerRegistry/registries";

fn subscription_json(d: &Server, who: &Caller) -> serde_json::Value {
    let sub = &d.settings.arm_subscription;
    json!({
        "id": format!("/subscriptions/{sub}"),
        "subscriptionId": sub,
        "tenantId": who.tenant,
        "displayName": format!("Slipway ({})", d.settings.node),
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "Slipway", "spendingLimit": "Off"},
        "authorizationSource": "RoleBased",
    })
}

/// Refuses a subscription other than the daemon's.
fn ours(d: &Server, sub: &str) -> Result<(), Failure> {
    if sub.eq_ignore_ascii_case(&d.settings.arm_subscription) {
        Ok(())
    } else {
        Err(Failure(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            format!("the subscription {sub:?} could not be found"),
        ))
    }
}

/// `GET /subscriptions`: the daemon's one.
pub(crate) async fn subscriptions(State(d): Shared, axum::Extension(who): Who) -> Json<serde_json::Value> {
    Json(json!({ "value": [subscription_json(&d, &who)] }))
}

pub(crate) async fn subscription(State(d): Shared, axum::Extension(who): Who, Path(sub): Path<String>) -> Response {
    match ours(&d, &sub) {
        Ok(()) => Json(subscription_json(&d, &who)).into_response(),
        Err(f) => f.into_response(),
    }
}

fn registry_json(d: &Server) -> serde_json::Value {
    let s = &d.settings;
    json!({
        "id": registry_id(d),
        "name": s.arm_registry_name,
        "type": REGISTRY_TYPE,
        "location": "slipway",
        "tags": {},
        "sku": {"name": "Premium", "tier": "Premium"},
        "properties": {
            "loginServer": s.registry,
            "provisioningState": "Succeeded",
            "adminUserEnabled": false,
            "publicNetworkAccess": "Enabled",
        },
    })
}

/// `GET /subscriptions/{sub}/resources?$filter=resourceType eq '…registries'`: the
/// registry, whatever the filter asks of registries (no other resource type exists).
pub(crate) async fn resources(State(d): Shared, Path(sub): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Err(f) = ours(&d, &sub) {
        return f.into_response();
    }
    let filter = q.get("$filter").map(String::as_str).unwrap_or("");
    let value = if filter.is_empty() || filter.to_ascii_lowercase().contains(&REGISTRY_TYPE.to_ascii_lowercase()) {
        vec![registry_json(&d)]
    } else {
        Vec::new()
    };
    Json(json!({ "value": value })).into_response()
}

/// `GET {registry}`: its login server (the daemon's `registry`), SKU and location.
pub(crate) async fn show(State(d): Shared, Path((sub, rg, name)): Path<(String, String, String)>) -> Response {
    if let Err(f) = ours(&d, &sub) {
        return f.into_response();
    }
    if let Err(f) = super::runs::ours(&d, &(sub, rg, name)) {
        return f.into_response();
    }
    Json(registry_json(&d)).into_response()
}
