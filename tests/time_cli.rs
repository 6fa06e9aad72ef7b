//! Times in the user's zone, through the binary with `TZ` set: `snapshots` lists local times
//! with their offset (`--utc`: UTC with `Z`; `--json`: Unix seconds, as before), and each
//! accepted form of `ORIGIN@TIME` picks the snapshot it should (`diff ORIGIN@TIME ID` exits 0
//! only when both name the same tree); a bad time, and a snapshot prefix that matches several
//! snapshots, exit 2 with one line naming the argument.
//!
//! The snapshots are recorded through the library at chosen times (roots of real scans), so
//! each form's answer is known: `/fixed` at fixed moments around a local midnight, `/recent`
//! at ages from now.

mod util;

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use musicfs::id::TreeId;
use musicfs::repo::Repository;
use musicfs::snapshot::SnapshotRecord;
use serde_json::Value;
use util::{parse_json_lines, TestRepo};

const S: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * S;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const PARIS: &str = "Europe/Paris";

/// Fails, naming the package, where the time-zone database is missing.
fn need_tzdata() {
    for zone in [PARIS, "America/New_York"] {
        assert!(
            Path::new("/usr/share/zoneinfo").join(zone).exists(),
            "/usr/share/zoneinfo/{zone} is missing: install Debian's tzdata"
        );
    }
}

