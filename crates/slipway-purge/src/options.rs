//! The command line of `acr purge` (and `slipway purge`), read into [`PurgeOptions`]:
//! acr-cli's flags, plus `--exclude` and `--untagged-only`. A wrong flag is refused by
//! name; `--filter` and `--ago` are needed unless `--untagged-only` is given.

use crate::ago::parse_ago;
use crate::filter::Filter;
use std::time::Duration;

/// The most deletes in flight at once (acr-cli's cap).
pub const MAX_CONCURRENCY: usize = 32;

#[derive(Debug, Clone)]
pub struct PurgeOptions {
    pub filters: Vec<Filter>,
    pub excludes: Vec<Filter>,
    pub ago: Duration,
    pub keep: usize,
    pub untagged: bool,
    pub untagged_only: bool,
    pub dry_run: bool,
    pub concurrency: usize,
    /// The whole purge's limit, in seconds (`--timeout`); none when not given.
    pub timeout: Option<u64>,
    /// `-r`/`--registry` as given: a step purges only its run's registry.
    pub registry: Option<String>,
}

impl PurgeOptions {
    /// Reads `args`, the words after `purge`.
    pub fn parse(args: &[String]) -> Result<PurgeOptions, String> {
        let mut o = PurgeOptions {
            filters: Vec::new(),
            excludes: Vec::new(),
            ago: Duration::ZERO,
            keep: 0,
            untagged: false,
            untagged_only: false,
            dry_run: false,
            concurrency: 4,
            timeout: None,
            registry: None,
        };
        let mut ago = None;
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (word.as_str(), None),
            };
            let mut value = |name: &str| -> Result<String, String> {
                inline
                    .clone()
                    .or_else(|| words.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let number = |name: &str, text: String| -> Result<u64, String> {
                text.parse().map_err(|_| format!("{name} {text:?} is not a whole number"))
            };
            match flag {
                "--filter" | "-f" => o.filters.push(Filter::parse(&value("--filter")?)?),
                "--exclude" => o.excludes.push(Filter::parse(&value("--exclude")?)?),
                "--ago" => ago = Some(parse_ago(&value("--ago")?)?),
                "--keep" => o.keep = number("--keep", value("--keep")?)? as usize,
                "--untagged" => o.untagged = true,
                "--untagged-only" => o.untagged_only = true,
                "--dry-run" => o.dry_run = true,
                "--concurrency" => {
                    let n = number("--concurrency", value("--concurrency")?)? as usize;
                    if !(1..=MAX_CONCURRENCY).contains(&n) {
                        return Err(format!("--concurrency {n} must be 1 to {MAX_CONCURRENCY}"));
                    }
                    o.concurrency = n;
                }
                "--timeout" => o.timeout = Some(number("--timeout", value("--timeout")?)?),
                "--registry" | "-r" => o.registry = Some(value("--registry")?),
                // acr-cli's own knobs that mean nothing here.
                "--include-locked" => {}
                "--filter-timeout-seconds" | "--repository-page-size" => {
                    value(flag)?;
                }
                other => {
                    return Err(format!(
                        "purge: {other:?} is not a flag of acr purge (--filter, --exclude, --ago, --keep, --untagged, --untagged-only, --dry-run, --concurrency, --timeout)"
                    ))
                }
            }
        }
        if !o.untagged_only {
            if o.filters.is_empty() {
                return Err("purge needs --filter REPOSITORY:TAG (or --untagged-only)".into());
            }
            o.ago = ago.ok_or("purge needs --ago (0 for every age)")?;
        } else {
            o.ago = ago.unwrap_or(Duration::ZERO);
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn acr_purge_reads_as_acr_writes_it() {
        // ACR's own example: acr purge --filter 'hello-world:.*' --untagged --ago 1d
        let o = PurgeOptions::parse(&words(&["--filter", "hello-world:.*", "--untagged", "--ago", "1d"])).unwrap();
        assert_eq!((o.filters.len(), o.untagged, o.ago.as_secs()), (1, true, 86_400));
        let o = PurgeOptions::parse(&words(&["-f", "a:.*", "--filter=b:x", "--ago=0", "--keep", "3", "--dry-run"])).unwrap();
        assert_eq!((o.filters.len(), o.keep, o.dry_run, o.ago.as_secs()), (2, 3, true, 0));
        assert!(PurgeOptions::parse(&words(&["--untagged-only"])).is_ok());
        for (bad, needle) in [
            (&["--ago", "1d"][..], "--filter"),
            (&["--filter", "a:.*"], "--ago"),
            (&["--filter", "a:.*", "--ago", "1d", "--frobnicate"], "--frobnicate"),
            (&["--filter"], "needs a value"),
            (&["--filter", "a:.*", "--ago", "1d", "--keep", "x"], "--keep"),
            (&["--filter", "a:.*", "--ago", "1d", "--concurrency", "99"], "--concurrency"),
        ] {
            let e = PurgeOptions::parse(&words(bad)).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }
}
