//! What one client may hold at once, and how often one kind of warning is written.
//!
//! [`Gate`] counts things held open (a run's engine-proxy connections, a token's log
//! follows) against a cap per key and a cap for the whole daemon; a [`Pass`] gives its
//! place back when dropped. [`Throttle`] lets a burst of warnings through per period
//! and counts the rest, so a client making the daemon refuse it 20,000 times writes a
//! few lines, not 80 MB. [`StepLimits`] are the sizes a step container gets. Plain
//! counters behind a mutex: no clock but `Instant`, no I/O.

pub mod step;
pub use step::{Bound, StepLimits};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Caps on what is held at once: `per_key` for one key (a run, a token), `total` for all.
#[derive(Debug)]
pub struct Gate {
    total: usize,
    per_key: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_key: HashMap<String, usize>,
}

/// Which cap a refused entry met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The key holds `per_key` already.
    Key(usize),
    /// Everyone together holds `total` already.
    Total(usize),
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Full::Key(n) => write!(f, "{n} are open for this client already, the most one may hold"),
            Full::Total(n) => write!(f, "{n} are open on this daemon already, the most it holds"),
        }
    }
}

/// A place held in a [`Gate`]; dropping it frees the place.
#[derive(Debug)]
pub struct Pass {
    gate: Arc<Gate>,
    key: String,
}

impl Gate {
    /// A gate letting `per_key` in per key and `total` in all (each at least 1).
    pub fn new(total: usize, per_key: usize) -> Arc<Gate> {
        Arc::new(Gate {
            total: total.max(1),
            per_key: per_key.max(1),
            held: Mutex::new(Held::default()),
        })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        // The counters stay whole whatever panicked while holding them.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place for `key`, or says which cap is met.
    pub fn enter(self: &Arc<Self>, key: &str) -> Result<Pass, Full> {
        let mut held = self.held();
        if held.total >= self.total {
            return Err(Full::Total(self.total));
        }
        let mine = held.by_key.get(key).copied().unwrap_or(0);
        if mine >= self.per_key {
            return Err(Full::Key(self.per_key));
        }
        held.total += 1;
        held.by_key.insert(key.to_string(), mine + 1);
        Ok(Pass {
            gate: self.clone(),
            key: key.to_string(),
        })
    }

    /// How many places `key` holds.
    pub fn held_by(&self, key: &str) -> usize {
        self.held().by_key.get(key).copied().unwrap_or(0)
    }

    /// How many places are held in all.
    pub fn held_in_all(&self) -> usize {
        self.held().total
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut held = self.gate.held();
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.by_key.remove(&self.key);
            }
        }
    }
}

/// Lets `burst` events through per `period`; the rest are counted and reported with
/// the next one let through.
#[derive(Debug)]
pub struct Throttle {
    burst: u32,
    period: Duration,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    passed: u32,
    suppressed: u64,
}

impl Throttle {
    pub const fn new(burst: u32, period: Duration) -> Throttle {
        Throttle {
            burst,
            period,
            window: Mutex::new(Window {
                start: None,
                passed: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when this event is to be written, `n` being how many were held back
    /// since the last one written; `None` when it is held back.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.start.is_none_or(|s| now.duration_since(s) >= self.period) {
            w.start = Some(now);
            w.passed = 0;
        }
        if w.passed >= self.burst {
            w.suppressed += 1;
            return None;
        }
        w.passed += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_the_whole_are_capped_and_places_come_back() {
        let gate = Gate::new(3, 2);
        let a1 = gate.enter("a").unwrap();
        let _a2 = gate.enter("a").unwrap();
        assert_eq!(gate.enter("a").unwrap_err(), Full::Key(2));
        let _b1 = gate.enter("b").unwrap();
        assert_eq!(gate.enter("c").unwrap_err(), Full::Total(3));
        drop(a1);
        assert_eq!(gate.held_by("a"), 1);
        let _c = gate.enter("c").unwrap();
        assert_eq!(gate.held_in_all(), 3);
        assert!(Full::Key(2).to_string().contains("2 are open for this client"));
    }

    #[test]
    fn a_burst_passes_then_the_rest_are_counted() {
        let t = Throttle::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(t.admit_at(t0), Some(0));
        assert_eq!(t.admit_at(t0), Some(0));
        assert_eq!(t.admit_at(t0), None);
        assert_eq!(t.admit_at(t0 + Duration::from_millis(10)), None);
        assert_eq!(t.admit_at(t0 + Duration::from_secs(1)), Some(2));
    }
}
