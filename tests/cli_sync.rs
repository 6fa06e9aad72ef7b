//! Integration tests for `musicfs scan`, `sync`, `verify` and `snapshots`,
//! run against the real binary with a private temporary repository.

mod util;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use util::*;

fn sync_summary(t: &TestRepo, src: &Path, dst: &Path, extra: &[&str]) -> serde_json::Value {
    t.cmd().arg("sync").arg(src).arg(dst).args(extra).summary()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

// --- basic sync ---------------------------------------------------------------

#[test]
fn sync_fixtures_trees_equal() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_trees_equal(&src, &dst);
    let n_files = files_in(&src).len() as u64;
    assert_eq!(num(&s, "files"), n_files, "{s}");
    assert_eq!(num(&s, "files_changed"), n_files, "{s}");
    assert_eq!(num(&s, "bytes"), tree_bytes(&src), "{s}");
    assert_eq!(s["dry_run"], false, "{s}");
    assert_eq!(num(&s, "files_deleted"), 0, "{s}");
    assert!(num(&s, "chunks_transferred") > 0, "{s}");
    // Fixture files are distinct, so everything had to be read from SRC.
    assert!(num(&s, "bytes_transferred") > 0, "{s}");
    assert!(num(&s, "bytes_transferred") <= tree_bytes(&src), "{s}");
}

#[test]
fn sync_into_existing_empty_dst() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.mkdir("dst");
    sync_summary(&t, &src, &dst, &[]);
    assert_trees_equal(&src, &dst);
}

#[test]
fn dir_mtimes_preserved() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    assert_trees_equal_with(
        &src,
        &dst,
        TreeCmp {
            dir_mtimes: true,
            ..TreeCmp::default()
        },
    );
}

#[test]
fn second_sync_transfers_nothing() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(num(&s, "bytes_transferred"), 0, "{s}");
    assert_eq!(num(&s, "files_changed"), 0, "{s}");
    assert_eq!(num(&s, "chunks_transferred"), 0, "{s}");
    assert_eq!(num(&s, "files"), files_in(&src).len() as u64, "{s}");
    assert_trees_equal(&src, &dst);
}

#[test]
fn second_sync_with_checksum_transfers_nothing() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    let s = sync_summary(&t, &src, &dst, &["--checksum"]);
    assert_eq!(num(&s, "bytes_transferred"), 0, "{s}");
    assert_eq!(num(&s, "files_changed"), 0, "{s}");
    assert_trees_equal(&src, &dst);
}

#[test]
fn global_flags_after_subcommand() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    let out = std::process::Command::new(bin())
        .arg("sync")
        .arg(&src)
        .arg(&dst)
        .arg("--json")
        .arg("--repo")
        .arg(t.repo())
        .env_remove("MUSICFS_REPO")
        .env("HOME", t.root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary_of(&out);
    assert_eq!(num(&s, "files"), files_in(&src).len() as u64);
    assert_trees_equal(&src, &dst);
}

#[test]
fn quiet_sync_prints_nothing_on_stdout() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    let out = t
        .cmd()
        .quiet()
        .arg("sync")
        .arg(&src)
        .arg(&dst)
        .assert_exit(0);
    assert!(
        out.stdout.is_empty(),
        "-q printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_trees_equal(&src, &dst);
}

// --- scan ---------------------------------------------------------------------

#[test]
fn scan_then_rescan_reads_nothing() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let s1 = t.cmd().arg("scan").arg(&src).summary();
    let n = files_in(&src).len() as u64;
    assert_eq!(num(&s1, "files"), n, "{s1}");
    assert_eq!(num(&s1, "bytes"), tree_bytes(&src), "{s1}");
    assert_eq!(num(&s1, "files_read"), n, "{s1}");
    assert_eq!(num(&s1, "bytes_read"), tree_bytes(&src), "{s1}");
    let snap1 = s1["snapshot"].as_str().expect("snapshot id").to_string();
    assert!(is_hex64(&snap1), "{s1}");

    let s2 = t.cmd().arg("scan").arg(&src).summary();
    assert_eq!(num(&s2, "files_read"), 0, "{s2}");
    assert_eq!(num(&s2, "bytes_read"), 0, "{s2}");
    assert_eq!(num(&s2, "files"), n, "{s2}");
    // Same content, so the same content-addressed snapshot.
    assert_eq!(s2["snapshot"].as_str(), Some(snap1.as_str()), "{s2}");
}

