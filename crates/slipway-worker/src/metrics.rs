//! Prometheus text metrics: runs by status, queue depth, step durations.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    /// (tenant, step type) → (count, total seconds).
    steps: Mutex<BTreeMap<(String, String), (u64, f64)>>,
}

impl Metrics {
    pub fn record_step(&self, tenant: &str, kind: &str, seconds: f64) {
        let mut m = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry((tenant.to_string(), kind.to_string())).or_default();
        e.0 += 1;
        e.1 += seconds;
    }

    /// The metrics of `tenant`'s runs (`counts` are its), or of every tenant's.
    pub fn render(&self, counts: &[(slipway_store::RunStatus, i64)], tenant: Option<&str>) -> String {
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
        let mut by_kind: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
        let steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        for ((owner, kind), (count, sum)) in steps.iter() {
            if tenant.is_none_or(|t| t == owner) {
                let e = by_kind.entry(kind.as_str()).or_default();
                e.0 += count;
                e.1 += sum;
            }
        }
        for (kind, (count, sum)) in by_kind {
            out.push_str(&format!("slipway_step_duration_seconds_sum{{type=\"{kind}\"}} {sum:.3}\n"));
            out.push_str(&format!("slipway_step_duration_seconds_count{{type=\"{kind}\"}} {count}\n"));
        }
        out
    }
}
