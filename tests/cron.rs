//! Running from cron, through the binary: `--log-file` (and `MUSICFS_LOG_FILE`) appends what
//! stderr shows and one timestamped line per run; a log that cannot be opened stops the run
//! before anything is done (exit 2); a held destination lock and an unreachable origin each
//! give one line and their exit codes (4, 5); retry notices are user messages (and `retry`
//! events with `--json`), not log records; every JSON summary carries `duration_s`, the sync
//! summary SRC, DST and their snapshots; text summaries end with the elapsed time; the progress
//! bar shows one stage at a time, with files done of the total.

mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{genlib_create, parse_json_lines, summary_of, Musicfs, TestRepo};

/// An address nothing listens on (the brief's, as a user would mistype a port).
const UNREACHABLE: &str = "ssh://127.0.0.1:1/x";

fn sync_cmd(t: &TestRepo, src: &Path, dst: &Path) -> Musicfs {
    let mut cmd = t.cmd();
    cmd.arg("sync").arg(src).arg(dst);
    cmd
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A line of the log file: `2026-12-03T05:00:00Z TEXT`.
fn split_stamp(line: &str) -> (&str, &str) {
    let (stamp, text) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("log line without a time: {line:?}"));
    assert!(
        stamp.len() == 20
            && stamp.ends_with('Z')
            && stamp.as_bytes()[10] == b'T'
            && stamp[..4].bytes().all(|b| b.is_ascii_digit()),
        "not an RFC 3339 UTC time: {line:?}"
    );
    (stamp, text)
}

#[test]
fn the_log_file_gets_one_line_per_run_appended() {
    let t = TestRepo::new();
    let src = t.path("src");
    let dst = t.path("dst");
    genlib_create(&src, 6, 3, 64 << 10);
    let log = t.path("cron.log");
    std::fs::write(&log, "an earlier line\n").expect("write log");
    let mut first = sync_cmd(&t, &src, &dst);
    first.arg("--log-file").arg(&log);
    first.assert_exit(0);
    // Given through the environment, after the subcommand's arguments.
    let mut second = t.cmd();
    second.arg("scan").arg(&src);
    let mut command = second.command();
    command.env("MUSICFS_LOG_FILE", &log);
    let out = command.output().expect("run musicfs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    let text = std::fs::read_to_string(&log).expect("read log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "an earlier line", "appended, not truncated");
    let (_, sync_line) = split_stamp(lines[1]);
    let expected = format!(
        "sync {} -> {}: exit 0, 6 files, 6 changed",
        src.display(),
        dst.display()
    );
    assert!(sync_line.starts_with(&expected), "{sync_line}");
    assert!(sync_line.contains(" moved, "), "{sync_line}");
    assert!(sync_line.ends_with(" s"), "{sync_line}");
    let (_, scan_line) = split_stamp(lines[2]);
    assert!(
        scan_line.starts_with(&format!("scan {}: exit 0, 6 files, 0 read", src.display())),
        "{scan_line}"
    );
}

#[test]
fn a_log_file_that_cannot_be_opened_stops_the_run() {
    let t = TestRepo::new();
    let src = t.path("src");
    let dst = t.path("dst");
    genlib_create(&src, 2, 4, 32 << 10);
    let log = t.path("no/such/dir/cron.log");
    let mut cmd = sync_cmd(&t, &src, &dst);
    cmd.arg("--log-file").arg(&log);
    let out = cmd.assert_exit(2);
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("musicfs: --log-file "), "{err}");
    assert!(err.contains(&log.display().to_string()), "{err}");
    assert!(!dst.exists(), "nothing was done");
}

