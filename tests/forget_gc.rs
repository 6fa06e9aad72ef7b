//! `musicfs forget` and `musicfs gc` through the binary: a year of daily snapshots judged as
//! restic's documentation says (hand-computed expectations), gc removing exactly what no kept
//! snapshot or scan state refers to, a gc killed at each of its failpoints, and gc and sync
//! excluding each other as real concurrent processes (exit 4, never lost data).
//!
//! The year of snapshots is recorded through the library's public writer (`RepoWriter`), with
//! the times a test chooses: the binary has no way to back-date a scan, and needs none.

mod util;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use musicfs::id::{ChunkId, TreeId};
use musicfs::media::{Format, Layout};
use musicfs::repo::Repository;
use musicfs::snapshot::{ChunkList, ChunkRef, Node, SnapshotRecord, Tree, TreeEntry};
use serde_json::Value;
use util::{parse_json_lines, summary_of, tree_diff, Musicfs, TestRepo, TreeCmp};

const DAY_NS: i64 = 86_400_000_000_000;
/// 2025-01-01T12:00:00Z.
const JAN_1_2025_NOON: i64 = 1_735_732_800 * 1_000_000_000;
const LIBRARY: &str = "/srv/library";
const OTHER: &str = "/srv/other";

/// Runs `cmd` with `TZ` set, whatever its exit code.
fn run_in(cmd: &Musicfs, tz: &str) -> Output {
    cmd.command().env("TZ", tz).output().expect("run musicfs")
}

fn expect_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bytes of the history chunk (a stand-in for a tag block) of the snapshot taken on day
/// `n` since the epoch.
fn tag_bytes(origin: &str, n: i64) -> Vec<u8> {
    format!("{origin} tag block of day {n}: TITLE=Day {n}")
        .repeat(4)
        .into_bytes()
}

/// A content of one chunk.
fn one_chunk(bytes: &[u8]) -> ChunkList {
    ChunkList {
        format: Format::Opaque,
        regions: Layout::opaque(bytes.len() as u64).regions,
        chunks: vec![ChunkRef {
            id: ChunkId::of(bytes),
            len: bytes.len() as u32,
        }],
        file_hash: None,
    }
}

/// Records `days` daily snapshots of `origin`, day 0 at `start`: each root holds `day.txt`
/// (a content of its own, whose chunk the repository keeps as history) and `album/`, one tree
/// shared by every snapshot. Commits every 30 days, so history packs hold many days each.
fn record_days(repo: &Repository, origin: &str, start: i64, days: i64) -> TreeId {
    let album_bytes = b"the same album in every snapshot".to_vec();
    let album_content = one_chunk(&album_bytes);
    let mut album = TreeId::from_stored([0; 32]);
    let mut writer = repo.writer().expect("writer");
    for n in 0..days {
        let content_id = writer.put_content(&album_content).expect("content");
        album = writer
            .put_tree(&Tree {
                entries: vec![TreeEntry {
                    name: b"track.mp3".to_vec(),
                    node: Node::File {
                        size: album_bytes.len() as u64,
                        mtime_ns: 0,
                        mode: 0o644,
                        content: content_id,
                    },
                }],
            })
            .expect("album tree");
        let bytes = tag_bytes(origin, (start + n * DAY_NS) / DAY_NS);
        let list = one_chunk(&bytes);
        let content = writer.put_content(&list).expect("content");
        writer
            .keep_history(&content, &[(list.chunks[0].id, bytes.clone())])
            .expect("history");
        let root = writer
            .put_tree(&Tree {
                entries: vec![
                    TreeEntry {
                        name: b"album".to_vec(),
                        node: Node::Dir {
                            mtime_ns: 0,
                            mode: 0o755,
                            tree: album,
                        },
                    },
                    TreeEntry {
                        name: b"day.txt".to_vec(),
                        node: Node::File {
                            size: bytes.len() as u64,
                            mtime_ns: 0,
                            mode: 0o644,
                            content,
                        },
                    },
                ],
            })
            .expect("root");
        writer
            .add_snapshot(&SnapshotRecord {
                origin: origin.to_string(),
                time_ns: start + n * DAY_NS,
                root,
                files: 2,
                bytes: bytes.len() as u64,
            })
            .expect("snapshot");
        if n % 30 == 29 {
            writer.commit().expect("commit");
            writer = repo.writer().expect("writer");
        }
    }
    writer.commit().expect("commit");
    album
}

