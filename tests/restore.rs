//! `musicfs sync SNAPSHOT DST` and `musicfs sync ORIGIN@TIME DST`: a snapshot restored into a
//! directory, its chunks taken from wherever the repository records them (the origin's files,
//! another origin's copies, the kept history for tags a real tag editor has since rewritten),
//! through the real binary; into a local directory, and into an SSH destination written over
//! SFTP (a real OpenSSH server on 127.0.0.1).

mod support;
mod util;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use support::sshd::{Sshd, SshdOptions};
use util::editors::{id3v2_title, metaflac_title, DAWN, DUSK, SINE, STATIC};
use util::*;

/// Scans `origin` and returns its snapshot's id (64 hex digits).
fn scan(t: &TestRepo, origin: &Path) -> String {
    let s = t.cmd().arg("scan").arg(origin).summary();
    s["snapshot"].as_str().expect("snapshot id").to_string()
}

/// The time of snapshot `id` as `musicfs snapshots --json` gives it, in seconds.
fn snapshot_time(t: &TestRepo, id: &str) -> i64 {
    let listed = t.cmd().arg("snapshots").json_lines();
    listed
        .iter()
        .find(|v| v["id"] == id)
        .and_then(|v| v["time"].as_i64())
        .unwrap_or_else(|| panic!("snapshot {id} in {listed:?}"))
}

/// An RFC 3339 name for the second `secs` (which `@TIME` reads as that second's end).
fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .expect("a time")
        .to_string()
}

