//! Crash consistency: SIGKILL `musicfs sync` at every phase of its work (through the
//! `MUSICFS_FAILPOINT` points of `musicfs::failpoint`, the process kills itself there) and at
//! random moments, and check that no file in DST is ever torn, that nothing but old or new
//! files is left, and that a re-run converges to an exact copy, directory mtimes included,
//! which `verify` then proves file by file.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
        assert_exact(&src, &dst);
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

/// The comparison a completed sync must pass: contents, modes, file and directory mtimes.
fn assert_exact(src: &Path, dst: &Path) {
    assert_trees_equal_with(
        src,
        dst,
        TreeCmp {
            dir_mtimes: true,
            ..TreeCmp::default()
        },
    );
}

/// `verify DST` exits 0 and checked every file of it.
fn assert_verified(t: &TestRepo, dst: &Path) {
    let summary = t.cmd().arg("verify").arg(dst).summary();
    assert_eq!(
        num(&summary, "files"),
        files_in(dst).len() as u64,
        "verify checked every file: {summary}"
    );
    assert_eq!(num(&summary, "damaged"), 0, "{summary}");
}

/// Changes to SRC that make a sync meet every point: retagged files (overwrites), removed
/// files (early deletions), a new album (new directories and files) and, when `reorganise`,
/// a new layout (moves: renames, then late deletions of the old folders, which then hold the
/// removed files too).
fn change_everything(src: &Path, round: u64, reorganise: bool, layout_genre: &mut bool) {
    genlib_retag(src, 0.2, 3000 + round);
    if reorganise {
        *layout_genre = !*layout_genre;
        genlib_reorganise(src, if *layout_genre { "genre" } else { "artist" });
    } else {
        // Three whole albums: deletions that hold nothing the writes need (an album's tracks
        // share its cover, so a single track's deletion would wait for its retagged siblings).
        let mut albums: Vec<PathBuf> = files_in(src)
            .into_values()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        albums.sort();
        albums.dedup();
        for album in albums.iter().take(3) {
            fs::remove_dir_all(album).unwrap();
        }
    }
    for (i, (_, path)) in files_in(src).into_iter().enumerate() {
        if i % 7 == (round as usize) % 7 {
            fs::remove_file(path).unwrap();
        }
    }
    genlib([
        "add-album".as_ref(),
        src.as_os_str(),
        "--seed".as_ref(),
        (4000 + round).to_string().as_ref(),
        "--tracks".as_ref(),
        "4".as_ref(),
        "--mean-size".as_ref(),
        "128K".as_ref(),
    ]);
}

#[test]
fn a_kill_at_every_phase_loses_nothing() {
    let t = TestRepo::new();
    let src = t.path("src");
    genlib_create(&src, 60, SEED + 2, 128 * 1024);
    let dst = t.path("dst");
    t.cmd().arg("sync").arg(&src).arg(&dst).assert_exit(0);
    let mut layout_genre = false;
    let mut round = 0;
    // The first passage of each point, and later ones where a sync passes more than once.
    let passages: &[(&str, &[u64])] = &[
        ("scan-recorded", &[1, 3]),
        // The third commit is the destination's final scan.
        ("scan-commit", &[1, 3]),
        // Location rows staged by the first scan, then by the final one, not merged.
        ("scan-staged", &[1, 3]),
        ("early-deletion", &[1, 3]),
        ("write-chunk", &[1, 8, 16]),
        ("before-rename", &[1, 3]),
        ("after-rename", &[1, 3]),
        ("record", &[1, 3]),
        ("deletion", &[1, 2]),
        ("directory-meta", &[1, 3]),
        ("final-scan", &[1]),
    ];
    let names: Vec<&str> = passages.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        names,
        musicfs::failpoint::POINTS,
        "every point is killed at"
    );
    for (phase, at) in passages {
        for &passage in *at {
            round += 1;
            change_everything(&src, round, *phase != "early-deletion", &mut layout_genre);
            let before = hashes(&dst);
            let src_now = hashes(&src);
            let out = t
                .cmd()
                .args(["sync", "--delete"])
                .arg(&src)
                .arg(&dst)
                .command()
                .env("MUSICFS_FAILPOINT", format!("{phase}:{passage}"))
                .output()
                .expect("run musicfs");
            assert_eq!(
                out.status.signal(),
                Some(9),
                "{phase}:{passage}: the sync was not killed there (it ended with {}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            check_not_torn(round, &dst, &src_now, &before);
            // The index is whole after any kill, rows left staged included.
            let check = t.cmd().arg("check").output();
            assert!(
                check.status.success(),
                "{phase}:{passage}: the index is not whole after the kill: {}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
            let rerun = t
                .cmd()
                .args(["sync", "--delete"])
                .arg(&src)
                .arg(&dst)
                .output();
            assert!(
                rerun.status.success(),
                "{phase}:{passage}: the re-run failed: {}",
                String::from_utf8_lossy(&rerun.stderr)
            );
            assert_exact(&src, &dst);
            assert_eq!(
                list_tree(&src),
                list_tree(&dst),
                "{phase}:{passage}: leftover entries in DST"
            );
            assert_verified(&t, &dst);
        }
    }
    assert!(round >= 20, "{round} kills");
}

#[test]
fn verify_after_killed_then_completed_sync() {
    let t = TestRepo::new();
    let src = t.path("src");
    genlib_create(&src, 60, SEED + 1, MEAN_SIZE);
    let dst = t.path("dst");
    let mut child = t.cmd().arg("sync").arg(&src).arg(&dst).spawn();
    // Kill it once it is writing files, and only if it still is.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !holds_a_file(&dst) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync ended before writing anything"
        );
        assert!(Instant::now() < deadline, "the sync wrote nothing in 60 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sync finished before the kill"
    );
    let _ = child.kill();
    let _ = child.wait();
    t.cmd().arg("sync").arg(&src).arg(&dst).assert_exit(0);
    assert_exact(&src, &dst);
    assert_verified(&t, &dst);
}
