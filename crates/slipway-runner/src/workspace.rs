//! How much a run's workspace holds on disk, looked at every few seconds while it runs,
//! so one run's steps cannot fill the daemon's disk.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// How often the workspace is measured.
const EVERY: Duration = Duration::from_secs(5);
/// Entries measured at most per look: a workspace of more is measured by its first ones.
const MAX_ENTRIES: usize = 2_000_000;

/// Resolves with what `dir` holds once that is more than `max` bytes; never without one.
pub(crate) async fn overfull(dir: PathBuf, max: Option<u64>) -> u64 {
    let Some(max) = max else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(EVERY).await;
        let d = dir.clone();
        // A walk of a large tree is blocking work; it never runs on the runtime.
        let held = tokio::task::spawn_blocking(move || disk_usage(&d, max)).await.unwrap_or(0);
        if held > max {
            return held;
        }
    }
}

/// The bytes the tree at `dir` takes on disk (blocks, so a sparse file counts what it
/// holds; a file of several links once), stopping once past `stop_after`.
pub(crate) fn disk_usage(dir: &std::path::Path, stop_after: u64) -> u64 {
    let mut total = 0u64;
    let mut seen_links = HashSet::new();
    let mut pending = vec![dir.to_path_buf()];
    let mut entries = 0usize;
    while let Some(d) = pending.pop() {
        let Ok(list) = std::fs::read_dir(&d) else { continue };
        for e in list.flatten() {
            entries += 1;
            if entries > MAX_ENTRIES || total > stop_after {
                return total;
            }
            // Never followed: a link counts as itself.
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else { continue };
            if meta.nlink() > 1 && !meta.is_dir() && !seen_links.insert((meta.dev(), meta.ino())) {
                continue;
            }
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                pending.push(e.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_counted_once_and_holes_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), vec![1u8; 1 << 20]).unwrap();
        std::fs::hard_link(dir.path().join("sub/a"), dir.path().join("b")).unwrap();
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(10 << 30).unwrap();
        let held = disk_usage(dir.path(), u64::MAX);
        assert!((1 << 20..3 << 20).contains(&held), "{held}");
        assert!(disk_usage(dir.path(), 1000) <= 3 << 20);
    }
}