/// Waits for the clock to enter a second after `secs`, so that the next snapshot is later
/// than any time naming that second.
fn next_second(secs: i64) {
    while SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        <= secs
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The audio fixtures plus what a library also holds: a plain file, a private file, a
/// symlink and an empty directory.
fn library(t: &TestRepo, name: &str) -> PathBuf {
    let lib = t.fixtures(name);
    fs::write(lib.join("notes.txt"), b"liner notes, first pressing\n").expect("write");
    fs::write(lib.join("private.txt"), b"not for everyone\n").expect("write");
    fs::set_permissions(lib.join("private.txt"), fs::Permissions::from_mode(0o600)).expect("chmod");
    symlink("notes.txt", lib.join("readme")).expect("symlink");
    fs::create_dir(lib.join("empty")).expect("mkdir");
    lib
}

/// Changes `lib` the way a user does: two tracks retagged by real tag editors, one moved, one
/// deleted, a plain file edited in place, files added, a mode and a symlink changed.
fn change(lib: &Path) {
    id3v2_title(&lib.join(DAWN), "Dawn (remastered)");
    metaflac_title(&lib.join(SINE), "Pure Sine (live)");
    fs::create_dir_all(lib.join("Moved")).expect("mkdir");
    fs::rename(lib.join(STATIC), lib.join("Moved/Static.mp3")).expect("move");
    fs::remove_file(lib.join(DUSK)).expect("remove");
    let mut notes = fs::read(lib.join("notes.txt")).expect("read");
    notes[0] = b'L';
    fs::write(lib.join("notes.txt"), notes).expect("write");
    fs::write(lib.join("new.txt"), b"added later\n").expect("write");
    fs::set_permissions(lib.join("private.txt"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::remove_file(lib.join("readme")).expect("unlink");
    symlink("new.txt", lib.join("readme")).expect("symlink");
    fs::remove_dir(lib.join("empty")).expect("rmdir");
}

#[test]
fn a_snapshot_restores_exactly_by_id_prefix_after_the_origin_changed() {
    let t = TestRepo::new();
    let lib = library(&t, "lib");
    let first = scan(&t, &lib);
    let expected = t.path("expected");
    copy_tree(&lib, &expected);
    // A mirror holds the files as they were...
    let mirror = t.path("mirror");
    t.cmd().arg("sync").arg(&lib).arg(&mirror).summary();
    change(&lib);
    let second = scan(&t, &lib);
    assert_ne!(first, second);
    // ...until it is retagged too: the first tags of DAWN then exist only in the history the
    // repository keeps; its audio, DUSK and the first notes only in the mirror.
    id3v2_title(&mirror.join(DAWN), "Dawn (another edit)");
    scan(&t, &mirror);
    assert_ne!(
        fs::read(lib.join(DAWN)).expect("read"),
        fs::read(expected.join(DAWN)).expect("read")
    );

    let out = t.path("out");
    let s = t.cmd().arg("sync").arg(&first[..10]).arg(&out).summary();
    assert_trees_equal(&expected, &out);
    assert_eq!(num(&s, "problems"), 0, "{s}");
    assert_eq!(num(&s, "files"), files_in(&expected).len() as u64, "{s}");
    assert_eq!(num(&s, "bytes"), tree_bytes(&expected), "{s}");
    // Nothing of the sync's own is left in DST.
    assert!(list_tree(&out)
        .iter()
        .all(|p| !p.to_string_lossy().contains(".musicfs-")));

    // Again: nothing to do.
    let s = t.cmd().arg("sync").arg(&first).arg(&out).summary();
    assert_eq!(num(&s, "files_changed"), 0, "{s}");
    assert_eq!(num(&s, "bytes_transferred"), 0, "{s}");
    assert_trees_equal(&expected, &out);
}

#[test]
fn origin_at_time_restores_the_snapshot_of_that_time_and_delete_removes_the_rest() {
    let t = TestRepo::new();
    let lib = library(&t, "lib");
    let first = scan(&t, &lib);
    let expected = t.path("expected");
    copy_tree(&lib, &expected);
    let mirror = t.path("mirror");
    t.cmd().arg("sync").arg(&lib).arg(&mirror).summary();
    let when = snapshot_time(&t, &first);
    next_second(when);
    change(&lib);
    scan(&t, &lib);

    // DST is a copy of the library as it is now, with a file of its own.
    let dst = t.path("dst");
    copy_tree(&lib, &dst);
    fs::write(dst.join("stray.txt"), b"only here").expect("write");
    let at = format!("{}@{}", lib.display(), rfc3339(when));

    // --dry-run shows the plan and writes nothing.
    let before = tree_diff(&lib, &dst, TreeCmp::default());
    let lines = t
        .cmd()
        .arg("sync")
        .arg("--dry-run")
        .arg("--delete")
        .arg(&at)
        .arg(&dst)
        .json_lines();
    let actions: Vec<(String, String)> = lines
        .iter()
        .filter(|v| v["type"] == "action")
        .map(|v| {
            (
                v["action"].as_str().expect("action").to_string(),
                v["path"].as_str().expect("path").to_string(),
            )
        })
        .collect();
    let summary = lines.last().expect("summary");
    assert_eq!(summary["dry_run"], true, "{summary}");
    for (action, path) in [
        ("write", DAWN),
        ("write", SINE),
        ("write", DUSK),
        ("delete", "stray.txt"),
        ("delete", "new.txt"),
    ] {
        assert!(
            actions.iter().any(|(a, p)| a == action && p == path),
            "{action} {path} in {actions:?}"
        );
    }
    assert_eq!(tree_diff(&lib, &dst, TreeCmp::default()), before);
    assert!(dst.join("stray.txt").exists());
    let missing = t.path("missing");
    t.cmd()
        .arg("sync")
        .arg("-n")
        .arg(&at)
        .arg(&missing)
        .assert_exit(0);
    assert!(!missing.exists(), "a dry run created {}", missing.display());

    // Without --delete, what the snapshot lacks stays.
    let s = t.cmd().arg("sync").arg(&at).arg(&dst).summary();
    assert_eq!(num(&s, "problems"), 0, "{s}");
    assert!(dst.join("stray.txt").exists());
    assert!(dst.join("new.txt").exists());
    // With it, DST is exactly the snapshot.
    let s = t
        .cmd()
        .arg("sync")
        .arg("--delete")
        .arg(&at)
        .arg(&dst)
        .summary();
    assert!(num(&s, "files_deleted") >= 3, "{s}");
    assert_trees_equal(&expected, &dst);

    // The moment before the first snapshot has none; a time that is no time is refused.
    for (arg, message) in [
        (
            format!("{}@{}", lib.display(), rfc3339(when - 3600)),
            "no snapshot at or before",
        ),
        (format!("{}@yesterdy", lib.display()), "not a time"),
        (format!("{}@2026-02-30", lib.display()), "2026-02-30"),
    ] {
        let out = t
            .cmd()
            .arg("sync")
            .arg(&arg)
            .arg(t.path("x"))
            .assert_exit(2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{arg}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!t.path("x").exists());
    }
}

#[test]
fn a_chunk_found_nowhere_fails_its_file_and_the_rest_is_restored() {
    let t = TestRepo::new();
    let lib = t.mkdir("lib");
    fs::create_dir(lib.join("sub")).expect("mkdir");
    fs::write(lib.join("kept.txt"), b"still here later").expect("write");
    fs::write(lib.join("sub/lost.bin"), vec![7u8; 100_000]).expect("write");
    fs::write(lib.join("sub/other.txt"), b"also kept").expect("write");
    let first = scan(&t, &lib);
    let expected = t.path("expected");
    copy_tree(&lib, &expected);
    // The only copy of lost.bin's bytes is overwritten: no file, no origin, no history
    // holds them any more.
    fs::write(lib.join("sub/lost.bin"), vec![8u8; 100_000]).expect("write");
    scan(&t, &lib);

    let out = t.path("out");
    let run = t
        .cmd()
        .json()
        .arg("sync")
        .arg(&first)
        .arg(&out)
        .assert_exit(3);
    let problems: Vec<serde_json::Value> = parse_json_lines(&run.stdout)
        .into_iter()
        .filter(|v| v["type"] == "problem")
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["path"], "sub/lost.bin", "{problems:?}");
    assert!(
        problems[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not available")),
        "{problems:?}"
    );
    let s = summary_of(&run);
    assert_eq!(num(&s, "problems"), 1, "{s}");
    // The rest is there, whole; the lost file is absent, not torn.
    assert!(!out.join("sub/lost.bin").exists());
    fs::remove_file(expected.join("sub/lost.bin")).expect("remove");
    assert_trees_equal(&expected, &out);
}

#[test]
fn unknown_snapshots_are_refused_and_a_directory_stays_an_origin() {
    let t = TestRepo::new();
    let lib = library(&t, "lib");
    scan(&t, &lib);
    for arg in ["0123abcd", "0123abcd0123abcd"] {
        let out = t.cmd().arg("sync").arg(arg).arg(t.path("x")).assert_exit(2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{arg}: no such snapshot")), "{err}");
        assert!(!t.path("x").exists());
    }
    let out = t
        .cmd()
        .arg("sync")
        .arg(format!("{}@now", t.path("nowhere").display()))
        .arg(t.path("x"))
        .assert_exit(2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no snapshot of this origin"), "{err}");

    // A directory whose name reads as a snapshot prefix is synced as the directory it is.
    let hexdir = t.mkdir("deadbeef");
    fs::write(hexdir.join("f"), b"a file").expect("write");
    let mut cmd = t.cmd();
    cmd.json().arg("sync").arg("deadbeef").arg("copy");
    let out = cmd
        .command()
        .current_dir(t.root())
        .output()
        .expect("run musicfs sync");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_trees_equal(&hexdir, &t.path("copy"));
}

#[test]
fn a_named_origin_at_a_time_restores() {
    let t = TestRepo::new();
    let lib = library(&t, "lib");
    let first = scan(&t, &lib);
    let expected = t.path("expected");
    copy_tree(&lib, &expected);
    let mirror = t.path("mirror");
    t.cmd().arg("sync").arg(&lib).arg(&mirror).summary();
    let when = snapshot_time(&t, &first);
    next_second(when);
    change(&lib);
    scan(&t, &lib);
    let config = t.root().join(".config/musicfs");
    fs::create_dir_all(&config).expect("mkdir");
    fs::write(
        config.join("config.toml"),
        format!("[origin.music]\nurl = \"{}\"\n", lib.display()),
    )
    .expect("write config");
    let out = t.path("out");
    let s = t
        .cmd()
        .arg("sync")
        .arg(format!("music@{}", rfc3339(when)))
        .arg(&out)
        .summary();
    assert_eq!(num(&s, "problems"), 0, "{s}");
    assert_trees_equal(&expected, &out);
}

#[test]
fn a_snapshot_restores_into_an_ssh_destination_over_sftp() {
    let t = TestRepo::new();
    let sshd = Sshd::start(SshdOptions::default());
    let cmd = || Musicfs::new(t.repo(), &sshd.home());
    let lib = library(&t, "lib");
    let first = cmd().arg("scan").arg(&lib).summary()["snapshot"]
        .as_str()
        .expect("snapshot id")
        .to_string();
    let expected = t.path("expected");
    copy_tree(&lib, &expected);
    let mirror = t.path("mirror");
    cmd().arg("sync").arg(&lib).arg(&mirror).summary();
    change(&lib);
    cmd().arg("scan").arg(&lib).summary();

    let out = t.path("out");
    fs::create_dir(&out).expect("mkdir");
    fs::write(out.join("stray.txt"), b"only there").expect("write");
    let remote = format!("nas:{}", out.display());
    let s = cmd()
        .arg("sync")
        .arg("--delete")
        .arg(&first[..12])
        .arg(&remote)
        .summary();
    assert_eq!(num(&s, "problems"), 0, "{s}");
    // SFTP carries mtimes to the second.
    assert_trees_equal_with(
        &expected,
        &out,
        TreeCmp {
            mtime_seconds_only: true,
            ..TreeCmp::default()
        },
    );
}

#[test]
fn an_origin_rolled_back_in_place_takes_only_its_old_tags_from_history() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let first = scan(&t, &lib);
    let expected = t.path("expected");
    copy_tree(&lib, &expected);
    let when = snapshot_time(&t, &first);
    next_second(when);
    id3v2_title(&lib.join(DAWN), "Dawn (remastered)");
    metaflac_title(&lib.join(SINE), "Pure Sine (live)");
    fs::write(lib.join("new.txt"), b"added later\n").expect("write");
    scan(&t, &lib);
    let at = format!("{}@{}", lib.display(), rfc3339(when));
    let s = t
        .cmd()
        .arg("sync")
        .arg("--delete")
        .arg(&at)
        .arg(&lib)
        .summary();
    assert_trees_equal(&expected, &lib);
    assert_eq!(num(&s, "files_changed"), 2, "{s}");
    assert_eq!(num(&s, "files_deleted"), 1, "{s}");
    // The audio is rebuilt from the files themselves; only the two old tag blocks come from
    // the repository's history.
    assert!(num(&s, "bytes_transferred") < 10_000, "{s}");
    assert!(num(&s, "bytes_reused") > 0, "{s}");
}
