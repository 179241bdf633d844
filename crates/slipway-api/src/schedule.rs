//! Timer schedules: five-field cron in UTC, as ACR reads them (croner, with seconds
//! and years disallowed so a six-field expression is refused as ACR refuses it).

use chrono::{DateTime, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

const FIELDS: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build()
}

/// Parses a five-field cron expression; a bad one is refused naming its field.
pub fn parse(expr: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "{expr:?} has {} fields; a schedule has 5: minute hour day-of-month month day-of-week",
            fields.len()
        ));
    }
    match parser().parse(expr) {
        Ok(c) => Ok(c),
        Err(e) => {
            // Find the field at fault: each field alone, the others `*`.
            for (i, f) in fields.iter().enumerate() {
                let mut probe = ["*"; 5];
                probe[i] = f;
                if parser().parse(&probe.join(" ")).is_err() {
                    return Err(format!("{expr:?}: the {} field {f:?} is not valid", FIELDS[i]));
                }
            }
            Err(format!("{expr:?} is not a valid schedule: {e}"))
        }
    }
}

pub fn next_after(cron: &Cron, after_ms: i64) -> Option<i64> {
    let t: DateTime<Utc> = Utc.timestamp_millis_opt(after_ms).single()?;
    cron.find_next_occurrence(&t, false).ok().map(|n| n.timestamp_millis())
}

/// The shortest time between two firings of `cron`, in seconds, among its next few
/// thousand firings (a schedule's minutes and hours repeat each day it fires, so these
/// show its gaps, day changes included); `None` if it fires fewer than twice.
pub fn shortest_period_seconds(cron: &Cron, from_ms: i64) -> Option<i64> {
    const LOOKED_AT: usize = 2000;
    let mut last = next_after(cron, from_ms)?;
    let mut shortest: Option<i64> = None;
    for _ in 0..LOOKED_AT {
        let Some(next) = next_after(cron, last) else { break };
        let gap = (next - last) / 1000;
        shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
        if gap <= 60 {
            break; // No five-field schedule fires more often.
        }
        last = next;
    }
    shortest
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_field_cron_with_names_ranges_and_steps() {
        let c = parse("0 12 * * Mon-Fri").unwrap();
        // 2026-11-21 is a Saturday: the next occurrence is Monday 2026-11-23 12:00 UTC.
        let sat = Utc.with_ymd_and_hms(2026, 11, 21, 13, 0, 0).unwrap().timestamp_millis();
        assert_eq!(
            next_after(&c, sat),
            Some(Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap().timestamp_millis())
        );
        let c = parse("*/15 1,2 * Jan,Dec 0").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap().timestamp_millis();
        assert_eq!(
            next_after(&c, t),
            Some(Utc.with_ymd_and_hms(2026, 12, 6, 1, 0, 0).unwrap().timestamp_millis())
        );
        assert!(parse("0 12 * * 7").is_ok(), "7 is Sunday too");
    }

    #[test]
    fn the_shortest_period_of_a_schedule() {
        let t = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap().timestamp_millis();
        let gap = |e: &str| shortest_period_seconds(&parse(e).unwrap(), t);
        assert_eq!(gap("* * * * *"), Some(60));
        assert_eq!(gap("*/5 * * * *"), Some(300));
        assert_eq!(gap("0 * * * *"), Some(3600));
        // Across the day's end: 23:59 then 00:00.
        assert_eq!(gap("0,59 0,23 * * *"), Some(60));
        assert_eq!(gap("0 3 * * 1"), Some(7 * 86_400));
        // Only in a month months away still shows its minutes.
        assert_eq!(gap("* * * 6 *"), Some(60));
    }

    #[test]
    fn bad_schedules_name_the_field() {
        for (expr, needle) in [
            ("61 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 32 * *", "day-of-month"),
            ("* * * Foo *", "month"),
            ("* * * * Funday", "day-of-week"),
            ("0 * * * * *", "6 fields"),
            ("* *", "2 fields"),
        ] {
            let e = parse(expr).unwrap_err();
            assert!(e.contains(needle), "{expr}: {e}");
        }
    }
}
