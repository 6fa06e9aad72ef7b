//! Messages a user can act on, through the binary: which side of a sync is at fault, the
//! real file named (never an empty path or a temporary file's name), I/O errors worded with
//! what to do and never as a bare `os error N`, a destination that cannot be written refused
//! once before anything is read, control characters quoted, and the snapshot arguments
//! (an ambiguous prefix, a bad `@TIME`, `@latest`) explained. Permissions are tested as
//! `nobody` (see `tests/permissions.rs`).

mod util;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use musicfs::id::TreeId;
use musicfs::repo::Repository;
use musicfs::snapshot::SnapshotRecord;
use serde_json::Value;
use util::{parse_json_lines, TestRepo};

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What every message must be: `musicfs: …` lines without `os error`, an empty path or a
/// temporary file's name.
fn assert_actionable(stderr: &str) {
    assert!(!stderr.contains("os error"), "a bare os error: {stderr}");
    assert!(!stderr.contains(".musicfs-"), "a temporary name: {stderr}");
    for line in stderr.lines() {
        assert!(line.starts_with("musicfs: "), "{line:?} in {stderr}");
        assert!(!line.starts_with("musicfs: :"), "an empty path: {stderr}");
        assert!(!line.contains(" : "), "an empty path: {stderr}");
    }
}

/// A directory `nobody` cannot write into, owned by root (so it cannot be lent `u+rwx`).
fn root_owned_read_only(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o555)).unwrap();
}

fn problems(out: &Output) -> Vec<Value> {
    parse_json_lines(&out.stdout)
        .into_iter()
        .filter(|v| v["type"] == "problem")
        .collect()
}

fn snapshot_count(t: &TestRepo) -> usize {
    let repo = Repository::open(t.repo()).expect("open repository");
    repo.snapshots().expect("snapshots").len()
}

/// A destination that exists but cannot be written: one line naming DST and what to do,
/// exit 2, before the source is read (no snapshot recorded, no problem with the source's
/// unreadable file).
#[test]
fn an_unwritable_destination_is_refused_once_before_reading() {
    if !nix::unistd::geteuid().is_root() {
        panic!("this test makes root-owned directories: run it as root");
    }
    let t = TestRepo::unprivileged();
    t.sh_unprivileged(
        "mkdir -p src/a src/b; for i in 1 2 3; do echo $i > src/a/$i.flac; echo $i > src/b/$i.flac; done
         echo secret > src/locked.flac; chmod 000 src/locked.flac",
    );
    let dst = t.path("dst");
    root_owned_read_only(&dst);
    let out = t
        .cmd_unprivileged()
        .arg("sync")
        .arg(t.path("src"))
        .arg(&dst)
        .assert_exit(2);
    let stderr = stderr_of(&out);
    assert_actionable(&stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&format!(
            "DST {}: cannot write here: permission denied",
            dst.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("check the owner and mode"), "{stderr}");
    assert!(
        !stderr.contains("locked.flac"),
        "the source was read: {stderr}"
    );
    assert_eq!(snapshot_count(&t), 0, "the source was scanned");

    // A destination to be created under a parent that cannot be written.
    let inside = dst.join("lib");
    let out = t
        .cmd_unprivileged()
        .arg("sync")
        .arg(t.path("src"))
        .arg(&inside)
        .assert_exit(2);
    let stderr = stderr_of(&out);
    assert_actionable(&stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&format!("DST {}:", inside.display())),
        "{stderr}"
    );
    assert!(stderr.contains("parent directory"), "{stderr}");

    // The same in JSON: nothing on stdout but what the failure allows, the same one line.
    let out = t
        .cmd_unprivileged()
        .json()
        .arg("sync")
        .arg(t.path("src"))
        .arg(&dst)
        .assert_exit(2);
    assert!(problems(&out).is_empty(), "no problem per file");
    assert_eq!(stderr_of(&out).lines().count(), 1, "{}", stderr_of(&out));
}

