//! Crash consistency: SIGKILL `musicfs sync` at random moments and check that
//! no file in DST is ever torn, and that a re-run converges to an exact copy.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use util::*;

/// Syncs that must be killed before they finish.
const KILLED: u64 = 20;
/// Give up after this many trials.
const MAX_TRIALS: u64 = 80;
const FILES: usize = 200;
const MEAN_SIZE: u64 = 256 * 1024;
const SEED: u64 = 20240601;

/// relative path → blake3 hash of every regular file under `root`.
fn hashes(root: &Path) -> BTreeMap<PathBuf, blake3::Hash> {
    files_in(root)
        .into_iter()
        .map(|(rel, abs)| {
            let h = blake3::hash(&fs::read(&abs).unwrap());
            (rel, h)
        })
        .collect()
}

/// After a kill: every regular file in DST that SRC has under the same name
/// must be byte-identical either to SRC's current version or to the version
/// DST held before this sync (`before`, not yet overwritten). Files SRC no
/// longer has (pending deletion) must be intact copies of their old version.
/// Anything else (a name neither tree ever had) can only be a temp file,
/// which the completing re-run must remove.
fn check_not_torn(
    trial: u64,
    dst: &Path,
    src_now: &BTreeMap<PathBuf, blake3::Hash>,
    before: &BTreeMap<PathBuf, blake3::Hash>,
) -> usize {
    let mut unknown = 0;
    for (rel, h) in hashes(dst) {
        let new = src_now.get(&rel);
        let old = before.get(&rel);
        if new.is_none() && old.is_none() {
            unknown += 1;
            continue;
        }
        assert!(
            Some(&h) == new || Some(&h) == old,
            "trial {trial}: {} in DST is torn: matches neither SRC's version nor its previous one",
            rel.display()
        );
    }
    unknown
}

#[test]
fn sigkill_during_sync_never_tears_files() {
    let t = TestRepo::new();
    let src = t.path("src");
    genlib_create(&src, FILES, SEED, MEAN_SIZE);
    let mut dst = t.path("dst-0");
    let mut layout_genre = false;
    let mut killed_midway = 0;
    // Upper bound of the random delay before the kill, per kind of trial; shrunk whenever a
    // sync of that kind finished first, so that kills land anywhere in the run.
    let mut upper_ms = [400u64; 3];
    let mut trial = 0;

    while killed_midway < KILLED && trial < MAX_TRIALS {
        trial += 1;
        let kind = (trial % 3) as usize;
        let mut rng = XorShift::new(trial);
        // What DST holds before this trial's sync (it is complete and equal to
        // SRC after the previous trial, or empty when fresh).
        let fresh = kind == 0;
        if fresh {
            dst = t.path(&format!("dst-{trial}"));
        }
        let before = if dst.exists() {
            hashes(&dst)
        } else {
            BTreeMap::new()
        };
        if !fresh {
            if kind == 1 {
                // Overwrites: retag 10% of SRC in place.
                genlib_retag(&src, 0.1, 1000 + trial);
            } else {
                // Renames and deletes as well as overwrites.
                genlib_retag(&src, 0.1, 2000 + trial);
                layout_genre = !layout_genre;
                genlib_reorganise(&src, if layout_genre { "genre" } else { "artist" });
            }
        }
        let src_now = hashes(&src);

        let mut child = t
            .cmd()
            .arg("sync")
            .arg(&src)
            .arg(&dst)
            .arg("--delete")
            .spawn();
        let delay = rng.below(upper_ms[kind] + 1);
        std::thread::sleep(Duration::from_millis(delay));
        let finished_early = child.try_wait().unwrap();
        if finished_early.is_none() {
            killed_midway += 1;
        } else {
            upper_ms[kind] = (upper_ms[kind] * 2 / 3).max(2);
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if let Some(st) = finished_early {
            assert!(
                st.success(),
                "trial {trial}: sync exited {st:?} before being killed: {}",
                String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr)
            );
        }
        eprintln!(
            "trial {trial}: fresh={fresh} delay={delay}ms killed_midway={} status={status:?}",
            finished_early.is_none()
        );

        if dst.exists() {
            check_not_torn(trial, &dst, &src_now, &before);
        }

        // Re-run to completion (a stale lock from the killed process must not
        // block it) and check convergence with no leftover temp files.
        let out = t
            .cmd()
            .arg("sync")
            .arg(&src)
            .arg(&dst)
            .arg("--delete")
            .assert_exit(0);
        drop(out);
        assert_trees_equal(&src, &dst);
        assert_eq!(
            list_tree(&src),
            list_tree(&dst),
            "trial {trial}: leftover files in DST"
        );
    }
    eprintln!("{killed_midway} of {trial} syncs killed mid-run");
    assert!(
        killed_midway >= KILLED,
        "only {killed_midway} of {trial} syncs were killed before they finished"
    );
}

#[test]
fn verify_after_killed_then_completed_sync() {
    let t = TestRepo::new();
    let src = t.path("src");
    genlib_create(&src, 60, SEED + 1, MEAN_SIZE);
    let dst = t.path("dst");
    let mut child = t.cmd().arg("sync").arg(&src).arg(&dst).spawn();
    std::thread::sleep(Duration::from_millis(150));
    let _ = child.kill();
    let _ = child.wait();
    t.cmd().arg("sync").arg(&src).arg(&dst).assert_exit(0);
    assert_trees_equal(&src, &dst);
    t.cmd().arg("verify").arg(&dst).assert_exit(0);
}
