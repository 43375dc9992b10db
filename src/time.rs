//! Timestamps as RFC 3339 text, without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as `2026-11-22T12:00:00Z`.
pub fn now_rfc3339() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    rfc3339(seconds, 0)
}

/// A Unix time with a UTC offset in seconds, as `2026-11-22T13:00:00+01:00` (`Z` for UTC).
pub fn rfc3339(seconds: i64, offset: i32) -> String {
    let local = seconds.saturating_add(offset as i64);
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let zone = if offset == 0 {
        "Z".to_string()
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
    };
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{zone}", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// `2026-11-22T12:00:00Z` (or with an offset, `+01:00`) as Unix seconds.
pub fn unix_seconds(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (clock, offset) = match rest.strip_suffix('Z') {
        Some(clock) => (clock, 0),
        None => {
            let at = rest.rfind(['+', '-'])?;
            let (clock, zone) = rest.split_at(at);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, min) = zone[1..].split_once(':')?;
            (clock, sign * (h.parse::<i64>().ok()? * 3600 + min.parse::<i64>().ok()? * 60))
        }
    };
    let mut c = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (c.next()??, c.next()??, c.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant), the inverse of `civil_from_days`.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400 + h * 3600 + min * 60 + s - offset)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_and_offsets() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_348_800, 0), "2026-11-22T12:00:00Z");
        assert_eq!(rfc3339(1_795_348_800, 3600), "2026-11-22T13:00:00+01:00");
        assert_eq!(rfc3339(951_782_400, -19_800), "2000-02-28T18:30:00-05:30");
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn parses_what_it_formats() {
        for (seconds, offset) in [(0, 0), (1_795_348_800, 3600), (951_782_400, -19_800), (-1, 0)] {
            assert_eq!(unix_seconds(&rfc3339(seconds, offset)), Some(seconds), "{seconds} {offset}");
        }
        assert_eq!(unix_seconds("garbage"), None);
        assert_eq!(unix_seconds("2026-13-01T00:00:00Z"), None);
    }
}