/// A repository holding 2025, day by day, of `LIBRARY`, and 3 days of `OTHER`.
fn year_repository() -> (TestRepo, TreeId) {
    let t = TestRepo::new();
    let repo = Repository::open_existing(t.repo()).expect("open");
    let album = record_days(&repo, LIBRARY, JAN_1_2025_NOON, 365);
    record_days(&repo, OTHER, JAN_1_2025_NOON, 3);
    (t, album)
}

/// `YYYY-MM-DD` (UTC) of a snapshot's `time` (seconds).
fn date(secs: i64) -> String {
    let t = musicfs::time::Civil::of_unix(secs);
    format!("{:04}-{:02}-{:02}", t.year, t.month, t.day)
}

/// The `keep` lines of a forget's JSON output: date → reasons, for `origin`.
fn kept_dates(lines: &[Value], origin: &str) -> Vec<(String, Vec<String>)> {
    lines
        .iter()
        .filter(|v| v["type"] == "keep" && v["origin"] == origin)
        .map(|v| {
            let reasons = v["reasons"]
                .as_array()
                .expect("reasons")
                .iter()
                .map(|r| r.as_str().expect("reason").to_string())
                .collect();
            (date(v["time"].as_i64().expect("time")), reasons)
        })
        .collect()
}

fn snapshot_count(t: &TestRepo, origin: &str) -> usize {
    let repo = Repository::open_existing(t.repo()).expect("open");
    let n = repo
        .snapshots()
        .expect("snapshots")
        .iter()
        .filter(|(_, r)| r.origin == origin)
        .count();
    n
}

