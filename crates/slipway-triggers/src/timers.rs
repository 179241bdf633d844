//! Timer triggers: five-field cron in UTC (croner). Each occurrence starts at most
//! one run per timer, even across restarts (its key is written with the run);
//! occurrences missed while the daemon was down are not replayed.

use crate::tasks;
use crate::Triggers;
use chrono::{TimeZone, Utc};
use croner::Cron;
use slipway_api::schedule::{next_after, parse};
use slipway_api::task::TaskSpec;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One timer the scheduler watches, with the task as it was when the schedule was read
/// (any change to tasks rebuilds the schedule).
struct Due {
    tenant: String,
    task: Arc<TaskSpec>,
    timer: String,
    cron: Cron,
}

/// Fires due timers until shutdown. Timers are read again when tasks change.
pub async fn run(d: Arc<Triggers>, shutdown: CancellationToken) {
    // Occurrences before this start are never replayed.
    let mut horizon = d.clock.now_ms();
    let mut version = u64::MAX;
    let mut queue: BTreeMap<(i64, usize), Due> = BTreeMap::new();
    let mut seq = 0usize;
    let mut last_rebuild = std::time::Instant::now() - Duration::from_secs(10);
    loop {
        let current = d.tasks_version.load(std::sync::atomic::Ordering::SeqCst);
        // Rebuilt at most once a second, so creating many tasks costs one rebuild, not many.
        if current != version && last_rebuild.elapsed() >= Duration::from_secs(1) {
            last_rebuild = std::time::Instant::now();
            version = current;
            queue.clear();
            match d.store.list_tasks(None).await {
                Ok(list) => {
                    for record in list.iter().filter(|t| t.enabled) {
                        let spec = Arc::new(record.spec.clone());
                        for t in spec.timers.iter().filter(|t| t.enabled) {
                            let Ok(cron) = parse(&t.schedule) else { continue };
                            if let Some(next) = next_after(&cron, horizon) {
                                seq += 1;
                                queue.insert(
                                    (next, seq),
                                    Due {
                                        tenant: record.tenant.clone(),
                                        task: spec.clone(),
                                        timer: t.name.clone(),
                                        cron,
                                    },
                                );
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading tasks for timers failed"),
            }
        }
        let now = d.clock.now_ms();
        let mut fired: Vec<((i64, usize), Due)> = Vec::new();
        while let Some(entry) = queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (k, v) = entry.remove_entry();
            fired.push((k, v));
        }
        if !fired.is_empty() {
            fire_all(&d, &fired).await;
            for ((occurrence, _), due) in fired {
                if let Some(next) = next_after(&due.cron, occurrence) {
                    seq += 1;
                    queue.insert((next, seq), due);
                }
            }
        }
        horizon = now;
        let wait = queue
            .first_key_value()
            .map(|((t, _), _)| (t - d.clock.now_ms()).clamp(5, 1000))
            .unwrap_or(1000) as u64;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = d.tasks_changed.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Queues one run per due occurrence, in batches of one transaction each.
async fn fire_all(d: &Arc<Triggers>, fired: &[((i64, usize), Due)]) {
    let mut batch = Vec::with_capacity(fired.len());
    for ((occurrence, _), due) in fired {
        let spec = &due.task;
        if !spec.enabled() {
            continue;
        }
        let when = Utc
            .timestamp_millis_opt(*occurrence)
            .single()
            .map(slipway_api::time::seconds)
            .unwrap_or_default();
        let trigger = slipway_api::results::TimerTriggerEvent {
            timer_trigger_name: due.timer.clone(),
            schedule_occurrence: when,
        };
        let triggers = slipway_store::Triggers {
            timer: Some(trigger),
            ..Default::default()
        };
        match tasks::build_run(d, &due.tenant, spec, Default::default(), None, triggers).await {
            Ok(mut run) => {
                let key = format!("timer:{}:{}:{occurrence}", spec.name, due.timer);
                run.trigger_key = Some(tasks::trigger_key(&due.tenant, &key));
                batch.push(run);
            }
            Err(e) => tracing::warn!(task = %spec.name, timer = %due.timer, error = %e, "a timer could not start its run"),
        }
    }
    while !batch.is_empty() {
        let chunk: Vec<_> = batch.drain(..batch.len().min(1000)).collect();
        match slipway_worker::submit::submit_many(d, chunk).await {
            Ok(runs) => tracing::info!(runs = runs.len(), "timers fired"),
            Err(e) => tracing::warn!(error = %e, "queuing timer runs failed"),
        }
    }
}
