//! Packing a directory as a build context.

use crate::DockerIgnore;
use bytes::Bytes;
use cap_std::fs::{Dir, PermissionsExt};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {path} does not exist or is not a directory")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path:?} is outside the run's source: {why}")]
    Outside { path: String, why: String },
    #[error("{path} is larger than {limit} bytes (the limit)")]
    TooLarge { path: String, limit: u64 },
}

/// The largest `.dockerignore` read (Docker's CLI reads any size; a few MiB holds any
/// real one, and the rules are matched against every path of the context).
pub const MAX_IGNORE_BYTES: u64 = 4 << 20;

/// The ignore rules for a build: `<Dockerfile>.dockerignore` beside the Dockerfile
/// when there is one, else `.dockerignore` at the context root. Read through `dir`,
/// so neither name can reach outside it.
pub fn context_ignore(dir: &Dir, dockerfile: &str) -> Result<DockerIgnore, ContextError> {
    let dockerfile = if dockerfile.is_empty() { "Dockerfile" } else { dockerfile };
    for candidate in [format!("{dockerfile}.dockerignore"), ".dockerignore".to_string()] {
        match crate::read_regular(dir, &candidate, MAX_IGNORE_BYTES) {
            Ok(data) => return Ok(DockerIgnore::parse(&String::from_utf8_lossy(&data))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::beneath::refused(&candidate, e)),
        }
    }
    Ok(DockerIgnore::default())
}

/// The fixed modification time of every entry, as Docker's deterministic archives use.
const MTIME: u64 = 1_153_704_088;

fn header(kind: tar::EntryType, size: u64, executable: bool) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if executable || kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// What a packed context holds besides the directory's own files.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// Paths of the directory sent with this content instead (a Dockerfile rewritten
    /// for the run).
    pub replaced: Vec<(String, Vec<u8>)>,
    /// Files from outside the directory sent under paths of their own (what the daemon
    /// fetched for a Dockerfile's `ADD URL`), mode 0600 as `ADD` leaves a download. The
    /// directory's own entries under their first component are left out.
    pub added: Vec<(String, PathBuf)>,
}

impl Overlay {
    pub fn replacing(replaced: Vec<(String, Vec<u8>)>) -> Overlay {
        Overlay {
            replaced,
            ..Default::default()
        }
    }

    /// Whether `rel` is beneath a top-level name the added files take.
    fn shadows(&self, rel: &str) -> bool {
        let top = |p: &str| p.trim_start_matches("./").split('/').next().unwrap_or("").to_string();
        let rel_top = top(rel);
        self.added.iter().any(|(p, _)| top(p) == rel_top)
    }
}

/// Writes the directory `dir` as a tar archive to `out`, leaving out what `ignore`
/// excludes except the paths in `always` (the Dockerfile and `.dockerignore`, as Docker
/// keeps them), with the content `overlay` gives for some paths and its added files. Every file is opened relative to `dir` and symlinks are
/// stored as links, never followed, so nothing outside `dir` is read whatever the tree
/// holds. Entries are sorted and stamped alike, so archives are stable.
pub fn write_tar(dir: &Dir, ignore: &DockerIgnore, always: &[String], overlay: &Overlay, out: impl Write) -> Result<(), ContextError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContextError::Io { path, source }
    };
    let mut tar = tar::Builder::new(out);
    let walk_excluded = ignore.has_exclusions();
    let mut stack = vec![(PathBuf::new(), dir.try_clone().map_err(io_err(Path::new(".")))?)];
    while let Some((rel_dir, here)) = stack.pop() {
        let mut entries: Vec<_> = here
            .entries()
            .map_err(io_err(&rel_dir))?
            .collect::<Result<_, _>>()
            .map_err(io_err(&rel_dir))?;
        entries.sort_by_key(|e| e.file_name());
        // Directories are pushed in reverse so they are visited in order.
        let mut subdirs = Vec::new();
        for entry in entries {
            let name = entry.file_name();
            let rel = rel_dir.join(&name);
            let rel_str = rel.to_string_lossy().replace('\\', "/");
            let file_type = entry.file_type().map_err(io_err(&rel))?;
            let excluded = (ignore.excludes(&rel_str) && !always.iter().any(|a| a == &rel_str)) || overlay.shadows(&rel_str);
            if file_type.is_dir() {
                if !excluded {
                    tar.append_data(&mut header(tar::EntryType::Directory, 0, true), &rel, io::empty())
                        .map_err(io_err(&rel))?;
                }
                if !excluded || walk_excluded {
                    subdirs.push((rel.clone(), entry.open_dir().map_err(io_err(&rel))?));
                }
            } else if excluded {
                continue;
            } else if let Some((_, content)) = overlay.replaced.iter().find(|(p, _)| clean(p) == rel_str) {
                let mut h = header(tar::EntryType::Regular, content.len() as u64, false);
                tar.append_data(&mut h, &rel, &content[..]).map_err(io_err(&rel))?;
            } else if file_type.is_symlink() {
                let target = here.read_link_contents(&name).map_err(io_err(&rel))?;
                tar.append_link(&mut header(tar::EntryType::Symlink, 0, false), &rel, target)
                    .map_err(io_err(&rel))?;
            } else if file_type.is_file() {
                let file = entry.open().map_err(io_err(&rel))?;
                let meta = file.metadata().map_err(io_err(&rel))?;
                let executable = meta.permissions().mode() & 0o111 != 0;
                let mut h = header(tar::EntryType::Regular, meta.len(), executable);
                tar.append_data(&mut h, &rel, file.into_std()).map_err(io_err(&rel))?;
            }
            // Sockets, pipes and devices are not part of a build context.
        }
        stack.extend(subdirs.into_iter().rev());
    }
    let mut made_dirs: Vec<PathBuf> = Vec::new();
    for (rel, host) in &overlay.added {
        let rel = PathBuf::from(clean(rel));
        for dir in rel
            .ancestors()
            .skip(1)
            .filter(|d| !d.as_os_str().is_empty())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if !made_dirs.iter().any(|m| m == dir) {
                tar.append_data(&mut header(tar::EntryType::Directory, 0, true), dir, io::empty())
                    .map_err(io_err(dir))?;
                made_dirs.push(dir.to_path_buf());
            }
        }
        let file = std::fs::File::open(host).map_err(io_err(host))?;
        let len = file.metadata().map_err(io_err(host))?.len();
        let mut h = header(tar::EntryType::Regular, len, false);
        h.set_mode(0o600);
        tar.append_data(&mut h, &rel, file).map_err(io_err(&rel))?;
    }
    tar.finish().map_err(io_err(Path::new(".")))?;
    Ok(())
}