#[test]
fn a_held_destination_lock_is_one_line_naming_its_holder_and_exit_4() {
    let t = TestRepo::new();
    let src = t.path("src");
    let dst = t.path("dst");
    genlib_create(&src, 2, 5, 32 << 10);
    std::fs::create_dir(&dst).expect("mkdir dst");
    // A second process holds the destination's lock (a flock on the directory, the lock
    // every sync takes). It waits for the lock rather than giving up: a sync below may hold
    // it at the moment flock(1) asks.
    let mut holder = Command::new("flock")
        .arg(&dst)
        .args(["sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .expect("flock is missing: install the Debian package util-linux");
    // The sync must meet the lock held: wait until flock(1) has it (a loaded machine may
    // start it late, and a sync run before would copy the files).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let dir = std::fs::File::open(&dst).expect("open dst");
        match dir.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) => break,
            Err(e) => panic!("cannot try the lock of {}: {e}", dst.display()),
            Ok(()) => {
                drop(dir);
                assert!(Instant::now() < deadline, "flock(1) never took the lock");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let log = t.path("cron.log");
    let out = loop {
        let mut cmd = sync_cmd(&t, &src, &dst);
        cmd.arg("--log-file").arg(&log);
        let out = cmd.output();
        // flock(1) may not hold the lock yet.
        if out.status.code() == Some(4) || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = holder.kill();
    let _ = holder.wait();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("musicfs: "), "{err}");
    assert!(
        err.contains("another musicfs sync is running on this destination"),
        "{err}"
    );
    assert!(
        err.contains(&format!("held by pid {} (flock)", holder.id())),
        "names the holder: {err}"
    );
    assert!(!err.contains("WARN"), "{err}");
    assert_eq!(std::fs::read_dir(&dst).expect("read dst").count(), 0);
    let text = std::fs::read_to_string(&log).expect("read log");
    let last = text.lines().last().expect("a run line");
    assert!(
        split_stamp(last).1.starts_with(&format!(
            "sync {} -> {}: exit 4",
            src.display(),
            dst.display()
        )),
        "{text}"
    );
    assert!(text.contains("held by pid"), "the error is logged: {text}");
}

#[test]
fn an_unreachable_origin_is_one_line_and_exit_5() {
    let t = TestRepo::new();
    let dst = t.path("dst");
    let mut cmd = t.cmd();
    cmd.args(["sync", "--retries", "0", "--timeout", "2", UNREACHABLE])
        .arg(&dst);
    let out = cmd.assert_exit(5);
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("musicfs: "), "{err}");
    assert!(err.contains("127.0.0.1:1"), "names the origin: {err}");
    assert!(!dst.exists());
}

#[test]
fn retry_notices_are_messages_and_json_events() {
    let t = TestRepo::new();
    let dst = t.path("dst");
    let log = t.path("cron.log");
    let mut cmd = t.cmd();
    cmd.args(["sync", "--retries", "1", "--timeout", "2", "--log-file"])
        .arg(&log)
        .arg(UNREACHABLE)
        .arg(&dst);
    let out = cmd.assert_exit(5);
    let err = stderr_of(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "a notice, then the error: {err}");
    assert!(lines[0].starts_with("musicfs: "), "{err}");
    assert!(lines[0].contains("; retrying in "), "{err}");
    assert!(lines[0].ends_with(" s (attempt 1 of 1)"), "{err}");
    assert!(!err.contains("WARN"), "not a log record: {err}");
    let logged = std::fs::read_to_string(&log).expect("read log");
    assert!(
        logged.lines().any(|l| split_stamp(l).1 == lines[0]),
        "the notice is logged: {logged}"
    );

    let mut json = t.cmd();
    json.json()
        .args(["sync", "--retries", "1", "--timeout", "2", UNREACHABLE])
        .arg(&dst);
    let out = json.assert_exit(5);
    let err = stderr_of(&out);
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.contains("; retrying in ")),
        "said on stderr too: {err}"
    );
    let events = parse_json_lines(&out.stdout);
    assert_eq!(events.len(), 2, "a retry, then the error: {events:?}");
    assert_eq!(events[1]["type"], "error", "{events:?}");
    assert_eq!(events[1]["exit_code"], 5, "{events:?}");
    let retry = &events[0];
    assert_eq!(retry["type"], "retry", "{retry}");
    assert_eq!(retry["attempt"], 1, "{retry}");
    assert_eq!(retry["max_attempts"], 1, "{retry}");
    assert!(retry["delay_s"].as_f64().is_some(), "{retry}");
    assert!(
        retry["reason"]
            .as_str()
            .is_some_and(|r| r.contains("127.0.0.1:1")),
        "{retry}"
    );
}