/// Files that cannot be written at DST (a root-owned directory inside it) and files that
/// cannot be read at SRC: each line says which side, names the real file as that side shows
/// it (never a temporary name), quotes a name with a newline on one line, and in JSON the
/// problem has `side` and a relative `path`.
#[test]
fn each_problem_names_its_side_and_the_real_file() {
    if !nix::unistd::geteuid().is_root() {
        panic!("this test makes root-owned directories: run it as root");
    }
    let t = TestRepo::unprivileged();
    t.sh_unprivileged(
        "mkdir -p src/album src/ok; printf 1 > 'src/album/a
b.flac'; echo 2 > src/album/c.flac; echo 3 > src/ok/d.flac
         echo 4 > src/unreadable.flac; chmod 000 src/unreadable.flac; mkdir dst",
    );
    let (src, dst) = (t.path("src"), t.path("dst"));
    root_owned_read_only(&dst.join("album"));

    let out = t
        .cmd_unprivileged()
        .arg("sync")
        .arg(&src)
        .arg(&dst)
        .assert_exit(3);
    let stderr = stderr_of(&out);
    assert_actionable(&stderr);
    let newline = format!(
        "DST \"{}/album/a\\nb.flac\": permission denied",
        dst.display()
    );
    assert!(stderr.contains(&newline), "{newline} in {stderr}");
    assert!(
        stderr.contains(&format!(
            "DST {}/album/c.flac: permission denied; check",
            dst.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "SRC {}/unreadable.flac: permission denied",
            src.display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read(dst.join("ok/d.flac")).unwrap(), b"3\n");

    let out = t
        .cmd_unprivileged()
        .json()
        .arg("sync")
        .arg(&src)
        .arg(&dst)
        .assert_exit(3);
    let found = problems(&out);
    let side_of = |path: &str| {
        found
            .iter()
            .find(|p| p["path"] == path)
            .unwrap_or_else(|| panic!("{path} in {found:?}"))["side"]
            .clone()
    };
    assert_eq!(side_of("album/a\nb.flac"), "dst");
    assert_eq!(side_of("album/c.flac"), "dst");
    assert_eq!(side_of("unreadable.flac"), "src");
    for problem in &found {
        let message = problem["message"].as_str().unwrap_or_default();
        assert!(!message.contains("os error"), "{problem}");
        assert!(!message.contains(".musicfs-"), "{problem}");
    }
    assert_actionable(&stderr_of(&out));
}

/// Outside a sync a problem has no side: `scan --json` gives none, and its text line names
/// the file with the reason worded for people.
#[test]
fn a_scan_problem_has_no_side() {
    let t = TestRepo::unprivileged();
    t.sh_unprivileged("mkdir src; echo 1 > src/a.flac; echo 2 > src/b.flac; chmod 000 src/b.flac");
    let out = t
        .cmd_unprivileged()
        .json()
        .arg("scan")
        .arg(t.path("src"))
        .assert_exit(3);
    let found = problems(&out);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].get("side").is_none(), "{found:?}");
    let out = t
        .cmd_unprivileged()
        .arg("scan")
        .arg(t.path("src"))
        .assert_exit(3);
    let stderr = stderr_of(&out);
    assert_actionable(&stderr);
    assert!(
        stderr.contains("b.flac: permission denied; check"),
        "{stderr}"
    );
    assert!(!stderr.contains("SRC"), "{stderr}");
}

/// A command's final error line has no `os error` either, and says what to do.
#[test]
fn a_failing_command_words_its_io_error() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    std::fs::write(src.join("a.flac"), b"1").unwrap();
    let log = t.path("no/such/dir/musicfs.log");
    let out = t
        .cmd()
        .arg("--log-file")
        .arg(&log)
        .arg("scan")
        .arg(&src)
        .output();
    assert!(!out.status.success(), "{out:?}");
    let stderr = stderr_of(&out);
    assert_actionable(&stderr);
    assert!(
        stderr.to_lowercase().contains("no such file or directory"),
        "{stderr}"
    );
}

/// `ORIGIN@TIME` with a bad time on an existing directory: one line about the time alone.
#[test]
fn a_bad_time_on_an_existing_origin_is_about_the_time() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    std::fs::write(src.join("a.flac"), b"1").unwrap();
    t.cmd().arg("scan").arg(&src).assert_exit(0);
    for command in [&["diff"][..], &["sync"][..]] {
        let mut cmd = t.cmd();
        cmd.args(command).arg(format!("{}@notatime", src.display()));
        if command == ["sync"] {
            cmd.arg(t.path("out"));
        }
        let out = cmd.assert_exit(2);
        let stderr = stderr_of(&out);
        assert_actionable(&stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("notatime: not a time; write"), "{stderr}");
        assert!(
            !stderr.contains("no such directory"),
            "{command:?}: {stderr}"
        );
    }
    // Where neither the directory nor the time exists, both are said.
    let out = t
        .cmd()
        .arg("diff")
        .arg(format!("{}@notatime", t.path("gone").display()))
        .assert_exit(2);
    assert!(
        stderr_of(&out).contains("no such directory"),
        "{}",
        stderr_of(&out)
    );
}

