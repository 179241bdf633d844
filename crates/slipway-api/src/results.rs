//! What a run produced, as the store keeps it and the API, the dashboard, the triggers
//! and the client read it: its steps, the images it pushed and the base images each
//! was built from. Typed once here; JSON only in the database column and the answer.

use serde::{Deserialize, Serialize};

/// One step's row: how it went, updated as the run goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    pub id: String,
    /// The steps it waits for (`when`), for drawing the graph.
    #[serde(default)]
    pub when: Vec<String>,
    /// `Pending`, `Running`, or how it ended (`Succeeded`, `Failed`, `FailedIgnored`,
    /// `TimedOut`, `Canceled`, `Skipped`, `Error`).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executions: Option<u32>,
}

/// An image a run pushed: the runner's own report of it.
pub use slipway_plan::OutputImage;

/// An image named by its parts, as ACR shows dependencies; `reference` holds a name
/// that did not parse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registry: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl ImageRef {
    /// The parts of `image`, or the text as it is when it is no image reference.
    pub fn of(image: &str) -> ImageRef {
        match slipway_reference::Reference::parse(image) {
            Ok(r) => ImageRef {
                registry: r.registry.clone(),
                repository: r.repository.clone(),
                tag: r.tag().to_string(),
                digest: r.digest.clone().unwrap_or_default(),
                reference: None,
            },
            Err(_) => ImageRef {
                reference: Some(image.to_string()),
                ..Default::default()
            },
        }
    }
}

/// The base images one image of a run was built from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDependency {
    pub image: ImageRef,
    #[serde(default)]
    pub runtime_dependency: Option<ImageRef>,
    #[serde(default)]
    pub buildtime_dependency: Vec<ImageRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// Which of an image's base images a dependency is: the final stage's (`runtime`), or
/// an earlier stage's or a `COPY --from` image's (`buildtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyKind {
    Runtime,
    Buildtime,
}

impl DependencyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DependencyKind::Runtime => "runtime",
            DependencyKind::Buildtime => "buildtime",
        }
    }

    pub fn parse(text: &str) -> Option<DependencyKind> {
        match text {
            "runtime" => Some(DependencyKind::Runtime),
            "buildtime" => Some(DependencyKind::Buildtime),
            _ => None,
        }
    }
}

impl std::fmt::Display for DependencyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The push that started a run (`sourceTrigger`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SourceTriggerEvent {
    /// The delivery's id, as the forge sent it.
    pub id: String,
    pub event_type: String,
    pub commit_id: String,
    pub branch_name: String,
    pub repository_url: Option<String>,
    pub provider_type: String,
}

/// The base image update that started a run (`imageUpdateTrigger`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImageUpdateTriggerEvent {
    pub id: String,
    pub timestamp: String,
    pub images: Vec<ImageRef>,
    /// The tasks whose builds led here, so an update never loops.
    pub chain: Vec<String>,
}

/// The timer occurrence that started a run (`timerTrigger`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TimerTriggerEvent {
    pub timer_trigger_name: String,
    pub schedule_occurrence: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shapes_stay_as_acr_shows_them() {
        let dep = ImageDependency {
            image: ImageRef::of("127.0.0.1:5000/app:1"),
            runtime_dependency: Some(ImageRef::of("busybox")),
            buildtime_dependency: vec![],
            platform: None,
        };
        assert_eq!(
            serde_json::to_value(&dep).unwrap(),
            serde_json::json!({
                "image": {"registry": "127.0.0.1:5000", "repository": "app", "tag": "1", "digest": ""},
                "runtimeDependency": {"registry": "docker.io", "repository": "library/busybox", "tag": "latest", "digest": ""},
                "buildtimeDependency": []
            })
        );
        let step: StepView = serde_json::from_value(serde_json::json!({"id": "a", "status": "Running"})).unwrap();
        assert_eq!(step.when, Vec::<String>::new());
    }
}