#[test]
fn rescan_reads_only_changed_file() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    t.cmd().arg("scan").arg(&src).summary();
    let f = src.join("Lossless Ensemble/Waveforms/01 Pure Sine.flac");
    let mut data = fs::read(&f).unwrap();
    data.extend_from_slice(b"appended");
    fs::write(&f, &data).unwrap();
    let s = t.cmd().arg("scan").arg(&src).summary();
    assert_eq!(num(&s, "files_read"), 1, "{s}");
    assert_eq!(num(&s, "bytes"), tree_bytes(&src), "{s}");
}

#[test]
fn scan_checksum_reads_everything() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    t.cmd().arg("scan").arg(&src).summary();
    let s = t.cmd().arg("scan").arg(&src).arg("--checksum").summary();
    assert_eq!(num(&s, "files_read"), files_in(&src).len() as u64, "{s}");
}

#[test]
fn snapshots_lists_scans() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let s = t.cmd().arg("scan").arg(&src).summary();
    let snaps = t.cmd().arg("snapshots").json_lines();
    let ours: Vec<_> = snaps
        .iter()
        .filter(|v| v["type"] == "snapshot" && v["id"] == s["snapshot"])
        .collect();
    assert!(
        !ours.is_empty(),
        "snapshot {} not listed in {snaps:?}",
        s["snapshot"]
    );
    let v = ours[0];
    assert_eq!(num(v, "files"), files_in(&src).len() as u64, "{v}");
    assert_eq!(num(v, "bytes"), tree_bytes(&src), "{v}");
    assert!(!v["origin"].is_null(), "{v}");
    assert!(!v["time"].is_null(), "{v}");
}

// --- dry run ----------------------------------------------------------------------

#[test]
fn dry_run_matches_real_run_and_writes_nothing() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    let dry = sync_summary(&t, &src, &dst, &["--dry-run"]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert!(!dst.exists(), "--dry-run created DST");
    let real = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(real["dry_run"], false, "{real}");
    for k in [
        "files",
        "files_changed",
        "bytes",
        "bytes_transferred",
        "files_deleted",
    ] {
        assert_eq!(num(&dry, k), num(&real, k), "{k}: dry {dry} vs real {real}");
    }
    assert_trees_equal(&src, &dst);
}

#[test]
fn dry_run_into_existing_empty_dst_leaves_it_empty() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.mkdir("dst");
    sync_summary(&t, &src, &dst, &["--dry-run"]);
    assert!(list_tree(&dst).is_empty(), "{:?}", list_tree(&dst));
}

#[test]
fn dry_run_after_changes_matches_real_run() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    // Modify one file, add one, delete one.
    let f = src.join("Aurora Tones/First Light/02 Zenith.mp3");
    let mut data = fs::read(&f).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    fs::write(&f, &data).unwrap();
    fs::write(src.join("Riff Raff/new.txt"), b"new file").unwrap();
    fs::remove_file(src.join("Aurora Tones/Night Shift/01 Static.mp3")).unwrap();

    let before: Vec<_> = list_tree(&dst)
        .into_iter()
        .map(|p| (p.clone(), fs::read(dst.join(&p)).ok(), mtime(&dst.join(&p))))
        .collect();
    let dry = sync_summary(&t, &src, &dst, &["--dry-run", "--delete"]);
    let after: Vec<_> = list_tree(&dst)
        .into_iter()
        .map(|p| (p.clone(), fs::read(dst.join(&p)).ok(), mtime(&dst.join(&p))))
        .collect();
    assert!(before == after, "--dry-run modified DST");

    let real = sync_summary(&t, &src, &dst, &["--delete"]);
    for k in [
        "files",
        "files_changed",
        "bytes",
        "bytes_transferred",
        "files_deleted",
    ] {
        assert_eq!(num(&dry, k), num(&real, k), "{k}: dry {dry} vs real {real}");
    }
    assert_eq!(num(&real, "files_changed"), 2, "{real}");
    assert_eq!(num(&real, "files_deleted"), 1, "{real}");
    assert_trees_equal(&src, &dst);
}

