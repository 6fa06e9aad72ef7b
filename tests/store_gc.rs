//! The chunk store's gc on a real directory (`LocalObjects`): marks, then a sweep a grace
//! period later (an injected `now`, no sleeping), repacks, one gc at a time, and pushes and
//! gcs running at once losing nothing (`docs/format.md`, "Chunk store", "gc").

mod util;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use musicfs::repo::{LocalObjects, ObjectId, ObjectKind, ObjectStore, Repository};
use musicfs::store::format::{encode_object, GcLock, Tag};
use musicfs::store::{self, GcOptions, Pick, Store};

use util::store::{churn, pack_bytes, Counting, Site};
use util::*;

const KIB: u64 = 1024;
const HOUR: i64 = 3_600_000_000_000;
/// A fixed "now" for the first gc: far from the real clock, which gc never reads.
const T0: i64 = 1_900_000_000_000_000_000;

fn new_store(dir: &Path) -> (Arc<Counting>, String) {
    util::store::new_store(dir, 1 << 20)
}

fn options() -> GcOptions {
    GcOptions {
        grace: Duration::from_secs(24 * 3600),
        ..GcOptions::default()
    }
}

/// Pulls every snapshot the store holds into a fresh site and compares it with the library
/// as it was when pushed (`states`: snapshot id to a copy of the library).
fn assert_every_snapshot_exact(
    dir: &Path,
    objects: &Arc<Counting>,
    url: &str,
    states: &HashMap<String, PathBuf>,
    what: &str,
) {
    let reader = Site::new(dir, &format!("reader-{}", rand_name()));
    let store = reader.open_store(objects, url);
    let snapshots = store.snapshots().unwrap();
    assert!(!snapshots.is_empty(), "{what}: no snapshot left");
    for (id, _) in snapshots {
        let state = states
            .get(&id.hex())
            .unwrap_or_else(|| panic!("{what}: snapshot {} of no push", id.hex()));
        assert_eq!(reader.pull(&store, Pick::Id(id.hex())).errors, 0, "{what}");
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
    let store_a = a.open_store(&objects, &url);
    a.push_id(&store_a);
    churn(&a.lib, 4);
    let second = a.push_id(&store_a);
    let before = pack_bytes(&*objects);
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
    let after = pack_bytes(&*objects);
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
    let third = a.push_id(&a.open_store(&objects, &url));
    keep(&mut states, dir.path(), &a.lib, third);
    assert_every_snapshot_exact(dir.path(), &objects, &url, &states, "after a push");
}

/// Pushes running while gcs mark and sweep, repeated with varied timing under a deadline:
/// after both finish, every snapshot the store holds pulls exact. Each round: the library is
/// pushed, churned and pushed again, the first snapshot forgotten; then a push that brings
/// the deleted albums back (their chunks sit in packs about to be marked) runs while a gc
/// marks, and another push runs while a gc sweeps that mark.
#[test]
fn pushes_running_while_gc_marks_and_sweeps_lose_nothing() {
    let deadline = Instant::now() + Duration::from_secs(90);
    let template = tempfile::tempdir().unwrap();
    genlib_create(&template.path().join("lib"), 16, 11, 128 * KIB);
    let mut rounds = 0u64;
    while rounds < 3 || (rounds < 12 && Instant::now() < deadline) {
        let dir = tempfile::tempdir().unwrap();
        let (objects, url) = new_store(dir.path());
        let a = Site::new(dir.path(), "a");
        copy_tree(&template.path().join("lib"), &a.lib);
        let original = dir.path().join("original");
        copy_tree(&a.lib, &original);
        let store_a = a.open_store(&objects, &url);
        let gc_site = Site::new(dir.path(), "gc");
        let store_gc = gc_site.open_store(&objects, &url);
        let mut states = HashMap::new();
        let first = a.push_id(&store_a);
        keep(&mut states, dir.path(), &a.lib, first);
        churn(&a.lib, rounds);
        let second = a.push_id(&store_a);
        keep(&mut states, dir.path(), &a.lib, second);
        store::forget(&store_a, 1, false).unwrap();

        // The deleted albums come back while a gc marks them.
        fs::remove_dir_all(&a.lib).unwrap();
        copy_tree(&original, &a.lib);
        let pause = Duration::from_micros(rounds * 1500 % 7000);
        let (third, marked) = std::thread::scope(|s| {
            let push = s.spawn(|| {
                std::thread::sleep(pause);
                a.push_id(&store_a)
            });
            let gc = s.spawn(|| store::gc(&store_gc, &options(), T0).unwrap());
            (push.join().unwrap(), gc.join().unwrap())
        });
        keep(&mut states, dir.path(), &a.lib, third);
        store::forget(&store_a, 2, false).unwrap();
        states.retain(|id, _| {
            store_a
                .snapshots()
                .unwrap()
                .iter()
                .any(|(s, _)| s.hex() == *id)
        });
        assert_every_snapshot_exact(dir.path(), &objects, &url, &states, "after the mark");

        // Another churn pushed while a gc sweeps that mark (and marks anew).
        churn(&a.lib, rounds + 1);
        let (fourth, swept) = std::thread::scope(|s| {
            let gc = s.spawn(|| store::gc(&store_gc, &options(), T0 + 25 * HOUR).unwrap());
            let push = s.spawn(|| {
                std::thread::sleep(pause);
                a.push_id(&store_a)
            });
            (push.join().unwrap(), gc.join().unwrap())
        });
        keep(&mut states, dir.path(), &a.lib, fourth);
        assert!(
            marked.marked_packs == 0 || swept.swept_packs + swept.rescued_packs > 0,
            "round {rounds}: {marked:?} {swept:?}"
        );
        assert_every_snapshot_exact(dir.path(), &objects, &url, &states, "after the sweep");
        // And once everything marked meanwhile is swept too.
        store::gc(&store_gc, &options(), T0 + 50 * HOUR).unwrap();
        store::gc(&store_gc, &options(), T0 + 75 * HOUR).unwrap();
        assert_every_snapshot_exact(dir.path(), &objects, &url, &states, "after two more gcs");
        rounds += 1;
    }
    println!("{rounds} rounds");
}

/// A push that started before a gc's mark and relies on a pack it marks finishes within the
/// grace: the sweep sees its snapshot and keeps the pack. Simulated without threads: the
/// snapshot that needs the marked blobs appears between the mark and the sweep.
#[test]
fn a_pack_a_snapshot_came_to_need_after_the_mark_is_kept_by_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path());
    let a = Site::new(dir.path(), "a");
    let b = Site::new(dir.path(), "b");
    genlib_create(&a.lib, 12, 3, 128 * KIB);
    copy_tree(&a.lib, &b.lib);
    let (store_a, store_b) = (a.open_store(&objects, &url), b.open_store(&objects, &url));
    // b's push is prepared (its index merged) before the mark: here, b pushes a library the
    // store holds already, after a forgot it and a gc marked its packs.
    let first = a.push_id(&store_a);
    churn(&a.lib, 2);
    fs::remove_dir_all(
        a.lib
            .join(list_tree(&a.lib)[0].components().next().unwrap()),
    )
    .ok();
    a.push_id(&store_a);
    store::forget(&store_a, 1, false).unwrap();
    let marked = store::gc(&store_a, &options(), T0).unwrap();
    assert!(marked.marked_packs > 0, "{marked:?}");
    // The forgotten snapshot object put back (the same bytes, from a's cache), as a push that
    // began before the mark and ends after it puts its snapshot.
    let cache = LocalObjects::new(store_a.cache_dir());
    let id = cache
        .list(ObjectKind::StoreSnapshot)
        .unwrap()
        .into_iter()
        .find(|id| id.hex() == first)
        .unwrap();
    let n = cache.size(ObjectKind::StoreSnapshot, &id).unwrap();
    let bytes = cache
        .read(ObjectKind::StoreSnapshot, &id, 0, n as usize)
        .unwrap();
    objects.put(ObjectKind::StoreSnapshot, &id, &bytes).unwrap();
    let swept = store::gc(&store_a, &options(), T0 + 25 * HOUR).unwrap();
    assert!(swept.rescued_packs > 0, "{swept:?}");
    let mut states = HashMap::new();
    keep(&mut states, dir.path(), &b.lib, first);
    let newest = store_b.snapshots().unwrap().last().unwrap().0.hex();
    keep(&mut states, dir.path(), &a.lib, newest);
    assert_every_snapshot_exact(dir.path(), &objects, &url, &states, "after the sweep");
}

