//! What one step container may use of the machine: memory, processes, `/dev/shm` and
//! each tmpfs. The operator sets a default and a most for each; a step (its task file,
//! or a `docker run` through the run's engine proxy) may ask for less than the most.

/// A default and the most a step may ask for, in bytes (processes for pids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub default: u64,
    pub max: u64,
}

impl Bound {
    /// What a step gets: the default when it asks for nothing (or 0), what it asks for
    /// up to the most, else an error naming `what`.
    pub fn pick(&self, what: &str, asked: Option<u64>) -> Result<u64, String> {
        match asked.filter(|a| *a > 0) {
            None => Ok(self.default.min(self.max)),
            Some(a) if a <= self.max => Ok(a),
            Some(a) => Err(format!(
                "{what} of {} asked for; this daemon allows at most {}",
                show(what, a),
                show(what, self.max)
            )),
        }
    }
}

fn show(what: &str, n: u64) -> String {
    if what.contains("processes") {
        n.to_string()
    } else {
        bytes(n)
    }
}

/// `n` bytes as people read them: `64 MiB`, `1.5 GiB`, `100 bytes`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The limits of every step container of a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimits {
    pub memory: Bound,
    pub pids: Bound,
    pub shm: Bound,
    pub tmpfs: Bound,
    /// The most of a container's output the engine keeps on its disk while it runs
    /// (the run's own log is capped apart).
    pub engine_log: u64,
}

impl StepLimits {
    /// The engine's log driver options for a step container: the `local` driver, whose
    /// files rotate, holding about `engine_log` bytes in three files. Slipway reads a
    /// step's output itself; the engine's copy only carries it.
    pub fn engine_log_options(&self) -> [(&'static str, String); 2] {
        [
            ("max-size", (self.engine_log / 2).max(1 << 20).to_string()),
            ("max-file", "3".to_string()),
        ]
    }
}

impl Default for StepLimits {
    fn default() -> Self {
        StepLimits {
            memory: Bound {
                default: 4 << 30,
                max: 16 << 30,
            },
            pids: Bound { default: 1024, max: 4096 },
            shm: Bound {
                default: 64 << 20,
                max: 1 << 30,
            },
            tmpfs: Bound {
                default: 256 << 20,
                max: 2 << 30,
            },
            engine_log: 100 << 20,
        }
    }
}

/// A size as Docker's clients write one (`512m`, `1g`, `1.5GB`, `100k`, `4096`): binary
/// units, an optional `b`, any case. `None` for anything else (a percentage too).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit.trim() {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    let n: f64 = number.parse().ok().filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let bytes = n * factor as f64;
    (bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_writes_them() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("1.5gb"), Some(3 << 29));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("100k"), Some(100 << 10));
        for bad in ["", "50%", "1x", "-1g", "g", "1e9"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_step_gets_the_default_or_less_than_the_most() {
        let b = Bound {
            default: 64 << 20,
            max: 1 << 30,
        };
        assert_eq!(b.pick("shm", None), Ok(64 << 20));
        assert_eq!(b.pick("shm", Some(0)), Ok(64 << 20));
        assert_eq!(b.pick("shm", Some(1 << 20)), Ok(1 << 20));
        let e = b.pick("a /dev/shm", Some(50 << 30)).unwrap_err();
        assert!(e.contains("50 GiB") && e.contains("at most 1 GiB"), "{e}");
        let p = Bound { default: 100, max: 200 };
        assert!(p.pick("processes", Some(1500)).unwrap_err().contains("1500"));
        assert_eq!(bytes(100), "100 bytes");
        assert_eq!(bytes(1536 << 20), "1.5 GiB");
    }
}
