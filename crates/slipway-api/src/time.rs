//! Times as the API writes them: RFC 3339 in UTC with `Z`, the one format every answer,
//! event and page uses.

use chrono::{DateTime, SecondsFormat, Utc};

/// To the millisecond: `2026-12-04T19:37:40.123Z` (runs, tasks, events).
pub fn millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// To the second: `2026-12-04T19:37:40Z` (schedule occurrences, pages).
pub fn seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Milliseconds since the epoch, to the millisecond (empty if out of range).
pub fn from_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map(millis).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_format() {
        assert_eq!(super::from_ms(1_780_000_000_123), "2026-05-28T20:26:40.123Z");
        assert_eq!(super::from_ms(i64::MAX), "");
    }
}
