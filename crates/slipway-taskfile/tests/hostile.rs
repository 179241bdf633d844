//! Task files written to exhaust the machine fail fast with a located error.

use slipway_taskfile::{load, ErrorKind, Options, RunVars};
use std::time::{Duration, Instant};

fn refused(text: &str) -> slipway_taskfile::TaskError {
    let opts = Options::new(RunVars::new("r1", "reg.io", chrono::Utc::now()));
    let started = Instant::now();
    let e = load("acb.yaml", text, &opts, &|_| Err("no files".into())).expect_err("refused");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?} to refuse: {e}",
        started.elapsed()
    );
    e
}

#[test]
fn deep_flow_yaml_is_refused_at_its_depth() {
    let text = format!("steps: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let e = refused(&text);
    assert_eq!(e.kind, ErrorKind::Yaml);
    assert!(e.to_string().contains("nested more than 64 deep"), "{e}");
    assert_eq!(e.location.line, 1, "{e}");
    let block: String = (0..200).map(|i| format!("{}- \n", "  ".repeat(i))).collect();
    assert!(refused(&format!("steps:\n{block}")).to_string().contains("nested more than"));
}

#[test]
fn alias_bombs_are_refused() {
    let mut laughs = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (i, c) in "bcdefghi".chars().enumerate() {
        let prev = (b'a' + i as u8) as char;
        laughs.push_str(&format!(
            "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    // Refused quickly, whatever the reason it is given (here: unknown keys).
    refused(&format!("{laughs}steps:\n  - cmd: busybox\n"));
    // v1.1.0 aliases: a short file naming a long alias many times.
    let long = "x".repeat(100_000);
    let text = format!(
        "version: v1.1.0\nalias:\n  values:\n    big: {long}\nsteps:\n  - cmd: busybox echo {}\n",
        "$big".repeat(1000)
    );
    let e = refused(&text);
    assert_eq!(e.kind, ErrorKind::Alias);
    assert!(e.to_string().contains("larger than 4 MiB"), "{e}");
}

#[test]
fn template_bombs_are_located() {
    let e = refused("steps:\n  - cmd: busybox echo {{ repeat 100000000000 \"x\" }}\n");
    assert_eq!((e.kind, e.location.line), (ErrorKind::Template, 2), "{e}");
    let nested = "{{if true}}".repeat(10_000) + &"{{end}}".repeat(10_000);
    let e = refused(&format!("steps:\n  - cmd: busybox\n{nested}\n"));
    assert!(e.to_string().contains("nested more than"), "{e}");
}
