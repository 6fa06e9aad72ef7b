//! The scan's threads under load: readers hand their results on in groups, one thread gathers
//! them into batches, and a thread of its own writes each batch to the index, taking the
//! repository's one writer only while it writes. In an ordinary sync two scans run at once
//! (the source's and the destination's; a local directory's each on a pool of its own, one
//! reader more than CPUs) and take turns with that writer.
//! Repeated many times on two cores, a hang between them, or a result lost or doubled between
//! a reader and the index, shows as a sync that does not end in time or a tree that differs.

mod util;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use musicfs::origin::LocalOrigin;
use musicfs::repo::Repository;
use musicfs::sync::{sync, SyncOptions};
use util::{assert_trees_equal, TestRepo};

/// More files than two index batches (4,096 each, `scan::BATCH_FILES`) on each side, so that
/// both scans write several.
const FILES: usize = 8_400;

/// Writes `FILES` small files (200 B to 2.9 KB) under `root`, their bytes a function of `salt`
/// and the index.
fn fill(root: &Path, salt: u8) {
    for i in 0..FILES {
        let dir = root.join(format!("d{}", i % 17));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..(200 + (i % 211) * 13))
            .map(|n: usize| (n.wrapping_mul(2_654_435_761) >> 9) as u8 ^ (i as u8) ^ salt)
            .collect();
        std::fs::write(dir.join(format!("f{i}")), data).unwrap();
    }
}

#[test]
fn stress_source_and_destination_scans_write_the_index_at_once() {
    let deadline = Instant::now() + Duration::from_secs(300);
    for round in 0..12 {
        let t = TestRepo::new();
        let src = t.mkdir("src");
        let dst = t.mkdir("dst");
        fill(&src, 1);
        // The destination holds other bytes at the same paths: its scan reads every file too.
        fill(&dst, 2);
        let repo_dir = t.path("repo");
        let (done, finished) = mpsc::channel();
        let (src_c, dst_c) = (src.clone(), dst.clone());
        std::thread::spawn(move || {
            let repo = Repository::init(&repo_dir).unwrap().0;
            let source = LocalOrigin::open(&src_c, false).unwrap();
            let destination = LocalOrigin::open(&dst_c, true).unwrap();
            let summary = sync(
                &repo,
                &source,
                &destination,
                &repo.chunker(),
                SyncOptions::default(),
                &musicfs::report::NullSink,
            );
            let _ = done.send(summary.map_err(|e| e.to_string()));
        });
        let left = deadline.saturating_duration_since(Instant::now());
        let summary = finished
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("round {round}: the sync did not end by the deadline"))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(summary.errors, 0, "round {round}: {summary:?}");
        assert_eq!(summary.files_changed, FILES as u64, "round {round}");
        assert_trees_equal(&src, &dst);
    }
}
