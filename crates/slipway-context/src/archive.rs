//! Untrusted `.tar.gz` archives (uploaded contexts, downloaded tarballs): checked entry
//! by entry, and unpacked beneath a directory.
//!
//! The walk refuses absolute paths, `..` above the root, links whose target would
//! resolve outside the tree (following the links unpacked so far, so a chain of links
//! that are each lexically inside is caught, and checked again once the tree is
//! complete), device files and pipes, sparse files, and archives that expand past
//! [`Limits`]. Set-uid, set-gid and sticky bits are dropped. Files are created through
//! a `cap_std` directory handle, which cannot be led outside the root whatever the
//! check above missed. GNU long names and pax headers are read here, each capped at
//! 64 KiB, instead of by the `tar` crate, which would read any size into memory.

use cap_std::fs::{Dir, Permissions, PermissionsExt};
use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// How big an archive may be once expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of all entries' contents together.
    pub max_bytes: u64,
    /// Entries of every kind.
    pub max_entries: u64,
    /// Path components resolving entries through the archive's links may walk, over
    /// the whole archive (an entry costs its depth; links that expand into long paths,
    /// named by many entries, would otherwise cost hours).
    pub max_resolve_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 8 << 30,
            max_entries: 500_000,
            max_resolve_steps: 20_000_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a gzip-compressed tar archive: {0}")]
    NotGzip(String),
    #[error("not a tar archive: {0}")]
    NotTar(String),
    #[error("entry {entry} is refused: {why}")]
    BadEntry { entry: String, why: String },
    #[error("the archive expands to more than {limit} bytes (the limit, max_context_bytes)")]
    TooLarge { limit: u64 },
    #[error("the archive has more than {limit} entries (the limit, max_context_entries)")]
    TooManyEntries { limit: u64 },
    #[error("cannot unpack the archive: {0}")]
    Io(#[from] io::Error),
}

/// What an archive held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub bytes: u64,
}

/// Checks a whole `.tar.gz` without writing anything.
pub fn check(reader: impl Read, limits: &Limits) -> Result<Summary, ArchiveError> {
    walk(reader, limits, None)
}

/// Checks and unpacks a `.tar.gz` beneath `into`. On an error, what was written so far
/// stays for the caller to remove.
pub fn unpack(reader: impl Read, limits: &Limits, into: &Dir) -> Result<Summary, ArchiveError> {
    walk(reader, limits, Some(into))
}

/// A message fit to show: control characters escaped, cut short.
pub fn printable_message(text: &str) -> String {
    let out: String = text.chars().take(300).flat_map(char::escape_debug).collect();
    out.replace("\\\"", "\"").replace("\\'", "'")
}

/// An entry name fit for a message: escaped, and cut short.
pub fn printable(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    let mut out: String = text.chars().take(200).flat_map(char::escape_debug).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// Counts what the decompressor yields, as a backstop to the per-entry sizes.
struct Counted<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other("expanded size limit"));
        }
        Ok(n)
    }
}

/// The tree as unpacking would leave it, so a path can be resolved through the links
/// the archive made before it. Links are found by a hash of their path's components,
/// extended one component at a time, so resolving a path costs time linear in its
/// length (building and hashing every prefix was quadratic: a 32,000-component pax
/// path took seconds).
struct Tree {
    links: HashMap<u64, Vec<(PathBuf, PathBuf)>>,
    files: HashSet<PathBuf>,
    /// Path components the whole archive may make `resolve` walk: links that expand
    /// into long paths, named by many entries, would otherwise cost hours.
    budget: std::cell::Cell<u64>,
}

impl Tree {
    fn new(budget: u64) -> Tree {
        Tree {
            links: HashMap::new(),
            files: HashSet::new(),
            budget: std::cell::Cell::new(budget),
        }
    }
}

/// Longest symlink target, in components.
const MAX_LINK_COMPONENTS: usize = 256;

