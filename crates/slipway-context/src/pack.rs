//! Packing a directory as a build context.

use crate::DockerIgnore;
use bytes::Bytes;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {path} does not exist or is not a directory")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The ignore rules for a build: `<Dockerfile>.dockerignore` beside the Dockerfile
/// when there is one, else `.dockerignore` at the context root.
pub fn context_ignore(dir: &Path, dockerfile: &str) -> Result<DockerIgnore, ContextError> {
    if !dir.is_dir() {
        return Err(ContextError::Missing { path: dir.to_path_buf() });
    }
    let dockerfile = if dockerfile.is_empty() { "Dockerfile" } else { dockerfile };
    for candidate in [dir.join(format!("{dockerfile}.dockerignore")), dir.join(".dockerignore")] {
        match std::fs::read_to_string(&candidate) {
            Ok(text) => return Ok(DockerIgnore::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ContextError::Io { path: candidate, source }),
        }
    }
    Ok(DockerIgnore::default())
}

/// Writes `dir` as a tar archive to `out`, leaving out what `ignore` excludes except
/// the paths in `always` (the Dockerfile and `.dockerignore`, as Docker keeps them).
/// Symlinks are stored as links, not followed. Entries are sorted, so archives are stable.
pub fn write_tar(dir: &Path, ignore: &DockerIgnore, always: &[String], out: impl Write) -> Result<(), ContextError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContextError::Io { path, source }
    };
    if !dir.is_dir() {
        return Err(ContextError::Missing { path: dir.to_path_buf() });
    }
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Deterministic);
    let walk_excluded = ignore.has_exclusions();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let abs = dir.join(&rel_dir);
        let mut entries: Vec<_> = std::fs::read_dir(&abs)
            .map_err(io_err(&abs))?
            .collect::<Result<_, _>>()
            .map_err(io_err(&abs))?;
        entries.sort_by_key(|e| e.file_name());
        // Directories are pushed in reverse so they are visited in order.
        let mut subdirs = Vec::new();
        for entry in entries {
            let rel = rel_dir.join(entry.file_name());
            let rel_str = rel.to_string_lossy().replace('\\', "/");
            let file_type = entry.file_type().map_err(io_err(&entry.path()))?;
            let excluded = ignore.excludes(&rel_str) && !always.iter().any(|a| a == &rel_str);
            if file_type.is_dir() {
                if !excluded {
                    tar.append_path_with_name(entry.path(), &rel).map_err(io_err(&entry.path()))?;
                }
                if !excluded || walk_excluded {
                    subdirs.push(rel);
                }
            } else if !excluded {
                tar.append_path_with_name(entry.path(), &rel).map_err(io_err(&entry.path()))?;
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    tar.finish().map_err(io_err(dir))?;
    Ok(())
}

/// Sends what it is given through a bounded channel, blocking when the reader lags.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "context reader went away"))
    }
}

/// Streams `dir` as a tar archive. At most a few chunks are in memory at once.
pub fn tar_stream(
    dir: PathBuf,
    ignore: DockerIgnore,
    always: Vec<String>,
) -> impl futures_core::Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write_tar(&dir, &ignore, &always, &mut writer)
            .and_then(|_| writer.flush().map_err(|source| ContextError::Io { path: dir.clone(), source }));
        if let Err(e) = result {
            tracing::warn!(error = %e, "packing the build context failed");
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    ReceiverStream(rx)
}

struct ReceiverStream(mpsc::Receiver<Result<Bytes, io::Error>>);

impl futures_core::Stream for ReceiverStream {
    type Item = Result<Bytes, io::Error>;
    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path, ignore: &DockerIgnore, always: &[String]) -> Vec<String> {
        let mut buf = Vec::new();
        write_tar(dir, ignore, always, &mut buf).unwrap();
        let mut ar = tar::Archive::new(&buf[..]);
        ar.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().trim_end_matches('/').to_string())
            .collect()
    }

    #[test]
    fn packs_what_dockerignore_keeps() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "Dockerfile",
            "a.txt",
            "b.log",
            "keep.log",
            "sub/c.log",
            "node_modules/x/y.js",
            ".dockerignore",
        ] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f).unwrap();
        }
        std::os::unix::fs::symlink("a.txt", d.path().join("link")).unwrap();
        let ignore = DockerIgnore::parse("*.log\n!keep.log\nnode_modules\n.dockerignore\nDockerfile\n");
        let always = vec!["Dockerfile".to_string(), ".dockerignore".to_string()];
        assert_eq!(
            names(d.path(), &ignore, &always),
            [".dockerignore", "Dockerfile", "a.txt", "keep.log", "link", "sub", "sub/c.log"]
        );
    }

    #[test]
    fn per_dockerfile_ignore_wins() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".dockerignore"), "a\n").unwrap();
        std::fs::write(d.path().join("app.Dockerfile.dockerignore"), "b\n").unwrap();
        assert!(context_ignore(d.path(), "app.Dockerfile").unwrap().excludes("b"));
        assert!(context_ignore(d.path(), "Dockerfile").unwrap().excludes("a"));
        assert!(matches!(
            context_ignore(&d.path().join("nope"), ""),
            Err(ContextError::Missing { .. })
        ));
    }

    #[tokio::test]
    async fn streams_in_chunks() {
        use futures_util::StreamExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("big"), vec![7u8; 3 * CHUNK]).unwrap();
        let chunks: Vec<_> = tar_stream(d.path().to_path_buf(), DockerIgnore::default(), vec![]).collect().await;
        assert!(chunks.len() >= 3);
        let total: usize = chunks.iter().map(|c| c.as_ref().unwrap().len()).sum();
        assert!(total > 3 * CHUNK);
    }
}
