//! The times musicfs prints and reads, on jiff with the system's time-zone database: UTC names
//! for what must not change with the reader's zone (`mount`'s snapshot directories, a damaged
//! index's copy), local or UTC times for listings (`snapshots`), and the times a user writes
//! (`diff`'s `ORIGIN@TIME`, in the user's zone unless they give an offset).
//!
//! The calendar and the zone rules are jiff's; the grammar of a user's time is ours, kept
//! strict so that a typo is refused rather than read as some other moment
//! (`docs/time.md`). This module never reads a clock itself except in [`now_ns`], and never
//! decides which snapshot a time picks: `diff::operand` does.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};
use jiff::{Span, Timestamp};

/// The forms [`parse`] accepts, for error messages.
pub const FORMS: &str = "write RFC 3339 (2026-11-24T20:00:00Z, 2026-11-24T21:00:00+01:00), \
a local date or time (2026-11-24, 2026-11-24 20:00, 2026-11-24T20:00:05), now, today, \
yesterday, latest (the newest snapshot), or an age (90s, 90m, 2h, 3d, 1w)";

/// Why a time was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The text has none of the accepted forms.
    #[error("not a time; {FORMS}")]
    Form,
    /// The form is right but the date or time does not exist (February 30, hour 25).
    #[error("no such date or time ({0})")]
    NoSuch(String),
    /// The time is beyond the years -9999 to 9999.
    #[error("out of range (years -9999 to 9999)")]
    OutOfRange,
}

/// A moment in UTC to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1–12.
    pub month: i64,
    /// Day of the month, 1–31.
    pub day: i64,
    /// Hour, 0–23.
    pub hour: i64,
    /// Minute, 0–59.
    pub minute: i64,
    /// Second, 0–59.
    pub second: i64,
}

impl Civil {
    /// The UTC civil time of `secs` seconds since the Unix epoch. Times beyond the years
    /// -9999 to 9999 (which no `i64` of nanoseconds reaches) are clamped to them.
    pub fn of_unix(secs: i64) -> Civil {
        let t = Timestamp::from_second(secs).unwrap_or(if secs < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        });
        let d = TimeZone::UTC.to_datetime(t);
        Civil {
            year: d.year().into(),
            month: d.month().into(),
            day: d.day().into(),
            hour: d.hour().into(),
            minute: d.minute().into(),
            second: d.second().into(),
        }
    }

    /// `YYYY-MM-DD` and `HH:MM:SS` joined by `sep` (`' '` for listings, `'T'` for RFC 3339).
    pub fn format(&self, sep: char) -> String {
        format!(
            "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The zone a listing shows times in, and local times are read in.
#[derive(Clone, Debug)]
pub struct Zone {
    tz: TimeZone,
    utc: bool,
}

impl Zone {
    /// UTC: times are shown with `Z`.
    pub fn utc() -> Zone {
        Zone {
            tz: TimeZone::UTC,
            utc: true,
        }
    }

    /// The user's zone: `TZ` (an IANA name such as `Europe/Paris`, a zoneinfo path or a
    /// POSIX rule), else `/etc/localtime`. When neither names a zone jiff can read, UTC (a
    /// warning in the log when `TZ` named one); times are then still shown with their offset
    /// (`+00:00`).
    pub fn local() -> Zone {
        let tz = TimeZone::try_system().unwrap_or_else(|e| {
            match std::env::var_os("TZ") {
                Some(tz) => tracing::warn!(
                    "TZ={}: not a time zone ({e}); local times are UTC",
                    tz.to_string_lossy()
                ),
                None => tracing::debug!("no local time zone ({e}); local times are UTC"),
            }
            TimeZone::UTC
        });
        Zone { tz, utc: false }
    }

    /// A zone by IANA name (`Europe/Paris`, from the system's database) or POSIX rule
    /// (`CET-1CEST,M3.5.0,M10.5.0/3`), shown with its offset.
    pub fn named(name: &str) -> Result<Zone, TimeError> {
        let tz = TimeZone::get(name)
            .or_else(|_| TimeZone::posix(name))
            .map_err(|e| TimeError::NoSuch(e.to_string()))?;
        Ok(Zone { tz, utc: false })
    }

    /// `YYYY-MM-DD HH:MM:SS` of `time_ns` (ns since the epoch, truncated to the second) in
    /// this zone, then `Z` for UTC or the offset (`+01:00`): RFC 3339 with a space, which
    /// [`parse`] reads back as the end of that second.
    pub fn format(&self, time_ns: i64) -> String {
        let t = Timestamp::from_second(time_ns.div_euclid(1_000_000_000))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let d = self.tz.to_datetime(t);
        let clock = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        );
        if self.utc {
            return format!("{clock}Z");
        }
        format!("{clock}{}", offset_text(self.tz.to_offset(t)))
    }
}

/// `+01:00`, `-05:00`, `+00:00`; `+00:09:21` for an offset with seconds (local mean time
/// before zones were standard).
fn offset_text(offset: Offset) -> String {
    let total = offset.seconds();
    let sign = if total < 0 { '-' } else { '+' };
    let abs = total.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs % 3600 / 60, abs % 60);
    if s == 0 {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}:{m:02}:{s:02}")
    }
}

