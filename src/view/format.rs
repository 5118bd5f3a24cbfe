//! How figures read in every view: amounts of cents, compact amounts for narrow cells, times and
//! ages. One place, so the terminal, the report and the page write a figure the same way.

/// Cents as a signed amount with two decimals and grouped thousands: `-1234567` → `-12,345.67`.
pub fn cents(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let units = (abs / 100).to_string();
    let mut grouped = String::with_capacity(units.len() + units.len() / 3);
    for (i, digit) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped}.{:02}", abs % 100)
}

/// Cents as whole units in at most 4 characters, rounded, with `k`, `M`, `G`, `T` or `P`:
/// `-1234567` (−12,345.67) → `-12k`. For cells of a matrix that must fit 80 columns.
pub fn compact_cents(cents: i128) -> String {
    const SUFFIXES: [&str; 6] = ["", "k", "M", "G", "T", "P"];
    let mut units = (cents.unsigned_abs() + 50) / 100;
    let negative = cents < 0 && units > 0;
    let room = if negative { 3 } else { 4 };
    for suffix in SUFFIXES {
        let digits = units.to_string();
        if digits.len() + suffix.len() <= room {
            return format!("{}{digits}{suffix}", if negative { "-" } else { "" });
        }
        units = (units + 500) / 1000;
    }
    if negative { "-∞".to_string() } else { "∞".to_string() }
}

/// A time in ms since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, day_s) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        day_s / 3600,
        day_s % 3600 / 60,
        day_s % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A duration in ms as a short age: `850 ms`, `12 s`, `5 min`, `3 h`, `2 d`.
pub fn age(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..120_000 => format!("{} s", ms / 1_000),
        120_000..7_200_000 => format!("{} min", ms / 60_000),
        7_200_000..172_800_000 => format!("{} h", ms / 3_600_000),
        _ => format!("{} d", ms / 86_400_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_cents() {
        assert_eq!(cents(0), "0.00");
        assert_eq!(cents(-5), "-0.05");
        assert_eq!(cents(123_456_789), "1,234,567.89");
        assert_eq!(cents(-100_000), "-1,000.00");
        assert_eq!(cents(i128::from(i64::MIN)), "-92,233,720,368,547,758.08");
    }

    #[test]
    fn compact_cents_fit_four_characters() {
        assert_eq!(compact_cents(0), "0");
        assert_eq!(compact_cents(49), "0");
        assert_eq!(compact_cents(-49), "0");
        assert_eq!(compact_cents(-99_900), "-999");
        assert_eq!(compact_cents(-100_000), "-1k");
        assert_eq!(compact_cents(999_900), "9999");
        assert_eq!(compact_cents(1_000_000), "10k");
        assert_eq!(compact_cents(-1_234_567), "-12k");
        assert_eq!(compact_cents(123_456_700), "1M");
        for cents in [i128::from(i64::MIN), i128::from(i64::MAX), -1, 1, 12_345_678_901] {
            assert!(compact_cents(cents).chars().count() <= 4, "{cents}: {}", compact_cents(cents));
        }
    }

    #[test]
    fn formats_times_and_ages() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_764_000_000_000), "2025-11-24 16:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(age(850), "850 ms");
        assert_eq!(age(61_000), "61 s");
        assert_eq!(age(3 * 86_400_000), "3 d");
    }
}
