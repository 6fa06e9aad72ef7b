//! The chunk store's gc on a real directory (`LocalObjects`): marks, then a sweep a grace
//! period later (an injected `now`, no sleeping), repacks, one gc at a time, and pushes and
//! gcs running at once losing nothing (`docs/format.md`, "Chunk store", "gc").

#[allow(dead_code)]
mod util;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use musicfs::origin::{LocalOrigin, Origin};
use musicfs::repo::{LocalObjects, ObjectId, ObjectKind, ObjectStore, Repository};
use musicfs::report::NullSink;
use musicfs::scan::{scan, ScanOptions};
use musicfs::store::format::{encode_object, GcLock, Tag};
use musicfs::store::{self, GcOptions, GcReport, LibraryChunks, Pick, Store, StoreSource};
use musicfs::sync::{sync_from, SyncOptions};

use util::*;

const KIB: u64 = 1024;
const HOUR: i64 = 3_600_000_000_000;
/// A fixed "now" for the first gc: far from the real clock, which gc never reads.
const T0: i64 = 1_900_000_000_000_000_000;

/// One site: a repository and a library directory.
struct Site {
    repo: Repository,
    lib: PathBuf,
}

impl Site {
    fn new(dir: &Path, name: &str) -> Site {
        let root = dir.join(name);
        fs::create_dir_all(&root).unwrap();
        Site {
            repo: Repository::init(&root.join("repo")).unwrap().0,
            lib: root.join("lib"),
        }
    }

    fn open(&self, objects: &Arc<LocalObjects>, url: &str) -> Store {
        Store::open(objects.clone(), url, &self.repo).unwrap()
    }

    /// Scans the library and pushes it; the snapshot object's id.
    fn push(&self, store: &Store) -> String {
        let origin = LocalOrigin::open(&self.lib, false).unwrap();
        let scanned = scan(
            &self.repo,
            &origin,
            &self.repo.chunker(),
            ScanOptions::default(),
            &NullSink,
        )
        .unwrap();
        let mut chunks = LibraryChunks::new(&self.repo, &origin).unwrap();
        store::push(&self.repo, store, scanned.snapshot, &mut chunks, &NullSink)
            .unwrap()
            .snapshot
            .expect("the push put a snapshot")
    }

    fn library(&self) -> String {
        LocalOrigin::open(&self.lib, false)
            .unwrap()
            .url()
            .to_string()
    }

    /// Pulls `pick` into the library directory; the number of errors.
    fn pull(&self, store: &Store, pick: Pick) -> u64 {
        fs::create_dir_all(&self.lib).unwrap();
        let dst = LocalOrigin::open(&self.lib, true).unwrap();
        let mut source = StoreSource::new(store, pick).unwrap();
        let options = SyncOptions {
            delete: true,
            ..SyncOptions::default()
        };
        sync_from(
            &self.repo,
            &mut source,
            &dst,
            &self.repo.chunker(),
            options,
            &NullSink,
        )
        .unwrap()
        .errors
    }
}

fn new_store(dir: &Path) -> (Arc<LocalObjects>, String) {
    let objects = Arc::new(LocalObjects::new(dir.join("store")));
    let url = format!("file://{}", dir.join("store").display());
    store::init(
        &*objects,
        &url,
        &musicfs::repo::ChunkerConfig::default(),
        1 << 20,
    )
    .unwrap();
    (objects, url)
}

fn options() -> GcOptions {
    GcOptions {
        grace: Duration::from_secs(24 * 3600),
        ..GcOptions::default()
    }
}

/// Bytes of every pack in the store.
fn pack_bytes(objects: &LocalObjects) -> u64 {
    objects
        .list(ObjectKind::StorePack)
        .unwrap()
        .iter()
        .map(|id| objects.size(ObjectKind::StorePack, id).unwrap())
        .sum()
}

/// The churn of the issue: a retag of 10 % of the tracks and the deletion of every tenth
/// album (at least one).
fn churn(lib: &Path, seed: u64) {
    genlib_retag(lib, 0.1, seed);
    let mut albums: Vec<PathBuf> = list_tree(lib)
        .into_iter()
        .filter(|r| r.components().count() == 2 && lib.join(r).is_dir())
        .collect();
    albums.sort();
    for album in albums.iter().skip(seed as usize % 2).step_by(10) {
        fs::remove_dir_all(lib.join(album)).unwrap();
    }
}

/// Pulls every snapshot the store holds into a fresh site and compares it with the library
/// as it was when pushed (`states`: snapshot id to a copy of the library).
fn assert_every_snapshot_exact(
    dir: &Path,
    objects: &Arc<LocalObjects>,
    url: &str,
    states: &HashMap<String, PathBuf>,
    what: &str,
) {
    let reader = Site::new(dir, &format!("reader-{}", rand_name()));
    let store = reader.open(objects, url);
    let snapshots = store.snapshots().unwrap();
    assert!(!snapshots.is_empty(), "{what}: no snapshot left");
    for (id, _) in snapshots {
        let state = states
            .get(&id.hex())
            .unwrap_or_else(|| panic!("{what}: snapshot {} of no push", id.hex()));
        assert_eq!(reader.pull(&store, Pick::Id(id.hex())), 0, "{what}");
        assert_trees_equal(state, &reader.lib);
    }
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst).to_string()
}

