//! Reading a file of a run's source that a step may have replaced: never waiting on
//! it, never reading more than asked.
//!
//! A step can leave a FIFO where a build expects its Dockerfile (`open()` would wait for
//! a writer, and the thread with it), or a device (`/dev/zero` reads forever). Every
//! such file is opened with `O_NONBLOCK`, checked to be a regular file on the handle
//! it was opened as (no race with a rename), and read only up to its limit.

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use std::io::{self, Read};

/// The contents of the regular file `path` beneath `dir`, at most `max_bytes` of them:
/// `NotFound` as the open reports it, an error naming what the file is otherwise.
pub fn read_regular(dir: &Dir, path: &str, max_bytes: u64) -> io::Result<Vec<u8>> {
    let mut options = OpenOptions::new();
    options.read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    let file = dir.open_with(path, &options)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_symlink() {
            "a link"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(io::Error::new(io::ErrorKind::Unsupported, format!("{path} is {what}")));
    }
    let mut data = Vec::new();
    file.into_std().take(max_bytes + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} is larger than {max_bytes} bytes (the limit)"),
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn fifos_devices_and_huge_files_are_refused_at_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ok"), "FROM a\n").unwrap();
        std::fs::write(d.path().join("big"), vec![b'x'; 2000]).unwrap();
        let fifo = std::ffi::CString::new(d.path().join("fifo").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        std::os::unix::fs::symlink("/dev/zero", d.path().join("zero")).unwrap();
        let dir = Dir::open_ambient_dir(d.path(), cap_std::ambient_authority()).unwrap();
        assert_eq!(read_regular(&dir, "ok", 100).unwrap(), b"FROM a\n");
        let started = std::time::Instant::now();
        let e = read_regular(&dir, "fifo", 100).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // A link out of the directory is refused by the handle; a device, by its type.
        assert!(read_regular(&dir, "zero", 100).is_err());
        let e = read_regular(&dir, "big", 1000).unwrap_err();
        assert!(e.to_string().contains("larger than 1000"), "{e}");
        assert_eq!(read_regular(&dir, "missing", 10).unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
