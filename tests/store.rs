//! The chunk store (`musicfs::store`), through its library API, on a real object store: a
//! `LocalObjects` directory, wrapped in a counter of calls and bytes. Each "site" is a library
//! directory with its own repository; sites share only the store.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use musicfs::origin::LocalOrigin;
use musicfs::repo::{LocalObjects, ObjectId, ObjectKind, ObjectStore, Repository};
use musicfs::report::NullSink;
use musicfs::scan::{scan, ScanOptions};
use musicfs::store::{self, LibraryChunks, Pick, Store, StoreSource};
use musicfs::sync::{sync_from, SyncOptions};

use util::store::{new_store, Counting, Site};
use util::*;

const KIB: u64 = 1024;

/// Files whose bytes differ between two snapshots of a tree (relative paths).
fn changed_files(before: &[(PathBuf, blake3::Hash)], after: &Path) -> usize {
    before
        .iter()
        .filter(|(rel, h)| blake3::hash(&fs::read(after.join(rel)).unwrap()) != *h)
        .count()
}

fn hashes(root: &Path) -> Vec<(PathBuf, blake3::Hash)> {
    files_in(root)
        .into_iter()
        .map(|(rel, abs)| (rel, blake3::hash(&fs::read(abs).unwrap())))
        .collect()
}

#[test]
fn fixtures_push_then_pull_at_another_site_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path(), store::DEFAULT_PACK_SIZE);
    let a = Site::new(dir.path(), "a");
    copy_tree(&fixtures_audio(), &a.lib);
    let store_a = a.open_store(&objects, &url);
    let pushed = a.push(&store_a);
    assert!(pushed.snapshot.is_some());
    assert!(pushed.chunks_uploaded > 0 && pushed.trees_uploaded > 0);
    // Tags and structure compress: what was put is less than the library's bytes.
    assert!(pushed.bytes_put < pushed.bytes, "{pushed:?}");

    let b = Site::new(dir.path(), "b");
    let store_b = b.open_store(&objects, &url);
    let pulled = b.pull(&store_b, Pick::Newest(None));
    assert_eq!(pulled.errors, 0, "{pulled:?}");
    assert_eq!(pulled.files_total, pushed.files);
    assert_trees_equal(&a.lib, &b.lib);
}

#[test]
fn retag_moves_about_the_tag_bytes_both_ways_and_no_change_costs_a_handful_of_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path(), store::DEFAULT_PACK_SIZE);
    let a = Site::new(dir.path(), "a");
    genlib_create(&a.lib, 60, 7, 512 * KIB);
    let store_a = a.open_store(&objects, &url);
    let first = a.push(&store_a);
    let (_, put_first, _) = objects.take();
    assert_eq!(put_first, first.bytes_put);
    // Audio does not compress: about the library's bytes went in, and not twice.
    assert!(first.bytes_put > first.bytes * 9 / 10, "{first:?}");
    assert!(first.bytes_put < first.bytes * 11 / 10, "{first:?}");

    let b = Site::new(dir.path(), "b");
    let store_b = b.open_store(&objects, &url);
    b.pull(&store_b, Pick::Newest(Some(a.library())));
    assert_trees_equal(&a.lib, &b.lib);
    let (_, _, read_first) = objects.take();
    assert!(read_first < first.bytes * 11 / 10);

    // No change: a push and a pull that find nothing new make a handful of requests.
    let again = a.push(&store_a);
    assert!(again.snapshot.is_none(), "{again:?}");
    let (calls, put, _) = objects.take();
    println!("no-change push: {calls} requests");
    assert!(calls <= 3, "{calls} requests for a no-change push");
    assert_eq!(put, 0);
    let same = b.pull(&store_b, Pick::Newest(Some(a.library())));
    assert_eq!(same.bytes_transferred, 0);
    let (calls, _, read) = objects.take();
    println!("no-change pull: {calls} requests");
    assert!(calls <= 3, "{calls} requests for a no-change pull");
    assert_eq!(read, 0);

    // Retag 10% at A: about the tag bytes go into the store. Per retagged file: its new tag
    // chunk (a few hundred bytes of text frames, compressed, plus the padding chunk, zeros),
    // its chunk list (~30 chunks of 36 bytes) and its share of the album, artist and root
    // trees; per push, one delta, one snapshot and a trailer per pack: 10 KiB per file and
    // 8 KiB per push bound all that.
    let before = hashes(&a.lib);
    genlib_retag(&a.lib, 0.1, 11);
    let retagged = changed_files(&before, &a.lib) as u64;
    assert!(retagged >= 3, "only {retagged} files retagged");
    let pushed = a.push(&store_a);
    let (_, put, _) = objects.take();
    assert_eq!(put, pushed.bytes_put);
    let bound = retagged * 10 * KIB + 8 * KIB;
    println!(
        "retag of {retagged} files: {put} bytes put, {} packs",
        pushed.packs
    );
    assert!(
        put < bound,
        "retag of {retagged} files put {put} bytes (bound {bound}): {pushed:?}"
    );
    // B pulls: exact, and reads about the same bytes from the store.
    let pulled = b.pull(&store_b, Pick::Newest(Some(a.library())));
    assert_eq!(pulled.errors, 0);
    assert_trees_equal(&a.lib, &b.lib);
    let (_, _, read) = objects.take();
    let bound = retagged * 12 * KIB + 16 * KIB;
    println!("retag of {retagged} files: {read} bytes read by the pull");
    assert!(
        read < bound,
        "the pull of {retagged} retagged files read {read} bytes (bound {bound}): {pulled:?}"
    );
}