/// `ORIGIN@latest` (restic's word) is the newest snapshot of ORIGIN.
#[test]
fn at_latest_is_the_newest_snapshot() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    std::fs::write(src.join("a.flac"), b"old").unwrap();
    t.cmd().arg("scan").arg(&src).assert_exit(0);
    std::fs::write(src.join("a.flac"), b"new and longer").unwrap();
    t.cmd().arg("scan").arg(&src).assert_exit(0);
    let repo = Repository::open(t.repo()).expect("open repository");
    let snapshots = repo.snapshots().expect("snapshots");
    assert_eq!(snapshots.len(), 2);
    let newest = snapshots[1].0.to_hex();
    drop(repo);

    let at_latest = format!("{}@latest", src.display());
    t.cmd()
        .arg("diff")
        .arg(&at_latest)
        .arg(&newest)
        .assert_exit(0);
    let out = t.path("out");
    t.cmd().arg("sync").arg(&at_latest).arg(&out).assert_exit(0);
    assert_eq!(
        std::fs::read(out.join("a.flac")).unwrap(),
        b"new and longer"
    );
}

/// `n` distinct trees, each from a real scan of a directory of its own.
fn roots(t: &TestRepo, n: usize) -> Vec<TreeId> {
    for i in 0..n {
        let dir = t.mkdir(&format!("v{i}"));
        std::fs::write(dir.join("track.txt"), format!("version {i}\n")).expect("write");
        t.cmd().arg("scan").arg(&dir).assert_exit(0);
    }
    let repo = Repository::open(t.repo()).expect("open repository");
    repo.snapshots()
        .expect("snapshots")
        .iter()
        .map(|(_, r)| r.root)
        .collect()
}

/// A snapshot id prefix that two snapshots share: `sync` and `diff` say "ambiguous", list
/// both, and exit 2 on one line.
#[test]
fn an_ambiguous_prefix_is_refused_by_sync_and_diff() {
    let t = TestRepo::new();
    let root = roots(&t, 1)[0];
    // Two records whose ids share their first 8 hex digits (a birthday search: with 600,000
    // records about 40 pairs are expected).
    let candidate = |i: u32| SnapshotRecord {
        origin: format!("/ambiguous/{i}"),
        time_ns: 1_795_545_000_000_000_000,
        root,
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
    let repo = Repository::open(t.repo()).expect("open repository");
    let mut writer = repo.writer().expect("writer");
    let ids: Vec<String> = [candidate(a), candidate(b)]
        .iter()
        .map(|r| writer.add_snapshot(r).expect("add snapshot").to_hex())
        .collect();
    writer.commit().expect("commit");
    drop(repo);
    let prefix = &ids[0][..8];
    assert!(ids[1].starts_with(prefix));

    let out_dir = t.path("out");
    for args in [
        vec!["sync", prefix, out_dir.to_str().unwrap()],
        vec!["diff", prefix, &ids[0]],
    ] {
        let out = t.cmd().args(&args).assert_exit(2);
        let stderr = stderr_of(&out);
        assert_actionable(&stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("{prefix}: ambiguous")), "{stderr}");
        assert!(
            stderr.contains(&format!("/ambiguous/{a}"))
                && stderr.contains(&format!("/ambiguous/{b}")),
            "{stderr}"
        );
    }
    assert!(!out_dir.exists(), "nothing restored");
}

/// A shared destination this user may write into but does not own (root's 0777 directory):
/// every file is written, and the root's mode and mtime, which only its owner may set, are one
/// problem at DST (exit 3), as rsync's "failed to set times", not a failed sync.
#[test]
fn a_shared_destination_root_is_one_problem_not_a_failure() {
    if !nix::unistd::geteuid().is_root() {
        panic!("this test makes root-owned directories: run it as root");
    }
    let t = TestRepo::unprivileged();
    t.sh_unprivileged("mkdir -p src/album; echo 1 > src/album/a.flac; chmod 700 src");
    let dst = t.mkdir("shared");
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = t
        .cmd_unprivileged()
        .arg("sync")
        .arg(t.path("src"))
        .arg(&dst)
        .assert_exit(3);
    let stderr = stderr_of(&out);
    assert_actionable(&stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "DST {}: its mode and mtime were not set: operation not permitted",
            dst.display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read(dst.join("album/a.flac")).unwrap(), b"1\n");
}
