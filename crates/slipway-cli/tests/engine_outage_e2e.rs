//! A fault test: the Docker engine dies in the middle of a run. The run ends `Error`
//! saying why, queued runs wait instead of burning, `/healthz` says what is wrong, and
//! once the engine is back the queue moves and the dead run's leftovers are swept.
//!
//! This file holds one test on purpose: it kills the engine every other test needs, and
//! cargo runs test binaries one after another.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::daemon::Daemon;
use support::*;

fn engine_answers() -> bool {
    Command::new("docker")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_engine() {
    let status = Command::new("bash")
        .arg(repo_root().join("scripts/testbed.sh"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/testbed.sh could not start the engine again");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !engine_answers() {
        assert!(Instant::now() < deadline, "the engine did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Brings the engine back even if the test fails half-way, for the tests after it.
struct EngineBack;

impl Drop for EngineBack {
    fn drop(&mut self) {
        if !engine_answers() {
            start_engine();
        }
    }
}

#[test]
fn an_engine_outage_holds_the_queue_and_leftovers_are_swept() {
    let Some(tb) = testbed() else { return };
    let _back = EngineBack;
    let d = Daemon::start(&["--concurrency", "1"]);
    let first = d.queue_task(&format!("steps:\n  - cmd: {} sleep 120\n", tb.base_image));
    d.wait_log(&first, "Launching container", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    assert!(!leftovers(&first).is_empty(), "the step's container is running");

    // The engine dies as a crash would: no chance to stop its containers.
    let killed = Command::new("pkill").args(["-KILL", "-x", "dockerd"]).status().unwrap();
    assert!(killed.success(), "no dockerd to kill");
    let run = d.wait_status(&first, &["Error", "Failed", "Succeeded"], Duration::from_secs(60));
    assert_eq!(run["status"], "Error", "{run}");
    assert!(
        run["runErrorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("the Docker engine became unreachable"),
        "{run}"
    );
    let (code, body) = d.get_raw("/healthz", None).unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("cannot reach the Docker engine"), "{body}");

    // Work queued during the outage waits for the engine instead of failing.
    let second = d.queue_task(&format!("steps:\n  - cmd: {} echo back\n", tb.base_image));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(d.run_json(&second)["status"], "Queued", "{}", d.server_log());

    start_engine();
    let run = d.wait_status(&second, &["Succeeded", "Failed", "Error"], Duration::from_secs(120));
    assert_eq!(run["status"], "Succeeded", "{run}\n{}", d.get(&format!("/v1/runs/{second}/log")).1);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = leftovers(&first);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still in the engine: {left:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(d.get_raw("/healthz", None).unwrap().0, 200);
}