#[test]
fn a_second_gc_stops_while_one_holds_the_lock_and_a_stale_lock_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path());
    let a = Site::new(dir.path(), "a");
    genlib_create(&a.lib, 6, 2, 64 * KIB);
    let store_a = a.open_store(&objects, &url);
    a.push_id(&store_a);
    let put_lock = |time_ns: i64, nonce: u8| {
        let lock = GcLock {
            host: "elsewhere".into(),
            time_ns,
            nonce: [nonce; 16],
        };
        let bytes = encode_object(Tag::Lock, &lock);
        let id = ObjectId::of(&bytes);
        objects.put(ObjectKind::StoreLock, &id, &bytes).unwrap();
        id
    };
    // A gc that started a minute ago holds the store: this one stops, changing nothing.
    let held = put_lock(T0 - 60_000_000_000, 1);
    let err = store::gc(&store_a, &options(), T0).unwrap_err().to_string();
    assert!(err.contains("another gc is running"), "{err}");
    assert!(err.contains("elsewhere"), "{err}");
    assert_eq!(objects.list(ObjectKind::StoreLock).unwrap(), vec![held]);
    assert!(objects.list(ObjectKind::StoreMark).unwrap().is_empty());
    // Once that lock is older than the timeout, it is stale: removed, and gc runs.
    let later = T0 + 7 * HOUR;
    store::gc(&store_a, &options(), later).unwrap();
    assert!(objects.list(ObjectKind::StoreLock).unwrap().is_empty());
    // A gc that started after this one (a later lock) does not stop it.
    put_lock(later + HOUR + 1, 2);
    store::gc(&store_a, &options(), later + HOUR).unwrap();
    assert_eq!(objects.list(ObjectKind::StoreLock).unwrap().len(), 1);

    // Two gcs at once, many times: at most both run (their listings missed each other's
    // lock), and the store stays whole.
    let b = Site::new(dir.path(), "b");
    let store_b = b.open_store(&objects, &url);
    for lock in objects.list(ObjectKind::StoreLock).unwrap() {
        objects.remove(ObjectKind::StoreLock, &lock).unwrap();
    }
    let mut stopped = 0;
    for round in 0..20 {
        let now = T0 + (10 + round) * HOUR;
        let (x, y) = std::thread::scope(|s| {
            let x = s.spawn(|| store::gc(&store_a, &options(), now));
            let y = s.spawn(|| store::gc(&store_b, &options(), now));
            (x.join().unwrap(), y.join().unwrap())
        });
        for r in [&x, &y] {
            if let Err(e) = r {
                assert!(e.to_string().contains("another gc is running"), "{e}");
                stopped += 1;
            }
        }
        assert!(x.is_ok() || y.is_ok(), "both stopped: {x:?} {y:?}");
        assert!(objects.list(ObjectKind::StoreLock).unwrap().is_empty());
    }
    println!("{stopped} of 20 concurrent pairs had one gc stop");
    let c = Site::new(dir.path(), "c");
    assert_eq!(
        c.pull(
            &c.open_store(&objects, &url),
            Pick::Newest(Some(a.library()))
        )
        .errors,
        0
    );
    assert_trees_equal(&a.lib, &c.lib);
}

