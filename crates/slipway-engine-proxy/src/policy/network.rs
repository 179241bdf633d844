//! Networks: created for the run under its names, reachable only when they are the run's.

use super::gojson;
use super::{no_such_container, pass, After, Ask, Body, Forward, Halt, Known, Policy, Refusal, Request};
use serde_json::Value;

pub(super) fn create(policy: &Policy, req: &Request) -> Result<Forward, Halt> {
    let mut body = req.body.cloned().ok_or(Halt::Body)?;
    let config = gojson::strukt(&mut body, "the network config")?;
    let name = gojson::string(config, "Name")?.to_string();
    if name.is_empty() {
        return Err(Refusal::bad_request("a network needs a name").into());
    }
    let driver = gojson::string(config, "Driver")?;
    if !matches!(driver, "" | "bridge") {
        return Err(Refusal::forbidden(format!(
            "network driver {driver} is not available through this run's engine socket (only bridge)"
        ))
        .into());
    }
    if !matches!(gojson::string(config, "Scope")?, "" | "local") {
        return Err(Refusal::forbidden("only local networks are available through this run's engine socket").into());
    }
    for field in ["Ingress", "ConfigOnly", "ConfigFrom"] {
        if gojson::is_set(config, field) {
            return Err(Refusal::forbidden(format!("{field} networks are not available through this run's engine socket")).into());
        }
    }
    if let Some(options) = gojson::get(config, "Options") {
        let Value::Object(options) = options else {
            return Err(Refusal::bad_request("Options must be a JSON object").into());
        };
        // Others can name a host bridge to join or an address to publish ports on.
        const ALLOWED: [&str; 3] = [
            "com.docker.network.bridge.enable_icc",
            "com.docker.network.bridge.enable_ip_masquerade",
            "com.docker.network.driver.mtu",
        ];
        if let Some(option) = options.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
            return Err(Refusal::forbidden(format!("network option {option} is not allowed in this run")).into());
        }
    }
    let ipam = gojson::strukt_at(config, "IPAM")?;
    if !matches!(gojson::string(ipam, "Driver")?, "" | "default") || gojson::is_set(ipam, "Options") {
        return Err(Refusal::forbidden("IPAM drivers and their options are not available through this run's engine socket").into());
    }
    if gojson::is_set(ipam, "Config") {
        return Err(Refusal::forbidden("choosing a network's subnet is not allowed in this run: it could shadow the host's routes").into());
    }
    let engine = policy.scoped_name(&name);
    gojson::set(config, "Name", Value::String(engine.clone()));
    gojson::stamp_label(config, policy.label())?;
    Ok(Forward {
        body: Body::Json(body),
        after: After::Network { client: name, engine },
        ..pass(req)
    })
}

pub(super) fn by_reference(req: &Request, ask: &mut Ask, reference: &str) -> Result<Forward, Halt> {
    let engine = match ask.network(reference) {
        Known::Yes(engine) => engine,
        Known::No => return Err(Refusal::not_found(format!("no such network in this run: {reference}")).into()),
        Known::Unknown => return Err(Halt::Pending),
    };
    let after = if req.method == "DELETE" {
        After::ForgetNetwork(engine.clone())
    } else {
        After::Nothing
    };
    Ok(Forward {
        path: format!("/networks/{engine}"),
        after,
        ..pass(req)
    })
}

pub(super) fn connect(req: &Request, ask: &mut Ask, reference: &str, action: &str) -> Result<Forward, Halt> {
    let network = match ask.network(reference) {
        Known::Yes(engine) => Some(engine),
        Known::No => return Err(Refusal::not_found(format!("no such network in this run: {reference}")).into()),
        Known::Unknown => None,
    };
    let mut body = req.body.cloned().ok_or(Halt::Body)?;
    let config = gojson::strukt(&mut body, "the request")?;
    let container = gojson::string(config, "Container")?.to_string();
    let container = match ask.container(container.strip_prefix('/').unwrap_or(&container)) {
        Known::Yes(c) => c,
        Known::No => return Err(no_such_container(&container).into()),
        Known::Unknown => return Err(Halt::Pending),
    };
    gojson::set(config, "Container", Value::String(container.id));
    if let Some(endpoint) = gojson::get_mut(config, "EndpointConfig") {
        super::container::endpoint_links(ask, gojson::strukt(endpoint, "EndpointConfig")?)?;
    }
    let Some(network) = network else {
        return Err(Halt::Pending);
    };
    Ok(Forward {
        path: format!("/networks/{network}/{action}"),
        body: Body::Json(body),
        ..pass(req)
    })
}