#[test]
fn a_year_of_daily_snapshots_is_kept_as_restics_policy_says() {
    let (t, _) = year_repository();
    let forget = |dry_run: bool| {
        let mut cmd = t.cmd();
        cmd.json().args([
            "forget",
            LIBRARY,
            "--keep-daily",
            "7",
            "--keep-weekly",
            "5",
            "--keep-monthly",
            "12",
            "--keep-yearly",
            "3",
        ]);
        if dry_run {
            cmd.arg("--dry-run");
        }
        let out = run_in(&cmd, "UTC");
        expect_exit(&out, 0, "forget");
        parse_json_lines(&out.stdout)
    };

    // By hand, from restic's rules, newest first. 2025-12-31 is a Wednesday in ISO week
    // 2026-W01 (Monday 29 December to Sunday 4 January).
    // - daily 7: 31, 30, 29, 28, 27, 26, 25 December.
    // - weekly 5: the newest of 2026-W01 (31 Dec), 2025-W52 (Sun 28 Dec), W51 (21 Dec),
    //   W50 (14 Dec), W49 (7 Dec).
    // - monthly 12: the last day of each month, December back to January.
    // - yearly 3: 31 December (2025); two counts are left at the oldest snapshot, 1 January,
    //   which is therefore kept as "oldest yearly snapshot".
    let expected: Vec<(&str, Vec<&str>)> = vec![
        (
            "2025-12-31",
            vec![
                "daily snapshot",
                "weekly snapshot",
                "monthly snapshot",
                "yearly snapshot",
                "latest snapshot of its origin",
            ],
        ),
        ("2025-12-30", vec!["daily snapshot"]),
        ("2025-12-29", vec!["daily snapshot"]),
        ("2025-12-28", vec!["daily snapshot", "weekly snapshot"]),
        ("2025-12-27", vec!["daily snapshot"]),
        ("2025-12-26", vec!["daily snapshot"]),
        ("2025-12-25", vec!["daily snapshot"]),
        ("2025-12-21", vec!["weekly snapshot"]),
        ("2025-12-14", vec!["weekly snapshot"]),
        ("2025-12-07", vec!["weekly snapshot"]),
        ("2025-11-30", vec!["monthly snapshot"]),
        ("2025-10-31", vec!["monthly snapshot"]),
        ("2025-09-30", vec!["monthly snapshot"]),
        ("2025-08-31", vec!["monthly snapshot"]),
        ("2025-07-31", vec!["monthly snapshot"]),
        ("2025-06-30", vec!["monthly snapshot"]),
        ("2025-05-31", vec!["monthly snapshot"]),
        ("2025-04-30", vec!["monthly snapshot"]),
        ("2025-03-31", vec!["monthly snapshot"]),
        ("2025-02-28", vec!["monthly snapshot"]),
        ("2025-01-31", vec!["monthly snapshot"]),
        ("2025-01-01", vec!["oldest yearly snapshot"]),
    ];
    let expected: Vec<(String, Vec<String>)> = expected
        .into_iter()
        .map(|(d, r)| (d.to_string(), r.into_iter().map(String::from).collect()))
        .collect();

    let dry = forget(true);
    assert_eq!(kept_dates(&dry, LIBRARY), expected);
    let summary = dry.last().expect("summary");
    assert_eq!(summary["snapshots_kept"], 22);
    assert_eq!(summary["snapshots_removed"], 343);
    assert_eq!(summary["dry_run"], true);
    assert_eq!(
        snapshot_count(&t, LIBRARY),
        365,
        "a dry run removes nothing"
    );

    let done = forget(false);
    assert_eq!(kept_dates(&done, LIBRARY), expected);
    assert!(
        done.iter().all(|v| v["origin"] != OTHER),
        "an origin named alone is the only one judged"
    );
    assert_eq!(snapshot_count(&t, LIBRARY), 22);
    assert_eq!(snapshot_count(&t, OTHER), 3);

    // Applied again, the policy keeps what it kept.
    let again = forget(false);
    assert_eq!(kept_dates(&again, LIBRARY), expected);
    assert_eq!(again.last().expect("summary")["snapshots_removed"], 0);

    // Every origin when none is named: OTHER's 3 days, keep-last 1.
    let mut cmd = t.cmd();
    cmd.json().args(["forget", "--keep-last", "1"]);
    let out = run_in(&cmd, "UTC");
    expect_exit(&out, 0, "forget every origin");
    assert_eq!(snapshot_count(&t, OTHER), 1);
    assert_eq!(snapshot_count(&t, LIBRARY), 1);
}

