//! Graceful shutdown: on SIGTERM the daemon claims nothing new, lets running runs finish
//! within `shutdown_grace_seconds`, then stops the rest, which end `Error` as a lost
//! worker's runs do, with nothing left in the engine.

mod support;

use std::time::Duration;
use support::daemon::Daemon;
use support::*;

#[test]
fn sigterm_lets_short_runs_finish_and_stops_the_rest_as_error() {
    let Some(tb) = testbed() else { return };
    let mut d = Daemon::start_with_env(&["--concurrency", "2"], &[("SLIPWAY_SHUTDOWN_GRACE_SECONDS", "4")]);
    let short = d.queue_task(&format!(
        "steps:\n  - cmd: {} sh -c 'echo step-began; sleep 2; echo finished'\n",
        tb.base_image
    ));
    let long = d.queue_task(&format!("steps:\n  - cmd: {} sh -c 'echo step-began; sleep 120'\n", tb.base_image));
    // The marker is the step's own output ("| step-began"), not the task text or the
    // worker's "Run … started" line, so both containers are running when the signal comes.
    d.wait_log(&short, "| step-began", Duration::from_secs(60));
    d.wait_log(&long, "| step-began", Duration::from_secs(60));
    let took = d.terminate();
    let told = |d: &Daemon| {
        format!(
            "\n--- short run ---\n{}\n--- long run ---\n{}\n--- daemon ---\n{}",
            d.get(&format!("/v1/runs/{short}/log")).1,
            d.get(&format!("/v1/runs/{long}/log")).1,
            d.server_log()
        )
    };
    assert!(took < Duration::from_secs(25), "shutdown took {took:?}");
    if took < Duration::from_secs(3) {
        d.spawn();
        panic!("the grace period was not waited: {took:?}{}", told(&d));
    }
    d.spawn();
    let s = d.run_json(&short);
    assert_eq!(s["status"], "Succeeded", "{s}");
    let l = d.run_json(&long);
    assert_eq!(l["status"], "Error", "{l}");
    assert!(
        l["runErrorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("shut down before the run finished"),
        "{l}"
    );
    assert!(leftovers(&long).is_empty(), "{:?}", leftovers(&long));
}
