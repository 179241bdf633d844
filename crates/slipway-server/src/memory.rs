//! Gives memory back to the system after a flood. glibc's allocator keeps freed memory
//! in its arenas (one per thread that allocated, up to 8 per core) at their high-water
//! mark (issue 18 measured 409 MiB left after 19,980 log followers had ended; the
//! hostile floods table asserts it comes back down). `malloc_trim` returns the arenas' free pages; called every few
//! seconds it costs a walk of the free lists, microseconds when nothing is free.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(5);

/// Trims the allocator's free memory every few seconds until `shutdown`.
pub async fn trim_periodically(shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        // It takes the arenas' locks: a blocking call, off the runtime's threads.
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim only walks and releases the allocator's own free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