#[test]
fn days_are_local_days() {
    let t = TestRepo::new();
    let repo = Repository::open_existing(t.repo()).expect("open");
    // 2025-03-01T23:00Z and 2025-03-02T01:00Z: two days in UTC, one (1 March) at UTC-5.
    record_days(
        &repo,
        LIBRARY,
        JAN_1_2025_NOON + 59 * DAY_NS + 11 * 3_600_000_000_000,
        1,
    );
    let mut writer = repo.writer().expect("writer");
    let root = writer.put_tree(&Tree::default()).expect("tree");
    writer
        .add_snapshot(&SnapshotRecord {
            origin: LIBRARY.into(),
            time_ns: JAN_1_2025_NOON + 60 * DAY_NS - 11 * 3_600_000_000_000,
            root,
            files: 0,
            bytes: 0,
        })
        .expect("snapshot");
    writer.commit().expect("commit");
    drop(repo);
    let mut cmd = t.cmd();
    cmd.json()
        .args(["forget", LIBRARY, "--keep-daily", "1", "--dry-run"]);
    let utc = parse_json_lines(&run_in(&cmd, "UTC").stdout);
    assert_eq!(kept_dates(&utc, LIBRARY).len(), 1);
    assert_eq!(utc.last().expect("summary")["snapshots_removed"], 1);
    // keep-daily 2: in UTC two days, each its own bucket; at UTC-5 (a POSIX TZ, read without
    // a time zone database) one day, whose older snapshot is kept as the oldest.
    let mut cmd = t.cmd();
    cmd.json()
        .args(["forget", LIBRARY, "--keep-daily", "2", "--dry-run"]);
    let utc = kept_dates(&parse_json_lines(&run_in(&cmd, "UTC").stdout), LIBRARY);
    let reasons: Vec<&str> = utc.iter().map(|(_, r)| r[0].as_str()).collect();
    assert_eq!(reasons, ["daily snapshot", "daily snapshot"]);
    let west = kept_dates(&parse_json_lines(&run_in(&cmd, "<-05>5").stdout), LIBRARY);
    let reasons: Vec<&str> = west.iter().map(|(_, r)| r[0].as_str()).collect();
    assert_eq!(reasons, ["daily snapshot", "oldest daily snapshot"]);
}

#[test]
fn forget_refuses_no_policy_and_an_origin_without_snapshots() {
    let (t, _) = year_repository();
    let out = t.cmd().args(["forget", LIBRARY]).output();
    expect_exit(&out, 2, "no policy");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no policy given"), "{err}");
    let out = t
        .cmd()
        .args(["forget", LIBRARY, "--keep-last", "0"])
        .output();
    expect_exit(&out, 2, "keep-last 0");
    let missing = t.path("never-scanned");
    let out = t
        .cmd()
        .arg("forget")
        .arg(&missing)
        .args(["--keep-last", "1"])
        .output();
    expect_exit(&out, 2, "unknown origin");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never-scanned"), "{err}");
    assert_eq!(snapshot_count(&t, LIBRARY), 365);
}

