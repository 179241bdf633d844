//! Paths an untrusted task names (a build context, a Dockerfile, a task or values
//! file, a git subfolder) resolved beneath the run's source, whatever symlinks the
//! source holds. Every open goes through a `cap_std` directory handle, which refuses
//! absolute paths, `..` past the root and symlinks that lead out, at each step of the
//! resolution (no string check can see a chain of links that are each "inside").

use crate::ContextError;
use cap_std::fs::Dir;
use std::path::{Path, PathBuf};

/// A directory that everything is resolved beneath.
pub struct Beneath {
    dir: Dir,
    root: PathBuf,
}

/// What an error opening `rel` beneath a directory means: missing, or outside.
pub(crate) fn refused(rel: &str, e: std::io::Error) -> ContextError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ContextError::Io {
            path: PathBuf::from(rel),
            source: e,
        },
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Other => ContextError::Outside {
            path: rel.to_string(),
            why: "paths must stay inside the source (no absolute paths, no '..' above it, no symlinks that lead out)".into(),
        },
        _ => ContextError::Io {
            path: PathBuf::from(rel),
            source: e,
        },
    }
}

/// `""` and `"."` name the root itself.
fn rel_path(rel: &str) -> &Path {
    if rel.is_empty() {
        Path::new(".")
    } else {
        Path::new(rel)
    }
}

impl Beneath {
    /// Opens `root` (an ordinary path: the caller chose it, the task did not).
    pub fn open(root: &Path) -> Result<Beneath, ContextError> {
        let dir =
            Dir::open_ambient_dir(root, cap_std::ambient_authority()).map_err(|_| ContextError::Missing { path: root.to_path_buf() })?;
        Ok(Beneath {
            dir,
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory `rel` beneath the root.
    pub fn dir(&self, rel: &str) -> Result<Dir, ContextError> {
        if rel.starts_with('/') {
            return Err(refused(rel, std::io::Error::from(std::io::ErrorKind::PermissionDenied)));
        }
        self.dir.open_dir(rel_path(rel)).map_err(|e| refused(rel, e))
    }

    /// Where `rel` really is on the host, symlinks resolved, for a bind mount. It is
    /// beneath the root now; a run's own steps cannot move the root itself.
    pub fn real_path(&self, rel: &str) -> Result<PathBuf, ContextError> {
        if rel.starts_with('/') {
            return Err(refused(rel, std::io::Error::from(std::io::ErrorKind::PermissionDenied)));
        }
        let inside = self.dir.canonicalize(rel_path(rel)).map_err(|e| refused(rel, e))?;
        Ok(self.root.join(inside))
    }

    /// Reads the text file `rel` beneath the root, refusing files over `max_bytes`.
    pub fn read_to_string(&self, rel: &str, max_bytes: u64) -> Result<String, ContextError> {
        if rel.starts_with('/') {
            return Err(refused(rel, std::io::Error::from(std::io::ErrorKind::PermissionDenied)));
        }
        let path = rel_path(rel).to_string_lossy().to_string();
        let data = crate::read_regular(&self.dir, &path, max_bytes).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => ContextError::TooLarge {
                path: rel.to_string(),
                limit: max_bytes,
            },
            std::io::ErrorKind::Unsupported => ContextError::Io {
                path: PathBuf::from(rel),
                source: e,
            },
            _ => refused(rel, e),
        })?;
        String::from_utf8(data).map_err(|_| ContextError::Io {
            path: PathBuf::from(rel),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_resolves_outside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("src");
        std::fs::create_dir_all(root.join("sub/inner")).unwrap();
        std::fs::write(root.join("sub/file"), "ok").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("escape")).unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
        std::os::unix::fs::symlink("up/up", root.join("sub/chain")).unwrap();
        std::os::unix::fs::symlink("../sub/inner", root.join("sub/fine")).unwrap();
        let b = Beneath::open(&root).unwrap();
        assert_eq!(b.read_to_string("sub/file", 10).unwrap(), "ok");
        assert_eq!(b.read_to_string("sub/up/sub/file", 10).unwrap(), "ok");
        assert!(b.dir("sub/fine").is_ok());
        assert_eq!(b.real_path("sub/fine").unwrap(), root.join("sub/inner"));
        for bad in [
            "../x",
            "/etc",
            "escape",
            "escape/secret",
            "sub/chain",
            "sub/../../x",
            "sub/chain/secret",
        ] {
            let e = b.dir(bad).err().or_else(|| b.read_to_string(bad, 10).err()).unwrap();
            assert!(matches!(e, ContextError::Outside { .. } | ContextError::Io { .. }), "{bad}: {e}");
            assert!(b.read_to_string(bad, 10).is_err(), "{bad}");
            assert!(b.real_path(bad).map(|p| p.starts_with(&root)).unwrap_or(true), "{bad}");
        }
        assert!(matches!(b.read_to_string("escape/secret", 10), Err(ContextError::Outside { .. })));
        assert!(matches!(b.read_to_string("sub/file", 1), Err(ContextError::TooLarge { .. })));
    }
}
