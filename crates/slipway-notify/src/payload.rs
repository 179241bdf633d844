//! What a webhook receives, pure: ACR's push event (the same fields, so consumers of
//! ACR's webhooks work unchanged), the run events ACR lacks, the ping, and the
//! signature over a body.

use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The header a signed delivery carries: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Slipway-Signature-256";

/// What Slipway says it is.
pub const USER_AGENT: &str = concat!("slipway/", env!("CARGO_PKG_VERSION"));

/// The manifest type the engine pushes when the registry did not say.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// ACR's push event for a pushed image (`{registry, repository, tag, digest,
/// mediaType, size}` as the runner reports it). `request.id` is the run's id,
/// `request.host` the registry's.
pub fn push_event(id: &str, timestamp: &str, run_id: &str, image: &Value) -> Value {
    let text = |k: &str| image.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let size = image.get("size").and_then(Value::as_u64).unwrap_or(0);
    let media_type = Some(text("mediaType"))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| DOCKER_MANIFEST_V2.into());
    json!({
        "id": id,
        "timestamp": timestamp,
        "action": "push",
        "target": {
            "mediaType": media_type,
            "size": size,
            "digest": text("digest"),
            "length": size,
            "repository": text("repository"),
            "tag": text("tag"),
        },
        "request": {
            "id": run_id,
            "host": text("registry"),
            "method": "PUT",
            "useragent": USER_AGENT,
        },
    })
}

/// A run event: `action` is `run_queued`, `run_started` or `run_finished`; `run` is
/// the run as the API shows it, with the duration and a link to its page added.
pub fn run_event(id: &str, timestamp: &str, action: &str, mut run: Value, link: &str) -> Value {
    let seconds = |k: &str| {
        run.get(k)
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
    };
    if let (Some(start), Some(end)) = (seconds("startTime"), seconds("finishTime")) {
        run["durationSeconds"] = json!(((end - start).max(0) as f64) / 1000.0);
    }
    run["url"] = json!(link);
    json!({ "id": id, "timestamp": timestamp, "action": action, "run": run })
}

/// What `ping` sends.
pub fn ping_event(id: &str, timestamp: &str) -> Value {
    json!({ "id": id, "timestamp": timestamp, "action": "ping" })
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` keyed by `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_event_has_acr_fields_exactly() {
        let image = json!({"registry": "reg.example", "repository": "app", "tag": "v1", "digest": "sha256:ab", "mediaType": "application/vnd.oci.image.index.v1+json", "size": 524});
        let e = push_event("e1", "2026-11-23T00:00:00Z", "run1", &image);
        let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["action", "id", "request", "target", "timestamp"]);
        let mut target: Vec<&str> = e["target"].as_object().unwrap().keys().map(String::as_str).collect();
        target.sort();
        assert_eq!(target, ["digest", "length", "mediaType", "repository", "size", "tag"]);
        let mut request: Vec<&str> = e["request"].as_object().unwrap().keys().map(String::as_str).collect();
        request.sort();
        assert_eq!(request, ["host", "id", "method", "useragent"]);
        assert_eq!(
            (e["target"]["size"].as_u64(), e["target"]["length"].as_u64()),
            (Some(524), Some(524))
        );
        assert_eq!(e["request"]["host"], "reg.example");
    }

    #[test]
    fn run_events_carry_duration_and_link() {
        let run = json!({"runId": "r1", "startTime": "2026-11-23T00:00:00.000Z", "finishTime": "2026-11-23T00:00:02.500Z"});
        let e = run_event("e1", "t", "run_finished", run, "http://d/runs/r1");
        assert_eq!(e["run"]["durationSeconds"], 2.5);
        assert_eq!(e["run"]["url"], "http://d/runs/r1");
    }

    #[test]
    fn signatures_are_github_style_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
