//! Run logs: one file per run, appended line by line, read from any offset (through
//! [`crate::Node::read_log`], which also finds a fleet's logs elsewhere).

use bytes::Bytes;
use futures_util::Stream;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn log_path(data_dir: &Path, run_id: &str) -> PathBuf {
    data_dir.join("logs").join(format!("{run_id}.log"))
}

/// Wakes log followers when any log grows, so they need not poll.
pub type Appended = Arc<tokio::sync::Notify>;

/// A sink that appends lines to a run's log file. Each line is written whole and
/// flushed, so a crash loses at most the line being written.
pub fn file_sink(path: &Path, appended: Appended) -> std::io::Result<slipway_engine::LogSink> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = Arc::new(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?));
    Ok(Arc::new(move |line: &str| {
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = f.write_all(format!("{line}\n").as_bytes());
        drop(f);
        appended.notify_waiters();
    }))
}

/// A sink that passes lines to `inner` until `max` bytes have passed, then says once
/// "log truncated at N bytes" and drops the rest: the run goes on, its log stops growing.
pub fn capped(inner: slipway_engine::LogSink, max: u64) -> slipway_engine::LogSink {
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    Arc::new(move |line: &str| {
        use std::sync::atomic::Ordering;
        let size = line.len() as u64 + 1;
        let before = written.fetch_add(size, Ordering::Relaxed);
        if before.saturating_add(size) <= max {
            inner(line);
        } else if before <= max {
            // The first line past the cap: what passed, and why nothing more will.
            inner(&format!("log truncated at {before} bytes (max_log_bytes); the run goes on"));
            written.store(u64::MAX / 2, Ordering::Relaxed);
        }
    })
}

pub(crate) fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    // An offset past the end (even one no file could reach) reads nothing yet.
    if offset >= f.metadata()?.len() {
        return Ok(Vec::new());
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(1 << 20).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The log from `offset`, read by `read(offset)`; with `follow`, keeps streaming until
/// `finished()` says the run has ended and everything written by then has been sent.
pub fn stream<F, Fut, R, RFut>(
    read: R,
    offset: u64,
    follow: bool,
    appended: Appended,
    finished: F,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
    R: Fn(u64) -> RFut + Send + Sync + 'static,
    RFut: std::future::Future<Output = std::io::Result<Vec<u8>>> + Send,
{
    let finished = Arc::new(finished);
    let read = Arc::new(read);
    futures_util::stream::unfold(Some(offset), move |state| {
        let read = read.clone();
        let finished = finished.clone();
        let appended = appended.clone();
        async move {
            let mut offset = state?;
            loop {
                // Registered before reading, so a line written in between still wakes us.
                let woken = appended.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                // Whether the run had ended is checked before reading, so the last read
                // after the end sees everything the run wrote.
                let ended = !follow || finished().await;
                let chunk = match read(offset).await {
                    Ok(c) => c,
                    Err(e) => return Some((Err(e), None)),
                };
                if !chunk.is_empty() {
                    offset += chunk.len() as u64;
                    return Some((Ok(Bytes::from(chunk)), Some(offset)));
                }
                if ended {
                    return None;
                }
                // The end of a run writes a last line, which wakes us; the timeout is a backstop.
                let _ = tokio::time::timeout(Duration::from_millis(500), woken).await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_log_says_where_it_stopped_once() {
        let kept = Arc::new(Mutex::new(Vec::<String>::new()));
        let inner: slipway_engine::LogSink = {
            let kept = kept.clone();
            Arc::new(move |l: &str| kept.lock().unwrap().push(l.to_string()))
        };
        let log = capped(inner, 10);
        for line in ["1234", "5678", "9", "more", "and more"] {
            log(line);
        }
        let kept = kept.lock().unwrap();
        assert_eq!(kept[..2], ["1234", "5678"]);
        assert_eq!(kept[2], "log truncated at 10 bytes (max_log_bytes); the run goes on");
        assert_eq!(kept.len(), 3);
    }
}
