//! Every kind of bad input gets a clear error naming the file, the line and the field.

mod support;

use support::*;

/// (case, task file, what the error must say: the file:line prefix and words from the message)
const CASES: &[(&str, &str, &[&str])] = &[
    ("malformed yaml", "steps:\n  - cmd: a\n   bad: [\n", &["acb.yaml:3:"]),
    (
        "unknown key",
        "steps:\n  - cmd: busybox\n    tiemout: 5\n",
        &[
            "acb.yaml:3:5: steps[0].tiemout",
            "unknown key \"tiemout\"",
            "did you mean \"timeout\"",
        ],
    ),
    (
        "unknown top-level key",
        "version: v1.1.0\nstepTimout: 5\nsteps:\n  - cmd: busybox\n",
        &["acb.yaml:2:1: stepTimout", "did you mean \"stepTimeout\""],
    ),
    (
        "unknown when id",
        "steps:\n  - id: a\n    cmd: busybox\n  - id: b\n    cmd: busybox\n    when: [c]\n",
        &["acb.yaml:6:", "steps[1].when[0]", "\"c\", which is not a step id"],
    ),
    (
        "duplicate id",
        "steps:\n  - id: a\n    cmd: busybox\n  - id: a\n    cmd: busybox\n",
        &["acb.yaml:4:", "steps[1].id", "ids must be unique"],
    ),
    (
        "cycle",
        "steps:\n  - id: a\n    cmd: busybox\n    when: [b]\n  - id: b\n    cmd: busybox\n    when: [a]\n",
        &["acb.yaml:4:", "steps[0].when[0]", "a cycle"],
    ),
    (
        "forward reference",
        "steps:\n  - id: a\n    cmd: busybox\n    when: [b]\n  - id: b\n    cmd: busybox\n    when: [\"-\"]\n",
        &["acb.yaml:4:", "declared after it"],
    ),
    (
        "dash mixed with ids",
        "steps:\n  - id: a\n    cmd: busybox\n  - id: b\n    cmd: busybox\n    when: [\"-\", a]\n",
        &["acb.yaml:6:", "steps[1].when", "cannot be combined"],
    ),
    (
        "bad image reference",
        "steps:\n  - cmd: Bad_Image:tag\n",
        &["acb.yaml:2:", "steps[0].cmd", "invalid image reference"],
    ),
    (
        "bad push image",
        "steps:\n  - push: [\"reg.io/app:bad tag\"]\n",
        &["acb.yaml:2:", "steps[0].push[0]"],
    ),
    (
        "bad build args",
        "steps:\n  - build: -t app --frobnicate .\n",
        &["acb.yaml:2:", "steps[0].build", "--frobnicate"],
    ),
    (
        "bad template",
        "steps:\n  - cmd: busybox echo {{ .Run.ID | nosuchfunc }}\n",
        &["acb.yaml:2", "function \"nosuchfunc\" not defined"],
    ),
    (
        "unclosed template",
        "steps:\n  - cmd: busybox\n{{ if .Values.x }}\n",
        &["acb.yaml:", "no {{end}}"],
    ),
    (
        "unknown version",
        "version: v9\nsteps:\n  - cmd: busybox\n",
        &["acb.yaml:1:", "version", "invalid version \"v9\""],
    ),
    (
        "no step type",
        "steps:\n  - id: a\n    when: [\"-\"]\n",
        &["acb.yaml:2:", "steps[0]", "none of cmd, build or push"],
    ),
    (
        "two step types",
        "steps:\n  - cmd: busybox\n    push: [a]\n",
        &["acb.yaml:2:", "exactly one of cmd, build or push"],
    ),
    (
        "push with cmd-only key",
        "steps:\n  - push: [a]\n    retries: 2\n",
        &["acb.yaml:3:", "steps[0].retries", "push steps accept only"],
    ),
    (
        "negative retries",
        "steps:\n  - cmd: busybox\n    retries: -1\n",
        &["acb.yaml:3:", "steps[0].retries", ">= 0"],
    ),
    (
        "wrong type",
        "steps:\n  - cmd: busybox\n    timeout: soon\n",
        &["acb.yaml:3:", "steps[0].timeout", "invalid type"],
    ),
    (
        "reserved id",
        "steps:\n  - id: acb_root\n    cmd: busybox\n",
        &["acb.yaml:2:", "reserved"],
    ),
    (
        "id with space",
        "steps:\n  - id: \"a b\"\n    cmd: busybox\n",
        &["acb.yaml:2:", "contains a space"],
    ),
    (
        "privileged refused",
        "steps:\n  - cmd: busybox\n    privileged: true\n",
        &["acb.yaml:3:", "steps[0].privileged", "--allow-privileged"],
    ),
    (
        "mount of unknown volume",
        "steps:\n  - cmd: busybox\n    volumeMounts:\n      - name: v\n        mountPath: /v\n",
        &["acb.yaml:4:", "steps[0].volumeMounts[0].name", "not a declared volume"],
    ),
    (
        "total timeout too long",
        "totalTimeout: 99999\nsteps:\n  - cmd: busybox\n",
        &["acb.yaml:1:", "totalTimeout", "28800"],
    ),
    ("no steps", "version: v1.0.0\n", &["acb.yaml", "no steps"]),
];

