//! `musicfs verify DIR --repair-from ORIGIN` rebuilds damaged files from good chunks.
//!
//! Damage is made as `tests/verify.rs` makes it, where bit rot happens: a byte flipped in the
//! image beneath a loop-mounted ext4 file system, so the file keeps its size, times, inode
//! and mode (root needed, as for the whole suite). Each test then checks, through the binary,
//! what the repair did: the damaged files rebuilt byte for byte with their mode and mtime,
//! reported `repaired`, the edited file left alone, a file whose chunks exist nowhere
//! reported `unrepaired` and left untouched (exit 1), and the repaired files recorded so that
//! the next scan reads none of them.

mod support;
mod util;

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::sshd::{free_port, Sshd, SshdOptions};
use util::editors::*;
use util::ext4::{stat_key, Ext4};
use util::*;

/// (mode, mtime, mtime ns) of a file.
fn meta(path: &Path) -> (u32, i64, i64) {
    let m = fs::metadata(path).unwrap();
    (m.mode() & 0o7777, m.mtime(), m.mtime_nsec())
}

/// The one JSON line for `path` of type `kind`.
fn line<'a>(lines: &'a [Value], kind: &str, path: &str) -> &'a Value {
    let found: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == kind && l["path"] == path)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} line for {path}: {lines:?}");
    found[0]
}

/// The `--json` lines of a command and its summary, asserting the exit code.
fn json_run(cmd: &mut Musicfs, code: i32) -> (Vec<Value>, Value) {
    let out = cmd.json().assert_exit(code);
    let summary = summary_of(&out);
    let mut lines = parse_json_lines(&out.stdout);
    lines.pop();
    (lines, summary)
}

/// The names of the temporary files left in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".musicfs-"))
        .collect()
}

/// The fixtures in `lib` on the ext4 image, scanned; a mirror of them outside it.
fn library(t: &TestRepo, disk: &Ext4) -> (PathBuf, PathBuf) {
    let lib = disk.mount.join("lib");
    copy_tree(&fixtures_audio(), &lib);
    let mirror = t.fixtures("mirror");
    t.cmd().arg("scan").arg(&lib).summary();
    (lib, mirror)
}

/// Damage in the middle of the audio, in the tag block and in the last byte, each repaired
/// from a local mirror; an edited file beside them is left alone; the repaired files keep
/// their mode and mtime and are recorded, so the next scan reads none of them.
#[test]
fn damage_in_the_audio_the_tag_and_the_last_byte_is_repaired_from_a_mirror() {
    let t = TestRepo::new();
    let disk = Ext4::new(&t);
    let lib = disk.mount.join("lib");
    copy_tree(&fixtures_audio(), &lib);
    // A mode other than the default, which the repair must keep.
    fs::set_permissions(lib.join(SINE), fs::Permissions::from_mode(0o640)).unwrap();
    let mirror = t.fixtures("mirror");
    let files = files_in(&lib).len() as u64;
    t.cmd().arg("scan").arg(&lib).summary();

    let damaged = [
        // Zenith's audio region starts at 8624 of 25132 bytes.
        (ZENITH, 16_000),
        // Dawn's ID3v2 tag spans its first 182 bytes.
        (DAWN, 100),
        // The last byte of the FLAC's audio.
        (SINE, fs::metadata(lib.join(SINE)).unwrap().len() - 1),
    ];
    let mut before = Vec::new();
    for (path, offset) in damaged {
        let file = lib.join(path);
        before.push((fs::read(&file).unwrap(), meta(&file)));
        disk.rot(&file, offset);
        assert_ne!(fs::read(&file).unwrap(), before.last().unwrap().0);
    }
    // An edit, which stays the user's.
    id3v2_title(&lib.join(DUSK), "Evening");
    let edited = fs::read(lib.join(DUSK)).unwrap();

    let out = t
        .cmd()
        .arg("verify")
        .arg(&lib)
        .arg("--repair-from")
        .arg(&mirror)
        .assert_exit(0);
    let text = String::from_utf8(out.stdout).unwrap();
    for (path, _) in damaged {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("DAMAGED {path}: "))),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l == format!("repaired {path}")),
            "{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l == format!("edited {DUSK}: tags edited, audio verified")),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("unrepaired ")),
        "{text}"
    );
    let summary = text.lines().last().unwrap();
    assert!(
        summary
            .contains("1 edited, 0 missing, 0 unreadable, 3 damaged, 3 repaired, 0 unrepaired in "),
        "{summary}"
    );

    for ((path, _), (content, metadata)) in damaged.iter().zip(&before) {
        let file = lib.join(path);
        assert!(
            fs::read(&file).unwrap() == *content,
            "{path} is not its old self"
        );
        assert_eq!(meta(&file), *metadata, "{path}: mode and mtime");
        assert_eq!(
            fs::read(&file).unwrap(),
            fs::read(fixtures_audio().join(path)).unwrap()
        );
    }
    assert_eq!(meta(&lib.join(SINE)).0, 0o640);
    assert_eq!(
        fs::read(lib.join(DUSK)).unwrap(),
        edited,
        "the edit was undone"
    );
    for dir in ["Aurora Tones/First Light", "Lossless Ensemble/Waveforms"] {
        assert!(temporaries(&lib.join(dir)).is_empty(), "{dir}");
    }

    // Verified again: nothing damaged, nothing to repair.
    let (lines, summary) = json_run(
        t.cmd()
            .arg("verify")
            .arg(&lib)
            .arg("--repair-from")
            .arg(&mirror),
        0,
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    line(&lines, "edited", DUSK);
    assert_eq!(num(&summary, "damaged"), 0, "{summary}");
    assert_eq!(num(&summary, "repaired"), 0, "{summary}");
    assert_eq!(num(&summary, "ok"), files - 1, "{summary}");
    // Recorded as written: the next scan reads only the edited file.
    let scanned = t.cmd().json().arg("scan").arg(&lib).summary();
    assert_eq!(num(&scanned, "files_read"), 1, "{scanned}");
}