#[test]
fn the_local_repository_gc_and_check_leave_the_store_cache_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path(), store::DEFAULT_PACK_SIZE);
    let a = Site::new(dir.path(), "a");
    copy_tree(&fixtures_audio(), &a.lib);
    a.push(&a.open_store(&objects, &url));
    let b = Site::new(dir.path(), "b");
    let store_b = b.open_store(&objects, &url);
    b.pull(&store_b, Pick::Newest(None));
    let cache = store_b.cache_dir().to_path_buf();
    let cached = list_tree(&cache);
    assert!(cached.iter().any(|p| p.starts_with("index")), "{cached:?}");
    drop(store_b);
    let root = b.repo.root().to_path_buf();
    drop(b.repo);
    let checked = musicfs::repo::check(&root).unwrap();
    assert!(
        checked.healthy && checked.problems.is_empty(),
        "{checked:?}"
    );
    musicfs::repo::gc(&root, false).unwrap();
    assert_eq!(list_tree(&cache), cached);
    // And the cache still serves: a no-change pull after gc makes two listings.
    let repo = Repository::open(&root).unwrap();
    let reopened = Store::open(objects.clone(), &url, &repo).unwrap();
    objects.take();
    let site = Site {
        repo,
        lib: b.lib.clone(),
    };
    let same = site.pull(&reopened, Pick::Newest(None));
    assert_eq!(same.bytes_transferred, 0);
    let (calls, _, _) = objects.take();
    assert!(calls <= 3, "{calls} requests");
    assert_trees_equal(&a.lib, &site.lib);
}

#[test]
fn a_pull_whose_listing_lags_fetches_the_snapshots_deltas_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path(), store::DEFAULT_PACK_SIZE);
    let a = Site::new(dir.path(), "a");
    copy_tree(&fixtures_audio(), &a.lib);
    a.push(&a.open_store(&objects, &url));
    objects.hide_deltas.store(true, Ordering::SeqCst);
    let b = Site::new(dir.path(), "b");
    let pulled = b.pull(&b.open_store(&objects, &url), Pick::Newest(None));
    assert_eq!(pulled.errors, 0);
    assert_trees_equal(&a.lib, &b.lib);
}

#[test]
fn a_file_changed_since_the_scan_fails_the_push_and_the_next_push_keeps_what_was_put() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path(), 1 << 20);
    let a = Site::new(dir.path(), "a");
    genlib_create(&a.lib, 12, 17, 512 * KIB);
    let store_a = a.open_store(&objects, &url);
    let origin = LocalOrigin::open(&a.lib, false).unwrap();
    let scanned = scan(
        &a.repo,
        &origin,
        &a.repo.chunker(),
        ScanOptions::default(),
        &NullSink,
    )
    .unwrap();
    // The last file in tree order changes after the scan: its audio is no longer the
    // snapshot's.
    let victim = files_in(&a.lib).into_values().last().unwrap();
    let len = fs::metadata(&victim).unwrap().len();
    flip_byte_keep_mtime(&victim, len - 1000);
    let mut chunks = LibraryChunks::new(&a.repo, &origin).unwrap();
    let failed = store::push(&a.repo, &store_a, scanned.snapshot, &mut chunks, &NullSink)
        .unwrap_err()
        .to_string();
    assert!(failed.contains("not available"), "{failed}");
    assert!(store_a.snapshots().unwrap().is_empty());
    // The packs put before the failure were indexed: the next push (after a scan that sees
    // the change) finds their chunks in the store.
    let indexed = store_a.index().unwrap().len();
    assert!(indexed > 0);
    let resumed = a.push(&store_a);
    assert!(resumed.snapshot.is_some());
    assert!(resumed.chunks_present as usize > indexed / 2, "{resumed:?}");
    let b = Site::new(dir.path(), "b");
    b.pull(&b.open_store(&objects, &url), Pick::Newest(None));
    assert_trees_equal(&a.lib, &b.lib);
}

