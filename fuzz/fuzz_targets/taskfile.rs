//! Task files: aliases, templates, YAML, validation, the plan, as `load` runs them.
//! Input: the task file, then optionally a NUL byte and a YAML text that is both the
//! values file (`parse_values`) and what every alias `src` file reads as. The first
//! byte's low bits pick the loading options, so the permissive paths are reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_taskfile::{load, parse_values, Options, RunVars};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let flags = data.first().copied().unwrap_or(0);
    let (text, rest) = common::split(data);
    let date = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let mut opts = Options::new(RunVars::new("r1", "reg.io", date));
    opts.template_limits = common::template_limits();
    if flags & 1 != 0 {
        opts.allow_unknown_keys = true;
    }
    if flags & 2 != 0 {
        opts = opts.trusting_host();
        opts.allow_privileged = true;
    }
    opts.secrets.insert("s".into(), "hunter2".into());
    if let Some(values) = &rest {
        if let Ok(v) = parse_values("values.yaml", values) {
            opts.values = v;
        }
    }
    let read = |_name: &str| rest.clone().ok_or_else(|| "no such file".to_string());
    match load("acb.yaml", &text, &opts, &read) {
        // Callers print plans and errors: those must not panic either.
        Ok(loaded) => {
            let _ = format!("{:?}", loaded.plan);
            for w in &loaded.warnings {
                let _ = w.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
