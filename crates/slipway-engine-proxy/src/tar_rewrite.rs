//! A streamed tar archive with a few entries rewritten and every other byte passed on
//! as it came: a `docker load` archive's `manifest.json` and `repositories` (the names
//! it tags), a build context's Dockerfile. Entries are found by their full name (ustar
//! prefix, GNU long name or pax `path`); a rewritten entry must be a regular file no
//! larger than [`MAX_REWRITTEN`] whose size no pax record restates, and no link may
//! stand where one is or on its path (the engine would follow it to an entry nobody
//! rewrote). Compressed archives, which the engine unpacks but this cannot read, are
//! refused.
//!
//! Written here because no crate rewrites one entry of a streamed archive while leaving
//! the others byte for byte: `tar` and `tokio-tar` re-encode every header they write.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The largest entry that is rewritten (a manifest, a Dockerfile).
pub(crate) const MAX_REWRITTEN: u64 = 4 << 20;
/// The largest pax or GNU long-name record read to learn an entry's name.
const MAX_NAME_RECORD: u64 = 1 << 20;
const BLOCK: usize = 512;

pub(crate) type Transform = Arc<dyn Fn(String, Vec<u8>) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>> + Send + Sync>;

/// Where a rewrite's failure is told to whoever started it.
pub(crate) type Failure = Arc<Mutex<Option<String>>>;

/// The entries an archive's rewrite is for.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    /// Cleaned paths (`sub/Dockerfile`).
    pub names: Vec<String>,
    /// The archive must hold one of them (a build's Dockerfile: the classic builder
    /// would otherwise read `dockerfile`, which nobody rewrote).
    pub required: bool,
}