// --- delete -----------------------------------------------------------------------

fn add_extras(dst: &Path) {
    fs::write(dst.join("extra.txt"), b"not in src").unwrap();
    fs::create_dir_all(dst.join("Extra Artist/Extra Album")).unwrap();
    fs::write(dst.join("Extra Artist/Extra Album/01 x.mp3"), b"x").unwrap();
    fs::write(dst.join("Aurora Tones/First Light/stray.mp3"), b"stray").unwrap();
}

#[test]
fn delete_removes_extra_files_and_dirs() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    add_extras(&dst);
    let s = sync_summary(&t, &src, &dst, &["--delete"]);
    assert_eq!(num(&s, "files_deleted"), 3, "{s}");
    assert_eq!(num(&s, "bytes_transferred"), 0, "{s}");
    assert_trees_equal(&src, &dst);
}

#[test]
fn without_delete_extra_files_stay() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    add_extras(&dst);
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(num(&s, "files_deleted"), 0, "{s}");
    assert!(dst.join("extra.txt").is_file());
    assert!(dst.join("Extra Artist/Extra Album/01 x.mp3").is_file());
    assert!(dst.join("Aurora Tones/First Light/stray.mp3").is_file());
    // Everything from SRC is still there and equal.
    for (rel, abs) in files_in(&src) {
        assert_eq!(
            fs::read(&abs).unwrap(),
            fs::read(dst.join(&rel)).unwrap(),
            "{}",
            rel.display()
        );
    }
}

#[test]
fn deleted_src_file_removed_with_delete() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    fs::remove_dir_all(src.join("MP4 Quartet")).unwrap();
    let s = sync_summary(&t, &src, &dst, &["--delete"]);
    assert_eq!(num(&s, "files_deleted"), 2, "{s}");
    assert!(!dst.join("MP4 Quartet").exists());
    assert_trees_equal(&src, &dst);
}

// --- changes ----------------------------------------------------------------------

#[test]
fn modified_file_is_resynced() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    let f = src.join("Café Tonal/Xiph Sessions/01 Vorbis Tone.ogg");
    let mut data = fs::read(&f).unwrap();
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 16] {
        *b = b.wrapping_add(1);
    }
    fs::write(&f, &data).unwrap();
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(num(&s, "files_changed"), 1, "{s}");
    assert!(num(&s, "bytes_transferred") > 0, "{s}");
    assert!(
        num(&s, "bytes_transferred") <= data.len() as u64,
        "transferred more than the file: {s}"
    );
    assert_trees_equal(&src, &dst);
}

#[test]
fn same_size_same_mtime_change_is_found_by_its_ctime() {
    // size and mtime say nothing changed; the ctime, which no user can set back, does.
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    let rel = "Lossless Ensemble/Waveforms/02 Brown Noise.flac";
    flip_byte_keep_mtime(&src.join(rel), 1000);
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(num(&s, "files_changed"), 1, "{s}");
    assert_trees_equal(&src, &dst);
    // --checksum reads every file again and finds nothing more.
    let s = sync_summary(&t, &src, &dst, &["--checksum"]);
    assert_eq!(num(&s, "files_changed"), 0, "{s}");
}

/// A tag editor that rewrites a tag in place (the new value has the same length and the
/// FLAC padding absorbs it), then `touch -r` giving the file its old mtime back, as Picard and
/// mp3tag can: same size, same mtime, and a plain sync (no --checksum) still catches it.
#[test]
fn in_place_retag_with_restored_mtime_is_synced_without_checksum() {
    let metaflac = require_tool("metaflac", "flac");
    let touch = require_tool("touch", "coreutils");
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    let f = src.join("Lossless Ensemble/Waveforms/01 Pure Sine.flac");
    let reference = t.path("mtime-reference");
    fs::write(&reference, b"").unwrap();
    run_ok(
        std::process::Command::new(&touch)
            .arg("-r")
            .arg(&f)
            .arg(&reference),
    );
    let size = fs::metadata(&f).unwrap().len();
    let before = fs::read(&f).unwrap();
    run_ok(
        std::process::Command::new(&metaflac)
            .arg("--remove-tag=TITLE")
            .arg("--set-tag=TITLE=Pure Sinf")
            .arg(&f),
    );
    run_ok(
        std::process::Command::new(&touch)
            .arg("-r")
            .arg(&reference)
            .arg(&f),
    );
    assert_eq!(
        fs::metadata(&f).unwrap().len(),
        size,
        "the retag kept the size"
    );
    assert_eq!(mtime(&f), mtime(&reference), "the mtime is restored");
    assert_ne!(fs::read(&f).unwrap(), before, "the tag changed");
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(num(&s, "files_changed"), 1, "{s}");
    assert_trees_equal(&src, &dst);
}

