//! A run's log as the CRLF view `az` reads (it prints a line only at a CRLF): each
//! `\n` written is `\r\n` in the view, and the view's offsets are counted in it. An
//! index per run, kept as the log grows, maps a view offset to a place in the log as
//! written, so a 4 KiB range (what `az` asks for each time) reads some 68 KiB of the log,
//! not all of it.

use std::collections::HashMap;
use std::sync::Mutex;

/// A mark every so many bytes of the log as written.
const MARK_BYTES: u64 = 64 << 10;
/// Logs indexed at once; past this, the oldest-touched index is dropped (and remade if
/// asked again).
const MAX_INDEXES: usize = 512;

/// What is known of one run's log: how much was counted, its newlines, and marks.
#[derive(Debug, Clone, Default)]
pub(crate) struct CrlfIndex {
    /// Bytes of the log as written that were counted.
    pub(crate) written: u64,
    newlines: u64,
    /// `(offset as written, newlines before it)`, every [`MARK_BYTES`], from `(0, 0)`.
    marks: Vec<(u64, u64)>,
}

impl CrlfIndex {
    /// Counts `chunk`, the log's next bytes as written.
    pub(crate) fn extend(&mut self, chunk: &[u8]) {
        if self.marks.is_empty() {
            self.marks.push((0, 0));
        }
        for &b in chunk {
            if self.written % MARK_BYTES == 0 && self.written > 0 && self.marks.last().is_some_and(|m| m.0 < self.written) {
                self.marks.push((self.written, self.newlines));
            }
            if b == b'\n' {
                self.newlines += 1;
            }
            self.written += 1;
        }
    }

    /// The view's length.
    pub(crate) fn len(&self) -> u64 {
        self.written + self.newlines
    }

    /// The last mark at or before view offset `at`: `(offset as written, offset in the
    /// view)`.
    pub(crate) fn mark_before(&self, at: u64) -> (u64, u64) {
        let i = self.marks.partition_point(|(w, n)| w + n <= at);
        self.marks.get(i.saturating_sub(1)).map(|(w, n)| (*w, w + n)).unwrap_or((0, 0))
    }
}

/// The CRLF view of `raw`.
pub(crate) fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    for &b in raw {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The indexes of the logs being read, by run id.
#[derive(Default)]
pub(crate) struct Indexes {
    map: Mutex<HashMap<String, (CrlfIndex, u64)>>,
    touch: std::sync::atomic::AtomicU64,
}

impl Indexes {
    /// Run `id`'s index as far as it was counted.
    pub(crate) fn get(&self, id: &str) -> CrlfIndex {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let tick = self.touch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match map.get_mut(id) {
            Some((index, touched)) => {
                *touched = tick;
                index.clone()
            }
            None => CrlfIndex::default(),
        }
    }

    /// Keeps `index` for run `id` if it counted further than the one kept.
    pub(crate) fn put(&self, id: &str, index: CrlfIndex) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let tick = self.touch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if map.get(id).is_some_and(|(kept, _)| kept.written >= index.written) {
            return;
        }
        if map.len() >= MAX_INDEXES && !map.contains_key(id) {
            if let Some(oldest) = map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(id.to_string(), (index, tick));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The view's bytes `[start, end]` as the index and a partial read give them.
    fn range(raw: &[u8], index: &CrlfIndex, start: u64, end: u64) -> Vec<u8> {
        let (w, v) = index.mark_before(start);
        let need = (end + 1 - v) as usize;
        let part = &raw[w as usize..raw.len().min(w as usize + need)];
        let view = to_crlf(part);
        view[(start - v) as usize..view.len().min((end + 1 - v) as usize)].to_vec()
    }

    #[test]
    fn a_range_of_the_view_is_read_from_near_its_mark() {
        let mut raw = Vec::new();
        for i in 0..40_000 {
            raw.extend_from_slice(format!("line {i}\n").as_bytes());
            if i % 7 == 0 {
                raw.extend_from_slice(b"\n");
            }
        }
        let mut index = CrlfIndex::default();
        // Counted in uneven pieces, as a live log grows.
        for piece in raw.chunks(10_007) {
            index.extend(piece);
        }
        let whole = to_crlf(&raw);
        assert_eq!(index.len(), whole.len() as u64);
        assert!(index.marks.len() > 4);
        for (start, end) in [
            (0, 4095),
            (70_000, 74_095),
            (65_535, 65_537),
            (whole.len() as u64 - 3, whole.len() as u64 - 1),
        ] {
            assert_eq!(
                range(&raw, &index, start, end),
                whole[start as usize..=end as usize],
                "{start}-{end}"
            );
        }
        // Every offset lands right, on a '\r' or the '\n' after it alike.
        for start in (0..whole.len() as u64).step_by(4093) {
            assert_eq!(range(&raw, &index, start, start), [whole[start as usize]]);
        }
    }

    #[test]
    fn indexes_are_bounded_and_keep_the_furthest() {
        let ix = Indexes::default();
        let mut a = CrlfIndex::default();
        a.extend(b"a\nb\n");
        ix.put("r", a.clone());
        ix.put("r", CrlfIndex::default());
        assert_eq!(ix.get("r").len(), 6);
        for i in 0..MAX_INDEXES + 10 {
            ix.put(&format!("x{i}"), a.clone());
        }
        assert!(ix.map.lock().unwrap().len() <= MAX_INDEXES);
    }
}
