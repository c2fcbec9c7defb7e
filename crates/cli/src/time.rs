//! RFC 3339 (UTC) parsing of the times people type, and formatting (from `tenant::clock`), without
//! a time crate: parsing uses Howard Hinnant's `days_from_civil`.

use anyhow::{bail, Context};

/// Days since 1970-01-01 for a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2024-05-01T12:00:00Z` for epoch seconds (the tenant crate's formatting, so the CLI and the
/// cloud's messages agree).
pub fn format_rfc3339(epoch: i64) -> String {
    tenant::clock::rfc3339(epoch)
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    tenant::clock::Clock::now(&tenant::clock::SystemClock)
}

/// Accepts epoch seconds (`1714564800`), an RFC 3339 time (`2024-05-01T12:00:00Z`,
/// `2024-05-01T14:00:00+02:00`, fractions ignored) or a date (`2024-05-01`, midnight UTC).
pub fn parse_time(input: &str) -> anyhow::Result<i64> {
    let s = input.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().context("the number of seconds is too large");
    }
    parse_rfc3339(s).with_context(|| {
        format!("`{input}` is not a time: give RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01) or epoch seconds")
    })
}

fn parse_rfc3339(s: &str) -> anyhow::Result<i64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> anyhow::Result<u32> {
        let part = s.get(range).context("too short")?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            bail!("not a number");
        }
        Ok(part.parse()?)
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        bail!("not a date");
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(i64::from(y), m) {
        bail!("no such date");
    }
    let days = days_from_civil(i64::from(y), m, d);
    if b.len() == 10 {
        return Ok(days * 86_400);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        bail!("not a time of day");
    }
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hh > 23 || mm > 59 || ss > 60 {
        bail!("no such time of day");
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            bail!("empty fraction");
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let oh = num_in(rest, 1..3)?;
            let om = num_in(rest, 4..6)?;
            let secs = i64::from(oh * 3600 + om * 60);
            if rest.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => bail!("missing time zone (Z or ±hh:mm)"),
    };
    Ok(days * 86_400 + i64::from(hh * 3600 + mm * 60 + ss) - offset)
}

fn num_in(s: &str, range: std::ops::Range<usize>) -> anyhow::Result<u32> {
    let part = &s[range];
    if !part.bytes().all(|c| c.is_ascii_digit()) {
        bail!("not a number");
    }
    Ok(part.parse()?)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn parses_what_it_formats_across_many_days() {
        for t in (-5_000_000_000i64..5_000_000_000).step_by(86_399 * 97) {
            assert_eq!(
                parse_time(&format_rfc3339(t)).unwrap(),
                t,
                "{}",
                format_rfc3339(t)
            );
        }
    }

    #[test]
    fn accepts_epoch_dates_offsets_and_fractions() {
        assert_eq!(parse_time("1714564800").unwrap(), 1_714_564_800);
        assert_eq!(parse_time("2024-05-01").unwrap(), 1_714_521_600);
        assert_eq!(
            parse_time("2024-05-01T14:00:00+02:00").unwrap(),
            1_714_564_800
        );
        assert_eq!(
            parse_time("2024-05-01T07:30:00.123-04:30").unwrap(),
            1_714_564_800
        );
    }

    #[test]
    fn refuses_impossible_or_zone_less_times() {
        for bad in [
            "",
            "2023-02-29",
            "2024-13-01",
            "2024-05-01T12:00:00",
            "yesterday",
            "2024-05-01T25:00:00Z",
        ] {
            let err = parse_time(bad).unwrap_err();
            assert!(format!("{err:#}").contains("RFC 3339"), "{bad}: {err:#}");
        }
    }
}