const MAX_HOPS: usize = 40;
const MAX_EXTENSION: u64 = 64 * 1024;

fn extend(prefix: u64, part: &std::ffi::OsStr) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    prefix.hash(&mut h);
    part.hash(&mut h);
    h.finish()
}

fn path_hash(path: &Path) -> u64 {
    path.components().fold(0, |h, c| extend(h, c.as_os_str()))
}

impl Tree {
    fn link(&self, hash: u64, path: &[OsString]) -> Option<&PathBuf> {
        let candidates = self.links.get(&hash)?;
        candidates
            .iter()
            .find(|(at, _)| at.components().map(|c| c.as_os_str()).eq(path.iter().map(|p| p.as_os_str())))
            .map(|(_, target)| target)
    }

    fn add_link(&mut self, at: &Path, target: &Path) {
        self.remove_link(at);
        self.links
            .entry(path_hash(at))
            .or_default()
            .push((at.to_path_buf(), target.to_path_buf()));
    }

    fn remove_link(&mut self, at: &Path) {
        if let Some(list) = self.links.get_mut(&path_hash(at)) {
            list.retain(|(p, _)| p != at);
        }
    }

    /// Why a path did not resolve: out of budget, or `why`.
    fn refusal(&self, bad: &dyn Fn(&str) -> ArchiveError, why: &str) -> ArchiveError {
        if self.budget.get() == 0 {
            bad("the archive's links take too long to resolve (the limit)")
        } else {
            bad(why)
        }
    }

    fn all_links(&self) -> impl Iterator<Item = &(PathBuf, PathBuf)> {
        self.links.values().flatten()
    }

    /// `path` with every link followed; `None` if it leads outside the root or loops.
    fn resolve(&self, path: &Path) -> Option<PathBuf> {
        let mut out: Vec<OsString> = Vec::new();
        // hashes[k] is the hash of out[..=k].
        let mut hashes: Vec<u64> = Vec::new();
        let mut queue: VecDeque<OsString> = VecDeque::new();
        for c in path.components() {
            match c {
                Component::Normal(n) => queue.push_back(n.to_os_string()),
                Component::CurDir => {}
                Component::ParentDir => queue.push_back("..".into()),
                Component::RootDir | Component::Prefix(_) => return None,
            }
        }
        let mut hops = 0;
        while let Some(part) = queue.pop_front() {
            let left = self.budget.get();
            if left == 0 {
                return None;
            }
            self.budget.set(left - 1);
            if part == ".." {
                out.pop()?;
                hashes.pop();
                continue;
            }
            let hash = extend(hashes.last().copied().unwrap_or(0), &part);
            out.push(part);
            hashes.push(hash);
            if let Some(target) = self.link(hash, &out) {
                hops += 1;
                if hops > MAX_HOPS || target.is_absolute() {
                    return None;
                }
                out.pop();
                hashes.pop();
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => queue.push_front(n.to_os_string()),
                        Component::ParentDir => queue.push_front("..".into()),
                        Component::CurDir => {}
                        Component::RootDir | Component::Prefix(_) => return None,
                    }
                }
            }
        }
        Some(out.iter().collect())
    }
}

