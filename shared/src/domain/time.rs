//! Time as the tables store it: UTC microseconds since the epoch, and dates as days since
//! the epoch. Parsing RFC 3339 timestamps and the calendar helpers the rules need.

use chrono::{DateTime, NaiveDate};

/// Microseconds in one second, hour and day.
pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_HOUR: i64 = 3_600 * MICROS_PER_SECOND;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// Parses an RFC 3339 timestamp that carries an offset (`Z` or `±hh:mm`) into UTC microseconds.
/// Returns `None` without an offset, for an invalid date, or outside years 1–9999.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let parsed = DateTime::parse_from_rfc3339(text.trim()).ok()?;
    let micros = parsed.timestamp_micros();
    let year_ok = (1..=9999).contains(&chrono::Datelike::year(&parsed.naive_utc()));
    year_ok.then_some(micros)
}

/// The UTC date (days since 1970-01-01) of a timestamp.
pub fn date_of(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// The UTC hour (0–23) of a timestamp.
pub fn hour_of(micros: i64) -> u32 {
    (micros.rem_euclid(MICROS_PER_DAY) / MICROS_PER_HOUR) as u32
}

/// Days since the epoch for a calendar date.
pub fn days_from_date(date: NaiveDate) -> i32 {
    (date - NaiveDate::default()).num_days() as i32
}

/// The calendar date of days since the epoch.
pub fn date_from_days(days: i32) -> NaiveDate {
    NaiveDate::default() + chrono::Duration::days(days as i64)
}

/// RFC 3339 text (UTC, microseconds) of a timestamp, for messages and reports.
pub fn format_timestamp(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

/// The current time in UTC microseconds (for hops; the domain takes time as a parameter).
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_need_an_offset() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_timestamp("1970-01-01T02:00:00+02:00"), Some(0));
        assert_eq!(
            parse_timestamp("2026-03-01T10:00:00.5Z"),
            Some(1772359200500000)
        );
        assert_eq!(parse_timestamp("2026-03-01T10:00:00"), None);
        assert_eq!(parse_timestamp("2026-02-30T10:00:00Z"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn dates_and_hours_are_utc() {
        assert_eq!(date_of(0), 0);
        assert_eq!(date_of(-1), -1);
        assert_eq!(hour_of(MICROS_PER_DAY + 5 * MICROS_PER_HOUR + 1), 5);
        assert_eq!(
            date_from_days(days_from_date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap())),
            NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
        );
    }
}