#[test]
fn an_older_snapshot_is_pulled_by_time_or_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path(), store::DEFAULT_PACK_SIZE);
    let a = Site::new(dir.path(), "a");
    genlib_create(&a.lib, 8, 23, 128 * KIB);
    let store_a = a.open_store(&objects, &url);
    a.push(&store_a);
    let old = dir.path().join("old");
    copy_tree(&a.lib, &old);
    genlib_retag(&a.lib, 0.5, 1);
    let second = a.push(&store_a);
    let snapshots = store_a.snapshots().unwrap();
    assert_eq!(snapshots.len(), 2);
    let first_time = snapshots[0].1.time_ns;

    let b = Site::new(dir.path(), "b");
    let store_b = b.open_store(&objects, &url);
    b.pull(&store_b, Pick::AtOrBefore(None, first_time));
    assert_trees_equal(&old, &b.lib);
    let prefix = second.snapshot.unwrap()[..12].to_string();
    b.pull(&store_b, Pick::Id(prefix));
    assert_trees_equal(&a.lib, &b.lib);
    // Before the first snapshot there is none; a library the store lacks is named.
    assert!(StoreSource::new(&store_b, Pick::AtOrBefore(None, first_time - 1)).is_err());
    let unknown = StoreSource::new(&store_b, Pick::Newest(Some("/elsewhere".into())))
        .err()
        .unwrap()
        .to_string();
    assert!(unknown.contains("no snapshot of /elsewhere"), "{unknown}");
}

#[test]
fn a_reorganisation_moves_under_one_percent_of_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path(), store::DEFAULT_PACK_SIZE);
    let a = Site::new(dir.path(), "a");
    genlib_create(&a.lib, 60, 3, 512 * KIB);
    let store_a = a.open_store(&objects, &url);
    let first = a.push(&store_a);
    objects.take();
    genlib_reorganise(&a.lib, "genre");
    let moved = a.push(&store_a);
    let (_, put, _) = objects.take();
    println!("reorganisation: {put} bytes put of {}", first.bytes);
    assert_eq!(moved.chunks_uploaded, 0, "{moved:?}");
    assert!(
        put * 100 < first.bytes,
        "a reorganisation put {put} bytes of a {}-byte library",
        first.bytes
    );
    let b = Site::new(dir.path(), "b");
    b.pull(&b.open_store(&objects, &url), Pick::Newest(None));
    assert_trees_equal(&a.lib, &b.lib);
}

#[test]
fn two_sites_pushing_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path(), 1 << 20);
    let a = Site::new(dir.path(), "a");
    let b = Site::new(dir.path(), "b");
    // The same seed: the two libraries share every chunk, so both pushes race on each.
    genlib_create(&a.lib, 24, 5, 256 * KIB);
    genlib_create(&b.lib, 24, 5, 256 * KIB);
    genlib_retag(&b.lib, 0.5, 9);
    let (store_a, store_b) = (a.open_store(&objects, &url), b.open_store(&objects, &url));
    std::thread::scope(|s| {
        let pa = s.spawn(|| a.push(&store_a));
        let pb = s.spawn(|| b.push(&store_b));
        assert!(pa.join().unwrap().snapshot.is_some());
        assert!(pb.join().unwrap().snapshot.is_some());
    });
    for (name, site) in [("c", &a), ("d", &b)] {
        let reader = Site::new(dir.path(), name);
        let pulled = reader.pull(
            &reader.open_store(&objects, &url),
            Pick::Newest(Some(site.library())),
        );
        assert_eq!(pulled.errors, 0);
        assert_trees_equal(&site.lib, &reader.lib);
    }
}

