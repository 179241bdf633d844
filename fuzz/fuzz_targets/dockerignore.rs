//! `.dockerignore` matching. Input: the patterns, then optionally a NUL byte and the
//! paths to ask about, one per line. Without a NUL, every pattern line is also asked
//! about as a path, and so are a few fixed paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_context::DockerIgnore;

#[path = "common.rs"]
mod common;

const PATHS: &[&str] = &[
    "Dockerfile",
    ".dockerignore",
    "a/b/c.txt",
    "build/out/app",
    "src/debug.log",
    "./x/../y",
    "../up",
    "/abs/path",
    "",
    ".",
    "dir/",
    "日本/é.txt",
];

fuzz_target!(|data: &[u8]| {
    let (patterns, rest) = common::split(data);
    let ignore = DockerIgnore::parse(&patterns);
    let _ = ignore.has_exclusions();
    let asked = rest.as_deref().unwrap_or(&patterns);
    for path in asked.lines().chain(PATHS.iter().copied()) {
        let _ = ignore.excludes(path);
    }
});
