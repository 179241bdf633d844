//! Volumes: created for the run under its names, reachable only when they are the run's.

use super::gojson;
use super::{pass, After, Ask, Body, Forward, Halt, Known, Owner, Policy, Refusal, Request};
use serde_json::Value;

pub(super) fn create(policy: &Policy, req: &Request) -> Result<Forward, Halt> {
    let mut body = req.body.cloned().ok_or(Halt::Body)?;
    let config = gojson::strukt(&mut body, "the volume config")?;
    let driver = gojson::string(config, "Driver")?;
    if !matches!(driver, "" | "local") {
        return Err(Refusal::forbidden(format!(
            "volume driver {driver} is not available through this run's engine socket (only local)"
        ))
        .into());
    }
    // The local driver's `type=none,o=bind,device=/` would mount any host path.
    if gojson::is_set(config, "DriverOpts") {
        let Some(Value::Object(opts)) = gojson::get(config, "DriverOpts") else {
            return Err(Refusal::bad_request("DriverOpts must be a JSON object").into());
        };
        let given: Vec<String> = opts.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?"))).collect();
        return Err(Refusal::forbidden(format!(
            "volume driver options ({}) are not allowed in this run: they can mount host paths",
            given.join(",")
        ))
        .into());
    }
    let name = gojson::string(config, "Name")?.to_string();
    if !name.is_empty() {
        gojson::set(config, "Name", Value::String(policy.scoped_name(&name)));
    }
    gojson::stamp_label(config, policy.label())?;
    Ok(Forward {
        body: Body::Json(body),
        after: After::Volume { client: name },
        ..pass(req)
    })
}

pub(super) fn by_name(req: &Request, ask: &mut Ask, name: &str) -> Result<Forward, Halt> {
    let engine = match ask.volume(name) {
        Known::Yes(Owner::Run(engine)) => engine,
        Known::Yes(_) | Known::No => return Err(Refusal::not_found(format!("no such volume in this run: {name}")).into()),
        Known::Unknown => return Err(Halt::Pending),
    };
    let after = if req.method == "DELETE" {
        After::ForgetVolume(engine.clone())
    } else {
        After::Nothing
    };
    Ok(Forward {
        path: format!("/volumes/{engine}"),
        after,
        ..pass(req)
    })
}