#[test]
fn summaries_carry_their_duration_and_a_sync_its_sides_and_snapshots() {
    let t = TestRepo::new();
    let src = t.path("src");
    let dst = t.path("dst");
    genlib_create(&src, 5, 6, 64 << 10);
    let duration = |summary: &Value| {
        let d = summary["duration_s"]
            .as_f64()
            .unwrap_or_else(|| panic!("no duration_s in {summary}"));
        assert!(d >= 0.0, "{summary}");
    };

    let sync = summary_of(&sync_cmd(&t, &src, &dst).json().assert_exit(0));
    duration(&sync);
    assert_eq!(sync["src"], src.display().to_string(), "{sync}");
    assert_eq!(sync["dst"], dst.display().to_string(), "{sync}");
    let mut snapshots = t.cmd();
    snapshots.arg("snapshots");
    let listed = snapshots.json_lines();
    let of = |dir: &Path| -> Vec<String> {
        let canonical = dir.canonicalize().expect("canonical");
        listed
            .iter()
            .filter(|s| s["origin"] == canonical.display().to_string())
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(
        sync["src_snapshot"],
        *of(&src).last().expect("SRC's snapshot")
    );
    assert_eq!(
        sync["dst_snapshot"],
        *of(&dst).last().expect("DST's snapshot")
    );

    // A dry run into a destination that does not exist records none of it.
    let dry = summary_of(
        &sync_cmd(&t, &src, &t.path("nowhere"))
            .arg("-n")
            .json()
            .assert_exit(0),
    );
    assert_eq!(dry["dst_snapshot"], Value::Null, "{dry}");
    assert_eq!(dry["src_snapshot"], sync["src_snapshot"], "{dry}");

    let mut scan = t.cmd();
    scan.arg("scan").arg(&src);
    duration(&scan.summary());
    let mut verify = t.cmd();
    verify.arg("verify").arg(&dst);
    duration(&verify.summary());
    let mut diff = t.cmd();
    diff.arg("diff").arg(&src).arg(&dst);
    duration(&diff.summary());
}

#[test]
fn text_summaries_end_with_the_elapsed_time() {
    let t = TestRepo::new();
    let src = t.path("src");
    let dst = t.path("dst");
    genlib_create(&src, 4, 7, 64 << 10);
    let ends_timed = |out: &str| {
        let last = out.lines().last().unwrap_or_else(|| panic!("no output"));
        let (_, timing) = last
            .rsplit_once(" in ")
            .unwrap_or_else(|| panic!("no elapsed time: {last}"));
        let secs = timing.split(' ').next().unwrap_or_default();
        assert!(secs.parse::<f64>().is_ok(), "{last}");
        assert!(timing.contains(" s"), "{last}");
        last.to_string()
    };
    let synced = ends_timed(&sync_cmd(&t, &src, &dst).stdout());
    assert!(
        synced.starts_with(&format!("{} -> {}: 4 files", src.display(), dst.display())),
        "names SRC and DST: {synced}"
    );
    assert!(synced.contains("; snapshots "), "{synced}");
    assert!(synced.ends_with("/s)"), "a rate: {synced}");
    let mut scan = t.cmd();
    scan.arg("scan").arg(&src);
    ends_timed(&scan.stdout());
    let mut verify = t.cmd();
    verify.arg("verify").arg(&dst);
    let verified = ends_timed(&verify.stdout());
    assert!(verified.ends_with("/s)"), "a rate: {verified}");
}

/// The frames of the progress bar a sync draws on a terminal (`script` gives it one).
fn progress_frames(t: &TestRepo, src: &Path, dst: &Path) -> Vec<String> {
    let cmd = sync_cmd(t, src, dst);
    let command = cmd.command();
    let mut line = String::from("exec");
    for word in std::iter::once(command.get_program()).chain(command.get_args()) {
        line.push_str(" '");
        line.push_str(&word.to_string_lossy().replace('\'', r"'\''"));
        line.push('\'');
    }
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    for (key, value) in command.get_envs() {
        match value {
            Some(v) => script.env(key, v),
            None => script.env_remove(key),
        };
    }
    let out = script
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("script is missing: install the Debian package bsdutils");
    assert!(out.status.success(), "{}", stderr_of(&out));
    String::from_utf8_lossy(&out.stdout)
        .split(['\r', '\n'])
        .map(|l| l.replace("\x1b[2K", "").trim().to_string())
        .filter(|l| l.starts_with("writing [") || l.starts_with("scanning ["))
        .collect()
}

/// A frame's bytes done and total: `("1.50 MiB", "3.00 MiB")`.
fn bytes_of(frame: &str) -> (String, String) {
    let after = frame
        .split_once("] ")
        .map(|(_, a)| a.split_once("files ").map_or(a, |(_, b)| b))
        .unwrap_or_else(|| panic!("not a bar: {frame}"));
    let (done, rest) = after
        .split_once('/')
        .unwrap_or_else(|| panic!("no bytes: {frame}"));
    let total: Vec<&str> = rest.split(' ').take(2).collect();
    (done.to_string(), total.join(" "))
}

#[test]
fn the_progress_bar_shows_each_stage_from_zero_with_files_done() {
    let t = TestRepo::new();
    let src = t.path("src");
    let dst = t.path("dst");
    genlib_create(&src, 12, 8, 256 << 10);
    let frames = progress_frames(&t, &src, &dst);
    // A first sync reads the whole library once: the scanning stage's total is its size.
    let library = frames
        .iter()
        .rev()
        .find(|f| f.starts_with("scanning") && f.contains("/12 files"))
        .map(|f| bytes_of(f).1)
        .unwrap_or_else(|| panic!("no scanning stage drawn: {frames:#?}"));
    let writing: Vec<&String> = frames.iter().filter(|f| f.starts_with("writing")).collect();
    assert!(!writing.is_empty(), "no writing stage drawn: {frames:#?}");
    // The writing stage has its own totals (12 files, the library once, not twice): a stage
    // that went on from the scans' count would show twice the library. The bar is drawn at
    // intervals, so a fast stage may have no frame at zero; the first one drawn may be full.
    for frame in &writing {
        assert!(frame.contains("/12 files"), "{frame}");
        assert_eq!(bytes_of(frame).1, library, "{frame}");
        assert!(frame.contains("/s"), "a rate: {frame}");
    }
    assert!(
        writing.iter().any(|f| f.contains("] 12/12 files")),
        "every file counted: {writing:#?}"
    );
}