#[test]
fn a_repository_that_cuts_differently_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path(), store::DEFAULT_PACK_SIZE);
    let root = dir.path().join("odd");
    drop(Repository::init(&root).unwrap());
    fs::write(
        root.join("repo.toml"),
        "[chunker]\nalgorithm = \"fastcdc-2020\"\nmin_size = 4096\navg_size = 16384\nmax_size = 65536\n",
    )
    .unwrap();
    let repo = Repository::open(&root).unwrap();
    let lib = dir.path().join("lib");
    copy_tree(&fixtures_audio(), &lib);
    let origin = LocalOrigin::open(&lib, false).unwrap();
    let scanned = scan(
        &repo,
        &origin,
        &repo.chunker(),
        ScanOptions::default(),
        &NullSink,
    )
    .unwrap();
    let store = Store::open(objects.clone(), &url, &repo).unwrap();
    let mut chunks = LibraryChunks::new(&repo, &origin).unwrap();
    let refused = store::push(&repo, &store, scanned.snapshot, &mut chunks, &NullSink)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("cuts files with"), "{refused}");
    let (_, put, _) = objects.take();
    assert_eq!(put, 0);
}

#[test]
fn init_is_idempotent_and_refuses_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path(), store::DEFAULT_PACK_SIZE);
    let chunker = musicfs::repo::ChunkerConfig::for_new_repository();
    assert!(!store::init(&*objects, &url, &chunker, store::DEFAULT_PACK_SIZE).unwrap());
    let other = store::init(&*objects, &url, &chunker, 4 << 20).unwrap_err();
    assert!(
        other.to_string().contains("already a chunk store"),
        "{other}"
    );
    let empty = tempfile::tempdir().unwrap();
    let repo = Repository::init(&empty.path().join("repo")).unwrap().0;
    let nothing = Store::open(
        Arc::new(LocalObjects::new(empty.path().join("none"))),
        "file:///none",
        &repo,
    )
    .err()
    .unwrap();
    assert!(
        nothing.to_string().contains("not a musicfs chunk store"),
        "{nothing}"
    );

    // A repository of other chunking rules (audio by content, as before rules 5) may neither
    // push to nor pull from a store of the new rules: both are refused, naming both.
    let old = tempfile::tempdir().unwrap();
    let old_repo = old.path().join("repo");
    Repository::init(&old_repo).unwrap();
    let toml = fs::read_to_string(old_repo.join("repo.toml")).unwrap();
    fs::write(
        old_repo.join("repo.toml"),
        toml.replace("fastcdc-2020-fixed-pictures", "fastcdc-2020"),
    )
    .unwrap();
    let old_repo = Repository::open_existing(&old_repo).unwrap();
    let store = Store::open(objects.clone(), &url, &old_repo).unwrap();
    let refused = store.check_chunker(&old_repo).unwrap_err().to_string();
    assert!(
        refused.contains("fastcdc-2020 min") && refused.contains("fastcdc-2020-fixed-pictures min"),
        "{refused}"
    );
    assert!(Store::open(objects.clone(), &url, &repo)
        .unwrap()
        .check_chunker(&repo)
        .is_ok());
}

#[test]
fn a_damaged_pack_is_refused_and_nothing_of_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, url) = new_store(dir.path(), store::DEFAULT_PACK_SIZE);
    let a = Site::new(dir.path(), "a");
    genlib_create(&a.lib, 4, 2, 256 * KIB);
    a.push(&a.open_store(&objects, &url));
    // Flip a byte in the middle of the largest pack (of audio): some file's chunk is damaged,
    // while the trees and chunk lists (in their own pack) are whole.
    let path_of = |pack: &ObjectId| {
        let hex = pack.hex();
        dir.path().join("store/data").join(&hex[..2]).join(&hex)
    };
    let largest = objects
        .list(ObjectKind::StorePack)
        .unwrap()
        .into_iter()
        .max_by_key(|p| fs::metadata(path_of(p)).unwrap().len())
        .unwrap();
    let path = path_of(&largest);
    flip_byte_keep_mtime(&path, fs::metadata(&path).unwrap().len() / 3);
    let b = Site::new(dir.path(), "b");
    let store_b = b.open_store(&objects, &url);
    let dst = LocalOrigin::open(&b.lib, true).unwrap();
    let result = StoreSource::new(&store_b, Pick::Newest(None)).and_then(|mut source| {
        sync_from(
            &b.repo,
            &mut source,
            &dst,
            &b.repo.chunker(),
            SyncOptions::default(),
            &NullSink,
        )
    });
    let failed = match result {
        Err(e) => e.to_string(),
        Ok(summary) => {
            assert!(summary.errors > 0, "{summary:?}");
            String::new()
        }
    };
    assert!(
        failed.is_empty() || failed.contains("damaged store"),
        "{failed}"
    );
    assert!(b.lib.is_dir(), "the sync did not start");
    // Whatever was written is whole: every file at B is byte-identical to A's.
    for (rel, abs) in files_in(&b.lib) {
        assert_eq!(fs::read(abs).unwrap(), fs::read(a.lib.join(&rel)).unwrap());
    }
}