/// A path as the walk spells it: no `./`, no trailing or doubled `/`.
fn clean(path: &str) -> String {
    path.split('/').filter(|p| !p.is_empty() && *p != ".").collect::<Vec<_>>().join("/")
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
    dir: Dir,
    ignore: DockerIgnore,
    always: Vec<String>,
    overlay: Overlay,
) -> impl futures_core::Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write_tar(&dir, &ignore, &always, &overlay, &mut writer).and_then(|_| {
            writer.flush().map_err(|source| ContextError::Io {
                path: PathBuf::from("."),
                source,
            })
        });
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

    fn open(dir: &Path) -> Dir {
        Dir::open_ambient_dir(dir, cap_std::ambient_authority()).unwrap()
    }

    fn names(dir: &Path, ignore: &DockerIgnore, always: &[String]) -> Vec<String> {
        let mut buf = Vec::new();
        write_tar(&open(dir), ignore, always, &Overlay::default(), &mut buf).unwrap();
        let mut ar = tar::Archive::new(&buf[..]);
        ar.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().trim_end_matches('/').to_string())
            .collect()
    }

    #[test]
    fn added_files_take_their_top_level_name_from_the_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.txt"), "a").unwrap();
        std::fs::create_dir_all(d.path().join(".fetched/0")).unwrap();
        std::fs::write(d.path().join(".fetched/0/r.tgz"), "the context's").unwrap();
        let host = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(host.path(), "the daemon's").unwrap();
        let overlay = Overlay {
            added: vec![(".fetched/0/r.tgz".into(), host.path().to_path_buf())],
            ..Default::default()
        };
        let mut buf = Vec::new();
        write_tar(&open(d.path()), &DockerIgnore::default(), &[], &overlay, &mut buf).unwrap();
        let mut ar = tar::Archive::new(&buf[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            seen.push((path, text, e.header().mode().unwrap()));
        }
        assert_eq!(
            seen,
            [
                ("a.txt".to_string(), "a".to_string(), 0o644),
                (".fetched".to_string(), String::new(), 0o755),
                (".fetched/0".to_string(), String::new(), 0o755),
                (".fetched/0/r.tgz".to_string(), "the daemon's".to_string(), 0o600),
            ]
        );
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
    fn a_replaced_file_goes_with_its_new_content() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/Dockerfile"), "FROM old\n").unwrap();
        let mut buf = Vec::new();
        let replaced = vec![("./sub//Dockerfile".to_string(), b"FROM new\n".to_vec())];
        write_tar(
            &open(d.path()),
            &DockerIgnore::default(),
            &[],
            &Overlay::replacing(replaced),
            &mut buf,
        )
        .unwrap();
        let mut ar = tar::Archive::new(&buf[..]);
        let mut entry = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_string_lossy() == "sub/Dockerfile")
            .unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
        assert_eq!(text, "FROM new\n");
    }

    #[test]
    fn per_dockerfile_ignore_wins() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".dockerignore"), "a\n").unwrap();
        std::fs::write(d.path().join("app.Dockerfile.dockerignore"), "b\n").unwrap();
        assert!(context_ignore(&open(d.path()), "app.Dockerfile").unwrap().excludes("b"));
        assert!(context_ignore(&open(d.path()), "Dockerfile").unwrap().excludes("a"));
    }

    #[tokio::test]
    async fn streams_in_chunks() {
        use futures_util::StreamExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("big"), vec![7u8; 3 * CHUNK]).unwrap();
        let chunks: Vec<_> = tar_stream(open(d.path()), DockerIgnore::default(), vec![], Overlay::default())
            .collect()
            .await;
        assert!(chunks.len() >= 3);
        let total: usize = chunks.iter().map(|c| c.as_ref().unwrap().len()).sum();
        assert!(total > 3 * CHUNK);
    }
}