/// A damaged file whose chunks exist nowhere (the mirror lacks it, the repository keeps no
/// audio) is reported `unrepaired` and left exactly as it was; exit 1.
#[test]
fn a_file_whose_chunks_exist_nowhere_is_unrepaired_and_untouched() {
    let t = TestRepo::new();
    let disk = Ext4::new(&t);
    let (lib, mirror) = library(&t, &disk);
    fs::remove_file(mirror.join(ZENITH)).unwrap();
    let zenith = lib.join(ZENITH);
    disk.rot(&zenith, 16_000);
    let (content, key) = (fs::read(&zenith).unwrap(), stat_key(&zenith));

    let (lines, summary) = json_run(
        t.cmd()
            .arg("verify")
            .arg(&lib)
            .arg("--repair-from")
            .arg(&mirror),
        1,
    );
    line(&lines, "damaged", ZENITH);
    let unrepaired = line(&lines, "unrepaired", ZENITH);
    let reason = unrepaired["reason"].as_str().unwrap();
    assert!(
        reason.contains("no good copy of chunk") && reason.contains(mirror.to_str().unwrap()),
        "{reason}"
    );
    assert!(lines.iter().all(|l| l["type"] != "repaired"), "{lines:?}");
    assert_eq!(
        (
            num(&summary, "damaged"),
            num(&summary, "repaired"),
            num(&summary, "unrepaired")
        ),
        (1, 0, 1),
        "{summary}"
    );
    assert_eq!(fs::read(&zenith).unwrap(), content);
    assert_eq!(stat_key(&zenith), key, "the file was touched");
    assert!(temporaries(zenith.parent().unwrap()).is_empty());

    // In text: the reason on its line, the counts in the summary.
    let out = t
        .cmd()
        .arg("verify")
        .arg(&lib)
        .arg("--repair-from")
        .arg(&mirror)
        .assert_exit(1);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("unrepaired {ZENITH}: no good copy of chunk"))),
        "{text}"
    );
    assert!(
        text.contains("1 damaged, 0 repaired, 1 unrepaired in "),
        "{text}"
    );
}

/// A mirror laid out differently holds the file elsewhere: once scanned, the repository's
/// record of where its chunks are finds them.
#[test]
fn a_mirror_with_another_layout_is_read_where_the_repository_recorded_its_chunks() {
    let t = TestRepo::new();
    let disk = Ext4::new(&t);
    let (lib, mirror) = library(&t, &disk);
    let moved = mirror.join("moved.mp3");
    fs::rename(mirror.join(ZENITH), &moved).unwrap();
    t.cmd().arg("scan").arg(&mirror).summary();
    let zenith = lib.join(ZENITH);
    let good = fs::read(&zenith).unwrap();
    disk.rot(&zenith, 16_000);

    let (lines, summary) = json_run(
        t.cmd()
            .arg("verify")
            .arg(&lib)
            .arg("--repair-from")
            .arg(&mirror),
        0,
    );
    line(&lines, "repaired", ZENITH);
    assert_eq!(num(&summary, "repaired"), 1, "{summary}");
    assert_eq!(fs::read(&zenith).unwrap(), good);
    assert_eq!(fs::read(&moved).unwrap(), good, "the mirror changed");
}