fn lexical(path: &Path) -> Option<PathBuf> {
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

fn bytes_path(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let b = b.strip_suffix(b"\0").unwrap_or(b);
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

/// Checks every entry of a `.tar.gz` in order and, given `into`, unpacks it there.
fn walk(reader: impl Read, limits: &Limits, into: Option<&Dir>) -> Result<Summary, ArchiveError> {
    let mut archive = tar::Archive::new(decompress(reader, limits)?);
    let entries = archive
        .entries()
        .map_err(|e| ArchiveError::NotTar(printable_message(&e.to_string())))?
        .raw(true);
    let mut walk = ArchiveWalk {
        limits,
        into,
        tree: Tree::new(limits.max_resolve_steps),
        summary: Summary::default(),
        long_name: None,
        long_link: None,
    };
    for entry in entries {
        let mut entry = entry.map_err(|e| walk.unreadable_entry(&e))?;
        walk.entry(&mut entry)?;
    }
    walk.check_links_at_end()?;
    Ok(walk.summary)
}

/// The archive's expanded bytes, counted against the limits as a backstop; refused
/// before any tar parsing if the stream does not open with a gzip header.
fn decompress<R: Read>(reader: R, limits: &Limits) -> Result<Counted<flate2::read::GzDecoder<R>>, ArchiveError> {
    let mut gz = flate2::read::GzDecoder::new(reader);
    // Reading through the decoder reports a bad gzip header as an error.
    gz.read_exact(&mut [0u8; 0])
        .map_err(|e| ArchiveError::NotGzip(printable_message(&e.to_string())))?;
    if gz.header().is_none() {
        return Err(ArchiveError::NotGzip("no gzip header".into()));
    }
    Ok(Counted {
        inner: gz,
        read: 0,
        limit: limits
            .max_bytes
            .saturating_add(limits.max_entries.saturating_mul(1536))
            .saturating_add(1 << 20),
    })
}

/// Whether an I/O error is [`Counted`] stopping the decompressor at its limit.
fn is_expanded_size_limit(e: &io::Error) -> bool {
    e.to_string().contains("expanded size limit")
}

/// Where an entry lands: its directory with the archive's links followed, and its own
/// path inside that directory.
struct Place {
    parent: PathBuf,
    at: PathBuf,
}

/// What the walk carries from one entry to the next: the tree so far, the counts
/// checked against the limits, and extended names waiting for the entry they name.
struct ArchiveWalk<'a> {
    limits: &'a Limits,
    into: Option<&'a Dir>,
    tree: Tree,
    summary: Summary,
    /// A GNU long name or pax `path`, for the next entry.
    long_name: Option<Vec<u8>>,
    /// A GNU long link or pax `linkpath`, for the next entry.
    long_link: Option<Vec<u8>>,
}

impl ArchiveWalk<'_> {
    /// Which error a header that cannot be read is: the size limit, not a tar archive at
    /// all (the first entry), or a bad entry numbered by its position.
    fn unreadable_entry(&self, e: &io::Error) -> ArchiveError {
        if is_expanded_size_limit(e) {
            ArchiveError::TooLarge {
                limit: self.limits.max_bytes,
            }
        } else if self.summary.entries == 0 {
            ArchiveError::NotTar(printable_message(&e.to_string()))
        } else {
            ArchiveError::BadEntry {
                entry: format!("#{}", self.summary.entries + 1),
                why: printable_message(&e.to_string()),
            }
        }
    }

    /// Checks one entry and, when unpacking, writes it: counted first, then either kept
    /// as an extended name for the next entry or placed in the tree by its kind.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ArchiveError> {
        let size = entry.header().entry_size().unwrap_or(u64::MAX);
        self.count(size)?;
        let kind = entry.header().entry_type();
        let raw_name = self.long_name.take().unwrap_or_else(|| entry.header().path_bytes().into_owned());
        let name = printable(&raw_name);
        let bad = |why: &str| ArchiveError::BadEntry {
            entry: name.clone(),
            why: why.to_string(),
        };
        use tar::EntryType::*;
        if matches!(kind, GNULongName | GNULongLink | XHeader | XGlobalHeader) {
            return self.read_extension(kind, size, entry, &bad);
        }
        let link_target = self
            .long_link
            .take()
            .or_else(|| entry.header().link_name_bytes().map(|b| b.into_owned()))
            .map(|b| bytes_path(&b));
        if kind == Directory && raw_name.as_slice() == b"/" {
            // The root as `az acr build` names it (Python's tarfile with arcname ""):
            // the context itself, as "./" is, not an absolute path.
            return Ok(());
        }
        let Some(place) = self.place(&raw_name, &bad)? else {
            // The root itself ("./"): nothing to create.
            return Ok(());
        };
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        match kind {
            Regular | Continuous => self.unpack_file(entry, &place, mode),
            Directory => self.unpack_dir(&place, mode),
            Symlink => self.unpack_symlink(link_target, &place, &bad),
            Link => self.unpack_hard_link(link_target, &place, &bad),
            Char | Block => Err(bad("device files are not allowed")),
            Fifo => Err(bad("named pipes are not allowed")),
            GNUSparse => Err(bad("sparse files are not allowed")),
            other => Err(bad(&format!("entry type {:?} is not allowed", other.as_byte() as char))),
        }
    }

    /// Counts an entry and its declared size against the limits, before any of it is read.
    fn count(&mut self, size: u64) -> Result<(), ArchiveError> {
        self.summary.entries += 1;
        if self.summary.entries > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        self.summary.bytes = self.summary.bytes.saturating_add(size);
        if self.summary.bytes > self.limits.max_bytes {
            return Err(ArchiveError::TooLarge {
                limit: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    /// Reads a GNU long name or link, or a pax header, capped at [`MAX_EXTENSION`], and
    /// keeps the names it carries for the next entry (the `tar` crate would read any size).
    fn read_extension<R: Read>(
        &mut self,
        kind: tar::EntryType,
        size: u64,
        entry: &mut tar::Entry<'_, R>,
        bad: &dyn Fn(&str) -> ArchiveError,
    ) -> Result<(), ArchiveError> {
        use tar::EntryType::*;
        if size > MAX_EXTENSION {
            return Err(bad(&format!("an extended header larger than {MAX_EXTENSION} bytes")));
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        match kind {
            GNULongName => self.long_name = Some(data),
            GNULongLink => self.long_link = Some(data),
            XHeader => {
                for ext in tar::PaxExtensions::new(&data).flatten() {
                    match ext.key() {
                        Ok("path") => self.long_name = Some(ext.value_bytes().to_vec()),
                        Ok("linkpath") => self.long_link = Some(ext.value_bytes().to_vec()),
                        Ok("size") => return Err(bad("pax sizes (files over 8 GiB) are not supported")),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Where an entry's name puts it, refusing absolute paths, `..` above the root and
    /// directories reached through links that lead outside; `None` for the root itself.
    fn place(&self, raw_name: &[u8], bad: &dyn Fn(&str) -> ArchiveError) -> Result<Option<Place>, ArchiveError> {
        let path = bytes_path(raw_name);
        if path.is_absolute() {
            return Err(bad("absolute path"));
        }
        let Some(clean) = lexical(&path) else {
            return Err(bad("path leaves the context (..)"));
        };
        if clean.as_os_str().is_empty() {
            return Ok(None);
        }
        let parent = clean.parent().unwrap_or(Path::new(""));
        let file_name = clean.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        let Some(real_parent) = self.tree.resolve(parent) else {
            return Err(self.tree.refusal(bad, "its directory is a link that leads outside the context"));
        };
        let at = real_parent.join(&file_name);
        Ok(Some(Place { parent: real_parent, at }))
    }

    /// A regular file: recorded in the tree, and its contents copied out when unpacking.
    fn unpack_file<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, place: &Place, mode: u32) -> Result<(), ArchiveError> {
        self.tree.remove_link(&place.at);
        self.tree.files.insert(place.at.clone());
        if let Some(dir) = self.into {
            make_room(dir, &place.parent, &place.at, false)?;
            let mut file = dir.create(&place.at)?.into_std();
            io::copy(entry, &mut file).map_err(|e| {
                if is_expanded_size_limit(&e) {
                    ArchiveError::TooLarge {
                        limit: self.limits.max_bytes,
                    }
                } else {
                    ArchiveError::Io(e)
                }
            })?;
            dir.set_permissions(&place.at, Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    /// A directory: no longer a link in the tree, and created (always searchable by us)
    /// when unpacking.
    fn unpack_dir(&mut self, place: &Place, mode: u32) -> Result<(), ArchiveError> {
        self.tree.remove_link(&place.at);
        if let Some(dir) = self.into {
            make_room(dir, &place.parent, &place.at, true)?;
            dir.create_dir_all(&place.at)?;
            dir.set_permissions(&place.at, Permissions::from_mode(mode | 0o700))?;
        }
        Ok(())
    }

    /// A symlink, refused unless its target is short, relative and resolves inside the
    /// tree as it stands; recorded so later entries resolve through it.
    fn unpack_symlink(
        &mut self,
        link_target: Option<PathBuf>,
        place: &Place,
        bad: &dyn Fn(&str) -> ArchiveError,
    ) -> Result<(), ArchiveError> {
        let target = link_target.ok_or_else(|| bad("symlink without a target"))?;
        if target.components().count() > MAX_LINK_COMPONENTS {
            return Err(bad(&format!("symlink target longer than {MAX_LINK_COMPONENTS} components")));
        }
        if target.is_absolute() {
            return Err(bad("symlink points outside the context (absolute target)"));
        }
        if self.tree.resolve(&place.parent.join(&target)).is_none() {
            return Err(self.tree.refusal(bad, "symlink points outside the context"));
        }
        self.tree.files.remove(&place.at);
        self.tree.add_link(&place.at, &target);
        if let Some(dir) = self.into {
            make_room(dir, &place.parent, &place.at, false)?;
            dir.symlink(&target, &place.at)?;
        }
        Ok(())
    }

    /// A hard link, refused unless it names, inside the tree, a file an earlier entry made.
    fn unpack_hard_link(
        &mut self,
        link_target: Option<PathBuf>,
        place: &Place,
        bad: &dyn Fn(&str) -> ArchiveError,
    ) -> Result<(), ArchiveError> {
        let target = link_target.ok_or_else(|| bad("hard link without a target"))?;
        let resolved = lexical(&target)
            .filter(|_| !target.is_absolute())
            .and_then(|t| self.tree.resolve(&t))
            .ok_or_else(|| bad("hard link points outside the context"))?;
        if !self.tree.files.contains(&resolved) {
            return Err(bad("hard link to a file the archive has not unpacked before it"));
        }
        self.tree.remove_link(&place.at);
        self.tree.files.insert(place.at.clone());
        if let Some(dir) = self.into {
            make_room(dir, &place.parent, &place.at, false)?;
            dir.hard_link(&resolved, dir, &place.at)?;
        }
        Ok(())
    }

    /// Checks every link again against the finished tree: a later entry can change what
    /// an earlier link resolves through.
    fn check_links_at_end(&self) -> Result<(), ArchiveError> {
        for (at, target) in self.tree.all_links() {
            let base = at.parent().unwrap_or(Path::new(""));
            if self.tree.resolve(&base.join(target)).is_none() {
                return Err(ArchiveError::BadEntry {
                    entry: printable(at.as_os_str().as_encoded_bytes()),
                    why: "symlink points outside the context once the archive is unpacked".into(),
                });
            }
        }
        Ok(())
    }
}

/// Creates `parent` and clears `at` for a new entry (a later entry replaces an earlier
/// one, as tar does), keeping an existing directory when a directory comes again.
fn make_room(dir: &Dir, parent: &Path, at: &Path, is_dir: bool) -> io::Result<()> {
    if !parent.as_os_str().is_empty() {
        dir.create_dir_all(parent)?;
    }
    match dir.symlink_metadata(at) {
        Ok(m) if m.is_dir() && is_dir => Ok(()),
        Ok(m) if m.is_dir() => dir.remove_dir_all(at),
        Ok(_) => dir.remove_file(at),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(build: impl FnOnce(&mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        build(&mut b);
        b.into_inner().unwrap().finish().unwrap()
    }

    fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h
    }

    use slipway_test_support::{gzip_tar as gz, raw_entry, raw_header as raw_sized};

    fn unpack_into(bytes: &[u8], limits: &Limits) -> (tempfile::TempDir, Result<Summary, ArchiveError>) {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(d.path(), cap_std::ambient_authority()).unwrap();
        let r = unpack(bytes, limits, &dir);
        (d, r)
    }

    #[test]
    fn good_archives_unpack_without_special_bits() {
        let long = format!("{}/file.txt", "d".repeat(150));
        let bytes = tgz(|b| {
            b.append_data(&mut header(tar::EntryType::Regular, 2, 0o644), "a/b.txt", &b"hi"[..])
                .unwrap();
            b.append_data(&mut header(tar::EntryType::Regular, 2, 0o4755), "a/suid", &b"#!"[..])
                .unwrap();
            b.append_link(&mut header(tar::EntryType::Symlink, 0, 0o777), "a/link", "b.txt")
                .unwrap();
            b.append_data(&mut header(tar::EntryType::Regular, 1, 0o644), &long, &b"x"[..])
                .unwrap();
        });
        let (d, r) = unpack_into(&bytes, &Limits::default());
        assert_eq!(r.unwrap().entries, 5, "a long name costs one more entry");
        assert_eq!(std::fs::read_to_string(d.path().join("a/link")).unwrap(), "hi");
        assert_eq!(std::fs::read_to_string(d.path().join(&long)).unwrap(), "x");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("a/suid")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755, "set-uid is dropped");
    }

    #[test]
    fn the_root_as_az_acr_build_names_it_is_the_context() {
        let bytes = gz(&[raw_entry("/", b'5', ""), raw_entry("./", b'5', ""), raw_entry("sub", b'5', "")].concat());
        let (d, r) = unpack_into(&bytes, &Limits::default());
        assert!(r.is_ok(), "{r:?}");
        assert!(d.path().join("sub").is_dir());
    }

    #[test]
    fn bad_archives_are_refused_naming_the_entry() {
        assert!(matches!(
            check(&b"plain text"[..], &Limits::default()),
            Err(ArchiveError::NotGzip(_))
        ));
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (raw_entry("/etc/passwd", b'0', ""), "/etc/passwd", "absolute"),
            (raw_entry("/", b'0', ""), "/", "absolute"),
            (raw_entry("/etc", b'5', ""), "/etc", "absolute"),
            (raw_entry("a/../../x", b'0', ""), "a/../../x", ".."),
            (raw_entry("evil", b'2', "/etc/shadow"), "evil", "outside"),
            (raw_entry("sub/evil", b'2', "../../x"), "sub/evil", "outside"),
            (raw_entry("hl", b'1', "../x"), "hl", "outside"),
            (raw_entry("dev", b'3', ""), "dev", "device"),
            (raw_entry("fifo", b'6', ""), "fifo", "pipes"),
            // Each link is inside on its own; together they lead out.
            (
                [
                    raw_entry("a", b'2', "."),
                    raw_entry("a/b", b'2', ".."),
                    raw_entry("a/b/c", b'2', ".."),
                ]
                .concat(),
                "a/b",
                "outside",
            ),
            (
                [
                    raw_entry("d", b'5', ""),
                    raw_entry("d/l", b'2', ".."),
                    raw_entry("d/l/x", b'2', "../.."),
                ]
                .concat(),
                "x",
                "outside",
            ),
            // A link that was inside until a later entry changed what it resolves through.
            (
                [
                    raw_entry("p", b'2', "q/r"),
                    raw_entry("q", b'5', ""),
                    raw_entry("q/r", b'5', ""),
                    raw_entry("up", b'2', "p/../../.."),
                ]
                .concat(),
                "up",
                "outside",
            ),
            (
                [raw_entry("x", b'2', "y"), raw_entry("y", b'2', "x"), raw_entry("z", b'2', "x")].concat(),
                "",
                "outside",
            ),
            (raw_entry("hl2", b'1', "missing"), "hl2", "has not unpacked"),
        ];
        for (tar, name, why) in cases {
            let e = check(&gz(&tar)[..], &Limits::default()).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(why), "{name}: {e}");
            let (d, r) = unpack_into(&gz(&tar), &Limits::default());
            assert!(r.is_err(), "{name} unpacked");
            assert!(!d.path().join("../x").exists());
        }
        let e = check(&gz(&raw_entry("bin\u{1b}[2J\u{7}", b'3', ""))[..], &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("\\u{1b}") && !e.contains('\u{1b}'), "names are escaped: {e}");
    }

    #[test]
    fn bombs_stop_at_the_limits() {
        // 64 MiB of zeros compresses to about 64 KiB.
        let bytes = tgz(|b| {
            b.append_data(
                &mut header(tar::EntryType::Regular, 64 << 20, 0o644),
                "zeros",
                io::repeat(0).take(64 << 20),
            )
            .unwrap();
        });
        assert!(bytes.len() < 1 << 20);
        let small = Limits {
            max_bytes: 1 << 20,
            max_entries: 10,
            ..Limits::default()
        };
        assert!(matches!(check(&bytes[..], &small), Err(ArchiveError::TooLarge { .. })));
        let many = tgz(|b| {
            for i in 0..11 {
                b.append_data(&mut header(tar::EntryType::Regular, 0, 0o644), format!("f{i}"), io::empty())
                    .unwrap();
            }
        });
        assert!(matches!(check(&many[..], &small), Err(ArchiveError::TooManyEntries { limit: 10 })));
        // Found by fuzzing: deep paths cost time quadratic in their depth.
        let deep = "a/".repeat(32_000) + "f";
        let bytes = tgz(|b| {
            b.append_data(&mut header(tar::EntryType::Regular, 0, 0o644), &deep, io::empty())
                .unwrap();
            b.append_link(&mut header(tar::EntryType::Symlink, 0, 0o777), "a/l", "..").unwrap();
            b.append_data(&mut header(tar::EntryType::Regular, 0, 0o644), format!("{deep}2"), io::empty())
                .unwrap();
        });
        let started = std::time::Instant::now();
        check(&bytes[..], &Limits::default()).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        // Found in review: a long link named by many entries multiplied the work.
        let long_target = "a/".repeat(300);
        let bytes = tgz(|b| {
            b.append_link(&mut header(tar::EntryType::Symlink, 0, 0o777), "l", &long_target)
                .unwrap();
        });
        let e = check(&bytes[..], &Limits::default()).unwrap_err().to_string();
        assert!(e.contains("longer than 256 components"), "{e}");
        let target = "a/".repeat(250);
        let bytes = tgz(|b| {
            b.append_data(&mut header(tar::EntryType::Directory, 0, 0o755), &target, io::empty())
                .unwrap();
            b.append_link(&mut header(tar::EntryType::Symlink, 0, 0o777), "l", &target).unwrap();
            for i in 0..10_000 {
                b.append_data(&mut header(tar::EntryType::Regular, 0, 0o644), format!("l/f{i}"), io::empty())
                    .unwrap();
            }
        });
        let tight = Limits {
            max_resolve_steps: 1_000_000,
            ..Limits::default()
        };
        let started = std::time::Instant::now();
        let e = check(&bytes[..], &tight).unwrap_err().to_string();
        assert!(e.contains("too long to resolve"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
        let pax = raw_sized("x", b'x', "", b"77777777777\0");
        let e = check(&gz(&pax)[..], &Limits::default()).unwrap_err().to_string();
        assert!(e.contains("extended header larger"), "{e}");
    }
}
