//! A library first copied by `cp -a` (or rsync), then handed to musicfs with a new repository:
//! both sides must be read, by two scans running at once that share one thread pool and one
//! repository writer. Repeated many times, because the interleavings that could deadlock
//! them come and go with the scheduler; each run has a deadline, and a run that passes it is
//! a hang, reported as one.

mod util;

use std::path::Path;
use std::time::Duration;

use util::{assert_trees_equal, copy_tree, wait_timeout, TestRepo, XorShift};

/// Runs of each case. Before the scans stopped holding the writer while waiting on their
/// readers, about one run in three hung on a 2-core machine.
const RUNS: usize = 50;
/// Far beyond what one run takes (under two seconds here): passing it means a hang.
const DEADLINE: Duration = Duration::from_secs(120);

/// 300 files of 300 KB in 10 folders: more files than the scans' channels hold.
fn library(root: &Path) {
    let mut rng = XorShift::new(11);
    for i in 0..300 {
        let dir = root.join(format!("album{:02}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = vec![0u8; 300 * 1024];
        for chunk in bytes.chunks_mut(8) {
            let n = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&n[..chunk.len()]);
        }
        std::fs::write(dir.join(format!("track{i:03}.flac")), bytes).unwrap();
    }
}

#[test]
fn sync_into_an_unknown_copy_never_hangs() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    library(&src);
    for run in 0..RUNS {
        let scratch = TestRepo::new();
        let dst = scratch.path("dst");
        copy_tree(&src, &dst);
        let mut child = scratch
            .cmd()
            .quiet()
            .arg("sync")
            .arg("--delete")
            .arg(&src)
            .arg(&dst)
            .spawn();
        let status = wait_timeout(&mut child, DEADLINE).unwrap_or_else(|| {
            panic!("run {run}: `musicfs sync --delete SRC DST` into a cp -a copy hung (killed after {DEADLINE:?})")
        });
        assert!(status.success(), "run {run}: sync exited with {status}");
        assert_trees_equal(&src, &dst);
    }
}

#[test]
fn diff_of_two_unknown_copies_never_hangs() {
    let t = TestRepo::new();
    let a = t.mkdir("a");
    library(&a);
    let b = t.path("b");
    copy_tree(&a, &b);
    for run in 0..RUNS {
        let scratch = TestRepo::new();
        let mut child = scratch.cmd().quiet().arg("diff").arg(&a).arg(&b).spawn();
        let status = wait_timeout(&mut child, DEADLINE).unwrap_or_else(|| {
            panic!("run {run}: `musicfs diff A B` of two unknown copies hung (killed after {DEADLINE:?})")
        });
        assert_eq!(
            status.code(),
            Some(0),
            "run {run}: two identical copies differ?"
        );
    }
}

/// A `scan` of SRC started while a `sync SRC DST` scans it too, with the same repository: two
/// processes whose scans share the database's one writer. Every round changes every file, so
/// both must read them all.
#[test]
fn scan_during_sync_never_hangs() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    library(&src);
    let dst = t.path("dst");
    let files = util::files_in(&src);
    for run in 0..RUNS / 5 {
        for path in files.values() {
            let mut bytes = std::fs::read(path).unwrap();
            let at = run % bytes.len();
            bytes[at] ^= 0x5a;
            std::fs::write(path, bytes).unwrap();
        }
        let mut sync = t
            .cmd()
            .quiet()
            .args(["sync", "--delete"])
            .arg(&src)
            .arg(&dst)
            .spawn();
        let mut scan = t.cmd().quiet().arg("scan").arg(&src).spawn();
        for (what, child) in [("sync", &mut sync), ("scan", &mut scan)] {
            let status = wait_timeout(child, DEADLINE).unwrap_or_else(|| {
                panic!("run {run}: {what} hung beside the other (killed after {DEADLINE:?})")
            });
            assert!(status.success(), "run {run}: {what} exited with {status}");
        }
        assert_trees_equal(&src, &dst);
    }
}
