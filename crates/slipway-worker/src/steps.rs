//! A run's steps as they go: each step's status, start and duration, written to the
//! store as steps start and end (coalesced: at most one write in flight), so the
//! dashboard and the API show them live on any node.

use crate::Node;
use slipway_runner::{StepEvent, StepReport, StepWatcher};
use std::sync::{Arc, Mutex};

/// One step's row, as the run's record keeps it.
type Row = slipway_api::results::StepView;

/// The steps of one run on this worker.
pub(crate) struct Board {
    run_id: String,
    rows: Mutex<Vec<Row>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Board {
    /// A board of `plan`'s steps, all pending, and a task that keeps the run's record
    /// up to date until the board is dropped.
    pub(crate) fn start(d: &Arc<Node>, run_id: &str, worker: &str, attempt: i64, plan: &slipway_taskfile::Plan) -> Arc<Board> {
        let rows = plan
            .steps
            .iter()
            .map(|s| Row {
                id: s.id.clone(),
                when: s.when.clone(),
                status: "Pending".into(),
                start_time: None,
                duration_seconds: None,
                error: None,
                executions: None,
            })
            .collect();
        let (tx, mut rx) = tokio::sync::watch::channel(0u64);
        let board = Arc::new(Board {
            run_id: run_id.to_string(),
            rows: Mutex::new(rows),
            changed: tx,
        });
        let weak = Arc::downgrade(&board);
        let (d, id, worker) = (d.clone(), run_id.to_string(), worker.to_string());
        tokio::spawn(async move {
            // The pending steps first, then every change; stops when the board is gone.
            loop {
                let Some(board) = weak.upgrade() else { return };
                let steps = board.rows();
                drop(board);
                match d.store.set_steps(&id, &worker, attempt, &steps).await {
                    Ok(_) => d.changed.notify_waiters(),
                    Err(e) => tracing::debug!(run_id = %id, error = %e, "recording the run's steps failed"),
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        board
    }

    /// What the runner calls.
    pub(crate) fn watcher(self: &Arc<Self>, node: Arc<Node>) -> StepWatcher {
        let board = self.clone();
        Arc::new(move |e: StepEvent<'_>| {
            if let StepEvent::Pushed(image) = e {
                node.tell(&board.run_id, crate::events::RunEvent::Pushed(image.clone()));
                return;
            }
            {
                let mut rows = board.rows.lock().unwrap_or_else(|p| p.into_inner());
                match e {
                    StepEvent::Started(id) => {
                        if let Some(r) = rows.iter_mut().find(|r| r.id == id) {
                            r.status = "Running".into();
                            r.start_time = Some(slipway_store::rfc3339(node.clock.now_ms()));
                        }
                    }
                    StepEvent::Ended(report) => {
                        if let Some(r) = rows.iter_mut().find(|r| r.id == report.id) {
                            fill(r, report);
                        }
                    }
                    StepEvent::Pushed(_) => {}
                }
            }
            board.changed.send_modify(|n| *n += 1);
        })
    }

    /// The steps as they end up, from the runner's report.
    /// `stopped` is how a step that was going ends when the runner reports none for it
    /// (`Canceled`, or `Error` when the engine went away); steps never started are
    /// `Skipped`.
    pub(crate) fn finish(&self, reports: &[StepReport], stopped: &str) -> Vec<Row> {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        for r in rows.iter_mut() {
            match reports.iter().find(|x| x.id == r.id) {
                Some(report) => fill(r, report),
                None if r.status == "Running" => r.status = stopped.to_string(),
                None if r.status == "Pending" => r.status = "Skipped".into(),
                None => {}
            }
        }
        rows.clone()
    }

    fn rows(&self) -> Vec<Row> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn fill(r: &mut Row, report: &StepReport) {
    r.status = format!("{:?}", report.status);
    r.duration_seconds = Some((report.duration_secs * 1000.0).round() / 1000.0);
    r.error = report.error.clone();
    r.executions = Some(report.executions);
}