impl Wanted {
    fn wants(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Whether a link at `name` would stand for a wanted entry or a directory above one.
    fn shadowed_by(&self, name: &str) -> bool {
        self.names
            .iter()
            .any(|n| n == name || n.strip_prefix(name).is_some_and(|rest| rest.starts_with('/')))
    }
}

/// `input` with each entry `wanted` names replaced by what `transform` makes of it.
/// A failure ends the stream with an error and is kept in the returned slot.
pub(crate) fn rewrite<S, E>(
    input: S,
    wanted: Wanted,
    transform: Transform,
) -> (impl Stream<Item = Result<Bytes, io::Error>> + Send + Sync + 'static, Failure)
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(4);
    let failure: Failure = Arc::new(Mutex::new(None));
    let slot = failure.clone();
    tokio::spawn(async move {
        let mut r = Reader {
            input,
            buf: BytesMut::new(),
        };
        if let Err(e) = run(&mut r, &tx, &wanted, &transform).await {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
            let _ = tx.send(Err(io::Error::other(e))).await;
            drop(tx);
            // The client may still be sending: read what is left (within limits), so it
            // gets the refusal rather than a broken pipe.
            let drain = async {
                let mut seen = 0usize;
                while let Some(Ok(chunk)) = r.input.next().await {
                    seen += chunk.len();
                    if seen > 1 << 30 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), drain).await;
        }
    });
    (ReceiverStream(rx), failure)
}

struct Reader<S> {
    input: S,
    buf: BytesMut,
}

impl<S, E> Reader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    /// Fills the buffer to `n` bytes; false at the end of the input.
    async fn fill(&mut self, n: usize) -> Result<bool, String> {
        while self.buf.len() < n {
            match self.input.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(format!("reading the archive: {e}")),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    async fn take(&mut self, n: usize) -> Result<Bytes, String> {
        if !self.fill(n).await? {
            return Err("the archive ends inside an entry".into());
        }
        Ok(self.buf.split_to(n).freeze())
    }
}

async fn send(tx: &mpsc::Sender<Result<Bytes, io::Error>>, b: Bytes) -> Result<(), String> {
    tx.send(Ok(b)).await.map_err(|_| "the engine stopped reading".to_string())
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// Reads the archive header by header, passing each entry on as it came or, for a
/// wanted one, as `transform` rewrote it; stops at the first entry it must refuse.
async fn run<S, E>(
    r: &mut Reader<S>,
    tx: &mpsc::Sender<Result<Bytes, io::Error>>,
    wanted: &Wanted,
    transform: &Transform,
) -> Result<(), String>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    r.fill(6).await?;
    if compressed(&r.buf) {
        return Err("a compressed archive cannot be read here: send a plain tar".into());
    }
    let mut walk = Walk {
        r,
        tx,
        wanted,
        transform,
        long_name: None,
        pax_size: false,
        seen: false,
        links: Vec::new(),
    };
    loop {
        if !walk.r.fill(BLOCK).await? {
            return walk.finish_without_end_blocks().await;
        }
        let header = walk.r.take(BLOCK).await?;
        if header.iter().all(|b| *b == 0) {
            return walk.finish_at_end_block(header).await;
        }
        let size = size_of(&header).ok_or("an archive header has an unreadable size")?;
        let kind = header[156];
        if matches!(kind, b'x' | b'L') {
            walk.pass_name_record(header, kind, size).await?;
            continue;
        }
        let name = walk.checked_name(&header, kind)?;
        let restated_size = std::mem::take(&mut walk.pax_size);
        let regular = kind == b'0' || kind == 0;
        if wanted.wants(&name) && !regular {
            return Err(format!("{name} must be a regular file"));
        }
        if regular && wanted.wants(&name) {
            walk.seen = true;
            walk.pass_rewritten(header, name, size, restated_size).await?;
        } else {
            walk.pass_as_it_came(header, size).await?;
        }
    }
}

/// What reading the archive carries from one header to the next.
struct Walk<'a, S> {
    r: &'a mut Reader<S>,
    tx: &'a mpsc::Sender<Result<Bytes, io::Error>>,
    wanted: &'a Wanted,
    transform: &'a Transform,
    /// The name a GNU long name or pax `path` record gives the next entry.
    long_name: Option<String>,
    /// Whether a pax record restates the next entry's size.
    pax_size: bool,
    /// Whether a wanted entry was found.
    seen: bool,
    /// The names of the links the archive made so far.
    links: Vec<String>,
}

impl<S, E> Walk<'_, S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    /// Refuses an archive that ends without the entry it must hold.
    fn check_required_seen(&self) -> Result<(), String> {
        if self.wanted.required && !self.seen {
            return Err(format!("the archive holds no {}", self.wanted.names.join(" or ")));
        }
        Ok(())
    }

    /// The input ended where a header was due: what is left goes on, for the engine to judge.
    async fn finish_without_end_blocks(&mut self) -> Result<(), String> {
        self.check_required_seen()?;
        // Archives end with zero blocks; a bare end is the engine's to judge.
        if !self.r.buf.is_empty() {
            send(self.tx, self.r.buf.split().freeze()).await?;
        }
        Ok(())
    }

    /// The archive's end (a zero block): it and everything after it go on as they are.
    async fn finish_at_end_block(&mut self, header: Bytes) -> Result<(), String> {
        self.check_required_seen()?;
        send(self.tx, header).await?;
        if !self.r.buf.is_empty() {
            send(self.tx, self.r.buf.split().freeze()).await?;
        }
        while let Some(chunk) = self.r.input.next().await {
            send(self.tx, chunk.map_err(|e| e.to_string())?).await?;
        }
        Ok(())
    }

