//! `--ago` in acr-cli's form: an optional number of days (`2d`), then a Go duration
//! (`3h6m`, `1.5h`, `90s`), or `0` for every age: `2d3h6m` is 2 days, 3 hours and 6
//! minutes. Capped at 150 years, as acr-cli caps it.

use std::time::Duration;

/// acr-cli's cap, so a long duration never overflows.
const MAX_SECONDS: f64 = 150.0 * 365.0 * 86_400.0;

/// The duration `text` names, or what is wrong with it.
pub fn parse_ago(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("--ago {text:?} {why}; write it as 2d3h6m, 12h, 90m or 0");
    let t = text.trim();
    if t.is_empty() {
        return Err(bad("is empty"));
    }
    let (days, rest) = match t.split_once('d') {
        Some((d, rest)) => (d.parse::<u64>().map_err(|_| bad("has no whole number of days before 'd'"))?, rest),
        None => (0, t),
    };
    let mut seconds = days as f64 * 86_400.0;
    if !rest.is_empty() && rest != "0" {
        seconds += go_duration(rest).ok_or_else(|| bad("is not a duration"))?;
    }
    Ok(Duration::from_secs_f64(seconds.min(MAX_SECONDS)))
}

/// Seconds of a Go duration (`1h30m`, `1.5h`, `300ms`): numbers each with a unit.
fn go_duration(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_reads_days_then_a_go_duration() {
        let s = |t: &str| parse_ago(t).map(|d| d.as_secs());
        assert_eq!(s("2d3h6m"), Ok(2 * 86_400 + 3 * 3600 + 360));
        assert_eq!(s("1d"), Ok(86_400));
        assert_eq!(s("0"), Ok(0));
        assert_eq!(s("90m"), Ok(5400));
        assert_eq!(s("1.5h"), Ok(5400));
        assert_eq!(s("100000000d"), Ok(150 * 365 * 86_400), "capped");
        for bad in ["", "d", "x1d", "3x", "1d2w", "-1h"] {
            let e = parse_ago(bad).unwrap_err();
            assert!(e.contains("--ago"), "{bad}: {e}");
        }
    }
}