// --- crash safety ---------------------------------------------------------------------------

const CRASH_DIR: &str = "MUSICFS_STORE_GC_CRASH_DIR";
const CRASH_NOW: i64 = T0 + 25 * HOUR;

/// The killed gc: in a child process (this test run again with [`CRASH_DIR`] set and a
/// failpoint armed), a gc of the store under that directory at `CRASH_NOW`.
fn crash_child_gc(dir: &Path) {
    let repo = Repository::open(&dir.join("gc/repo")).unwrap();
    let objects = Arc::new(LocalObjects::new(dir.join("store")));
    let url = format!("file://{}", dir.join("store").display());
    let store = Store::open(objects, &url, &repo).unwrap();
    store::gc(&store, &options(), CRASH_NOW).unwrap();
}

#[test]
fn a_gc_killed_at_any_point_leaves_the_store_readable_and_the_next_one_finishes() {
    if let Some(dir) = std::env::var_os(CRASH_DIR) {
        return crash_child_gc(Path::new(&dir));
    }
    use std::os::unix::process::ExitStatusExt;
    let mut points: Vec<String> = store::GC_POINTS.iter().map(|p| p.to_string()).collect();
    points.push("store-gc-sweep:2".into());
    points.push("store-gc-sweep:3".into());
    let template = tempfile::tempdir().unwrap();
    genlib_create(&template.path().join("lib"), 30, 17, 128 * KIB);
    for point in points {
        let dir = tempfile::tempdir().unwrap();
        let (objects, url) = new_store(dir.path());
        let a = Site::new(dir.path(), "a");
        // The repository whose cache the killed gc uses.
        Site::new(dir.path(), "gc");
        copy_tree(&template.path().join("lib"), &a.lib);
        let store_a = a.open_store(&objects, &url);
        // Garbage marked at T0, swept by the gc killed at T0 + 25 h; more garbage since, for
        // that gc to mark and repack (a threshold of 0.5 repacks every pack holding a dead
        // chunk list or tree).
        a.push_id(&store_a);
        churn(&a.lib, 1);
        a.push_id(&store_a);
        store::forget(&store_a, 1, false).unwrap();
        let first = store::gc(&store_a, &options(), T0).unwrap();
        assert!(first.marked_packs > 0, "{first:?}");
        churn(&a.lib, 2);
        let newest = a.push_id(&store_a);
        store::forget(&store_a, 1, false).unwrap();
        let mut states = HashMap::new();
        keep(&mut states, dir.path(), &a.lib, newest);

        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "a_gc_killed_at_any_point_leaves_the_store_readable_and_the_next_one_finishes",
                "--exact",
                "--nocapture",
            ])
            .env(CRASH_DIR, dir.path())
            .env("MUSICFS_FAILPOINT", &point)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "{point}: the gc was not killed ({status:?})"
        );
        assert_eq!(
            objects.list(ObjectKind::StoreLock).unwrap().len(),
            1,
            "{point}"
        );

        // Readable as it is.
        assert_every_snapshot_exact(dir.path(), &objects, &url, &states, &point);
        // The killed gc's lock stops the next gc until it is stale; then one finishes.
        let err = store::gc(&store_a, &options(), CRASH_NOW + 1).unwrap_err();
        assert!(err.to_string().contains("another gc"), "{point}: {err}");
        let next = CRASH_NOW + 7 * HOUR;
        store::gc(&store_a, &options(), next).unwrap();
        assert!(
            objects.list(ObjectKind::StoreLock).unwrap().is_empty(),
            "{point}"
        );
        assert_every_snapshot_exact(dir.path(), &objects, &url, &states, &point);
        // Everything marked by then is swept a grace later, and no garbage is left that a
        // threshold of 1 would not repack.
        store::gc(&store_a, &options(), next + 25 * HOUR).unwrap();
        let left = store::gc(
            &store_a,
            &GcOptions {
                dry_run: true,
                ..options()
            },
            next + 26 * HOUR,
        )
        .unwrap();
        assert_eq!(left.marked_packs, 0, "{point}: {left:?}");
        assert!(
            objects.list(ObjectKind::StoreMark).unwrap().is_empty(),
            "{point}"
        );
        assert_every_snapshot_exact(dir.path(), &objects, &url, &states, &point);
    }
}