/// This moment, ns since the epoch.
pub fn now_ns() -> i64 {
    clamp_ns(Timestamp::now())
}

/// Reads a time a user wrote, relative to `now_ns` and in `zone` unless it carries an
/// offset, and returns the moment it ends, ns since the epoch (clamped to the years an `i64`
/// of nanoseconds holds, 1677 to 2262). A time names a span as wide as its precision, and
/// the span's last nanosecond is returned, so that `ORIGIN@TIME` takes the snapshots taken
/// within it:
///
/// - `2026-11-24T20:00:00Z`, `2026-11-24 21:00:00.5+01:00`: RFC 3339 (`T`, `t` or a space;
///   `Z`, `z` or `±HH:MM`; seconds optional): that second (minute), or that instant when it
///   has a fraction;
/// - `2026-11-24`, `2026-11-24 20:00`, `2026-11-24T20:00:05`: a local date or time: that day,
///   minute or second in `zone`;
/// - `now`: `now_ns`; `today`, `yesterday`: those local dates;
/// - `90s`, `90m`, `2h`, `3d`, `1w`: that long before now (days and weeks on the local
///   calendar, so a day across a change of clocks is still a day).
///
/// A local time that the clocks skip is read as after the jump; one they pass twice, as
/// its first occurrence (jiff's "compatible" rule, as RFC 5545 and Temporal do).
pub fn parse(text: &str, now_ns: i64, zone: &Zone) -> Result<i64, TimeError> {
    let now = Timestamp::from_nanosecond(now_ns.into()).map_err(|_| TimeError::OutOfRange)?;
    let word = text.to_ascii_lowercase();
    match word.as_str() {
        "now" => return Ok(now_ns),
        // restic's word for the newest snapshot: the end of all time, later than every one.
        "latest" => return Ok(i64::MAX),
        "today" | "yesterday" => {
            let mut day = zone.tz.to_datetime(now).date();
            if word == "yesterday" {
                day = day.yesterday().map_err(|_| TimeError::OutOfRange)?;
            }
            return end_of(day.at(0, 0, 0, 0), Span::new().days(1), &zone.tz);
        }
        _ => {}
    }
    if let Some(age) = parse_age(text)? {
        let then = now
            .to_zoned_datetime(zone.tz.clone())
            .checked_sub(age)
            .map_err(|_| TimeError::OutOfRange)?;
        return Ok(clamp_ns(then.timestamp()));
    }
    let Written {
        start,
        width,
        offset,
    } = parse_written(text)?;
    let tz = match offset {
        Some(offset) => offset.to_time_zone(),
        None => zone.tz.clone(),
    };
    match width {
        Some(width) => end_of(start, width, &tz),
        None => Ok(clamp_ns(
            tz.to_timestamp(start).map_err(|_| TimeError::OutOfRange)?,
        )),
    }
}

/// The last nanosecond of the span of `width` from `start` (both civil, in `tz`).
fn end_of(start: DateTime, width: Span, tz: &TimeZone) -> Result<i64, TimeError> {
    let next = match start.checked_add(width) {
        Ok(next) => next,
        // The span ends after 9999-12-31: the latest time there is.
        Err(_) => return Ok(i64::MAX),
    };
    let end = tz.to_timestamp(next).map_err(|_| TimeError::OutOfRange)?;
    Ok(clamp(end.as_nanosecond() - 1))
}

