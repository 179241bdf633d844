//! The run variables templates see (`{{.Run.ID}}` …) and the data they render against.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Facts about one run, known before its task file is rendered.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunVars {
    #[serde(rename = "ID")]
    pub id: String,
    pub shared_volume: String,
    pub registry: String,
    pub registry_name: String,
    #[serde(serialize_with = "go_date")]
    pub date: DateTime<Utc>,
    #[serde(rename = "OS")]
    pub os: String,
    pub architecture: String,
    pub commit: String,
    pub branch: String,
    pub task_name: String,
    pub repository: String,
    pub git_tag: String,
    pub triggered_by: String,
    #[serde(rename = "OSVersion")]
    pub os_version: String,
}

fn go_date<S: serde::Serializer>(d: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_date(d))
}

/// `{{.Run.Date}}`: UTC, Go layout `20060102-150405z`.
pub fn format_date(d: &DateTime<Utc>) -> String {
    d.format("%Y%m%d-%H%M%Sz").to_string()
}

impl RunVars {
    /// Run variables with the given id and registry, everything else empty or derived.
    pub fn new(id: &str, registry: &str, date: DateTime<Utc>) -> RunVars {
        RunVars {
            id: id.to_string(),
            shared_volume: format!("slipway_vol_{id}"),
            registry: registry.to_string(),
            registry_name: registry_name(registry),
            date,
            os: "linux".into(),
            architecture: "amd64".into(),
            commit: String::new(),
            branch: String::new(),
            task_name: "quickrun".into(),
            repository: String::new(),
            git_tag: String::new(),
            triggered_by: "manual".into(),
            os_version: String::new(),
        }
    }
}

/// `myregistry.azurecr.io` → `myregistry`; an address or a host with a port stays whole.
pub fn registry_name(registry: &str) -> String {
    let host = registry.split(':').next().unwrap_or(registry);
    if host.parse::<std::net::IpAddr>().is_ok() || registry.contains(':') {
        return registry.to_string();
    }
    host.split('.').next().unwrap_or(host).to_string()
}

/// The dot templates render against.
pub fn template_data(run: &RunVars, values: &Value, secrets: &BTreeMap<String, String>) -> Value {
    let run_value = serde_json::to_value(run).unwrap_or(Value::Null);
    let values = match values {
        Value::Object(_) => values.clone(),
        _ => Value::Object(Map::new()),
    };
    json!({
        "Run": run_value,
        "Build": {"ID": run.id},
        "Values": values,
        "ValuesJSON": serde_json::to_string(&values).unwrap_or_default(),
        "RunJSON": serde_json::to_string(&run_value).unwrap_or_default(),
        "Secrets": secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn date_uses_go_layout_in_utc() {
        let d = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_date(&d), "20240102-030405z");
    }

    #[test]
    fn registry_names() {
        assert_eq!(registry_name("myregistry.azurecr.io"), "myregistry");
        assert_eq!(registry_name("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_name(""), "");
    }
}