/// Runs the binary with `TZ=tz`.
fn run(t: &TestRepo, tz: &str, args: &[&str]) -> Output {
    let mut cmd = t.cmd();
    cmd.args(args);
    cmd.command().env("TZ", tz).output().expect("run musicfs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `n` distinct trees, each from a real scan of a directory of its own.
fn roots(t: &TestRepo, n: usize) -> Vec<TreeId> {
    for i in 0..n {
        let dir = t.mkdir(&format!("v{i}"));
        std::fs::write(dir.join("track.txt"), format!("version {i}\n")).expect("write");
        t.cmd().arg("scan").arg(&dir).assert_exit(0);
    }
    let repo = Repository::open(t.repo()).expect("open repository");
    let roots: Vec<TreeId> = repo
        .snapshots()
        .expect("snapshots")
        .iter()
        .map(|(_, r)| r.root)
        .collect();
    assert_eq!(roots.len(), n);
    roots
}

/// Records snapshots of `origin` with these roots and times (oldest first); returns their
/// ids (64 hex digits).
fn record(t: &TestRepo, origin: &str, at: &[(TreeId, i64)]) -> Vec<String> {
    let repo = Repository::open(t.repo()).expect("open repository");
    let mut writer = repo.writer().expect("writer");
    let ids = at
        .iter()
        .map(|&(root, time_ns)| {
            let record = SnapshotRecord {
                origin: origin.into(),
                time_ns,
                root,
                files: 1,
                bytes: 10,
            };
            writer.add_snapshot(&record).expect("add snapshot").to_hex()
        })
        .collect();
    writer.commit().expect("commit");
    ids
}

/// Asserts that `ORIGIN@TIME` picks the snapshot `want` (by its id, as the other operand).
fn assert_picks(t: &TestRepo, tz: &str, operand: &str, want: &str, name: &str) {
    let out = run(t, tz, &["diff", operand, want]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "TZ={tz} {operand} should pick {name}\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn now_ns() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(d.as_nanos()).expect("before 2262")
}

#[test]
fn each_form_of_origin_at_time_picks_its_snapshot() {
    need_tzdata();
    let t = TestRepo::new();
    let roots = roots(&t, 5);

    // /fixed: 24 November 2026, around midnight in Paris (UTC+1 then).
    let f = record(
        &t,
        "/fixed",
        &[
            (roots[0], 1_795_176_000 * S),         // 2026-11-20T12:00:00Z
            (roots[1], 1_795_545_000 * S),         // 2026-11-24T18:30:00Z, 19:30 Paris
            (roots[2], 1_795_563_000 * S),         // 2026-11-24T23:30:00Z, 00:30 the 25th
            (roots[3], 1_795_600_800 * S + S / 2), // 2026-11-25T10:00:00.5Z
        ],
    );
    let names = [
        "f0 (20th)",
        "f1 (24th 19:30)",
        "f2 (25th 00:30)",
        "f3 (25th 11:00)",
    ];
    // Distinct trees: a diff between two of them is not empty.
    assert_eq!(
        run(&t, PARIS, &["diff", &f[1], &f[2]]).status.code(),
        Some(1)
    );

    let table: &[(&str, &str, usize)] = &[
        // Local dates: the whole day in TZ.
        (PARIS, "2026-11-23", 0),
        (PARIS, "2026-11-24", 1),
        (PARIS, "2026-11-25", 3),
        ("UTC", "2026-11-24", 2),
        ("America/New_York", "2026-11-24", 2),
        // Local times: the whole minute or second in TZ.
        (PARIS, "2026-11-24 19:29", 0),
        (PARIS, "2026-11-24 19:30", 1),
        (PARIS, "2026-11-24T19:30", 1),
        (PARIS, "2026-11-24T19:30:00", 1),
        (PARIS, "2026-11-25 00:29", 1),
        (PARIS, "2026-11-25 00:30:00", 2),
        (PARIS, "2026-11-25 11:00:00", 3),
        ("UTC", "2026-11-24 19:30", 1),
        ("UTC", "2026-11-24 18:29", 0),
        ("America/New_York", "2026-11-24 13:30", 1),
        // RFC 3339: the zone does not matter.
        (PARIS, "2026-11-24T18:29:59Z", 0),
        (PARIS, "2026-11-24T18:30:00Z", 1),
        ("America/New_York", "2026-11-24T18:30:00Z", 1),
        (PARIS, "2026-11-24T19:30:00+01:00", 1),
        (PARIS, "2026-11-24 13:30-05:00", 1),
        (PARIS, "2026-11-25T00:29:59.999+01:00", 1),
        (PARIS, "2026-11-25T10:00:00.4Z", 2),
        (PARIS, "2026-11-25T10:00:00.5Z", 3),
        (PARIS, "2026-11-25t10:00:00z", 3),
        // Later than every snapshot.
        (PARIS, "2999-01-01", 3),
        (PARIS, "now", 3),
        (PARIS, "today", 3),
        (PARIS, "1h", 3),
    ];
    for &(tz, time, want) in table {
        assert_picks(&t, tz, &format!("/fixed@{time}"), &f[want], names[want]);
    }
    // Before the first snapshot: none, said so.
    let out = run(&t, PARIS, &["diff", "/fixed@2026-11-19", &f[0]]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("no snapshot at or before"),
        "{out:?}"
    );

    // A time as `snapshots` prints it picks that snapshot, in either zone form.
    for (tz, utc) in [(PARIS, false), ("America/New_York", false), (PARIS, true)] {
        let mut args = vec!["snapshots", "/fixed"];
        if utc {
            args.push("--utc");
        }
        let out = run(&t, tz, &args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let listing = text(&out.stdout);
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 4, "{listing}");
        for (i, line) in lines.iter().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(f[i].starts_with(fields[0]), "{line}");
            let time = format!("{} {}", fields[1], fields[2]);
            assert_picks(&t, tz, &format!("/fixed@{time}"), &f[i], names[i]);
        }
    }

    // /recent: ages from now, in Paris.
    let now = now_ns();
    let ages = [10 * DAY, 3 * DAY + HOUR, 2 * DAY, 3 * HOUR, 30 * MINUTE];
    let at: Vec<(TreeId, i64)> = ages
        .iter()
        .enumerate()
        .map(|(i, age)| (roots[i], now - age))
        .collect();
    let r = record(&t, "/recent", &at);
    let names = [
        "10 days ago",
        "3 days 1 hour ago",
        "2 days ago",
        "3 hours ago",
        "30 minutes ago",
    ];
    // Unless this test took an hour, each age falls between two snapshots.
    for (time, want) in [
        ("1w", 0),
        ("7d", 0),
        ("3d", 1),
        ("50h", 1),
        ("2d", 2),
        ("47h", 2),
        ("2h", 3),
        ("90m", 3),
        ("10m", 4),
        ("600s", 4),
        ("now", 4),
        ("today", 4),
    ] {
        assert_picks(&t, PARIS, &format!("/recent@{time}"), &r[want], names[want]);
    }
    // Yesterday: the last snapshot before midnight in Paris.
    let paris = jiff::tz::TimeZone::get(PARIS).expect("Europe/Paris");
    let midnight = jiff::Timestamp::now()
        .to_zoned_datetime(paris)
        .start_of_day()
        .expect("midnight")
        .timestamp()
        .as_nanosecond();
    let want = at
        .iter()
        .rposition(|&(_, time)| i128::from(time) < midnight)
        .expect("10 days ago is before yesterday's end");
    assert_picks(&t, PARIS, "/recent@yesterday", &r[want], names[want]);
}

#[test]
fn snapshots_lists_local_times_with_their_offset_and_utc_with_z() {
    need_tzdata();
    let t = TestRepo::new();
    let roots = roots(&t, 2);
    record(
        &t,
        "/fixed",
        &[
            (roots[0], 1_795_545_000 * S),         // 2026-11-24T18:30:00Z
            (roots[1], 1_780_000_000 * S + S / 3), // 2026-05-28T20:26:40.33Z, summer time
        ],
    );
    let lines = |tz: &str, utc: bool| -> Vec<String> {
        let mut args = vec!["snapshots", "/fixed"];
        if utc {
            args.push("--utc");
        }
        let out = run(&t, tz, &args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        text(&out.stdout).lines().map(str::to_string).collect()
    };
    let times = |tz: &str, utc: bool| -> Vec<String> {
        lines(tz, utc)
            .iter()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {}", f[1], f[2])
            })
            .collect()
    };
    assert_eq!(
        times(PARIS, false),
        ["2026-11-24 19:30:00+01:00", "2026-05-28 22:26:40+02:00"]
    );
    assert_eq!(
        times("America/New_York", false),
        ["2026-11-24 13:30:00-05:00", "2026-05-28 16:26:40-04:00"]
    );
    assert_eq!(
        times("UTC", false),
        ["2026-11-24 18:30:00+00:00", "2026-05-28 20:26:40+00:00"]
    );
    for tz in [PARIS, "America/New_York", "UTC"] {
        assert_eq!(
            times(tz, true),
            ["2026-11-24 18:30:00Z", "2026-05-28 20:26:40Z"],
            "{tz}"
        );
    }
    // A POSIX rule in TZ works as well as a name; a TZ that names no zone gives UTC.
    assert_eq!(
        times("CET-1CEST,M3.5.0,M10.5.0/3", false),
        times(PARIS, false)
    );
    assert_eq!(
        times("Nowhere/Atlantis", false),
        ["2026-11-24 18:30:00+00:00", "2026-05-28 20:26:40+00:00"]
    );
    // The rest of the line is as before.
    let line = &lines(PARIS, false)[0];
    assert!(line.ends_with("  /fixed"), "{line}");
    assert!(line.contains("1 files"), "{line}");

    // --json keeps Unix seconds, whatever the zone.
    for tz in [PARIS, "UTC"] {
        let mut cmd = t.cmd();
        cmd.json().args(["snapshots", "/fixed"]);
        let out = cmd.command().env("TZ", tz).output().expect("run");
        let json: Vec<Value> = parse_json_lines(&out.stdout);
        let secs: Vec<i64> = json
            .iter()
            .filter(|v| v["type"] == "snapshot")
            .map(|v| v["time"].as_i64().expect("time"))
            .collect();
        assert_eq!(secs, [1_795_545_000, 1_780_000_000], "{tz}");
    }
}

#[test]
fn a_bad_time_exits_2_naming_the_argument() {
    need_tzdata();
    let t = TestRepo::new();
    let roots = roots(&t, 1);
    let ids = record(&t, "/fixed", &[(roots[0], 1_795_545_000 * S)]);
    for time in [
        "2026-02-30",
        "2026-13-01",
        "2026-11-24T25:00",
        "2026-11-24T20:00:00+0100",
        "2026-11-24T20",
        "2026-1-24",
        "3y",
        "-3d",
        "1.5h",
        "yesterdy",
        "tomorrow",
        "99999999999999999999d",
    ] {
        let operand = format!("/fixed@{time}");
        let out = run(&t, PARIS, &["diff", &operand, &ids[0]]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{operand}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{operand}: {stderr}");
        assert!(stderr.contains(&operand), "{operand}: {stderr}");
        assert!(out.stdout.is_empty(), "{operand}");
    }
    // The forms are named where the text has none of them.
    let out = run(&t, PARIS, &["diff", "/fixed@3y", &ids[0]]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("RFC 3339") && stderr.contains("yesterday"),
        "{stderr}"
    );
    // No origin before the @.
    let out = run(&t, PARIS, &["diff", "@yesterday", &ids[0]]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("needs an origin"), "{out:?}");
}

#[test]
fn an_ambiguous_prefix_exits_2_listing_the_matches() {
    need_tzdata();
    let t = TestRepo::new();
    let roots = roots(&t, 1);
    // Two snapshot records whose ids share their first 8 hex digits (a birthday search:
    // with 600,000 records about 40 pairs are expected).
    let candidate = |i: u32| SnapshotRecord {
        origin: format!("/ambiguous/{i}"),
        time_ns: 1_795_545_000 * S,
        root: roots[0],
        files: 1,
        bytes: 10,
    };
    let mut seen: HashMap<String, u32> = HashMap::new();
    let (a, b) = (0..600_000u32)
        .find_map(|i| {
            let prefix = candidate(i).snapshot_id().to_hex()[..8].to_string();
            seen.insert(prefix, i).map(|j| (j, i))
        })
        .expect("two ids with a common 8-digit prefix");
    let (a, b) = (candidate(a), candidate(b));
    let ids: Vec<String> = [&a, &b]
        .iter()
        .map(|r| record(&t, &r.origin, &[(r.root, r.time_ns)]).remove(0))
        .collect();
    let prefix = &ids[0][..8];
    assert!(ids[1].starts_with(prefix));

    let out = run(&t, PARIS, &["diff", prefix, &ids[0]]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{prefix}: ambiguous, 2 snapshots")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&a.origin) && stderr.contains(&b.origin),
        "{stderr}"
    );
    assert!(stderr.contains("2026-11-24 19:30:00+01:00"), "{stderr}");
    // Each match is listed by a prefix long enough to name it alone.
    let common = ids[0]
        .bytes()
        .zip(ids[1].bytes())
        .take_while(|(x, y)| x == y)
        .count();
    for id in &ids {
        let listed = &id[..common + 1];
        assert!(stderr.contains(listed), "{listed}: {stderr}");
        assert_eq!(
            run(&t, PARIS, &["diff", listed, id]).status.code(),
            Some(0),
            "{listed}"
        );
    }
}
