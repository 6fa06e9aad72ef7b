//! Names and kinds of entries a real library holds, synced exactly: Unicode names in both
//! normal forms side by side, names that are not UTF-8, case-only renames, entries that change
//! kind between syncs, empty files and directories, hard links, symlinks that point outside
//! the tree, and the overlapping SRC/DST that `--delete` would turn into a disaster.

mod util;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use util::{assert_trees_equal, list_tree, TestRepo};

fn sync(t: &TestRepo, src: &Path, dst: &Path) {
    t.cmd()
        .args(["sync", "--delete"])
        .arg(src)
        .arg(dst)
        .assert_exit(0);
    assert_trees_equal(src, dst);
}

#[test]
fn nfc_and_nfd_names_side_by_side() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    // "Café" composed (U+00E9) and decomposed (e + U+0301): two names, two files on ext4.
    let nfc = "Caf\u{e9}.flac";
    let nfd = "Cafe\u{301}.flac";
    fs::write(src.join(nfc), b"composed").unwrap();
    fs::write(src.join(nfd), b"decomposed").unwrap();
    let dst = t.path("dst");
    sync(&t, &src, &dst);
    assert_eq!(fs::read(dst.join(nfc)).unwrap(), b"composed");
    assert_eq!(fs::read(dst.join(nfd)).unwrap(), b"decomposed");
    assert_eq!(list_tree(&dst).len(), 2);
}

#[test]
fn names_that_are_not_utf8() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    // Latin-1 names, as old rips and Windows shares leave them.
    let dir = src.join(OsStr::from_bytes(b"Bj\xf6rk"));
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join(OsStr::from_bytes(b"J\xf3ga.mp3")), b"song").unwrap();
    let dst = t.path("dst");
    sync(&t, &src, &dst);
    assert_eq!(
        fs::read(dst.join(OsStr::from_bytes(b"Bj\xf6rk/J\xf3ga.mp3"))).unwrap(),
        b"song"
    );
}

#[test]
fn case_only_rename() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    fs::write(src.join("Track.mp3"), vec![7u8; 100_000]).unwrap();
    let dst = t.path("dst");
    sync(&t, &src, &dst);
    fs::rename(src.join("Track.mp3"), src.join("track.mp3")).unwrap();
    let summary = t
        .cmd()
        .args(["sync", "--delete"])
        .arg(&src)
        .arg(&dst)
        .summary();
    assert_trees_equal(&src, &dst);
    assert_eq!(
        util::num(&summary, "bytes_transferred"),
        0,
        "a rename moves nothing"
    );
    assert_eq!(list_tree(&dst), vec![Path::new("track.mp3").to_path_buf()]);
}

#[test]
fn entries_that_change_kind_between_syncs() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    let dst = t.path("dst");
    // Round 1: a file, a directory, a symlink.
    fs::write(src.join("a"), b"file a").unwrap();
    fs::create_dir(src.join("b")).unwrap();
    fs::write(src.join("b/inside"), b"in b").unwrap();
    std::os::unix::fs::symlink("a", src.join("c")).unwrap();
    sync(&t, &src, &dst);
    // Round 2: file -> directory, directory -> symlink, symlink -> file.
    fs::remove_file(src.join("a")).unwrap();
    fs::create_dir(src.join("a")).unwrap();
    fs::write(src.join("a/now a dir"), b"x").unwrap();
    fs::remove_dir_all(src.join("b")).unwrap();
    std::os::unix::fs::symlink("a", src.join("b")).unwrap();
    fs::remove_file(src.join("c")).unwrap();
    fs::write(src.join("c"), b"file c").unwrap();
    sync(&t, &src, &dst);
    // Round 3: directory -> file, symlink -> directory, file -> symlink.
    fs::remove_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a"), b"file again").unwrap();
    fs::remove_file(src.join("b")).unwrap();
    fs::create_dir(src.join("b")).unwrap();
    fs::remove_file(src.join("c")).unwrap();
    std::os::unix::fs::symlink("b", src.join("c")).unwrap();
    sync(&t, &src, &dst);
}

#[test]
fn empty_files_and_empty_directories() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    fs::write(src.join("empty.flac"), b"").unwrap();
    fs::create_dir_all(src.join("empty dir/and below")).unwrap();
    fs::create_dir(src.join("album")).unwrap();
    fs::write(src.join("album/.nomedia"), b"").unwrap();
    let dst = t.path("dst");
    sync(&t, &src, &dst);
    assert!(dst.join("empty dir/and below").is_dir());
    assert_eq!(fs::metadata(dst.join("empty.flac")).unwrap().len(), 0);
    // And an empty directory removed, a file emptied.
    fs::remove_dir(src.join("empty dir/and below")).unwrap();
    fs::write(src.join("album/.nomedia"), b"now with bytes").unwrap();
    fs::write(src.join("empty.flac"), b"").unwrap();
    sync(&t, &src, &dst);
}

/// Hard links are not preserved (as `rsync -a` without `-H`): each name becomes a file of its
/// own with the same content, whose bytes cross once.
#[test]
fn hard_links_become_separate_files_read_once() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    let bytes: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(src.join("one.flac"), &bytes).unwrap();
    fs::hard_link(src.join("one.flac"), src.join("two.flac")).unwrap();
    let dst = t.path("dst");
    let summary = t
        .cmd()
        .args(["sync", "--delete"])
        .arg(&src)
        .arg(&dst)
        .summary();
    assert_trees_equal(&src, &dst);
    assert_eq!(fs::metadata(dst.join("one.flac")).unwrap().nlink(), 1);
    assert_eq!(fs::metadata(dst.join("two.flac")).unwrap().nlink(), 1);
    assert!(
        util::num(&summary, "bytes_transferred") <= bytes.len() as u64,
        "the linked content crosses once: {summary}"
    );
}

#[test]
fn a_symlink_pointing_outside_is_copied_as_a_link_never_followed() {
    let t = TestRepo::new();
    let outside = t.mkdir("outside");
    fs::write(outside.join("secret.txt"), b"not part of the library").unwrap();
    let src = t.mkdir("src");
    std::os::unix::fs::symlink(&outside, src.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink("../../etc/passwd", src.join("up")).unwrap();
    let dst = t.path("dst");
    sync(&t, &src, &dst);
    assert!(fs::symlink_metadata(dst.join("elsewhere"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(dst.join("elsewhere")).unwrap(), outside);
    assert_eq!(
        fs::read_link(dst.join("up")).unwrap(),
        Path::new("../../etc/passwd")
    );
    assert_eq!(list_tree(&dst).len(), 2, "nothing was followed");
}

#[test]
fn overlapping_source_and_destination_are_refused() {
    let t = TestRepo::new();
    let outer = t.mkdir("outer");
    fs::write(outer.join("keep.flac"), b"keep").unwrap();
    let inner = t.mkdir("outer/inner");
    fs::write(inner.join("also.flac"), b"also").unwrap();
    let before = list_tree(&outer);
    for (src, dst) in [(&outer, &inner), (&inner, &outer)] {
        let out = t
            .cmd()
            .args(["sync", "--delete"])
            .arg(src)
            .arg(dst)
            .assert_exit(2);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("overlap"), "{stderr}");
        assert_eq!(list_tree(&outer), before, "nothing changed");
    }
    // Spelled through a symlink, the overlap is still seen.
    let alias = t.path("alias");
    std::os::unix::fs::symlink(&outer, &alias).unwrap();
    t.cmd()
        .args(["sync", "--delete"])
        .arg(&inner)
        .arg(&alias)
        .assert_exit(2);
    assert_eq!(list_tree(&outer), before, "nothing changed");
}