#[test]
fn gc_removes_exactly_what_no_kept_snapshot_refers_to() {
    let (t, album) = year_repository();
    let keep = |last: &str| {
        let mut cmd = t.cmd();
        cmd.json().args(["forget", "--keep-last", last]);
        expect_exit(&run_in(&cmd, "UTC"), 0, "forget");
    };
    keep("30");
    let mut dry = t.cmd();
    dry.args(["gc", "--dry-run"]);
    let dry = dry.summary();
    let index = t.repo().join("index.redb");
    let size_before = fs::metadata(&index).expect("index").len();
    assert_eq!(dry["removed"]["trees"], 335);
    assert_eq!(snapshot_count(&t, LIBRARY), 30);
    {
        let repo = Repository::open_existing(t.repo()).expect("open");
        let (n, _, _) = repo.history_usage().expect("usage");
        assert_eq!(n, 365 + 3, "a dry run removes nothing");
    }
    assert_eq!(fs::metadata(&index).expect("index").len(), size_before);

    let mut gc = t.cmd();
    gc.arg("gc");
    let report = gc.summary();
    // 365 - 30 days of LIBRARY: a root tree, a content (its media row none), a history row
    // and a kept chunk each; OTHER's 3 days and the album stay.
    assert_eq!(report["removed"]["trees"], 335);
    assert_eq!(report["removed"]["contents"], 335);
    assert_eq!(report["removed"]["history"], 335);
    assert_eq!(report["removed"]["kept_chunks"], 335);
    assert_eq!(report["snapshots"], 33);
    assert!(
        report["packs_removed"].as_u64().expect("n") >= 10,
        "{report}"
    );
    assert!(
        report["packs_rewritten"].as_u64().expect("n") >= 1,
        "{report}"
    );
    assert!(report["bytes_freed"].as_u64().expect("n") > 0, "{report}");
    assert!(
        report["index_bytes_after"].as_u64() < report["index_bytes_before"].as_u64(),
        "{report}"
    );

    // What the kept snapshots refer to reads back whole; what only the others did is gone.
    let repo = Repository::open_existing(t.repo()).expect("open");
    let snapshots = repo.snapshots().expect("snapshots");
    assert_eq!(snapshots.len(), 33);
    for (_, record) in &snapshots {
        let tree = repo.tree(&record.root).expect("kept tree");
        for entry in &tree.entries {
            if let Node::File { content, .. } = &entry.node {
                let list = repo.content(content).expect("kept content");
                let chunk = repo
                    .kept_chunk(&list.chunks[0].id)
                    .expect("read")
                    .expect("kept chunk");
                assert_eq!(ChunkId::of(&chunk), list.chunks[0].id);
            }
        }
    }
    assert!(repo.has_tree(&album).expect("has"));
    let gone = one_chunk(&tag_bytes(LIBRARY, JAN_1_2025_NOON / DAY_NS + 100));
    assert!(!repo.has_content(&gone.content_id()).expect("has"));
    assert_eq!(repo.kept_chunk(&gone.chunks[0].id).expect("read"), None);
    let (n, _, _) = repo.history_usage().expect("usage");
    assert_eq!(n, 30 + 3);
    let packs = fs::read_dir(t.repo().join("objects/packs"))
        .expect("packs")
        .map(|fan| fs::read_dir(fan.expect("fan").path()).expect("fan").count())
        .sum::<usize>();
    assert!(packs <= 3, "{packs} packs left");
    drop(repo);

    let out = t.cmd().arg("check").output();
    expect_exit(&out, 0, "check after gc");
    // A second gc finds nothing more.
    let again = t.cmd().arg("gc").summary();
    assert_eq!(again["removed"]["trees"], 0);
    assert_eq!(again["packs_removed"], 0);
    assert_eq!(again["packs_rewritten"], 0);
}

#[test]
fn a_gc_killed_at_any_point_loses_nothing_and_the_next_one_finishes() {
    for point in musicfs::failpoint::GC_POINTS {
        let (t, _) = year_repository();
        let mut cmd = t.cmd();
        cmd.json().args(["forget", "--keep-last", "10"]);
        expect_exit(&run_in(&cmd, "UTC"), 0, "forget");
        let out = t
            .cmd()
            .arg("gc")
            .command()
            .env("MUSICFS_FAILPOINT", point)
            .output()
            .expect("run gc");
        assert_eq!(out.status.signal(), Some(9), "{point}: {out:?}");
        expect_exit(&t.cmd().arg("check").output(), 0, "check after a killed gc");
        {
            let repo = Repository::open_existing(t.repo()).expect("open");
            for (_, record) in repo.snapshots().expect("snapshots") {
                for entry in repo.tree(&record.root).expect("tree").entries {
                    if let Node::File { content, .. } = entry.node {
                        let list = repo.content(&content).expect("content");
                        assert!(
                            repo.kept_chunk(&list.chunks[0].id).expect("read").is_some(),
                            "{point}: a kept chunk of a kept snapshot was lost"
                        );
                    }
                }
            }
        }
        let report = t.cmd().arg("gc").summary();
        let again = t.cmd().arg("gc").summary();
        assert_eq!(again["packs_removed"], 0, "{point}: {report} then {again}");
        assert_eq!(again["removed"]["trees"], 0, "{point}");
        let repo = Repository::open_existing(t.repo()).expect("open");
        assert_eq!(repo.history_usage().expect("usage").0, 10 + 3);
    }
}

