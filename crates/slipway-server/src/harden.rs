//! The data dir mounted `nodev,nosuid` over itself: the workspaces and run volumes
//! steps get are bind mounts from it, and a bind mount keeps its source mount's flags
//! (measured on this engine: a bind volume's own `o=nodev,nosuid` is ignored, moby
//! applies only `ro` again). So a device file a step makes, or a set-uid program it
//! leaves, is inert in every container and on the host.

use anyhow::Context as _;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// A mount this daemon made, undone when the daemon stops.
pub struct Hardened(Option<PathBuf>);

impl Drop for Hardened {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if let Err(e) = umount2(&dir, MntFlags::MNT_DETACH) {
                tracing::warn!(dir = %dir.display(), error = %e, "unmounting the data dir failed");
            }
        }
    }
}

/// Mounts `dir` over itself `nodev,nosuid` unless a mount there already is.
pub fn data_dir(dir: &Path) -> anyhow::Result<Hardened> {
    if already(dir) {
        return Ok(Hardened(None));
    }
    let refused = |e: nix::Error| {
        anyhow::anyhow!(
            "cannot mount the data dir {} nodev,nosuid ({e}): run the daemon as root, or set harden_data_dir = false to let steps leave device files and set-uid programs in it",
            dir.display()
        )
    };
    mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(refused)?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
    if let Err(e) = mount(None::<&str>, dir, None::<&str>, flags, None::<&str>) {
        let _ = umount2(dir, MntFlags::MNT_DETACH);
        return Err(refused(e));
    }
    tracing::info!(dir = %dir.display(), "data dir mounted nodev,nosuid");
    Ok(Hardened(Some(dir.to_path_buf())))
}

/// Whether `dir` is already a mount point with both flags (a restart after a crash).
fn already(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo").context("mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        fields.get(4).is_some_and(|m| Path::new(m) == dir)
            && fields
                .get(5)
                .is_some_and(|o| o.split(',').any(|f| f == "nodev") && o.split(',').any(|f| f == "nosuid"))
    })
}

/// Raises this process's soft limit of open files to its hard limit: every run's engine
/// socket, log follower and API connection holds one, and the default soft limit
/// (1,024 on many systems) is far below what the hard limit allows. Returns the limit.
pub fn open_files() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            tracing::warn!(soft, hard, error = %e, "raising the open-files limit failed");
            return Some(soft);
        }
    }
    Some(hard)
}
