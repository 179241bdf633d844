//! Context uploads: streamed to disk, then checked entry by entry before anything
//! uses them. Nothing is ever written outside the data directory.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("upload is not a gzip-compressed tar archive: {0}")]
    NotGzip(String),
    #[error("upload is not a tar archive: {0}")]
    NotTar(String),
    #[error("upload entry {entry:?} is refused: {why}")]
    BadEntry { entry: String, why: String },
    #[error("upload was interrupted: {0}")]
    Interrupted(String),
    #[error("cannot store the upload: {0}")]
    Io(#[from] std::io::Error),
}

impl UploadError {
    pub fn status(&self) -> u16 {
        match self {
            UploadError::TooLarge { .. } => 413,
            UploadError::Io(_) => 500,
            _ => 400,
        }
    }
}

pub fn archive_path(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("uploads").join(format!("{id}.tar.gz"))
}

/// Streams `body` into the data dir, then checks it. Returns the upload's size.
pub async fn receive(
    data_dir: &Path,
    id: &str,
    mut body: impl Stream<Item = Result<Bytes, String>> + Unpin,
    limit: u64,
) -> Result<u64, UploadError> {
    let dir = data_dir.join("uploads");
    tokio::fs::create_dir_all(&dir).await?;
    let part = dir.join(format!("{id}.part"));
    let mut file = tokio::fs::File::create(&part).await?;
    let mut size = 0u64;
    let result: Result<(), UploadError> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(UploadError::Interrupted)?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(UploadError::TooLarge { limit });
            }
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    let check = part.clone();
    let checked = tokio::task::spawn_blocking(move || check_archive(&check))
        .await
        .map_err(|e| UploadError::Interrupted(e.to_string()))?;
    if let Err(e) = checked {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    tokio::fs::rename(&part, archive_path(data_dir, id)).await?;
    Ok(size)
}

/// Lexically resolves `path` under the archive root; `None` if it leaves it.
fn inside(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Walks every entry and refuses absolute paths, `..`, links leaving the context and
/// anything that is not a file, directory or link.
pub fn check_archive(path: &Path) -> Result<(), UploadError> {
    let file = std::fs::File::open(path)?;
    let mut gz = flate2::read::GzDecoder::new(file);
    let mut magic = [0u8; 0];
    // Reading through the decoder reports a bad gzip header as an error.
    gz.read_exact(&mut magic).map_err(|e| UploadError::NotGzip(e.to_string()))?;
    if gz.header().is_none() {
        return Err(UploadError::NotGzip("no gzip header".into()));
    }
    let mut archive = tar::Archive::new(gz);
    let entries = archive.entries().map_err(|e| UploadError::NotTar(e.to_string()))?;
    let mut count = 0usize;
    for entry in entries {
        let entry = entry.map_err(|e| {
            if count == 0 {
                UploadError::NotTar(e.to_string())
            } else {
                UploadError::BadEntry {
                    entry: format!("#{count}"),
                    why: e.to_string(),
                }
            }
        })?;
        count += 1;
        let raw = entry.path_bytes();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let bad = |why: &str| UploadError::BadEntry {
            entry: name.clone(),
            why: why.to_string(),
        };
        let path = PathBuf::from(&name);
        if path.is_absolute() {
            return Err(bad("absolute path"));
        }
        let Some(resolved) = inside(&path) else {
            return Err(bad("path leaves the context (..)"));
        };
        use tar::EntryType::*;
        match entry.header().entry_type() {
            Regular | Directory | Continuous | GNUSparse | XHeader | XGlobalHeader | GNULongName | GNULongLink => {}
            Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(&e.to_string()))?
                    .ok_or_else(|| bad("symlink without a target"))?;
                if target.is_absolute() {
                    return Err(bad("symlink points outside the context (absolute target)"));
                }
                let base = resolved.parent().map(Path::to_path_buf).unwrap_or_default();
                if inside(&base.join(&target)).is_none() {
                    return Err(bad("symlink points outside the context"));
                }
            }
            Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(&e.to_string()))?
                    .ok_or_else(|| bad("hard link without a target"))?;
                if target.is_absolute() || inside(&target).is_none() {
                    return Err(bad("hard link points outside the context"));
                }
            }
            Char | Block => return Err(bad("device files are not allowed")),
            Fifo => return Err(bad("named pipes are not allowed")),
            other => return Err(bad(&format!("entry type {other:?} is not allowed"))),
        }
    }
    if count == 0 {
        // An empty tar is valid: a context with no files.
        tracing::debug!("empty upload");
    }
    Ok(())
}