/// The damaged fixtures (truncated headers, sizes past the end, bogus CRCs…) sync byte-exactly,
/// and a second sync moves nothing.
#[test]
fn damaged_fixtures_sync_exactly() {
    let t = TestRepo::new();
    let src = t.path("src");
    copy_tree(&manifest_dir().join("fixtures/damaged"), &src);
    let dst = t.path("dst");
    let s = sync_summary(&t, &src, &dst, &[]);
    assert!(num(&s, "files") >= 60, "{s}");
    assert_trees_equal(&src, &dst);
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(num(&s, "files_changed"), 0, "{s}");
    assert_eq!(num(&s, "bytes_transferred"), 0, "{s}");
}

#[test]
fn chmod_only_change_transfers_nothing() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    let f = src.join("Aurora Tones/First Light/01 Dawn.mp3");
    let before = mtime(&f);
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    let g = src.join("Riff Raff/Chunks/01 Info Block.wav");
    fs::set_permissions(&g, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(mtime(&f), before);
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(num(&s, "bytes_transferred"), 0, "{s}");
    assert_eq!(num(&s, "chunks_transferred"), 0, "{s}");
    assert_trees_equal(&src, &dst);
}

#[test]
fn touch_only_change_transfers_nothing() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    let f = src.join("MP4 Quartet/Containers/01 Plain.m4a");
    set_mtime(
        &f,
        SystemTime::UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789),
    );
    let g = src.join("Aurora Tones/First Light/cover.jpg");
    set_mtime(&g, SystemTime::now());
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(num(&s, "bytes_transferred"), 0, "{s}");
    assert_eq!(num(&s, "chunks_transferred"), 0, "{s}");
    assert_trees_equal(&src, &dst);
}

#[test]
fn moved_files_transfer_nothing() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    // mv a whole album, and a single file into a new directory.
    fs::rename(
        src.join("Aurora Tones/Night Shift"),
        src.join("Riff Raff/Night Shift (moved)"),
    )
    .unwrap();
    fs::create_dir_all(src.join("Compilations/Best Of")).unwrap();
    fs::rename(
        src.join("Lossless Ensemble/Waveforms/01 Pure Sine.flac"),
        src.join("Compilations/Best Of/07 Sine.flac"),
    )
    .unwrap();
    let s = sync_summary(&t, &src, &dst, &["--delete"]);
    assert_eq!(num(&s, "bytes_transferred"), 0, "{s}");
    assert_eq!(num(&s, "chunks_transferred"), 0, "{s}");
    assert_eq!(num(&s, "files_deleted"), 3, "{s}");
    assert_trees_equal(&src, &dst);
}

#[test]
fn reorganised_genlib_library_transfers_nothing() {
    let t = TestRepo::new();
    let src = t.path("src");
    genlib_create(&src, 60, 7, 64 * 1024);
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    genlib_reorganise(&src, "genre");
    let s = sync_summary(&t, &src, &dst, &["--delete"]);
    assert_eq!(num(&s, "bytes_transferred"), 0, "{s}");
    assert_eq!(num(&s, "files_deleted"), 60, "{s}");
    assert_trees_equal(&src, &dst);
}

#[test]
fn retagged_genlib_library_transfers_little() {
    let t = TestRepo::new();
    let src = t.path("src");
    genlib_create(&src, 50, 11, 512 * 1024);
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    genlib_retag(&src, 0.2, 3);
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(num(&s, "files_changed"), 10, "{s}");
    assert!(num(&s, "bytes_transferred") > 0, "{s}");
    // Only the tag region changed: far less than the changed files' size.
    assert!(
        num(&s, "bytes_transferred") < 10 * 256 * 1024,
        "retag transferred too much: {s}"
    );
    assert_trees_equal(&src, &dst);
}

