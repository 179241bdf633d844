//! Scans acb's own Dockerfile fixtures and compares with what acb reported.
//! Deliberate differences (README): Docker Hub is `docker.io`, not
//! `registry.hub.docker.com`; `scratch` is no dependency; `${V:-d}` and
//! `FROM --platform` work where acb failed.

use slipway_dockerfile::{scan, ScanOptions};
use std::path::{Path, PathBuf};

fn conformance_dir() -> Option<PathBuf> {
    slipway_test_support::conformance_dir()
        .map_err(|dir| eprintln!("SKIPPED: {} not found; acb scan conformance not checked", dir.display()))
        .ok()
}

/// acb's `repository:tag` for Docker Hub images, in our normalised form.
fn normalise(acb: &serde_json::Value) -> Option<String> {
    let repo = acb["repository"].as_str()?;
    if repo == "library/scratch" {
        return None;
    }
    let registry = match acb["registry"].as_str()? {
        "registry.hub.docker.com" => "docker.io",
        other => other,
    };
    Some(format!("{registry}/{repo}:{}", acb["tag"].as_str()?))
}

fn run(dir: &Path, name: &str, args: &[(&str, &str)], target: Option<&str>) -> (Option<String>, Vec<String>) {
    let text = std::fs::read_to_string(dir.join(format!("derived/scan/{name}/Dockerfile"))).unwrap();
    let opts = ScanOptions {
        build_args: args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        target: target.map(str::to_string),
        ..ScanOptions::default()
    };
    let d = scan(&text, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    (
        d.runtime.map(|r| r.to_string()),
        d.buildtime.iter().map(|r| r.to_string()).collect(),
    )
}

fn expected(dir: &Path, name: &str) -> (Option<String>, Vec<String>) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("expected/derived/scan/{name}.scan.json"))).unwrap()).unwrap();
    let e = &v[0];
    let mut build: Vec<String> = e["buildtime-dependency"].as_array().unwrap().iter().filter_map(normalise).collect();
    build.sort();
    build.dedup();
    (normalise(&e["runtime-dependency"]), build)
}

#[test]
fn scans_match_acb() {
    let Some(dir) = conformance_dir() else { return };
    assert_eq!(run(&dir, "bom", &[], None), expected(&dir, "bom"));
    assert_eq!(run(&dir, "reduction", &[], None), expected(&dir, "reduction"));
    assert_eq!(run(&dir, "target", &[], Some("build")), expected(&dir, "target"));
    assert_eq!(
        run(
            &dir,
            "multistage-args",
            &[("build_image", "aspnetcore-build"), ("build_version", "2.0.6")],
            None
        ),
        expected(&dir, "multistage-args")
    );
}

#[test]
fn scans_acb_could_not_do() {
    let Some(dir) = conformance_dir() else { return };
    assert_eq!(
        run(&dir, "arg-default-from", &[], None),
        (
            Some("mcr.microsoft.com/dotnet/runtime:8.0".into()),
            vec!["mcr.microsoft.com/dotnet/sdk:8.0".into()]
        )
    );
    assert_eq!(
        run(&dir, "from-platform", &[], None),
        (
            Some("docker.io/library/alpine:3.19".into()),
            vec!["docker.io/library/golang:1.22".into()]
        )
    );
}