/// Deleted albums that come back after their packs were marked: the push uploads them again,
/// into packs no mark names (packing is deterministic: the same chunks in the same order make
/// the same pack, which the sweep would then remove), and after the sweep every snapshot
/// pulls exact.
#[test]
fn albums_that_come_back_after_the_mark_are_uploaded_again_into_unmarked_packs() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path());
    let a = Site::new(dir.path(), "a");
    genlib_create(&a.lib, 30, 9, 128 * KIB);
    let original = dir.path().join("original");
    copy_tree(&a.lib, &original);
    let store_a = a.open_store(&objects, &url);
    a.push_id(&store_a);
    // Every album but the first deleted: whole packs lose every live blob.
    let mut albums: Vec<PathBuf> = list_tree(&a.lib)
        .into_iter()
        .filter(|r| r.components().count() == 2 && a.lib.join(r).is_dir())
        .collect();
    albums.sort();
    for album in &albums[1..] {
        fs::remove_dir_all(a.lib.join(album)).unwrap();
    }
    a.push_id(&store_a);
    store::forget(&store_a, 1, false).unwrap();
    let marked = store::gc(&store_a, &options(), T0).unwrap();
    assert!(marked.marked_packs > 0, "{marked:?}");
    let marked_ids: Vec<ObjectId> = store_a.marked_packs().unwrap().into_iter().collect();

    fs::remove_dir_all(&a.lib).unwrap();
    copy_tree(&original, &a.lib);
    let before: Vec<ObjectId> = objects.list(ObjectKind::StorePack).unwrap();
    let back = a.push_id(&store_a);
    let new: Vec<ObjectId> = objects
        .list(ObjectKind::StorePack)
        .unwrap()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!new.is_empty());
    assert!(new.iter().all(|p| !marked_ids.contains(p)));
    store::forget(&store_a, 1, false).unwrap();
    let swept = store::gc(&store_a, &options(), T0 + 25 * HOUR).unwrap();
    assert_eq!(swept.swept_packs, marked.marked_packs, "{swept:?}");
    assert_eq!(swept.rescued_packs, 0, "{swept:?}");
    let mut states = HashMap::new();
    keep(&mut states, dir.path(), &original, back);
    assert_every_snapshot_exact(dir.path(), &objects, &url, &states, "after the sweep");
}