#[test]
fn dst_contains_only_src_tree() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    assert_eq!(list_tree(&src), list_tree(&dst));
    // Also after an incremental sync with changes.
    fs::write(src.join("Riff Raff/Chunks/notes.txt"), b"hello").unwrap();
    sync_summary(&t, &src, &dst, &["--delete"]);
    assert_eq!(list_tree(&src), list_tree(&dst));
    // And after a verify.
    t.cmd().arg("verify").arg(&dst).assert_exit(0);
    assert_eq!(list_tree(&src), list_tree(&dst));
}

// --- symlinks ---------------------------------------------------------------------

#[test]
fn symlinks_copied_as_symlinks() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    std::os::unix::fs::symlink(
        "First Light/01 Dawn.mp3",
        src.join("Aurora Tones/dawn-link.mp3"),
    )
    .unwrap();
    std::os::unix::fs::symlink("../Riff Raff", src.join("Aurora Tones/riff-dir-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target/x", src.join("dangling")).unwrap();
    let s = sync_summary(&t, &src, &dst, &[]);
    for l in [
        "Aurora Tones/dawn-link.mp3",
        "Aurora Tones/riff-dir-link",
        "dangling",
    ] {
        let m = fs::symlink_metadata(dst.join(l)).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(m.file_type().is_symlink(), "{l} is not a symlink in DST");
        assert_eq!(
            fs::read_link(dst.join(l)).unwrap(),
            fs::read_link(src.join(l)).unwrap()
        );
    }
    assert_trees_equal(&src, &dst);
    // The symlinked file is not counted as a separate regular file.
    assert_eq!(num(&s, "bytes"), tree_bytes(&src), "symlinks followed? {s}");
}

// --- input errors -------------------------------------------------------------------

#[test]
fn nonexistent_src_exits_2_naming_path() {
    let t = TestRepo::new();
    let src = t.path("no-such-source-dir");
    let dst = t.path("dst");
    let out = t.cmd().arg("sync").arg(&src).arg(&dst).assert_exit(2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-source-dir"),
        "stderr does not name the path: {err}"
    );
    assert!(!dst.exists(), "DST created despite bad SRC");
}

#[test]
fn nonexistent_scan_dir_exits_2() {
    let t = TestRepo::new();
    let dir = t.path("missing-scan-dir");
    let out = t.cmd().arg("scan").arg(&dir).assert_exit(2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing-scan-dir"));
}

#[test]
fn unknown_subcommand_exits_2() {
    let t = TestRepo::new();
    t.cmd().arg("frobnicate").assert_exit(2);
    t.cmd().arg("sync").assert_exit(2);
}

// --- verify -------------------------------------------------------------------------

#[test]
fn verify_clean_exits_0() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    t.cmd().arg("verify").arg(&dst).assert_exit(0);
    let out = t.cmd().json().arg("verify").arg(&dst).assert_exit(0);
    let lines = parse_json_lines(&out.stdout);
    let (summary, files) = lines.split_last().unwrap();
    assert!(files.is_empty(), "{files:?}");
    // Every file the sync wrote was recorded with its metadata: each is simply ok.
    assert_eq!(num(summary, "ok"), files_in(&dst).len() as u64, "{summary}");
    assert_eq!(num(summary, "damaged"), 0, "{summary}");
}

#[test]
fn verify_after_scan_exits_0() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let scan = t.cmd().arg("scan").arg(&src).summary();
    let verify = t.cmd().arg("verify").arg(&src).summary();
    assert_eq!(num(&verify, "files"), num(&scan, "files"), "{verify}");
    assert_eq!(num(&verify, "ok"), num(&scan, "files"), "{verify}");
    assert_eq!(num(&verify, "damaged"), 0, "{verify}");
}

