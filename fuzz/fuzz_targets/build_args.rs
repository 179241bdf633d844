//! A `build:` step's arguments, read as `docker build` reads its command line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = slipway_taskfile::build_args::parse(&text);
});
