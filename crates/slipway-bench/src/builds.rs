//! `slipway-bench builds`: `slipway exec` building on BuildKit and on the classic builder
//! against Debian's docker CLI 20.10 doing the same build on the same builder
//! (`DOCKER_BUILDKIT=1|0 docker build`), cold (`--no-cache`) and warm (one changed
//! file), on the 20,000-file context and on a three-stage Dockerfile.

use crate::{cli_script, exec, make_context, say, task, Row};

/// Rounds of the short cases, where a second's noise would be a large part.
const SHORT_ROUNDS: usize = 7;
use anyhow::{Context, Result};
use std::path::Path;

/// The docker CLI that speaks BuildKit through the engine as we do (the static v28 CLI
/// on these machines wants the buildx plugin for BuildKit).
const DEBIAN_CLI: &str = "/usr/bin/docker";

pub fn run(slipway: &Path, image: &str) -> Result<()> {
    let work = tempfile::tempdir()?;
    let cli = if Path::new(DEBIAN_CLI).exists() { DEBIAN_CLI } else { "docker" };
    say(format!(
        "slipway build benchmark: median of {} rounds (20k files) and {SHORT_ROUNDS} (3 stages), image {image}, CLI {cli}\n",
        crate::ROUNDS
    ));
    let mut rows = Vec::new();

    // The 20,000-file context, cold, on each builder.
    let files = work.path().join("files");
    make_context(&files, 20_000, image)?;
    let cold = task(work.path(), "cold.yaml", "  - build: -t slipway-bench-b:1 --no-cache .\n");
    for (builder, kit) in [("buildkit", "1"), ("classic", "0")] {
        let (ours, theirs) = paired(
            crate::ROUNDS,
            || exec(slipway, &cold, &files, &["--builder", builder]),
            || {
                cli_script(&format!(
                    "DOCKER_BUILDKIT={kit} {cli} build -q --no-cache -t slipway-bench-cli:1 {} >/dev/null",
                    files.display()
                ))
            },
        )?;
        let name = if kit == "1" {
            "20k files, BuildKit, cold"
        } else {
            "20k files, classic, cold"
        };
        rows.push(Row::new(name, "cli", theirs, ours, 1.05));
    }

    // Three stages: dependencies (real work standing for a package install), a build
    // of the sources, and a small final image.
    let staged = work.path().join("staged");
    make_staged(&staged, image)?;
    let mut cold_kit = f64::NAN;
    for (builder, kit) in [("buildkit", "1"), ("classic", "0")] {
        let (ours, theirs) = paired(
            SHORT_ROUNDS,
            || exec(slipway, &cold, &staged, &["--builder", builder]),
            || {
                cli_script(&format!(
                    "DOCKER_BUILDKIT={kit} {cli} build -q --no-cache -t slipway-bench-cli:2 {} >/dev/null",
                    staged.display()
                ))
            },
        )?;
        if kit == "1" {
            cold_kit = ours;
        }
        let name = if kit == "1" {
            "3 stages, BuildKit, cold"
        } else {
            "3 stages, classic, cold"
        };
        rows.push(Row::new(name, "cli", theirs, ours, 1.05));
    }

    // Warm: one source file changed between builds; the dependency stage is cached.
    let warm = task(work.path(), "warm.yaml", "  - build: -t slipway-bench-b:2 .\n");
    exec(slipway, &warm, &staged, &[]).context("priming the cache")?;
    // Each change is new to the engine's cache, this run's and earlier runs' alike.
    let salt = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let n = std::cell::Cell::new(0u32);
    let change = || {
        n.set(n.get() + 1);
        std::fs::write(staged.join("src/main.txt"), format!("change {salt}-{}\n", n.get()))
    };
    let (ours_warm, cli_warm) = paired(
        SHORT_ROUNDS,
        || {
            change()?;
            exec(slipway, &warm, &staged, &[])
        },
        || {
            change()?;
            cli_script(&format!(
                "DOCKER_BUILDKIT=1 {cli} build -q -t slipway-bench-cli:3 {} >/dev/null",
                staged.display()
            ))
        },
    )?;
    rows.push(Row::new("3 stages, BuildKit, warm", "cli", cli_warm, ours_warm, 1.05));
    rows.push(Row::new("warm vs cold (BuildKit)", "cold", cold_kit, ours_warm, 1.0 / 3.0));

    say(format!(
        "{:<28} {:>10} {:>10} {:>8} {:>7}  result",
        "case", "baseline", "slipway", "ratio", "goal"
    ));
    for r in &rows {
        r.print();
    }
    Ok(())
}

/// Medians of `ours` and `theirs`, measured in turns so that the machine's drift
/// (another process, the engine's own housekeeping) falls on both alike.
fn paired(rounds: usize, mut ours: impl FnMut() -> Result<f64>, mut theirs: impl FnMut() -> Result<f64>) -> Result<(f64, f64)> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(ours()?);
        b.push(theirs()?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|x, y| x.total_cmp(y));
        v[v.len() / 2]
    };
    Ok((median(a), median(b)))
}

/// A context with a three-stage Dockerfile and a few source files.
fn make_staged(dir: &Path, image: &str) -> Result<()> {
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {image} AS deps\nCOPY deps.txt /deps.txt\n\
             RUN i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); done; cat /deps.txt > /deps\n\
             FROM deps AS build\nCOPY src/ /src/\nRUN cat /deps /src/* > /app\n\
             FROM {image}\nCOPY --from=build /app /app\nCMD [\"cat\", \"/app\"]\n"
        ),
    )?;
    std::fs::write(dir.join("deps.txt"), "dependencies v1\n")?;
    for i in 0..50 {
        std::fs::write(dir.join(format!("src/part{i}.txt")), format!("part {i}\n"))?;
    }
    std::fs::write(dir.join("src/main.txt"), "change 0\n")?;
    Ok(())
}
