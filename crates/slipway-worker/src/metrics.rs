//! Prometheus text metrics: runs by status, queue depth, step durations.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    /// Step type → (count, total seconds).
    steps: Mutex<BTreeMap<String, (u64, f64)>>,
}

impl Metrics {
    pub fn record_step(&self, kind: &str, seconds: f64) {
        let mut m = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(kind.to_string()).or_default();
        e.0 += 1;
        e.1 += seconds;
    }

    pub fn render(&self, counts: &[(slipway_store::RunStatus, i64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP slipway_runs Runs in the queue's history, by status.\n# TYPE slipway_runs gauge\n");
        for status in slipway_store::RunStatus::ALL {
            let n = counts.iter().find(|(s, _)| *s == status).map(|(_, n)| *n).unwrap_or(0);
            out.push_str(&format!("slipway_runs{{status=\"{status}\"}} {n}\n"));
        }
        let queued = counts
            .iter()
            .find(|(s, _)| *s == slipway_store::RunStatus::Queued)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        out.push_str(&format!(
            "# HELP slipway_queue_depth Runs waiting for a worker.\n# TYPE slipway_queue_depth gauge\nslipway_queue_depth {queued}\n"
        ));
        out.push_str("# HELP slipway_step_duration_seconds Time steps took, by step type.\n# TYPE slipway_step_duration_seconds summary\n");
        for (kind, (count, sum)) in self.steps.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            out.push_str(&format!("slipway_step_duration_seconds_sum{{type=\"{kind}\"}} {sum:.3}\n"));
            out.push_str(&format!("slipway_step_duration_seconds_count{{type=\"{kind}\"}} {count}\n"));
        }
        out
    }
}
