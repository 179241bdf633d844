//! Upload checking: `archive::check` over an untrusted `.tar.gz`, with small limits so
//! a bomb is an `Err`, not an OOM. The first byte chooses how the rest is fed: bit 0
//! clear, as it is (the gzip layer is fuzzed); set, wrapped in gzip here first (the
//! tar layer and the entry checks are fuzzed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_context::archive::{check, Limits};
use std::io::Write;

const LIMITS: Limits = Limits {
    max_bytes: 16 << 20,
    max_entries: 10_000,
    max_resolve_steps: 2_000_000,
};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let result = if flags & 1 == 0 {
        check(body, &LIMITS)
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() + 64), flate2::Compression::none());
        gz.write_all(body).expect("writes to a Vec");
        let wrapped = gz.finish().expect("writes to a Vec");
        check(&wrapped[..], &LIMITS)
    };
    if let Err(e) = result {
        let _ = e.to_string();
    }
});
