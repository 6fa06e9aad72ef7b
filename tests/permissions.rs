//! File modes as a normal user meets them. Every command here runs as `nobody` (through
//! `setpriv` when the tests run as root, where modes bind nobody), on trees `nobody` owns.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use util::{assert_trees_equal, list_tree, TestRepo};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// `musicfs sync --delete EXTRA SRC DST` as `nobody`, asserting its exit code.
fn sync(t: &TestRepo, src: &Path, dst: &Path, extra: &[&str], code: i32) -> std::process::Output {
    t.cmd_unprivileged()
        .args(["sync", "--delete"])
        .args(extra)
        .arg(src)
        .arg(dst)
        .assert_exit(code)
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A directory made read-only at the source (archived albums often are) is copied with its
/// mode; later syncs still change what is inside it, and end with the source's modes.
#[test]
fn read_only_directories_are_synced_again_and_again() {
    let t = TestRepo::unprivileged();
    t.sh_unprivileged(
        "mkdir -p src/archive/disc1 src/open
         echo one > src/archive/a.flac; echo two > src/archive/disc1/b.flac; echo x > src/open/c
         chmod 444 src/archive/a.flac; chmod 555 src/archive/disc1 src/archive",
    );
    let (src, dst) = (t.path("src"), t.path("dst"));
    sync(&t, &src, &dst, &[], 0);
    assert_trees_equal(&src, &dst);
    assert_eq!(mode(&dst.join("archive")), 0o555);

    // New, changed and removed files inside the read-only directories.
    t.sh_unprivileged(
        "chmod 755 src/archive src/archive/disc1
         echo three > src/archive/new.flac; rm src/archive/disc1/b.flac
         echo retagged > src/archive/disc1/c.flac; chmod 644 src/archive/a.flac
         echo edited > src/archive/a.flac; chmod 444 src/archive/a.flac
         chmod 555 src/archive/disc1 src/archive",
    );
    sync(&t, &src, &dst, &[], 0);
    assert_trees_equal(&src, &dst);

    // The whole read-only tree removed at the source.
    t.sh_unprivileged("chmod -R u+w src/archive && rm -r src/archive");
    sync(&t, &src, &dst, &[], 0);
    assert_trees_equal(&src, &dst);
}

/// A source directory that cannot be read: the sync is partial, names it, leaves its copy at
/// the destination as it was and deletes nothing; readable again, the next sync is exact.
#[test]
fn unreadable_source_directory_is_left_alone_then_synced() {
    let t = TestRepo::unprivileged();
    t.sh_unprivileged("mkdir -p src/a src/b; echo 1 > src/a/x; echo 2 > src/a/y; echo 3 > src/b/z");
    let (src, dst) = (t.path("src"), t.path("dst"));
    sync(&t, &src, &dst, &[], 0);
    let before = list_tree(&dst);

    t.sh_unprivileged("rm src/b/z; chmod 000 src/a");
    let out = sync(&t, &src, &dst, &[], 3);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains(&format!(
            "SRC {}: permission denied",
            src.join("a").display()
        )),
        "the unreadable directory is named: {stderr}"
    );
    assert!(stderr.contains("deletions skipped"), "{stderr}");
    assert_eq!(
        list_tree(&dst),
        before,
        "nothing deleted at the destination"
    );
    assert_eq!(mode(&dst.join("a")), 0o755, "the copy keeps its mode");
    assert_eq!(std::fs::read(dst.join("a/x")).unwrap(), b"1\n");

    t.sh_unprivileged("chmod 755 src/a");
    sync(&t, &src, &dst, &[], 0);
    assert_trees_equal(&src, &dst);
}

/// A source file that cannot be read: partial, named, its copy kept; then exact.
#[test]
fn unreadable_source_file_is_left_alone_then_synced() {
    let t = TestRepo::unprivileged();
    t.sh_unprivileged("mkdir src; echo old > src/track.flac; echo keep > src/other.flac");
    let (src, dst) = (t.path("src"), t.path("dst"));
    sync(&t, &src, &dst, &[], 0);

    t.sh_unprivileged("echo new > src/track.flac; chmod 000 src/track.flac");
    let out = sync(&t, &src, &dst, &[], 3);
    assert!(
        stderr_of(&out).contains("track.flac"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(std::fs::read(dst.join("track.flac")).unwrap(), b"old\n");

    t.sh_unprivileged("chmod 644 src/track.flac");
    sync(&t, &src, &dst, &[], 0);
    assert_trees_equal(&src, &dst);
}

/// A source whose root cannot be listed (mode 0000, or a mount gone from under it) never
/// empties the destination, nor gives it the source's mode.
#[test]
fn unreadable_source_root_deletes_nothing() {
    let t = TestRepo::unprivileged();
    t.sh_unprivileged("mkdir -p src/a; echo 1 > src/a/x; echo 2 > src/y; echo 3 > src/z");
    let (src, dst) = (t.path("src"), t.path("dst"));
    sync(&t, &src, &dst, &[], 0);
    let before = list_tree(&dst);

    t.sh_unprivileged("chmod 000 src");
    let out = sync(&t, &src, &dst, &[], 3);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains(&format!("SRC {}: permission denied", src.display())),
        "the source is named: {stderr}"
    );
    assert_eq!(list_tree(&dst), before, "nothing deleted");
    assert_eq!(mode(&dst), 0o755);

    t.sh_unprivileged("chmod 755 src");
    sync(&t, &src, &dst, &[], 0);
    assert_trees_equal(&src, &dst);
}

/// A destination copy of a directory its owner cannot read (left by `cp -a` of a 0000
/// directory, or an older tool) does not block the sync.
#[test]
fn unreadable_destination_directory_is_synced() {
    let t = TestRepo::unprivileged();
    t.sh_unprivileged(
        "mkdir -p src/a dst/a; echo 1 > src/a/x; echo 2 > src/a/y
         echo stale > dst/a/x; echo gone > dst/a/old; chmod 000 dst/a",
    );
    let (src, dst) = (t.path("src"), t.path("dst"));
    sync(&t, &src, &dst, &[], 0);
    assert_trees_equal(&src, &dst);
}

/// `--max-delete N` deletes nothing when a sync would delete more than N files.
#[test]
fn max_delete_guards_the_mirror() {
    let t = TestRepo::unprivileged();
    t.sh_unprivileged("mkdir -p src/a; for i in 1 2 3 4; do echo $i > src/a/$i; done");
    let (src, dst) = (t.path("src"), t.path("dst"));
    sync(&t, &src, &dst, &[], 0);
    t.sh_unprivileged("rm src/a/1 src/a/2 src/a/3; echo 5 > src/a/5");
    let out = sync(&t, &src, &dst, &["--max-delete", "2"], 3);
    assert!(
        stderr_of(&out).contains("more than --max-delete 2"),
        "{}",
        stderr_of(&out)
    );
    for i in 1..=5 {
        assert!(dst.join(format!("a/{i}")).exists(), "a/{i} is there");
    }
    sync(&t, &src, &dst, &["--max-delete", "3"], 0);
    assert_trees_equal(&src, &dst);
}