/// Keeps a copy of the library as pushed in snapshot `id`.
fn keep(states: &mut HashMap<String, PathBuf>, dir: &Path, lib: &Path, id: String) {
    let copy = dir.join(format!("state-{}", rand_name()));
    copy_tree(lib, &copy);
    states.insert(id, copy);
}

#[test]
fn garbage_of_a_retag_and_deleted_albums_is_marked_then_swept_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path());
    let a = Site::new(dir.path(), "a");
    genlib_create(&a.lib, 40, 5, 256 * KIB);
    let store_a = a.open(&objects, &url);
    a.push(&store_a);
    churn(&a.lib, 4);
    let second = a.push(&store_a);
    let before = pack_bytes(&objects);
    let packs_before = objects.list(ObjectKind::StorePack).unwrap();

    // With both snapshots kept, nothing is garbage.
    let kept = store::gc(&store_a, &options(), T0).unwrap();
    assert_eq!(kept.garbage_bytes, 0, "{kept:?}");
    assert_eq!(kept.marked_packs, 0, "{kept:?}");

    // Forget the first: what only it reached is marked, nothing removed yet.
    let gone = store::forget(&store_a, 1, false).unwrap();
    assert_eq!(gone.len(), 1);
    let dry = GcOptions {
        dry_run: true,
        ..options()
    };
    let planned = store::gc(&store_a, &dry, T0).unwrap();
    assert!(
        planned.marked_packs > 0 && planned.mark.is_none(),
        "{planned:?}"
    );
    assert!(objects.list(ObjectKind::StoreMark).unwrap().is_empty());
    let marked = store::gc(&store_a, &options(), T0).unwrap();
    assert_eq!(marked.marked_packs, planned.marked_packs, "{marked:?}");
    assert!(
        marked.garbage_bytes > 0 && marked.swept_packs == 0,
        "{marked:?}"
    );
    assert_eq!(objects.list(ObjectKind::StoreMark).unwrap().len(), 1);
    let packs_marked = objects.list(ObjectKind::StorePack).unwrap();
    assert!(packs_before.iter().all(|p| packs_marked.contains(p)));
    assert_eq!(
        packs_marked.len() as u64,
        packs_before.len() as u64 + marked.new_packs
    );

    // Within the grace, nothing goes; after it, the marked packs do.
    let early = store::gc(&store_a, &options(), T0 + 23 * HOUR).unwrap();
    assert_eq!(early.swept_packs, 0, "{early:?}");
    assert_eq!(early.marked_packs, 0, "{early:?}");
    let swept = store::gc(&store_a, &options(), T0 + 25 * HOUR).unwrap();
    assert_eq!(swept.swept_packs, marked.marked_packs, "{swept:?}");
    assert_eq!(swept.rescued_packs, 0, "{swept:?}");
    assert!(objects.list(ObjectKind::StoreMark).unwrap().is_empty());
    let after = pack_bytes(&objects);
    assert!(after < before, "{before} -> {after}");
    // What is left is garbage in packs mostly live (the threshold keeps them).
    let left = store::gc(&store_a, &dry, T0 + 26 * HOUR).unwrap();
    assert_eq!(left.marked_packs, 0, "{left:?}");
    assert!(left.garbage_bytes < marked.garbage_bytes, "{left:?}");
    println!(
        "retag 10 % + every tenth album deleted: packs {before} -> {after} bytes, {} marked ({} repacked, {} bytes copied), {} bytes of garbage",
        marked.marked_packs, marked.repacked_packs, marked.copied_bytes, marked.garbage_bytes
    );

    let mut states = HashMap::new();
    keep(&mut states, dir.path(), &a.lib, second);
    assert_every_snapshot_exact(dir.path(), &objects, &url, &states, "after the sweep");

    // A threshold of 1 repacks every pack with garbage; after the grace, none is left.
    let all = GcOptions {
        repack_threshold: 1.0,
        ..options()
    };
    if left.garbage_bytes > 0 {
        let repacked = store::gc(&store_a, &all, T0 + 30 * HOUR).unwrap();
        assert!(repacked.repacked_packs > 0, "{repacked:?}");
        assert!(repacked.new_packs > 0, "{repacked:?}");
        assert_every_snapshot_exact(dir.path(), &objects, &url, &states, "after a repack");
        let swept = store::gc(&store_a, &all, T0 + 60 * HOUR).unwrap();
        assert_eq!(swept.swept_packs, repacked.marked_packs, "{swept:?}");
    }
    let clean = store::gc(&store_a, &dry, T0 + 61 * HOUR).unwrap();
    assert_eq!(clean.garbage_bytes, 0, "{clean:?}");
    assert_every_snapshot_exact(
        dir.path(),
        &objects,
        &url,
        &states,
        "after the repack's sweep",
    );
    // So is the next push (it finds everything it needs), and a pull of it.
    genlib_retag(&a.lib, 0.2, 8);
    let third = a.push(&a.open(&objects, &url));
    keep(&mut states, dir.path(), &a.lib, third);
    assert_every_snapshot_exact(dir.path(), &objects, &url, &states, "after a push");
}
