//! Helpers that several crates' tests share, and nothing else uses: where acb's
//! conformance fixtures are, and tar entries written byte by byte (the `tar` crate
//! refuses to write the hostile ones tests need). A dev-dependency only; no crate's
//! library depends on it.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `shared/conformance/acb` beside the repository, or the path it was looked for at.
/// In CI (`CI=true`) its absence fails the test; elsewhere the caller skips, loudly.
pub fn conformance_dir() -> Result<PathBuf, PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/acb");
    if dir.is_dir() {
        return Ok(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("shared/conformance/acb is missing beside the repository; CI must have it");
    }
    Err(dir)
}

/// A raw 512-byte ustar header for `name` of entry type `kind` (b'0' file, b'2'
/// symlink, …) linking to `link`, with `size` as 11 octal digits and a NUL.
pub fn raw_header(name: &str, kind: u8, link: &str, size: &[u8; 12]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(size);
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h.to_vec()
}

/// An entry with no content.
pub fn raw_entry(name: &str, kind: u8, link: &str) -> Vec<u8> {
    raw_header(name, kind, link, b"00000000000\0")
}

/// Raw tar bytes ended as tar ends them, then gzipped.
pub fn gzip_tar(entries: &[u8]) -> Vec<u8> {
    let mut out = entries.to_vec();
    out.extend_from_slice(&[0u8; 1024]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&out).expect("writing to memory");
    gz.finish().expect("writing to memory")
}