/// A byte flipped and the mtime set back: the ctime moved, which only a write does, so the
/// file was edited, not damaged (damage behind unchanged metadata is in tests/verify.rs).
#[test]
fn verify_reports_a_rewrite_behind_a_restored_mtime_as_an_edit() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    let rel = "Aurora Tones/First Light/02 Zenith.mp3";
    let f = dst.join(rel);
    let len = fs::metadata(&f).unwrap().len();
    flip_byte_keep_mtime(&f, len / 2);
    assert_eq!(fs::metadata(&f).unwrap().len(), len);

    let out = t.cmd().arg("verify").arg(&dst).assert_exit(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("edited {rel}: audio changed")),
        "verify output does not name {rel} as edited: {text}"
    );
    assert!(!text.contains("DAMAGED"), "{text}");
    assert!(
        !text.contains("01 Dawn.mp3"),
        "verify names an intact file: {text}"
    );

    let out = t.cmd().json().arg("verify").arg(&dst).assert_exit(0);
    let lines = parse_json_lines(&out.stdout);
    let (summary, files) = lines.split_last().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["type"], "edited", "{files:?}");
    assert_eq!(files[0]["path"], rel, "{files:?}");
    assert_eq!(files[0]["audio"], "changed", "{files:?}");
    assert!(files[0]["reason"].is_string(), "{files:?}");
    assert_eq!(
        (num(summary, "edited"), num(summary, "damaged")),
        (1, 0),
        "{summary}"
    );
}

#[test]
fn verify_reports_a_missing_file() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    sync_summary(&t, &src, &dst, &[]);
    let rel = "MP4 Quartet/Containers/02 Covered.m4a";
    fs::remove_file(dst.join(rel)).unwrap();
    let out = t.cmd().json().arg("verify").arg(&dst).assert_exit(0);
    let lines = parse_json_lines(&out.stdout);
    let (summary, files) = lines.split_last().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["type"], "missing", "{files:?}");
    assert_eq!(files[0]["path"], rel, "{files:?}");
    assert_eq!(
        (num(summary, "missing"), num(summary, "damaged")),
        (1, 0),
        "{summary}"
    );
}

#[test]
fn verify_reports_a_rewrite_in_a_scanned_dir_as_an_edit() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    t.cmd().arg("scan").arg(&src).summary();
    let rel = "Café Tonal/Xiph Sessions/02 Opus Noise.opus";
    flip_byte_keep_mtime(&src.join(rel), 100);
    let out = t.cmd().arg("verify").arg(&src).assert_exit(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("edited {rel}: "))),
        "verify output does not name {rel} as edited: {text}"
    );
    assert!(!text.contains("DAMAGED"), "{text}");
}

// --- lock ---------------------------------------------------------------------------
// Two syncs into one destination: tests/locks.rs.

// --- larger libraries -------------------------------------------------------------

#[test]
fn genlib_1000_small_files() {
    let t = TestRepo::new();
    let src = t.path("src");
    genlib_create(&src, 1000, 1, 16384);
    let dst = t.path("dst");
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(num(&s, "files"), 1000, "{s}");
    assert_eq!(num(&s, "files_changed"), 1000, "{s}");
    assert_eq!(num(&s, "bytes"), tree_bytes(&src), "{s}");
    assert_trees_equal(&src, &dst);
    let s = sync_summary(&t, &src, &dst, &[]);
    assert_eq!(num(&s, "files_changed"), 0, "{s}");
    assert_eq!(num(&s, "bytes_transferred"), 0, "{s}");
}

#[test]
fn full_disk_fails_files_cleanly_and_loses_nothing() {
    let t = TestRepo::new();
    let src = t.path("src");
    genlib_create(&src, 12, 5, 256 * 1024);
    let disk = Tmpfs::mount(&t.path("small"), "1M");
    let dst = disk.0.join("dst");
    let source_before: Vec<(std::path::PathBuf, Vec<u8>)> = files_in(&src)
        .into_iter()
        .map(|(rel, path)| (rel, fs::read(path).unwrap()))
        .collect();
    let out = t.cmd().arg("sync").arg(&src).arg(&dst).assert_exit(3);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no space left on device"), "{err}");
    // No temporary file is left, and every file that made it is whole.
    let mut written = 0;
    for (rel, path) in files_in(&dst) {
        let name = rel.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".musicfs-"),
            "temporary file left: {rel:?}"
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            fs::read(src.join(&rel)).unwrap(),
            "{rel:?} is torn"
        );
        written += 1;
    }
    assert!(written < 12, "the disk was not full");
    // The source is untouched and a sync to a roomy destination completes.
    let source_after: Vec<(std::path::PathBuf, Vec<u8>)> = files_in(&src)
        .into_iter()
        .map(|(rel, path)| (rel, fs::read(path).unwrap()))
        .collect();
    assert!(source_before == source_after, "the source changed");
    let roomy = t.path("roomy");
    t.cmd().arg("sync").arg(&src).arg(&roomy).assert_exit(0);
    assert_trees_equal(&src, &roomy);
}