/// A library of `n` files of pseudo-random bytes in two albums, changed by `round`.
fn write_library(dir: &Path, n: usize, round: u64) {
    for i in 0..n {
        let album = dir.join(format!("Album {}", i % 2));
        fs::create_dir_all(&album).expect("album");
        // Only every third file changes from one round to the next.
        if i % 3 != (round % 3) as usize {
            continue;
        }
        let mut x =
            ((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ round.wrapping_mul(0xD1B5);
        let len = 300_000 + i * 7_919;
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        fs::write(album.join(format!("{i:02}.bin")), &bytes).expect("write");
    }
}

/// Whether process `pid` holds `locks/index.lock`, exclusively or shared as `exclusive` says.
/// Read from `/proc/locks`, without touching the lock: a probe that took it, even for a
/// moment, could itself make the process under test fail to take it.
fn holds_index_lock(pid: u32, repo: &Path, exclusive: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(repo.join("locks/index.lock")) else {
        return false;
    };
    let inode = format!(":{}", meta.ino());
    let kind = if exclusive { "WRITE" } else { "READ" };
    let locks = fs::read_to_string("/proc/locks").expect("/proc/locks");
    locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() >= 6
            && fields[1] == "FLOCK"
            && fields[3] == kind
            && fields[4] == pid.to_string()
            && fields[5].ends_with(&inode)
    })
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal");
}

fn wait_output(child: std::process::Child) -> Output {
    child.wait_with_output().expect("wait")
}

/// Starts `cmd` and stops it (SIGSTOP) while it holds the index lock (exclusively or shared,
/// as `exclusive` says); `None` when it finished before it could be caught so.
fn start_and_freeze(cmd: &Musicfs, repo: &Path, exclusive: bool) -> Option<std::process::Child> {
    let mut command = cmd.command();
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if holds_index_lock(child.id(), repo, exclusive) {
            signal(child.id(), nix::sys::signal::Signal::SIGSTOP);
            // Still held once stopped: it is frozen inside.
            if holds_index_lock(child.id(), repo, exclusive) {
                return Some(child);
            }
            signal(child.id(), nix::sys::signal::Signal::SIGCONT);
        }
        if child.try_wait().expect("try_wait").is_some() || Instant::now() > deadline {
            let out = wait_output(child);
            expect_exit(&out, 0, "a command that finished before it was caught");
            return None;
        }
    }
}

