//! What a run reports: each step's status and duration, output images, dependencies.

use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StepStatus {
    Succeeded,
    Failed,
    /// Failed, but `ignoreErrors` let the run go on.
    FailedIgnored,
    TimedOut,
    Canceled,
    Skipped,
}

impl StepStatus {
    pub fn lets_dependents_run(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::FailedIgnored)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub id: String,
    pub status: StepStatus,
    pub duration_secs: f64,
    pub error: Option<String>,
    /// How many times the step's command ran (retries and repeats included).
    pub executions: u32,
    pub output_images: Vec<OutputImage>,
    pub dependencies: Vec<ImageDependencies>,
}

impl StepReport {
    pub fn skipped(id: &str) -> StepReport {
        StepReport {
            id: id.to_string(),
            status: StepStatus::Skipped,
            duration_secs: 0.0,
            error: None,
            executions: 0,
            output_images: Vec::new(),
            dependencies: Vec::new(),
        }
    }
}

/// A step starting (its start delay included) or ending, as the run goes.
pub enum StepEvent<'a> {
    Started(&'a str),
    Ended(&'a StepReport),
    /// A step pushed an image: the tag's manifest or index (not each platform's image).
    Pushed(&'a OutputImage),
}

/// What [`crate::RunConfig::on_step`] calls; it must return quickly.
pub type StepWatcher = std::sync::Arc<dyn Fn(StepEvent<'_>) + Send + Sync>;

pub use slipway_plan::OutputImage;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDependencies {
    pub images: Vec<String>,
    pub runtime: Option<String>,
    pub buildtime: Vec<String>,
    /// The platform these dependencies were resolved for, when the build named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub run_id: String,
    pub succeeded: bool,
    pub canceled: bool,
    pub timed_out: bool,
    /// Stopped for going past one of the daemon's limits (its workspace's size): the
    /// run's own doing, so it failed.
    pub over_limit: bool,
    pub error: Option<String>,
    pub duration_secs: f64,
    pub steps: Vec<StepReport>,
    pub output_images: Vec<OutputImage>,
    pub dependencies: Vec<ImageDependencies>,
}

impl RunReport {
    pub(crate) fn new(run_id: &str) -> RunReport {
        RunReport {
            run_id: run_id.to_string(),
            succeeded: false,
            canceled: false,
            timed_out: false,
            over_limit: false,
            error: None,
            duration_secs: 0.0,
            steps: Vec::new(),
            output_images: Vec::new(),
            dependencies: Vec::new(),
        }
    }

    pub(crate) fn record(&mut self, step: StepReport) {
        self.output_images.extend(step.output_images.iter().cloned());
        self.dependencies.extend(step.dependencies.iter().cloned());
        if self.error.is_none() && !step.status.lets_dependents_run() && step.status != StepStatus::Skipped {
            self.error = Some(format!(
                "step {} {}",
                step.id,
                step.error.clone().unwrap_or_else(|| format!("{:?}", step.status).to_lowercase())
            ));
        }
        self.steps.push(step);
    }

    pub(crate) fn finish(&mut self, elapsed: Duration) {
        self.duration_secs = elapsed.as_secs_f64();
        self.succeeded = self.error.is_none() && !self.steps.is_empty() && self.steps.iter().all(|s| s.status.lets_dependents_run());
    }

    /// The closing summary, one line each.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "Run ID: {} {} after {:.1} s",
            self.run_id,
            if self.succeeded {
                "was successful"
            } else if self.canceled {
                "was canceled"
            } else if self.timed_out {
                "timed out"
            } else {
                "failed"
            },
            self.duration_secs
        )];
        for s in &self.steps {
            out.push(format!(
                "  step {:<24} {:<13} {:>7.1} s",
                s.id,
                format!("{:?}", s.status),
                s.duration_secs
            ));
        }
        for i in &self.output_images {
            let platform = i.platform.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
            out.push(format!("  image {}/{}:{} {}{platform}", i.registry, i.repository, i.tag, i.digest));
        }
        for d in &self.dependencies {
            out.push(format!(
                "  dependencies of {}{}: runtime {}, buildtime [{}]",
                d.images.join(", "),
                d.platform.as_deref().map(|p| format!(" ({p})")).unwrap_or_default(),
                d.runtime.as_deref().unwrap_or("none"),
                d.buildtime.join(", ")
            ));
        }
        if let Some(e) = &self.error {
            out.push(format!("  error: {e}"));
        }
        out
    }
}