    /// Passes on a GNU long name (`L`) or pax (`x`) record, keeping the name it gives
    /// the next entry; refuses an oversized record and a second name for one entry.
    async fn pass_name_record(&mut self, header: Bytes, kind: u8, size: u64) -> Result<(), String> {
        if size > MAX_NAME_RECORD {
            return Err("an archive entry's name record is too large".into());
        }
        let data = self.r.take(padded(size) as usize).await?;
        let body = &data[..size as usize];
        // One name record per entry: readers disagree on which of a GNU long
        // name and a pax path wins, and Go cuts a long name at its first NUL.
        let name = if kind == b'L' {
            let raw = body.split(|b| *b == 0).next().unwrap_or_default();
            Some(String::from_utf8_lossy(raw).to_string())
        } else {
            let (path, has_size) = pax_records(body).ok_or("an archive's pax header is malformed")?;
            self.pax_size = has_size;
            path
        };
        if let Some(name) = name {
            if self.long_name.is_some() {
                return Err("an archive entry with two name records".into());
            }
            self.long_name = Some(name);
        }
        send(self.tx, header).await?;
        send(self.tx, data).await?;
        Ok(())
    }

    /// The entry's full name, refused where the engine's unpacker would read it
    /// otherwise than here, or where a link would stand for a wanted entry; a link's
    /// name is kept so that no later entry lies beneath it.
    fn checked_name(&mut self, header: &[u8], kind: u8) -> Result<String, String> {
        if &header[257..263] == b"ustar\0" && &header[508..512] == b"tar\0" && header[345] != 0 {
            return Err("a star archive header with a name prefix cannot be read here".into());
        }
        let name = clean(&self.long_name.take().unwrap_or_else(|| ustar_name(header)));
        // Names the engine's unpacker would lead elsewhere than this reading: `..`, or
        // a path through a link an earlier entry made.
        if name.split('/').any(|p| p == "..") {
            return Err(format!("{name}: an archive entry's name may not hold `..`"));
        }
        if let Some(link) = self
            .links
            .iter()
            .find(|l| name.strip_prefix(l.as_str()).is_some_and(|r| r.starts_with('/')))
        {
            return Err(format!("{name} lies beneath the link {link}"));
        }
        if matches!(kind, b'1' | b'2') {
            self.links.push(name.clone());
        }
        if matches!(kind, b'1' | b'2') && self.wanted.shadowed_by(&name) {
            return Err(format!(
                "{name} is a link where the archive's {} must be a file",
                self.wanted.names.join(" or ")
            ));
        }
        Ok(name)
    }

    /// A wanted entry, read whole (within [`MAX_REWRITTEN`]) and passed on as `transform`
    /// rewrote it, under its header with the new size.
    async fn pass_rewritten(&mut self, header: Bytes, name: String, size: u64, restated_size: bool) -> Result<(), String> {
        if restated_size || size > MAX_REWRITTEN {
            return Err(format!("{name} cannot be read here (too large, or sized by a pax record)"));
        }
        let data = self.r.take(padded(size) as usize).await?;
        let new = (self.transform)(name, data[..size as usize].to_vec()).await?;
        let mut h = header.to_vec();
        set_size(&mut h, new.len() as u64);
        send(self.tx, Bytes::from(h)).await?;
        let mut body = new;
        body.resize(padded(body.len() as u64) as usize, 0);
        send(self.tx, Bytes::from(body)).await?;
        Ok(())
    }

