//! Time: the UTC calendar, zip timestamps and `SOURCE_DATE_EPOCH`.
//!
//! Every writer of zip entries takes its timestamps from [`zip_time`], so all
//! of them clamp the same way: zip (MS-DOS) time covers 1980-01-01 to
//! 2107-12-31; a time outside is pinned to the nearest end.

/// 1980-01-01T00:00:00Z, the earliest time a zip entry can carry.
pub const ZIP_EPOCH: i64 = 315_532_800;
/// 2107-12-31T23:59:58Z, the latest time a zip entry can carry (even seconds).
pub const ZIP_LATEST: i64 = 4_354_819_198;

/// The UTC calendar date and time of `secs` since the epoch:
/// (year, month, day, hour, minute, second).
pub fn utc_parts(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m as u32,
        d as u32,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// Seconds since the epoch of a UTC calendar date and time, the inverse of
/// [`utc_parts`].
pub fn utc_secs(y: i64, m: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    // Days since 1970-01-01 from a civil date (Howard Hinnant's algorithm).
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)
}

/// The zip timestamp of `secs` since the epoch (UTC), clamped to what zip
/// can carry ([`ZIP_EPOCH`] ..= [`ZIP_LATEST`]).
pub fn zip_time(secs: i64) -> zip::DateTime {
    let (y, m, d, h, mi, s) = utc_parts(secs.clamp(ZIP_EPOCH, ZIP_LATEST));
    zip::DateTime::from_date_and_time(y as u16, m as u8, d as u8, h as u8, mi as u8, s as u8)
        .unwrap_or_default()
}

/// The MS-DOS (time, date) fields a zip entry carries for `secs` since the
/// epoch (UTC), clamped as [`zip_time`] does; seconds are halved.
pub fn dos_time(secs: i64) -> (u16, u16) {
    let (y, m, d, h, mi, s) = utc_parts(secs.clamp(ZIP_EPOCH, ZIP_LATEST));
    let time = (h << 11) | (mi << 5) | (s / 2);
    let date = (((y - 1980) as u32) << 9) | (m << 5) | d;
    (time as u16, date as u16)
}

/// `SOURCE_DATE_EPOCH` is set but is not a whole number of seconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds since 1970-01-01")]
pub struct BadSourceDateEpoch(pub String);

/// `SOURCE_DATE_EPOCH` from the environment: `None` when unset or empty,
/// the number (surrounding spaces allowed) when valid, an error otherwise.
/// Every command reads it through here, so a bad value is refused the same
/// way everywhere.
pub fn source_date_epoch() -> Result<Option<i64>, BadSourceDateEpoch> {
    parse_source_date_epoch(std::env::var_os("SOURCE_DATE_EPOCH").as_deref())
}

/// [`source_date_epoch`] on a given value (for tests and callers that hold it).
pub fn parse_source_date_epoch(
    value: Option<&std::ffi::OsStr>,
) -> Result<Option<i64>, BadSourceDateEpoch> {
    let Some(v) = value else { return Ok(None) };
    let text = v.to_string_lossy();
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|_| BadSourceDateEpoch(text.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_matches_known_dates() {
        assert_eq!(utc_parts(0), (1970, 1, 1, 0, 0, 0));
        // 2024-02-29T12:34:56Z (a leap day).
        assert_eq!(utc_parts(1_709_210_096), (2024, 2, 29, 12, 34, 56));
        assert_eq!(utc_parts(-1), (1969, 12, 31, 23, 59, 59));
        assert_eq!(utc_secs(2024, 2, 29, 12, 34, 56), 1_709_210_096);
        assert_eq!(utc_secs(1969, 12, 31, 23, 59, 59), -1);
        // Round trips across leap days, century years and both eras.
        for t in (-4_000_000_000i64..8_000_000_000).step_by(86_399 * 97) {
            let (y, m, d, h, mi, s) = utc_parts(t);
            assert_eq!(utc_secs(y, m, d, h, mi, s), t);
        }
    }

    #[test]
    fn zip_time_clamps_both_ends() {
        let early = zip_time(0);
        assert_eq!((early.year(), early.month(), early.day()), (1980, 1, 1));
        let late = zip_time(i64::MAX / 4);
        assert_eq!((late.year(), late.month(), late.day()), (2107, 12, 31));
        let mid = zip_time(1_709_210_096);
        assert_eq!((mid.year(), mid.hour(), mid.minute()), (2024, 12, 34));
    }

    #[test]
    fn dos_time_is_the_zip_crates() {
        for t in [0, 1_709_210_096, 1_705_300_800, i64::MAX / 4] {
            let z = zip_time(t);
            assert_eq!(dos_time(t), (z.timepart(), z.datepart()), "{t}");
        }
    }

    #[test]
    fn source_date_epoch_values() {
        use std::ffi::OsStr;
        assert_eq!(parse_source_date_epoch(None), Ok(None));
        assert_eq!(parse_source_date_epoch(Some(OsStr::new(" "))), Ok(None));
        assert_eq!(
            parse_source_date_epoch(Some(OsStr::new(" 1700000000\n"))),
            Ok(Some(1_700_000_000))
        );
        assert!(parse_source_date_epoch(Some(OsStr::new("yesterday"))).is_err());
    }
}
