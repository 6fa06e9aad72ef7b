//! File systems mounted inside an origin: a `musicfs mount` is never walked into, listed,
//! written or deleted, at the source or the destination; any other mount is walked unless
//! `-x`/`--one-file-system` is given. Mounts for real: `musicfs mount` needs `fusermount3`
//! (Debian `fuse3`), the tmpfs needs root.

mod util;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::mount::is_mounted;
use util::{
    assert_trees_equal, bin, copy_tree, files_in, list_tree, num, summary_of, TestRepo, Tmpfs,
};

/// A running `musicfs mount --foreground` of a repository of its own (which has a scanned
/// library, so the mount has plenty to read), unmounted and reaped on drop.
struct Mounted {
    child: Option<Child>,
    mountpoint: PathBuf,
    _repo: TestRepo,
}

impl Mounted {
    fn start(mountpoint: &Path) -> Mounted {
        util::require_tool("fusermount3", "fuse3");
        let repo = TestRepo::new();
        let library = repo.fixtures("mounted-library");
        repo.cmd().arg("scan").arg(&library).assert_exit(0);
        let child = Command::new(bin())
            .arg("--repo")
            .arg(repo.repo())
            .arg("mount")
            .arg("--foreground")
            .arg(mountpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start musicfs mount");
        let mut m = Mounted {
            child: Some(child),
            mountpoint: mountpoint.to_path_buf(),
            _repo: repo,
        };
        let start = Instant::now();
        loop {
            if fs::read_dir(mountpoint).is_ok_and(|mut d| d.next().is_some()) {
                return m;
            }
            if let Some(status) = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let mut err = String::new();
                if let Some(mut e) = m.child.as_mut().and_then(|c| c.stderr.take()) {
                    let _ = e.read_to_string(&mut err);
                }
                m.child = None;
                panic!("musicfs mount exited ({status}): {err}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "mount did not appear"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the mount is still there and lists its origins.
    fn serves(&self) -> bool {
        is_mounted(&self.mountpoint)
            && fs::read_dir(&self.mountpoint).is_ok_and(|mut d| d.next().is_some())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mountpoint)
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn scan_leaves_a_musicfs_mount_inside_the_library_out() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let files = files_in(&lib).len() as u64;
    let snapshots = lib.join(".snapshots");
    fs::create_dir(&snapshots).expect("mount point");
    let mounted = Mounted::start(&snapshots);

    let out = t.cmd().json().arg("scan").arg(&lib).assert_exit(0);
    let summary = summary_of(&out);
    assert_eq!(num(&summary, "files"), files, "{summary}");
    assert_eq!(num(&summary, "problems"), 0, "{summary}");
    assert!(mounted.serves(), "the mount is untouched");
}

#[test]
fn sync_copies_a_library_holding_a_musicfs_mount_without_the_mount() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let expected = list_tree(&lib);
    let snapshots = lib.join(".snapshots");
    fs::create_dir(&snapshots).expect("mount point");
    let mounted = Mounted::start(&snapshots);
    let copy = t.path("copy");

    let out = t
        .cmd()
        .json()
        .args(["sync", "--delete"])
        .arg(&lib)
        .arg(&copy)
        .assert_exit(0);
    let summary = summary_of(&out);
    assert_eq!(num(&summary, "problems"), 0, "{summary}");
    assert_eq!(
        list_tree(&copy),
        expected,
        "an exact copy, without the mount"
    );
    assert!(mounted.serves());
}

#[test]
fn sync_delete_neither_enters_nor_deletes_a_musicfs_mount_at_the_destination() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let dst = t.path("dst");
    copy_tree(&lib, &dst);
    fs::write(dst.join("stray.txt"), b"not in the library").expect("stray file");
    let snapshots = dst.join(".snapshots");
    fs::create_dir(&snapshots).expect("mount point");
    let mounted = Mounted::start(&snapshots);

    let out = t
        .cmd()
        .json()
        .args(["sync", "--delete"])
        .arg(&lib)
        .arg(&dst)
        .assert_exit(0);
    let summary = summary_of(&out);
    assert_eq!(num(&summary, "problems"), 0, "{summary}");
    assert!(!dst.join("stray.txt").exists(), "other deletions happen");
    assert!(mounted.serves(), "the mount at DST is left alone");
    drop(mounted);
    fs::remove_dir(&snapshots).expect("the mount point, empty once unmounted");
    assert_trees_equal(&lib, &dst);
}

#[test]
fn one_file_system_lists_another_mount_as_an_empty_directory() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let files = files_in(&lib).len() as u64;
    let ram = lib.join("ram");
    let _tmpfs = Tmpfs::mount(&ram, "4m");
    fs::write(ram.join("elsewhere.txt"), b"on another file system").expect("tmpfs file");

    let out = t.cmd().json().args(["scan", "-x"]).arg(&lib).assert_exit(0);
    assert_eq!(num(&summary_of(&out), "files"), files, "-x skips the tmpfs");
    let out = t.cmd().json().arg("scan").arg(&lib).assert_exit(0);
    assert_eq!(
        num(&summary_of(&out), "files"),
        files + 1,
        "without -x the tmpfs is read"
    );

    let copy = t.path("copy");
    t.cmd()
        .args(["sync", "--one-file-system", "--delete"])
        .arg(&lib)
        .arg(&copy)
        .assert_exit(0);
    assert!(copy.join("ram").is_dir(), "the mount point is copied");
    assert_eq!(fs::read_dir(copy.join("ram")).expect("list").count(), 0);
}

#[test]
fn one_file_system_deletes_nothing_inside_another_mount_at_the_destination() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let dst = t.path("dst");
    copy_tree(&lib, &dst);
    let ram = dst.join("ram");
    let _tmpfs = Tmpfs::mount(&ram, "4m");
    fs::write(ram.join("keep.txt"), b"on another file system").expect("tmpfs file");

    // The mount point itself cannot be removed: the deletion fails and the sync is partial,
    // as rsync's is, but nothing on the other file system is touched.
    t.cmd()
        .args(["sync", "-x", "--delete"])
        .arg(&lib)
        .arg(&dst)
        .assert_exit(3);
    assert_eq!(
        fs::read(ram.join("keep.txt")).expect("still there"),
        b"on another file system"
    );
}

#[test]
fn diff_one_file_system_leaves_another_mount_out_of_its_directory_scan() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let ram = lib.join("ram");
    let _tmpfs = Tmpfs::mount(&ram, "4m");
    fs::write(ram.join("elsewhere.txt"), b"on another file system").expect("tmpfs file");
    t.cmd().arg("scan").arg(&lib).assert_exit(0);

    // Compared with the scan that read the tmpfs, a scan with -x no longer has its file.
    let out = t
        .cmd()
        .args(["diff", "--name-only", "-x"])
        .arg(&lib)
        .assert_exit(1);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ram/elsewhere.txt\n");
}