// --- crash safety ---------------------------------------------------------------------------

const CRASH_DIR: &str = "MUSICFS_STORE_CRASH_DIR";

/// The killed push: in a child process (this test run again with [`CRASH_DIR`] set and a
/// failpoint armed), scans site `a` under that directory and pushes it.
fn crash_child_push(dir: &Path) {
    let a = Site::open(dir, "a");
    let objects = Counting::new(&dir.join("store"));
    let url = format!("file://{}", dir.join("store").display());
    a.push(&a.open_store(&objects, &url));
}

#[test]
fn a_push_killed_at_any_point_leaves_the_store_readable_and_the_next_one_finishes() {
    if let Some(dir) = std::env::var_os(CRASH_DIR) {
        return crash_child_push(Path::new(&dir));
    }
    use std::os::unix::process::ExitStatusExt;
    let mut points: Vec<String> = Vec::new();
    for point in store::PUSH_POINTS {
        points.push(point.to_string());
    }
    // A later pack, and a delta that is not the last (DELTA_EVERY packs in).
    points.push("store-pack:5".into());
    points.push("store-index:2".into());
    let template = tempfile::tempdir().unwrap();
    genlib_create(&template.path().join("lib"), 40, 13, 512 * KIB);
    for point in points {
        let dir = tempfile::tempdir().unwrap();
        let (objects, url) = new_store(dir.path(), 1 << 20);
        let a = Site::new(dir.path(), "a");
        copy_tree(&template.path().join("lib"), &a.lib);
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "a_push_killed_at_any_point_leaves_the_store_readable_and_the_next_one_finishes",
                "--exact",
                "--nocapture",
            ])
            .env(CRASH_DIR, dir.path())
            .env("MUSICFS_FAILPOINT", &point)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(9), "{point}: the push was not killed");
        let packs_before = objects.list(ObjectKind::StorePack).unwrap().len();
        assert!(packs_before > 0, "{point}");
        objects.take();

        // Readable as it is: a fresh reader lists and merges everything.
        let reader = Site::new(dir.path(), "reader");
        let store_r = reader.open_store(&objects, &url);
        let snapshots = store_r.snapshots().unwrap();
        store_r.index().unwrap();
        if point == "store-snapshot" {
            // Killed after its last put: the push was whole.
            assert_eq!(snapshots.len(), 1);
        } else {
            assert!(snapshots.is_empty(), "{point}");
        }

        // The next push finishes, putting no pack that is there already.
        let store_a = a.open_store(&objects, &url);
        let full: u64 = tree_bytes(&a.lib);
        let resumed = a.push(&store_a);
        let (_, put, _) = objects.take();
        if point == "store-snapshot" {
            assert!(
                resumed.snapshot.is_none() && put == 0,
                "{point}: {resumed:?}"
            );
        } else {
            assert!(resumed.snapshot.is_some(), "{point}");
            assert_eq!(resumed.packs_found, reused(&point), "{point}: {resumed:?}");
            let packs_after = objects.list(ObjectKind::StorePack).unwrap().len();
            assert_eq!(
                (packs_after - packs_before) as u64,
                resumed.packs,
                "{point}: {resumed:?}"
            );
            assert!(put < full, "{point}: {put} bytes put again");
        }
        let b = Site::new(dir.path(), "b");
        let pulled = b.pull(&b.open_store(&objects, &url), Pick::Newest(None));
        assert_eq!(pulled.errors, 0, "{point}");
        assert_trees_equal(&a.lib, &b.lib);
    }
}

/// Packs a resumed push finds in the store already and does not put again: those the killed
/// push put but had not indexed yet (a delta is put after every 16 packs, and the kill at the
/// first delta comes right after it).
fn reused(point: &str) -> u64 {
    match point {
        "store-pack" => 1,
        "store-pack:5" => 5,
        _ => 0,
    }
}