#[test]
fn a_clean_scan_and_sync_print_nothing_on_stderr() {
    // genlib's MP3-like files make the tag reader fall back to estimating durations; that is
    // not the user's business.
    let t = TestRepo::new();
    let src = t.path("src");
    genlib_create(&src, 20, 3, 64 * 1024);
    for args in [vec!["scan"], vec!["sync"]] {
        let mut cmd = t.cmd();
        cmd.args(&args).arg(&src);
        if args[0] == "sync" {
            cmd.arg(t.path("dst"));
        }
        let out = cmd.assert_exit(0);
        assert!(
            out.stderr.is_empty(),
            "{args:?} wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn ssh_origin_forms_are_read_as_ssh_and_local_colons_work() {
    let t = TestRepo::new();
    // scan takes SSH origins too (read over SFTP): a host that does not resolve is
    // unreachable, named.
    let out = t
        .cmd()
        .args(["scan", "--retries", "0", "no-such-host.invalid:/music"])
        .assert_exit(5);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-host.invalid"), "{err}");
    // An SSH host that does not resolve: unreachable, named, nothing created.
    let out = t
        .cmd()
        .args(["sync", "--retries", "0", "no-such-host.invalid:/music"])
        .arg(t.path("dst"))
        .assert_exit(5);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-host.invalid"), "{err}");
    assert!(!t.path("dst").exists());
    // A local directory whose name has a colon: a path with a `/` before the colon is local.
    let src = t.fixtures("src:colon");
    let dst = t.path("dst");
    t.cmd().arg("sync").arg(&src).arg(&dst).assert_exit(0);
    assert_trees_equal(&src, &dst);
}

/// Random bytes, reproducible from `seed`.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = util::XorShift::new(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

#[test]
fn a_chunk_written_earlier_in_the_run_is_not_fetched_again() {
    // `a` is rewritten with a new head; `b` gets the same new head. Building `a` reads its
    // unchanged tail from the old `a`; building `b` must take the head from the new `a`, not
    // from the source again.
    let t = TestRepo::new();
    let src = t.mkdir("src");
    let dst = t.path("dst");
    let (head, tail_a, tail_b) = (noise(1, 400_000), noise(2, 400_000), noise(3, 400_000));
    fs::write(src.join("a"), [noise(4, 400_000), tail_a.clone()].concat()).unwrap();
    fs::write(src.join("b"), noise(5, 800_000)).unwrap();
    sync_summary(&t, &src, &dst, &[]);
    fs::write(src.join("a"), [head.clone(), tail_a].concat()).unwrap();
    fs::write(src.join("b"), [head, tail_b].concat()).unwrap();
    let planned = sync_summary(&t, &src, &dst, &["--dry-run"]);
    let done = sync_summary(&t, &src, &dst, &[]);
    assert_trees_equal(&src, &dst);
    assert_eq!(
        done["bytes_transferred"], planned["bytes_transferred"],
        "planned {planned}, done {done}"
    );
    assert!(util::num(&done, "bytes_transferred") < 1_300_000);
}

#[test]
fn bwlimit_reads_rsyncs_rates_and_refuses_others() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    for bad in ["fast", "10X", "-5"] {
        let out = t
            .cmd()
            .arg("sync")
            .arg(format!("--bwlimit={bad}"))
            .arg(&src)
            .arg(&dst)
            .assert_exit(2);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--bwlimit") && stderr.contains(bad),
            "{bad}: {stderr}"
        );
        assert!(!dst.exists(), "{bad}: the destination was made");
    }
    // A limited sync is as exact as any other (its rate is measured in benchmarks.md).
    for rate in ["50M", "0"] {
        let d = t.path(&format!("dst-{rate}"));
        t.cmd()
            .arg("sync")
            .args(["--bwlimit", rate])
            .arg(&src)
            .arg(&d)
            .quiet()
            .assert_exit(0);
        assert_trees_equal(&src, &d);
    }
}
