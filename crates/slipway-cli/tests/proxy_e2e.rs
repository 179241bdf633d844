//! `docker …` inside a step of `slipway serve`: through the run's engine proxy, the
//! docs' usage works (run, detached services by name, logs, stop) while the host stays
//! out of reach, and nothing a step starts outlives the run.

mod support;

use std::time::Duration;
use support::daemon::Daemon;
use support::*;

fn cli_image() -> String {
    std::env::var("SLIPWAY_TEST_CLI_IMAGE").unwrap_or_else(|_| "slipway-docker-cli:latest".into())
}

fn finish(d: &Daemon, yaml: &str) -> (String, serde_json::Value, String) {
    let id = d.queue_task(yaml);
    let run = d.wait_status(&id, &["Succeeded", "Failed", "Error", "Timeout"], Duration::from_secs(120));
    let log = d.get(&format!("/v1/runs/{id}/log")).1;
    (id, run, log)
}

#[test]
fn docker_in_steps_works_on_the_run_and_nothing_else() {
    let Some(tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let cli = cli_image();
    let base = &tb.base_image;
    let yaml = format!(
        r#"steps:
  - id: svc
    cmd: {base} sh -c 'echo serving; sleep 300'
    detach: true
  - id: hello
    cmd: {cli} docker run --rm {base} echo hello-through-the-proxy
  - id: side
    cmd: {cli} docker run -d --name worker {base} sleep 300
  - id: look
    cmd: {cli} sh -c 'docker logs svc && docker ps -a && docker stop -t 1 worker'
"#
    );
    let (id, run, log) = finish(&d, &yaml);
    assert_eq!(run["status"], "Succeeded", "{log}");
    assert!(log.contains("hello | hello-through-the-proxy"), "{log}");
    assert!(log.contains("look | serving"), "a step id is a container name in the run: {log}");
    let listed: Vec<&str> = log.lines().filter(|l| l.starts_with("look | ") && l.contains("slipway")).collect();
    assert!(listed.iter().any(|l| l.ends_with(&format!("slipway-{id}-worker"))), "{log}");
    assert!(
        listed.iter().all(|l| l.contains(&format!("slipway-{id}-"))),
        "only this run's containers: {listed:?}"
    );
    assert!(leftovers(&id).is_empty(), "{:?}", leftovers(&id));

    // What would reach the host is refused, each with the reason.
    for (what, cmd, reason) in [
        ("host mount", format!("docker run --rm -v /:/host {base} ls /host"), "slipway:"),
        (
            "privileged",
            format!("docker run --rm --privileged {base} true"),
            "allow_privileged",
        ),
        (
            "host network",
            format!("docker run --rm --network host {base} true"),
            "allow_host_network",
        ),
        ("another run", "docker logs slipway-someone-else".to_string(), "no such container"),
    ] {
        let (id, run, log) = finish(&d, &format!("steps:\n  - cmd: {cli} {cmd}\n"));
        assert_eq!(run["status"], "Failed", "{what}: {log}");
        assert!(log.to_lowercase().contains(&reason.to_lowercase()), "{what}: {log}");
        assert!(leftovers(&id).is_empty(), "{what}");
    }
}

#[test]
fn the_raw_socket_and_none_are_operator_choices() {
    let Some(tb) = testbed() else { return };
    let cli = cli_image();
    let none = Daemon::start_with_env(&[], &[("SLIPWAY_ENGINE_ACCESS", "none")]);
    let (_, run, log) = finish(&none, &format!("steps:\n  - cmd: {cli} docker ps\n"));
    assert_eq!(run["status"], "Failed", "{log}");
    let full = Daemon::start_with_env(&[], &[("SLIPWAY_ENGINE_ACCESS", "full")]);
    let (_, run, log) = finish(
        &full,
        &format!(
            "steps:\n  - cmd: {cli} docker run --rm -v /etc:/host:ro {} ls /host/hostname\n",
            tb.base_image
        ),
    );
    assert_eq!(run["status"], "Succeeded", "full access is the engine's own socket: {log}");
}
