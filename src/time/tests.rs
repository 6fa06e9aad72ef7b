use super::*;
use proptest::prelude::*;

const S: i64 = 1_000_000_000;

/// Paris by its POSIX rule, so that these tests need no time-zone database.
fn paris() -> Zone {
    Zone::named("CET-1CEST,M3.5.0,M10.5.0/3").expect("POSIX rule")
}

/// Howard Hinnant's `civil_from_days`, the calendar `Civil` was computed with before jiff:
/// mount directory names must come out byte for byte the same.
fn hinnant(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn civil_names_are_those_of_the_old_calendar() {
    for secs in [
        i64::MIN / S - 1,
        -1,
        0,
        951_782_400,
        1_795_545_199,
        i64::MAX / S,
    ] {
        assert_eq!(Civil::of_unix(secs).format('T'), hinnant(secs), "{secs}");
    }
    assert_eq!(
        Civil::of_unix(951_782_400).format(' '),
        "2000-02-29 00:00:00"
    );
    // Beyond jiff's years, clamped rather than a panic.
    assert_eq!(Civil::of_unix(i64::MAX).year, 9999);
    assert_eq!(Civil::of_unix(i64::MIN).year, -9999);
}

proptest! {
    #[test]
    fn civil_agrees_with_the_old_calendar(secs in (i64::MIN / S - 1)..=(i64::MAX / S)) {
        prop_assert_eq!(Civil::of_unix(secs).format('T'), hinnant(secs));
    }

    #[test]
    fn a_listed_time_reads_back_as_its_second(ns in 0i64..4_102_444_800 * S) {
        for zone in [Zone::utc(), paris()] {
            let shown = zone.format(ns);
            let end = parse(&shown, 0, &zone).expect(&shown);
            prop_assert_eq!(end, ns.div_euclid(S) * S + S - 1, "{}", shown);
        }
    }

    #[test]
    fn no_text_panics(text in "\\PC{0,40}") {
        let _ = parse(&text, 1_795_545_199 * S, &paris());
    }
}

#[test]
fn listings() {
    let t = 1_795_545_199 * S + 250_000_000;
    assert_eq!(Zone::utc().format(t), "2026-11-24 18:33:19Z");
    assert_eq!(paris().format(t), "2026-11-24 19:33:19+01:00");
    // Summer time.
    assert_eq!(
        paris().format(1_780_000_000 * S),
        "2026-05-28 22:26:40+02:00"
    );
    assert_eq!(Zone::utc().format(-1), "1969-12-31 23:59:59Z");
    let new_york = Zone::named("EST5EDT,M3.2.0,M11.1.0").expect("POSIX rule");
    assert_eq!(new_york.format(t), "2026-11-24 13:33:19-05:00");
}

#[test]
fn accepted_forms() {
    // Now: Tuesday 2026-11-24 19:33:19.25 in Paris (18:33:19.25Z).
    let now = 1_795_545_199 * S + 250_000_000;
    let paris = paris();
    let day = 86_400 * S;
    // The last nanosecond of 2026-11-24 in Paris: 2026-11-24T23:00:00Z - 1 ns.
    let end_of_24th = 1_795_561_200 * S - 1;
    let table: &[(&str, i64)] = &[
        ("1970-01-01T00:00:00.0Z", 0),
        ("1970-01-01T00:00:00Z", S - 1),
        ("2026-11-24T18:33:19Z", 1_795_545_200 * S - 1),
        ("2026-11-24t18:33:19z", 1_795_545_200 * S - 1),
        ("2026-11-24 19:33:19+01:00", 1_795_545_200 * S - 1),
        ("2026-11-24T13:33:19-05:00", 1_795_545_200 * S - 1),
        ("2026-11-24T18:33:19.25Z", 1_795_545_199 * S + 250_000_000),
        (
            "2026-11-24T18:33:19.123456789Z",
            1_795_545_199 * S + 123_456_789,
        ),
        ("2026-11-24T18:33Z", 1_795_545_240 * S - 1),
        ("2026-11-24T18:33:60Z", 1_795_545_240 * S - 1),
        // Local: Paris is at +01:00 in November.
        ("2026-11-24 19:33:19", 1_795_545_200 * S - 1),
        ("2026-11-24T19:33", 1_795_545_240 * S - 1),
        ("2026-11-24", end_of_24th),
        ("today", end_of_24th),
        ("Yesterday", end_of_24th - day),
        ("now", now),
        ("NOW", now),
        ("latest", i64::MAX),
        ("Latest", i64::MAX),
        ("90s", now - 90 * S),
        ("90m", now - 5_400 * S),
        ("2h", now - 7_200 * S),
        ("3d", now - 3 * day),
        ("1w", now - 7 * day),
        ("0d", now),
        // Far ends: past 2262 is the latest time there is.
        ("2999-01-01", i64::MAX),
        ("9999-12-31", i64::MAX),
        ("1000-01-01", i64::MIN),
    ];
    for (text, want) in table {
        assert_eq!(parse(text, now, &paris), Ok(*want), "{text}");
    }
    // In UTC, a date ends at midnight UTC.
    assert_eq!(
        parse("2000-02-29", now, &Zone::utc()),
        Ok((951_782_400 + 86_400) * S - 1)
    );
}

#[test]
fn days_are_calendar_days_across_a_change_of_clocks() {
    // 2026-03-30 12:00 in Paris (+02:00) is 10:00Z; the clocks went forward on the 29th.
    let now = 1_774_864_800 * S;
    let paris = paris();
    // 1d is 2026-03-29 12:00 +02:00; 2d is 2026-03-28 12:00 +01:00, 47 hours before.
    assert_eq!(parse("1d", now, &paris), Ok(now - 24 * 3_600 * S));
    assert_eq!(parse("2d", now, &paris), Ok(now - 47 * 3_600 * S));
    assert_eq!(parse("48h", now, &paris), Ok(now - 48 * 3_600 * S));
    // The 29th had 23 hours; yesterday ended at midnight of the 30th, +02:00.
    assert_eq!(parse("yesterday", now, &paris), Ok(1_774_821_600 * S - 1));
    // 02:30 on the 29th never happened: read as after the jump (03:30 +02:00 = 01:30Z).
    assert_eq!(
        parse("2026-03-29T02:30:00.0", now, &paris),
        Ok(1_774_747_800 * S)
    );
    // 02:30 on 2026-10-25 happened twice: the first, at +02:00 (00:30Z); an offset picks the
    // second.
    assert_eq!(
        parse("2026-10-25 02:30:00.0", now, &paris),
        Ok(1_792_888_200 * S)
    );
    assert_eq!(
        parse("2026-10-25 02:30:00.0+01:00", now, &paris),
        Ok(1_792_891_800 * S)
    );
}

#[test]
fn refused_forms() {
    let now = 1_795_545_199 * S;
    let paris = paris();
    for bad in [
        "",
        "2026-1-24",
        "20261124",
        "2026-11-24X",
        "2026-11-24T",
        "2026-11-24T20",
        "2026-11-24T20:00:00+0100",
        "2026-11-24T20:00:00.Z",
        "2026-11-24T20:00:00.1234567890Z",
        "2026-11-24T20:00.5Z",
        "2026-11-24Z",
        "2026/11/24",
        "3",
        "d",
        "3y",
        "3 d",
        "-3d",
        "3dd",
        "tomorrow",
        "nowish",
        "1.5h",
    ] {
        assert_eq!(parse(bad, now, &paris), Err(TimeError::Form), "{bad:?}");
    }
    for bad in [
        "2026-13-01",
        "2026-02-30",
        "2026-00-10",
        "2026-11-24T25:00:00Z",
        "2026-11-24T20:61Z",
        "2026-11-24T20:00:61Z",
        "2026-11-24T20:00:00+24:00",
    ] {
        assert!(
            matches!(parse(bad, now, &paris), Err(TimeError::NoSuch(_))),
            "{bad:?}: {:?}",
            parse(bad, now, &paris)
        );
    }
    for bad in ["99999999999999999999d", "9999999999w"] {
        assert_eq!(parse(bad, now, &paris), Err(TimeError::OutOfRange), "{bad}");
    }
    // The message names the accepted forms, on one line.
    let message = TimeError::Form.to_string();
    assert!(message.contains("RFC 3339") && message.contains("yesterday"));
    assert!(!message.contains('\n'));
}
