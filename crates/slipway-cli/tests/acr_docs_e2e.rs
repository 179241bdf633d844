//! What the ACR documentation shows, run as it shows it (issue: documented ACR usage
//! that broke): step ids as container names, `cmd:` starting with docker-run flags,
//! `$HOME` shared by a run's steps, `{{.Run.SharedVolume}}` as the volume at
//! /workspace, and shell-unquoted env values.

mod support;

use std::time::Duration;
use support::daemon::Daemon;
use support::*;

fn cli_image() -> String {
    std::env::var("SLIPWAY_TEST_CLI_IMAGE").unwrap_or_else(|_| "slipway-docker-cli:latest".into())
}

#[test]
fn the_docs_task_text_runs_as_the_docs_say() {
    let Some(tb) = testbed() else { return };
    let d = Daemon::start(&[]);
    let (cli, base) = (cli_image(), tb.base_image.clone());
    let yaml = format!(
        r#"steps:
  - id: test
    cmd: {base} sh -c 'echo ready; sleep 300'
    detach: true
  - id: login
    cmd: {base} sh -c 'mkdir -p $HOME/.docker && echo logged-in > $HOME/.docker/config.json && echo shared > /workspace/f'
  - id: uses-login
    cmd: {base} cat /acb/home/.docker/config.json
  - id: flags
    cmd: -t --rm -e GREETING=hi -w /tmp {base} sh -c 'echo "$GREETING from $(pwd)"'
  - id: quoted
    cmd: {base} sh -c 'echo "[$X]"'
    env: ["X='quoted value'"]
  - id: shared-volume
    cmd: {cli} docker run --rm -v {{{{.Run.SharedVolume}}}}:/w {base} cat /w/f
  - id: stop
    cmd: {cli} docker stop -t 1 test
"#
    );
    let id = d.queue_task(&yaml);
    let run = d.wait_status(&id, &["Succeeded", "Failed", "Error"], Duration::from_secs(120));
    let log = d.get(&format!("/v1/runs/{id}/log")).1;
    assert_eq!(run["status"], "Succeeded", "{log}");
    assert!(log.contains(&format!("Launching container with name: slipway-{id}-test")), "{log}");
    assert!(log.contains("uses-login | logged-in"), "$HOME holds between steps: {log}");
    assert!(log.contains("flags | hi from /tmp"), "{log}");
    assert!(log.contains("quoted | [quoted value]"), "{log}");
    assert!(log.contains("shared-volume | shared"), "SharedVolume is /workspace: {log}");
    assert!(log.contains("stop | test"), "a step id is a container name: {log}");
    assert!(leftovers(&id).is_empty(), "{:?}", leftovers(&id));
}

#[test]
fn docker_run_flags_that_mean_nothing_here_are_refused_where_they_stand() {
    let Some(_tb) = testbed() else { return };
    let task = dir_with(&[(
        "acb.yaml",
        "steps:\n  - cmd: busybox true\n  - cmd: --cap-add SYS_ADMIN busybox true\n",
    )]);
    let r = run(slipway().args(["plan", "-f", task.path().join("acb.yaml").to_str().unwrap()]));
    assert!(!r.ok);
    assert!(
        r.stderr.contains("acb.yaml:3") && r.stderr.contains("steps[1].cmd") && r.stderr.contains("--cap-add"),
        "{}",
        r.stderr
    );
}

/// `slipway exec` on a person's own machine: the same proxy makes step ids container
/// names (the tutorial's `docker stop test`), while the host stays theirs to use.
#[test]
fn exec_gives_step_ids_as_names_and_the_host_to_its_owner() {
    let Some(tb) = testbed() else { return };
    let (cli, base) = (cli_image(), tb.base_image.clone());
    let yaml = format!(
        r#"steps:
  - id: test
    cmd: {base} sleep 300
    detach: true
  - id: host
    cmd: {cli} docker run --rm -v /etc:/host:ro {base} cat /host/hostname
  - id: stop
    cmd: {cli} docker stop -t 1 test
"#
    );
    let task = dir_with(&[("acb.yaml", &yaml)]);
    let r = run(slipway()
        .args([
            "exec",
            "--id",
            &unique_id("sw"),
            "-f",
            task.path().join("acb.yaml").to_str().unwrap(),
        ])
        .arg(task.path()));
    assert!(r.ok, "{}", r.all());
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap();
    assert!(r.stdout.contains(&format!("host | {}", hostname.trim())), "{}", r.stdout);
    assert!(r.stdout.contains("stop | test"), "{}", r.stdout);
}