/// Nanoseconds since the epoch, clamped to an `i64` (the years 1677 to 2262): a time past
/// the end is later than every snapshot, one before the start earlier than every one.
fn clamp_ns(t: Timestamp) -> i64 {
    clamp(t.as_nanosecond())
}

fn clamp(ns: i128) -> i64 {
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

/// `90s`, `90m`, `2h`, `3d`, `1w` as a span; `None` when `text` is not of that form.
fn parse_age(text: &str) -> Result<Option<Span>, TimeError> {
    let Some(unit) = text.chars().last() else {
        return Ok(None);
    };
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let n: i64 = digits.parse().map_err(|_| TimeError::OutOfRange)?;
    let span = match unit {
        's' => Span::new().try_seconds(n),
        'm' => Span::new().try_minutes(n),
        'h' => Span::new().try_hours(n),
        'd' => Span::new().try_days(n),
        'w' => Span::new().try_weeks(n),
        _ => return Ok(None),
    };
    span.map(Some).map_err(|_| TimeError::OutOfRange)
}

/// A date or date-time as written: its start, its width (`None` for an instant, when the
/// seconds have a fraction) and its offset (`None`: local).
struct Written {
    start: DateTime,
    width: Option<Span>,
    offset: Option<Offset>,
}

/// `YYYY-MM-DD`, then optionally `T`/`t`/space, `HH:MM`, `:SS`, `.fraction`, and an offset
/// (`Z`, `z`, `±HH:MM`; only after a time of day).
fn parse_written(text: &str) -> Result<Written, TimeError> {
    let b = text.as_bytes();
    let number = |at: usize, len: usize| -> Result<i64, TimeError> {
        let part = b.get(at..at + len).ok_or(TimeError::Form)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(TimeError::Form);
        }
        part.iter()
            .try_fold(0i64, |n, d| Some(n * 10 + i64::from(d - b'0')))
            .ok_or(TimeError::Form)
    };
    let expect = |at: usize, what: &[u8]| -> Result<(), TimeError> {
        match b.get(at) {
            Some(c) if what.contains(c) => Ok(()),
            _ => Err(TimeError::Form),
        }
    };
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    expect(4, b"-")?;
    expect(7, b"-")?;
    let date = Date::new(year as i16, month as i8, day as i8).map_err(no_such)?;
    if b.len() == 10 {
        return Ok(Written {
            start: date.at(0, 0, 0, 0),
            width: Some(Span::new().days(1)),
            offset: None,
        });
    }
    expect(10, b"Tt ")?;
    let (hour, minute) = (number(11, 2)?, number(14, 2)?);
    expect(13, b":")?;
    let mut i = 16;
    let mut second = 0;
    let mut nanos = 0i64;
    let mut width = Span::new().minutes(1);
    if b.get(i) == Some(&b':') {
        second = number(i + 1, 2)?;
        width = Span::new().seconds(1);
        i += 3;
    }
    let mut instant = false;
    if b.get(i) == Some(&b'.') && i == 19 {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return Err(TimeError::Form);
        }
        nanos = number(i + 1, digits)? * 10i64.pow(9 - digits as u32);
        instant = true;
        i += 1 + digits;
    }
    let offset = match &b[i..] {
        b"" => None,
        b"Z" | b"z" => Some(Offset::UTC),
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (number(i + 1, 2)?, number(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return Err(TimeError::NoSuch(format!("offset {}", &text[i..])));
            }
            let seconds = (oh * 3600 + om * 60) as i32;
            let seconds = if *sign == b'-' { -seconds } else { seconds };
            Some(Offset::from_seconds(seconds).map_err(no_such)?)
        }
        _ => return Err(TimeError::Form),
    };
    // A leap second (:60) counts as the last second of its minute.
    let second = if second == 60 { 59 } else { second };
    let time = Time::new(hour as i8, minute as i8, second as i8, nanos as i32).map_err(no_such)?;
    let start = date.to_datetime(time);
    Ok(Written {
        start,
        width: (!instant).then_some(width),
        offset,
    })
}

fn no_such(e: jiff::Error) -> TimeError {
    TimeError::NoSuch(e.to_string())
}

#[cfg(test)]
mod tests;