/// Unpacks a checked archive into `dest`.
pub fn extract(archive: &Path, dest: &Path) -> Result<(), UploadError> {
    check_archive(archive)?;
    std::fs::create_dir_all(dest)?;
    let file = std::fs::File::open(archive)?;
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(file));
    a.set_preserve_permissions(true);
    a.set_overwrite(true);
    for entry in a.entries()? {
        let mut entry = entry?;
        // `unpack_in` refuses paths that would land outside `dest`.
        if !entry.unpack_in(dest)? {
            return Err(UploadError::BadEntry {
                entry: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                why: "path leaves the context".into(),
            });
        }
    }
    Ok(())
}

/// Writes `dir` as a tar.gz to `out` (the client's packing; `.dockerignore` applies).
pub fn pack(dir: &Path, dockerfile: &str, out: impl Write) -> Result<(), slipway_context::ContextError> {
    let ignore = slipway_context::context_ignore(dir, dockerfile)?;
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let always = vec![
        if dockerfile.is_empty() {
            "Dockerfile".to_string()
        } else {
            dockerfile.to_string()
        },
        ".dockerignore".to_string(),
    ];
    slipway_context::write_tar(dir, &ignore, &always, &mut gz)?;
    gz.finish().map_err(|source| slipway_context::ContextError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(build: impl FnOnce(&mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        build(&mut b);
        b.into_inner().unwrap().finish().unwrap()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    fn check(bytes: &[u8]) -> Result<(), UploadError> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("u.tar.gz");
        std::fs::write(&p, bytes).unwrap();
        check_archive(&p)
    }

    /// Writes a raw 512-byte tar header with `name`, bypassing the tar crate's own checks.
    fn raw_entry(name: &str, kind: u8, link: &str) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(b"00000000000\0");
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(&[0u8; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&out).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn good_archives_pass_and_extract() {
        let bytes = tgz(|b| {
            b.append_data(&mut header(tar::EntryType::Regular, 2), "a/b.txt", &b"hi"[..])
                .unwrap();
            let mut l = header(tar::EntryType::Symlink, 0);
            b.append_link(&mut l, "a/link", "b.txt").unwrap();
        });
        assert!(check(&bytes).is_ok());
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("u.tgz"), &bytes).unwrap();
        extract(&d.path().join("u.tgz"), &d.path().join("out")).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("out/a/link")).unwrap(), "hi");
    }

    #[test]
    fn bad_archives_are_refused_naming_the_entry() {
        assert!(matches!(check(b"plain text"), Err(UploadError::NotGzip(_))));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[7u8; 700]).unwrap();
        assert!(matches!(check(&gz.finish().unwrap()), Err(UploadError::NotTar(_))));
        for (name, kind, link, why) in [
            ("/etc/passwd", b'0', "", "absolute"),
            ("a/../../x", b'0', "", ".."),
            ("evil", b'2', "/etc/shadow", "outside"),
            ("sub/evil", b'2', "../../x", "outside"),
            ("hl", b'1', "../x", "outside"),
            ("dev", b'3', "", "device"),
        ] {
            let e = check(&raw_entry(name, kind, link)).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(name) && text.contains(why), "{name}: {text}");
        }
    }
}