#[test]
fn gc_and_sync_exclude_each_other_and_lose_nothing() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    let dst = t.path("dst");
    write_library(&src, 24, 0);
    write_library(&src, 24, 1);
    write_library(&src, 24, 2);
    let sync = |t: &TestRepo| {
        let mut cmd = t.cmd();
        cmd.arg("sync").arg(&src).arg(&dst);
        cmd
    };
    expect_exit(&sync(&t).output(), 0, "first sync");
    let mut caught = (0, 0);
    for round in 3..9u64 {
        write_library(&src, 24, round);
        // Half the rounds a sync is running (frozen inside) when gc starts; the other half
        // a gc is running when the sync starts.
        // A command that ends before it is caught holding the lock is started again (it has
        // nothing left to do, and takes the lock all the same).
        if round % 2 == 0 {
            for _ in 0..20 {
                let Some(frozen) = start_and_freeze(&sync(&t), t.repo(), false) else {
                    continue;
                };
                let out = t.cmd().arg("gc").output();
                signal(frozen.id(), nix::sys::signal::Signal::SIGCONT);
                expect_exit(&out, 4, "gc during a sync");
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(err.contains("in use by another musicfs process"), "{err}");
                expect_exit(&wait_output(frozen), 0, "the sync gc met");
                caught.0 += 1;
                break;
            }
        } else {
            let mut forget = t.cmd();
            forget.args(["forget", "--keep-last", "1"]);
            expect_exit(&run_in(&forget, "UTC"), 0, "forget");
            let mut gc = t.cmd();
            gc.arg("gc");
            for _ in 0..20 {
                let Some(frozen) = start_and_freeze(&gc, t.repo(), true) else {
                    continue;
                };
                let out = sync(&t).output();
                signal(frozen.id(), nix::sys::signal::Signal::SIGCONT);
                expect_exit(&out, 4, "sync during a gc");
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(err.contains("repair-index or gc holds the index"), "{err}");
                expect_exit(&wait_output(frozen), 0, "the gc the sync met");
                caught.1 += 1;
                break;
            }
        }
        expect_exit(&sync(&t).output(), 0, "sync after");
        assert_eq!(
            tree_diff(&src, &dst, TreeCmp::default()),
            Vec::<String>::new()
        );
    }
    assert_eq!(caught, (3, 3), "overlaps caught");

    // Free-running: sync and forget+gc started together, again and again; each either does
    // its work or stops at once with exit 4, and nothing is lost.
    for round in 9..19u64 {
        write_library(&src, 24, round);
        let syncing = sync(&t).spawn();
        let mut forget = t.cmd();
        forget.args(["forget", "--keep-last", "2"]);
        let forgot = run_in(&forget, "UTC");
        assert!(
            matches!(forgot.status.code(), Some(0 | 4)),
            "forget beside a sync: {forgot:?}"
        );
        let gc = t.cmd().arg("gc").output();
        assert!(matches!(gc.status.code(), Some(0 | 4)), "gc: {gc:?}");
        let synced = syncing.wait_with_output().expect("sync");
        assert!(
            matches!(synced.status.code(), Some(0 | 4)),
            "sync beside a gc: {synced:?}"
        );
        expect_exit(&sync(&t).output(), 0, "sync after");
        assert_eq!(
            tree_diff(&src, &dst, TreeCmp::default()),
            Vec::<String>::new()
        );
    }
    expect_exit(&t.cmd().arg("gc").output(), 0, "a last gc");
    expect_exit(&t.cmd().arg("check").output(), 0, "check");
    let mut verify = t.cmd();
    verify.arg("verify").arg(&dst);
    expect_exit(&verify.output(), 0, "verify DST");
}

#[test]
fn forget_and_gc_after_churn_leave_the_next_scan_and_sync_nothing_to_read() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let dst = t.path("dst");
    let sync = || {
        let mut cmd = t.cmd();
        cmd.args(["sync", "--delete"]).arg(&lib).arg(&dst);
        cmd
    };
    expect_exit(&sync().output(), 0, "first sync");
    // A retag, then a reorganisation (an album moved), each synced.
    util::editors::id3v2_title(
        &lib.join("Aurora Tones/First Light/01 Dawn.mp3"),
        "Dawn (retagged)",
    );
    expect_exit(&sync().output(), 0, "sync after the retag");
    fs::rename(
        lib.join("Aurora Tones/Night Shift"),
        lib.join("Night Shift (moved)"),
    )
    .expect("move");
    expect_exit(&sync().output(), 0, "sync after the move");
    let before: BTreeSet<String> = Repository::open_existing(t.repo())
        .expect("open")
        .snapshots()
        .expect("snapshots")
        .iter()
        .map(|(_, r)| r.origin.clone())
        .collect();

    let mut forget = t.cmd();
    forget.args(["forget", "--keep-last", "1"]);
    expect_exit(&run_in(&forget, "UTC"), 0, "forget");
    let report = t.cmd().arg("gc").summary();
    assert!(
        report["removed"]["trees"].as_u64().expect("n") > 0,
        "{report}"
    );
    let repo = Repository::open_existing(t.repo()).expect("open");
    let after = repo.snapshots().expect("snapshots");
    assert_eq!(after.len(), before.len(), "one snapshot per origin");
    // The old tag block of the retagged file went with its snapshots.
    drop(repo);

    // Nothing to read again: the scan state is whole.
    let mut scan = t.cmd();
    scan.arg("scan").arg(&lib);
    let scanned = scan.summary();
    assert_eq!(scanned["files_read"], 0, "{scanned}");
    let synced = sync().summary();
    assert_eq!(synced["files_changed"], 0, "{synced}");
    assert_eq!(synced["bytes_transferred"], 0, "{synced}");
    let mut verify = t.cmd();
    verify.arg("verify").arg(&dst);
    expect_exit(&verify.output(), 0, "verify");
    let mut diff = t.cmd();
    diff.arg("diff").arg(&dst).arg(&lib);
    expect_exit(&diff.output(), 0, "diff DST SRC");
    // The latest snapshot of each origin survived, as diff, verify and the mount read it.
    let out = summary_of(&t.cmd().json().arg("check").assert_exit(0));
    assert_eq!(out["healthy"], true);
}