    /// Any other entry, passed on in pieces as they come, never held whole.
    async fn pass_as_it_came(&mut self, header: Bytes, size: u64) -> Result<(), String> {
        send(self.tx, header).await?;
        let mut left = padded(size);
        while left > 0 {
            if self.r.buf.is_empty() && !self.r.fill(1).await? {
                return Err("the archive ends inside an entry".into());
            }
            let n = (self.r.buf.len() as u64).min(left) as usize;
            send(self.tx, self.r.buf.split_to(n).freeze()).await?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// Whether an archive starts as the engine's decompressor would take it: gzip, bzip2,
/// xz or zstd.
fn compressed(start: &[u8]) -> bool {
    start.starts_with(&[0x1f, 0x8b])
        || start.starts_with(b"BZh")
        || start.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || start.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        // A zstd skippable frame, which a zstd reader passes over.
        || (start.len() >= 4 && (0x50..=0x5f).contains(&start[0]) && start[1..4] == [0x2a, 0x4d, 0x18])
}

fn field(h: &[u8], at: usize, len: usize) -> &[u8] {
    let f = &h[at..at + len];
    let end = f.iter().position(|b| *b == 0).unwrap_or(len);
    &f[..end]
}

fn ustar_name(h: &[u8]) -> String {
    let name = String::from_utf8_lossy(field(h, 0, 100)).to_string();
    // The prefix field is POSIX ustar's (`ustar\0`); GNU headers keep times there, and
    // star's (`tar\0` at its end) is shorter: those are read as a plain name, and a
    // star header with a prefix is refused by `run`.
    if &h[257..263] == b"ustar\0" && &h[508..512] != b"tar\0" {
        let prefix = String::from_utf8_lossy(field(h, 345, 155)).to_string();
        if !prefix.is_empty() {
            return format!("{prefix}/{name}");
        }
    }
    name
}

fn clean(name: &str) -> String {
    name.split('/').filter(|p| !p.is_empty() && *p != ".").collect::<Vec<_>>().join("/")
}

/// A header's size: octal, or base-256 when the first byte's high bit is set.
fn size_of(h: &[u8]) -> Option<u64> {
    let f = &h[124..136];
    if f[0] & 0x80 != 0 {
        let mut v: u64 = (f[0] & 0x7f) as u64;
        for b in &f[1..] {
            v = v.checked_mul(256)?.checked_add(*b as u64)?;
        }
        return Some(v);
    }
    let text = std::str::from_utf8(f).ok()?.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// Writes `size` (octal) and the header's checksum again.
fn set_size(h: &mut [u8], size: u64) {
    let text = format!("{size:011o}\0");
    h[124..136].copy_from_slice(text.as_bytes());
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
}

/// A pax header's `path`, and whether it states a `size`, read record by record by
/// each record's length (`LEN key=value\n`) as the engine reads them; `None` for a
/// header that is not such records.
fn pax_records(body: &[u8]) -> Option<(Option<String>, bool)> {
    let mut path = None;
    let mut size = false;
    let mut rest = body;
    while !rest.is_empty() && rest.iter().any(|b| *b != 0) {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return None;
        }
        let record = std::str::from_utf8(&rest[space + 1..len - 1]).ok()?;
        match record.split_once('=') {
            Some(("path", v)) if !v.contains('\0') => path = Some(v.to_string()),
            Some(("path", _)) => return None,
            Some(("size", _)) => size = true,
            Some(_) => {}
            None => return None,
        }
        rest = &rest[len..];
    }
    Some((path, size))
}

struct ReceiverStream(mpsc::Receiver<Result<Bytes, io::Error>>);

impl Stream for ReceiverStream {
    type Item = Result<Bytes, io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    async fn through(input: Vec<u8>, chunk: usize) -> Result<Vec<u8>, String> {
        let pieces: Vec<Result<Bytes, String>> = input.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let transform: Transform = Arc::new(|name, data| {
            Box::pin(async move {
                if data.starts_with(b"bad") {
                    return Err(format!("{name} is bad"));
                }
                Ok(String::from_utf8(data).unwrap().replace("old", "much newer").into_bytes())
            })
        });
        let wanted = Wanted {
            names: vec!["Dockerfile".into(), format!("{}/Dockerfile", "d".repeat(150))],
            required: true,
        };
        let (out, failure) = rewrite(futures_util::stream::iter(pieces), wanted, transform);
        let got: Vec<Result<Bytes, io::Error>> = out.collect().await;
        if let Some(e) = failure.lock().unwrap().clone() {
            return Err(e);
        }
        Ok(got.into_iter().flat_map(|b| b.unwrap().to_vec()).collect())
    }

    fn entries(archive: &[u8]) -> Vec<(String, String)> {
        tar::Archive::new(archive)
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().to_string();
                let mut text = String::new();
                std::io::Read::read_to_string(&mut e, &mut text).unwrap();
                (name, text)
            })
            .collect()
    }

    #[tokio::test]
    async fn only_the_wanted_entry_changes_whatever_the_chunks() {
        let long = format!("{}/Dockerfile", "d".repeat(150));
        let big = vec![b'x'; 3000];
        let input = archive(&[
            ("a.txt", b"old stays"),
            ("Dockerfile", b"FROM old\n"),
            (&long, b"old too"),
            ("big", &big),
        ]);
        for chunk in [1, 7, 512, 100_000] {
            let out = through(input.clone(), chunk).await.unwrap();
            let got = entries(&out);
            assert_eq!(got[0], ("a.txt".to_string(), "old stays".to_string()));
            assert_eq!(got[1], ("Dockerfile".to_string(), "FROM much newer\n".to_string()));
            assert_eq!(got[2], (long.clone(), "much newer too".to_string()), "a GNU long name is found");
            assert_eq!(got[3].1.len(), 3000);
        }
    }

    #[tokio::test]
    async fn a_refusal_ends_the_stream_and_says_why() {
        let input = archive(&[("Dockerfile", b"bad FROM")]);
        assert_eq!(through(input, 512).await.unwrap_err(), "Dockerfile is bad");
        let cut = archive(&[("Dockerfile", b"x"), ("x", &[1u8; 2000])])[..1800].to_vec();
        assert!(through(cut, 512).await.unwrap_err().contains("ends inside"));
    }

    #[tokio::test]
    async fn what_the_engine_would_read_instead_is_refused() {
        let link = |name: &str, target: &str| {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, name, target).unwrap();
            b.into_inner().unwrap()
        };
        // The Dockerfile as a link to one nobody rewrote, or a link on its path.
        let mut a = archive(&[("evil", b"FROM old")]);
        a.truncate(a.len() - 1024);
        a.extend(link("Dockerfile", "evil"));
        assert!(through(a, 512).await.unwrap_err().contains("is a link"));
        let long = "d".repeat(150);
        assert!(through(link(&long, "elsewhere"), 512).await.unwrap_err().contains("is a link"));
        // No Dockerfile (the classic builder would read `dockerfile`).
        let e = through(archive(&[("dockerfile", b"FROM old")]), 512).await.unwrap_err();
        assert!(e.contains("holds no Dockerfile"), "{e}");
        // A link earlier on the way, `..`, a pax record hiding a path in a comment.
        let mut a = link("d", ".");
        a.truncate(a.len() - 1024);
        a.extend(archive(&[("d/Dockerfile", b"FROM old")]));
        assert!(through(a, 512).await.unwrap_err().contains("beneath the link"));
        let dotdot = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.as_mut_bytes()[..15].copy_from_slice(b"x/../Dockerfile");
            h.set_size(8);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, &b"FROM old"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let e = through(dotdot, 512).await.unwrap_err();
        assert!(e.contains("`..`"), "{e}");
        assert_eq!(pax_records(b"30 comment=x\n13 path=evil\n\n"), None);
        assert_eq!(pax_records(b"13 path=good\n"), Some((Some("good".into()), false)));
        // A long name with a NUL is the name before it, as Go reads it.
        let long = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::GNULongName);
            h.set_size(12);
            h.as_mut_bytes()[..13].copy_from_slice(b"././@LongLink");
            h.set_cksum();
            b.append(&h, &b"Dockerfile\0x"[..]).unwrap();
            let mut f = tar::Header::new_gnu();
            f.as_mut_bytes()[..5].copy_from_slice(b"short");
            f.set_size(8);
            f.set_mode(0o644);
            f.set_cksum();
            b.append(&f, &b"FROM old"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let got = through(long, 512).await.unwrap();
        assert_eq!(
            entries(&got)[0].1,
            "FROM much newer",
            "the long name's entry is the rewritten Dockerfile"
        );
        // A compressed archive, which the engine unpacks.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &archive(&[("Dockerfile", b"FROM old")])).unwrap();
        let e = through(gz.finish().unwrap(), 512).await.unwrap_err();
        assert!(e.contains("compressed"), "{e}");
    }
}