#[test]
fn every_bad_task_file_is_refused_with_file_line_and_field() {
    for (case, yaml, expected) in CASES {
        let dir = dir_with(&[("acb.yaml", yaml)]);
        let file = dir.path().join("acb.yaml");
        let r = run(slipway().args(["plan", "-f", file.to_str().unwrap()]));
        assert!(!r.ok, "{case}: accepted:\n{}", r.stdout);
        assert!(!r.stderr.contains("panicked"), "{case}: panicked:\n{}", r.stderr);
        let err = r.stderr.replace(&dir.path().display().to_string(), "");
        for needle in *expected {
            assert!(err.contains(needle), "{case}: error lacks {needle:?}:\n{err}");
        }
    }
}

#[test]
fn unknown_keys_become_warnings_when_allowed() {
    let dir = dir_with(&[("acb.yaml", "steps:\n  - cmd: busybox\n    tiemout: 5\n")]);
    let file = dir.path().join("acb.yaml");
    let r = run(slipway().args(["plan", "--allow-unknown-keys", "-f", file.to_str().unwrap()]));
    assert!(r.ok, "{}", r.all());
    assert!(r.stderr.contains("warning:") && r.stderr.contains("tiemout"), "{}", r.stderr);
}

/// Issue 20: `--set-secret` means what `az acr run --set-secret` means: the task reads
/// it as `{{.Values.NAME}}` (and `{{.Secrets.NAME}}`), masked in what is printed.
#[test]
fn a_set_secret_is_a_value_too_and_never_printed() {
    let dir = dir_with(&[("acb.yaml", "steps:\n  - cmd: busybox echo v={{.Values.npm}} s={{.Secrets.npm}}\n")]);
    let r = run(slipway().args([
        "plan",
        "--set-secret",
        "npm=hunter22",
        "-f",
        dir.path().join("acb.yaml").to_str().unwrap(),
    ]));
    assert!(r.ok, "{}", r.all());
    assert!(!r.all().contains("hunter22"), "{}", r.all());
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(plan["steps"][0]["cmd"], "busybox echo v=***** s=*****");
}

#[test]
fn plan_prints_defaults_and_resolved_when() {
    let dir = dir_with(&[(
        "acb.yaml",
        "steps:\n  - id: a\n    cmd: busybox\n  - id: b\n    cmd: busybox\n  - id: c\n    cmd: busybox\n    when: [\"-\"]\n",
    )]);
    let r = run(slipway().args(["plan", "-f", dir.path().join("acb.yaml").to_str().unwrap()]));
    assert!(r.ok, "{}", r.all());
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(plan["version"], "v1.0.0");
    assert_eq!(plan["stepTimeout"], 600);
    assert_eq!(plan["totalTimeout"], 3600);
    assert_eq!(plan["steps"][0]["when"], serde_json::json!([]));
    assert_eq!(plan["steps"][1]["when"], serde_json::json!(["a"]));
    assert_eq!(plan["steps"][2]["when"], serde_json::json!([]));
    assert_eq!(plan["steps"][1]["type"], "cmd");
    assert_eq!(plan["steps"][1]["retryDelay"], 5);
    assert_eq!(plan["steps"][1]["network"], "acb_default_network");
}

#[test]
fn missing_files_and_context_are_named() {
    let r = run(slipway().args(["plan", "-f", "/nonexistent/acb.yaml"]));
    assert!(
        !r.ok && r.stderr.contains("cannot read task file /nonexistent/acb.yaml"),
        "{}",
        r.stderr
    );
    let dir = dir_with(&[("acb.yaml", "steps:\n  - cmd: busybox\n")]);
    let r = run(slipway().args(["exec", "-f", dir.path().join("acb.yaml").to_str().unwrap(), "/nonexistent/context"]));
    assert!(
        !r.ok && r.stderr.contains("build context /nonexistent/context does not exist"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_unreachable_engine_is_named() {
    let dir = dir_with(&[("acb.yaml", "steps:\n  - cmd: busybox\n")]);
    let r = run(slipway().env("DOCKER_HOST", "unix:///nonexistent/docker.sock").args([
        "exec",
        "-f",
        dir.path().join("acb.yaml").to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]));
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{}",
        r.stderr
    );
}

#[test]
fn scan_prints_dependencies() {
    let dir = dir_with(&[(
        "Dockerfile",
        "ARG V=3.19\nFROM --platform=$BUILDPLATFORM golang:1.22 AS build\nFROM alpine:${V:-3}\nCOPY --from=build /x /x\n",
    )]);
    let r = run(slipway().args(["scan", "-t", "reg.io/app:1", "--build-arg", "V=3.20", dir.path().to_str().unwrap()]));
    assert!(r.ok, "{}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["image"]["reference"], "reg.io/app:1");
    assert_eq!(v[0]["runtime-dependency"]["reference"], "docker.io/library/alpine:3.20");
    assert_eq!(v[0]["buildtime-dependency"][0]["reference"], "docker.io/library/golang:1.22");
    let r = run(slipway().args(["scan", "-f", "/nonexistent/Dockerfile"]));
    assert!(!r.ok && r.stderr.contains("/nonexistent/Dockerfile"));
}
