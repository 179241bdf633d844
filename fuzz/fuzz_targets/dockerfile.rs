//! The Dockerfile dependency scan. Input: the Dockerfile, then optionally a NUL byte and
//! scan options, one per line: `target=NAME` sets `--target`, any other `K=V` (or `K`)
//! is a `--build-arg`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_dockerfile::{report, scan, ScanOptions};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (text, rest) = common::split(data);
    let mut opts = ScanOptions::default();
    for line in rest.as_deref().unwrap_or("").lines() {
        match line.split_once('=') {
            Some(("target", t)) => opts.target = Some(t.to_string()),
            Some((k, v)) => {
                opts.build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                opts.build_args.insert(line.to_string(), String::new());
            }
        }
    }
    match scan(&text, &opts) {
        Ok(deps) => {
            // What the daemon records: references printed and reported as JSON.
            let images: Vec<_> = deps.runtime.iter().chain(&deps.buildtime).cloned().collect();
            for r in &images {
                let _ = r.to_string();
            }
            let _ = report(&deps, &images).to_string();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
