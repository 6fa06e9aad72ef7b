//! A destination with too little space: the sync fails cleanly, and once the source has been
//! trimmed to fit, the next sync succeeds because it frees space (deletions, then smaller
//! replacements) before it writes, as `rsync --delete-during` does. Runs on a small tmpfs, so
//! it needs root (the tests run as root; the CI machine does).

mod util;

use std::path::{Path, PathBuf};

use util::{assert_trees_equal, list_tree, TestRepo, Tmpfs, XorShift};

fn random_file(path: &Path, len: usize, rng: &mut XorShift) {
    let mut bytes = vec![0u8; len];
    for chunk in bytes.chunks_mut(8) {
        let n = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&n[..chunk.len()]);
    }
    std::fs::write(path, bytes).unwrap();
}

fn temporaries(root: &Path) -> Vec<PathBuf> {
    list_tree(root)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".musicfs-"))
        })
        .collect()
}

#[test]
fn full_destination_fails_cleanly_then_frees_space_before_writing() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    let mut rng = XorShift::new(3);
    // 20 files of 512 KiB (10 MiB) into 6 MiB.
    for i in 0..20 {
        let dir = src.join(format!("album{}", i % 2));
        std::fs::create_dir_all(&dir).unwrap();
        random_file(&dir.join(format!("track{i:02}.flac")), 512 << 10, &mut rng);
    }
    let dst = t.path("dst");
    let _tmpfs = Tmpfs::mount(&dst, "6m");

    let out = t
        .cmd()
        .args(["sync", "--delete"])
        .arg(&src)
        .arg(&dst)
        .assert_exit(3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no space left on device"), "{stderr}");
    // Each failed file is named at DST, with what to do, never by its temporary name.
    assert!(
        stderr.contains(&format!("DST {}/", dst.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("free space on that device and run again"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("os error") && !stderr.contains(".musicfs-"),
        "{stderr}"
    );
    assert_eq!(
        temporaries(&dst),
        Vec::<PathBuf>::new(),
        "no temporary file left"
    );
    let written: Vec<PathBuf> = list_tree(&dst)
        .into_iter()
        .filter(|p| dst.join(p).is_file())
        .collect();
    assert!(!written.is_empty() && written.len() < 20, "{written:?}");
    for rel in &written {
        assert_eq!(
            std::fs::read(dst.join(rel)).unwrap(),
            std::fs::read(src.join(rel)).unwrap(),
            "{} is complete",
            rel.display()
        );
    }

    // Trim the source to what fits: the files already written go (the re-run must delete
    // them before it writes the rest), one of the others is replaced by a smaller file.
    for rel in &written {
        std::fs::remove_file(src.join(rel)).unwrap();
    }
    t.cmd()
        .args(["sync", "--delete"])
        .arg(&src)
        .arg(&dst)
        .assert_exit(0);
    assert_trees_equal(&src, &dst);

    // Every remaining file replaced by a smaller one, plus a new file larger than the free
    // space: it fits only when the smaller replacements land first.
    let remaining: Vec<PathBuf> = list_tree(&src)
        .into_iter()
        .filter(|p| src.join(p).is_file())
        .collect();
    assert!(remaining.len() >= 2, "{remaining:?}");
    for rel in &remaining {
        random_file(&src.join(rel), 300 << 10, &mut rng);
    }
    let free = (6 << 20) - remaining.len() * (512 << 10);
    random_file(&src.join("album0/new.flac"), free + (256 << 10), &mut rng);
    t.cmd()
        .args(["sync", "--delete"])
        .arg(&src)
        .arg(&dst)
        .assert_exit(0);
    assert_trees_equal(&src, &dst);
}

/// Replacements by smaller files, many more than the free space holds at once: each needs
/// room for its new bytes until it is renamed over the old ones, so they may not all be under
/// way together. Busy threads beside the sync slow its committing threads down, as a loaded
/// machine does, and each round shrinks every file a little again.
#[test]
fn smaller_replacements_of_a_nearly_full_destination_never_need_room_for_all_at_once() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    let mut rng = XorShift::new(5);
    let count = 10;
    // 10 files of 512 KiB (5 MiB) in 6 MiB: about 1 MiB free.
    let mut len = 512 << 10;
    for i in 0..count {
        random_file(&src.join(format!("track{i:02}.flac")), len, &mut rng);
    }
    let dst = t.path("dst");
    let _tmpfs = Tmpfs::mount(&dst, "6m");
    t.cmd().arg("sync").arg(&src).arg(&dst).assert_exit(0);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hogs: Vec<_> = (0..4)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                x
            })
        })
        .collect();
    for _ in 0..6 {
        // Each file a little smaller: together, far more than the free space.
        len -= 24 << 10;
        for i in 0..count {
            random_file(&src.join(format!("track{i:02}.flac")), len, &mut rng);
        }
        t.cmd().arg("sync").arg(&src).arg(&dst).assert_exit(0);
        assert_trees_equal(&src, &dst);
        assert_eq!(temporaries(&dst), Vec::<PathBuf>::new());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for hog in hogs {
        hog.join().unwrap();
    }
}