/// An unreachable origin to repair from stops the command before anything is verified (exit
/// 5); an unknown scheme is a usage error (exit 2), and so is --repair-from without ORIGIN or
/// naming ORIGIN itself; a sync's lock on ORIGIN stops it at once (exit 4).
#[test]
fn an_unreachable_or_unknown_origin_to_repair_from_touches_nothing() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    t.cmd().arg("scan").arg(&lib).summary();
    let before = stat_key(&lib.join(ZENITH));

    let unreachable = format!("ssh://root@127.0.0.1:{}/music", free_port());
    let out = t
        .cmd()
        .args(["verify", "--retries", "0", "--timeout", "5"])
        .arg(&lib)
        .arg("--repair-from")
        .arg(&unreachable)
        .assert_exit(5);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--repair-from") && err.contains("127.0.0.1"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // A name from the configuration file is the origin it names.
    let config = t.mkdir(".config/musicfs").join("config.toml");
    fs::write(
        &config,
        format!("[origin.backup]\nurl = \"{unreachable}\"\nretries = 0\ntimeout = 5\n"),
    )
    .unwrap();
    let out = t
        .cmd()
        .arg("verify")
        .arg(&lib)
        .args(["--repair-from", "backup"])
        .assert_exit(5);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("127.0.0.1"), "{err}");
    fs::remove_file(&config).unwrap();

    let out = t
        .cmd()
        .arg("verify")
        .arg(&lib)
        .args(["--repair-from", "foo://nas/music"])
        .assert_exit(2);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("foo://"), "{err}");
    assert!(out.stdout.is_empty());

    t.cmd()
        .arg("verify")
        .arg("--repair-from")
        .arg(&lib)
        .assert_exit(2);
    // A sync into the origin holds its lock: the repair waits for nothing and changes
    // nothing (exit 4), while a plain verify, which writes nothing, still runs.
    let mirror = t.fixtures("mirror");
    let held = File::open(&lib).unwrap();
    held.try_lock().unwrap();
    let out = t
        .cmd()
        .arg("verify")
        .arg(&lib)
        .arg("--repair-from")
        .arg(&mirror)
        .assert_exit(4);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another musicfs sync is running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    t.cmd().arg("verify").arg(&lib).assert_exit(0);
    drop(held);
    t.cmd()
        .arg("verify")
        .arg(&lib)
        .arg("--repair-from")
        .arg(&mirror)
        .assert_exit(0);
    // Repairing from the origin itself is refused too.
    let out = t
        .cmd()
        .arg("verify")
        .arg(&lib)
        .arg("--repair-from")
        .arg(&lib)
        .assert_exit(2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the origin being verified"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stat_key(&lib.join(ZENITH)), before);
}

/// The mirror on an SSH host, read over SFTP from a real sshd.
#[test]
fn a_file_is_repaired_from_a_mirror_over_ssh() {
    let t = TestRepo::new();
    let disk = Ext4::new(&t);
    let (lib, mirror) = library(&t, &disk);
    let sshd = Sshd::start(SshdOptions::default());
    let zenith = lib.join(ZENITH);
    let (good, metadata) = (fs::read(&zenith).unwrap(), meta(&zenith));
    disk.rot(&zenith, 16_000);

    let mut cmd = Musicfs::new(t.repo(), &sshd.home());
    cmd.arg("verify")
        .arg(&lib)
        .arg("--repair-from")
        .arg(format!("nas:{}", mirror.display()));
    let (lines, summary) = json_run(&mut cmd, 0);
    line(&lines, "damaged", ZENITH);
    line(&lines, "repaired", ZENITH);
    assert_eq!(num(&summary, "repaired"), 1, "{summary}");
    assert_eq!(fs::read(&zenith).unwrap(), good);
    assert_eq!(meta(&zenith), metadata);
}

/// Run by a normal user on files of their own: the repaired file keeps its mode (0640 here)
/// and belongs to that user.
#[test]
fn an_unprivileged_user_repairs_a_file_of_their_own_keeping_its_mode() {
    let t = TestRepo::unprivileged();
    let disk = Ext4::new(&t);
    let lib = disk.mount.join("lib");
    copy_tree(&fixtures_audio(), &lib);
    let mirror = t.fixtures("mirror");
    let zenith = lib.join(ZENITH);
    fs::set_permissions(&zenith, fs::Permissions::from_mode(0o640)).unwrap();
    for root in [&disk.mount, &mirror] {
        for entry in walkdir::WalkDir::new(root) {
            let entry = entry.unwrap();
            std::os::unix::fs::lchown(entry.path(), Some(NOBODY.0), Some(NOBODY.1)).unwrap();
        }
    }
    t.cmd_unprivileged().arg("scan").arg(&lib).summary();
    let (good, metadata) = (fs::read(&zenith).unwrap(), meta(&zenith));
    disk.rot(&zenith, 16_000);

    let (lines, summary) = json_run(
        t.cmd_unprivileged()
            .arg("verify")
            .arg(&lib)
            .arg("--repair-from")
            .arg(&mirror),
        0,
    );
    line(&lines, "repaired", ZENITH);
    assert_eq!(num(&summary, "repaired"), 1, "{summary}");
    assert_eq!(fs::read(&zenith).unwrap(), good);
    assert_eq!(meta(&zenith), metadata);
    assert_eq!(meta(&zenith).0, 0o640);
    let owner = fs::metadata(&zenith).unwrap();
    assert_eq!((owner.uid(), owner.gid()), NOBODY);
}