#[test]
fn the_last_recorded_snapshot_is_kept_even_when_a_clock_made_it_look_older() {
    let t = TestRepo::new();
    let repo = Repository::open_existing(t.repo()).expect("open");
    // Day 10, then day 20, then (a clock set back) day 5, recorded last.
    for day in [10, 20, 5] {
        record_days(&repo, LIBRARY, JAN_1_2025_NOON + day * DAY_NS, 1);
    }
    drop(repo);
    let mut cmd = t.cmd();
    cmd.json().args(["forget", "--keep-last", "1"]);
    let out = run_in(&cmd, "UTC");
    expect_exit(&out, 0, "forget");
    let kept = kept_dates(&parse_json_lines(&out.stdout), LIBRARY);
    assert_eq!(
        kept,
        [
            ("2025-01-21".to_string(), vec!["last snapshot".to_string()]),
            (
                "2025-01-06".to_string(),
                vec!["latest snapshot of its origin".to_string()]
            ),
        ]
    );
    let repo = Repository::open_existing(t.repo()).expect("open");
    let latest = repo.latest_snapshot(LIBRARY).expect("latest").expect("one");
    assert_eq!(date(latest.1.time_ns / 1_000_000_000), "2025-01-06");
}

#[test]
fn gc_drops_file_rows_and_locations_no_scan_entry_names() {
    use musicfs::origin::ChangeKey;
    use musicfs::repo::ScanEntry;
    let t = TestRepo::new();
    let repo = Repository::open_existing(t.repo()).expect("open");
    let origin = repo.origin_id(LIBRARY).expect("origin");
    let bytes = tag_bytes(LIBRARY, 1);
    let list = one_chunk(&bytes);
    let mut writer = repo.writer().expect("writer");
    let content = writer.put_content(&list).expect("content");
    for path in [&b"kept.mp3"[..], b"gone.mp3"] {
        let entry = ScanEntry {
            file_id: 0,
            size: bytes.len() as u64,
            mtime_ns: 0,
            change: ChangeKey::None,
            mode: 0o644,
            content,
        };
        writer
            .record_file(origin, path, entry, None)
            .expect("record");
    }
    // The scan entry goes, as when a file is moved, but no new path takes its file id: its
    // file row and location row are left naming nothing (a lookup, which goes through the
    // scan entry, no longer finds the chunk there).
    writer
        .forget_path(origin, b"gone.mp3")
        .expect("forget path");
    writer.commit().expect("commit");
    assert_eq!(
        repo.chunk_locations(&list.chunks[0].id, origin)
            .expect("locations")
            .len(),
        1
    );
    drop(repo);
    let report = t.cmd().arg("gc").summary();
    assert_eq!(report["removed"]["files"], 1, "{report}");
    assert_eq!(report["removed"]["content_files"], 1, "{report}");
    assert_eq!(
        report["removed"]["chunk_contents"], 0,
        "a scan entry holds the chunk list: {report}"
    );
    assert_eq!(
        report["removed"]["contents"], 0,
        "a scan entry holds it: {report}"
    );
    let repo = Repository::open_existing(t.repo()).expect("open");
    let left = repo
        .chunk_locations(&list.chunks[0].id, origin)
        .expect("locations");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].path, b"kept.mp3");
}
