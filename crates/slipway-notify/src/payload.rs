//! What a webhook receives, pure: ACR's push event (the same fields, so consumers of
//! ACR's webhooks work unchanged), the run events ACR lacks, the ping, and the
//! signature over a body.

use hmac::{KeyInit, Mac};
use serde::Serialize;
use serde_json::{json, Value};
use slipway_api::model::Run;
use slipway_plan::OutputImage;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The header a signed delivery carries: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Slipway-Signature-256";

/// What Slipway says it is.
pub const USER_AGENT: &str = concat!("slipway/", env!("CARGO_PKG_VERSION"));

/// The manifest type the engine pushes when the registry did not say.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// ACR's push event (the same fields, so consumers of ACR's webhooks work unchanged).
#[derive(Debug, Clone, Serialize)]
pub struct PushEvent<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub action: &'static str,
    pub target: PushTarget<'a>,
    pub request: PushRequest<'a>,
}

/// What was pushed: `size` and `length` are both the manifest's size, as ACR sends them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushTarget<'a> {
    pub media_type: &'a str,
    pub size: u64,
    pub digest: &'a str,
    pub length: u64,
    pub repository: &'a str,
    pub tag: &'a str,
}

/// Who pushed: the run (`id`) and the registry (`host`).
#[derive(Debug, Clone, Serialize)]
pub struct PushRequest<'a> {
    pub id: &'a str,
    pub host: &'a str,
    pub method: &'static str,
    pub useragent: &'static str,
}

/// ACR's push event for an image a run pushed. `request.id` is the run's id,
/// `request.host` the registry's.
pub fn push_event<'a>(id: &'a str, timestamp: &'a str, run_id: &'a str, image: &'a OutputImage) -> PushEvent<'a> {
    let size = image.size.unwrap_or(0);
    PushEvent {
        id,
        timestamp,
        action: "push",
        target: PushTarget {
            media_type: image.media_type.as_deref().filter(|m| !m.is_empty()).unwrap_or(DOCKER_MANIFEST_V2),
            size,
            digest: &image.digest,
            length: size,
            repository: &image.repository,
            tag: &image.tag,
        },
        request: PushRequest {
            id: run_id,
            host: &image.registry,
            method: "PUT",
            useragent: USER_AGENT,
        },
    }
}

/// A run event (`run_queued`, `run_started`, `run_finished`), which ACR lacks.
#[derive(Debug, Clone, Serialize)]
pub struct RunEventBody<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub action: &'a str,
    pub run: RunInEvent,
}

/// The run as the API shows it, with what started it in a word, its duration once it
/// ended and a link to its page.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInEvent {
    #[serde(flatten)]
    pub run: Run,
    pub trigger: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    pub url: String,
}

/// A run event: `action` is `run_queued`, `run_started` or `run_finished`; `run` is
/// the run as the API shows it, `trigger` what started it.
pub fn run_event<'a>(id: &'a str, timestamp: &'a str, action: &'a str, run: Run, trigger: &'static str, link: &str) -> RunEventBody<'a> {
    let millis = |t: Option<&str>| {
        t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
    };
    let duration_seconds = match (millis(run.start_time.as_deref()), millis(run.finish_time.as_deref())) {
        (Some(start), Some(end)) => Some(((end - start).max(0) as f64) / 1000.0),
        _ => None,
    };
    RunEventBody {
        id,
        timestamp,
        action,
        run: RunInEvent {
            run,
            trigger,
            duration_seconds,
            url: link.to_string(),
        },
    }
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
        let image: OutputImage = serde_json::from_value(json!({"registry": "reg.example", "repository": "app", "tag": "v1", "digest": "sha256:ab", "mediaType": "application/vnd.oci.image.index.v1+json", "size": 524})).unwrap();
        let e = serde_json::to_value(push_event("e1", "2026-11-23T00:00:00Z", "run1", &image)).unwrap();
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
        let run: Run = serde_json::from_value(json!({"runId": "r1", "status": "Succeeded", "runType": "QuickRun",
            "createTime": "2026-11-23T00:00:00.000Z", "lastUpdatedTime": "2026-11-23T00:00:02.500Z",
            "startTime": "2026-11-23T00:00:00.000Z", "finishTime": "2026-11-23T00:00:02.500Z",
            "outputImages": [], "imageDependencies": [], "platform": {"os": "linux", "architecture": "amd64"}}))
        .unwrap();
        let e = serde_json::to_value(run_event("e1", "t", "run_finished", run, "Manual", "http://d/runs/r1")).unwrap();
        assert_eq!(e["run"]["trigger"], "Manual");
        assert_eq!(e["run"]["runId"], "r1");
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
