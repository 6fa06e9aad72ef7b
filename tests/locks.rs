//! One destination, one sync, whichever repository each uses: the destination directory
//! itself is locked (a `flock` on its descriptor, no file), besides the repository's lock.

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use util::{assert_trees_equal, genlib_create, holds_a_file, wait_timeout, TestRepo};

/// Starts `first`, waits until it is writing into `dst` (it holds its locks from its start),
/// then runs `second` and returns its exit code and stderr, and the first one's exit code.
fn overlap(
    first: &util::Musicfs,
    second: &util::Musicfs,
    dst: &Path,
) -> Option<(Option<i32>, String, Option<i32>)> {
    let mut running = first.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    let writing = || holds_a_file(dst);
    while !writing() {
        if running.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = running.kill();
            let _ = running.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if running.try_wait().unwrap().is_some() {
        return None;
    }
    let out = second.output();
    let first_status =
        wait_timeout(&mut running, Duration::from_secs(300)).expect("first sync hung");
    Some((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        first_status.code(),
    ))
}

fn sync_cmd(t: &TestRepo, repo_owner: &TestRepo, src: &Path, dst: &Path) -> util::Musicfs {
    let mut cmd = util::Musicfs::new(repo_owner.repo(), t.root());
    cmd.arg("sync").arg(src).arg(dst);
    cmd
}

/// A sync slowed to 20 MB/s, so that it holds its locks for seconds (200 MB here: about 10 s),
/// longer than a second sync tries for them (`flock::GRACE`).
fn slow_sync_cmd(t: &TestRepo, repo_owner: &TestRepo, src: &Path, dst: &Path) -> util::Musicfs {
    let mut cmd = util::Musicfs::new(repo_owner.repo(), t.root());
    cmd.args(["sync", "--bwlimit", "20M"]).arg(src).arg(dst);
    cmd
}

fn check_exclusion(same_repository: bool) {
    let t = TestRepo::new();
    let other = TestRepo::new();
    let src = t.path("src");
    genlib_create(&src, 200, 7, 1 << 20);
    for attempt in 0..5 {
        let dst = t.path(&format!("dst{attempt}"));
        let first = slow_sync_cmd(&t, &t, &src, &dst);
        let second_repo = if same_repository { &t } else { &other };
        let second = sync_cmd(&t, second_repo, &src, &dst);
        let Some((code, stderr, first_code)) = overlap(&first, &second, &dst) else {
            eprintln!("attempt {attempt}: the first sync ended before the second started");
            continue;
        };
        assert_eq!(code, Some(4), "the second sync is refused: {stderr}");
        assert!(
            stderr.contains("another musicfs sync is running on this destination"),
            "{stderr}"
        );
        assert_eq!(first_code, Some(0), "the first sync finishes");
        assert_trees_equal(&src, &dst);
        return;
    }
    panic!("could not overlap two syncs in 5 attempts");
}

#[test]
fn two_syncs_with_one_repository_exclude_each_other() {
    check_exclusion(true);
}

#[test]
fn two_syncs_with_different_repositories_exclude_each_other() {
    check_exclusion(false);
}
