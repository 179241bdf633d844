//! The template engine: any text, rendered against the data a task file sees (or
//! against JSON given after a NUL byte), returns Ok or Err: no panic, OOM or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (text, rest) = common::split(data);
    let dot = rest
        .and_then(|r| serde_json::from_str::<Value>(&r).ok())
        .unwrap_or_else(|| {
            json!({
                "Run": {"ID": "cf1", "Registry": "reg.io", "RegistryName": "reg", "Date": "20260101-000000z",
                        "Branch": "", "Commit": "abc", "SharedVolume": "slipway_vol_cf1"},
                "Values": {"name": "web", "n": 3, "neg": -2, "f": 1.5, "big": 18446744073709551615u64,
                           "list": ["a", "b", 1, null], "flag": true, "none": null,
                           "m": {"y": 2, "x": 1, "l": [[], {}]}, "csv": "a,b,c", "secret": "cGFzcw==",
                           "utf": "日本é", "empty": ""},
                "Secrets": {"s": "hunter2"},
            })
        });
    let _ = slipway_template::render_with(&text, &dot, &common::template_limits());
});
