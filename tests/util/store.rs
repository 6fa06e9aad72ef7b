//! Helpers for the chunk store's tests and benchmarks: an object store on a real directory
//! that counts what it is asked, and a "site" (a repository of its own and a library
//! directory) that pushes to and pulls from a store through the library API.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use musicfs::origin::{LocalOrigin, Origin};
use musicfs::repo::{LocalObjects, ObjectId, ObjectKind, ObjectStore, Repository};
use musicfs::report::NullSink;
use musicfs::scan::{scan, ScanOptions};
use musicfs::store::{self, LibraryChunks, Pick, PushSummary, Store, StoreSource};
use musicfs::sync::{sync_from, SyncOptions, SyncSummary};

/// A real object store (a directory, or any other) that counts what it is asked.
pub struct Counting {
    inner: Box<dyn ObjectStore>,
    calls: AtomicU64,
    put_bytes: AtomicU64,
    read_bytes: AtomicU64,
    /// Lists no index delta, as a store whose listings lag behind its writes.
    pub hide_deltas: AtomicBool,
}

impl Counting {
    /// Counts the calls to a directory's objects (`LocalObjects`).
    pub fn new(root: &Path) -> Arc<Counting> {
        Counting::over(Box::new(LocalObjects::new(root)))
    }

    /// Counts the calls to `inner`.
    pub fn over(inner: Box<dyn ObjectStore>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            calls: AtomicU64::new(0),
            put_bytes: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
            hide_deltas: AtomicBool::new(false),
        })
    }

    /// Calls, bytes put and bytes read since the last reset; resets them.
    pub fn take(&self) -> (u64, u64, u64) {
        (
            self.calls.swap(0, Ordering::SeqCst),
            self.put_bytes.swap(0, Ordering::SeqCst),
            self.read_bytes.swap(0, Ordering::SeqCst),
        )
    }
}

impl ObjectStore for Counting {
    fn put(&self, kind: ObjectKind, id: &ObjectId, bytes: &[u8]) -> musicfs::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.put_bytes
            .fetch_add(bytes.len() as u64, Ordering::SeqCst);
        self.inner.put(kind, id, bytes)
    }
    fn read(
        &self,
        kind: ObjectKind,
        id: &ObjectId,
        offset: u64,
        len: usize,
    ) -> musicfs::Result<Vec<u8>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.read_bytes.fetch_add(len as u64, Ordering::SeqCst);
        self.inner.read(kind, id, offset, len)
    }
    fn list(&self, kind: ObjectKind) -> musicfs::Result<Vec<ObjectId>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if kind == ObjectKind::StoreIndex && self.hide_deltas.load(Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        self.inner.list(kind)
    }
    fn size(&self, kind: ObjectKind, id: &ObjectId) -> musicfs::Result<u64> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.size(kind, id)
    }
    fn remove(&self, kind: ObjectKind, id: &ObjectId) -> musicfs::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.remove(kind, id)
    }
}

/// A new store of `pack_size` packs under `dir/store`, and its URL; the counters at zero.
pub fn new_store(dir: &Path, pack_size: u32) -> (Arc<Counting>, String) {
    let objects = Counting::new(&dir.join("store"));
    let url = format!("file://{}", dir.join("store").display());
    let chunker = musicfs::repo::ChunkerConfig::for_new_repository();
    assert!(store::init(&*objects, &url, &chunker, pack_size).unwrap());
    objects.take();
    (objects, url)
}

/// Bytes of every pack in the store.
pub fn pack_bytes(objects: &dyn ObjectStore) -> u64 {
    objects
        .list(ObjectKind::StorePack)
        .unwrap()
        .iter()
        .map(|id| objects.size(ObjectKind::StorePack, id).unwrap())
        .sum()
}

/// One site: a repository of its own, and a library directory.
pub struct Site {
    pub repo: Repository,
    pub lib: PathBuf,
}

impl Site {
    /// A site under `dir/name`: a new repository, and a library directory not made yet.
    pub fn new(dir: &Path, name: &str) -> Site {
        let root = dir.join(name);
        fs::create_dir_all(&root).unwrap();
        Site {
            repo: Repository::init(&root.join("repo")).unwrap().0,
            lib: root.join("lib"),
        }
    }

    /// The site opened on an existing repository under `dir/name`.
    pub fn open(dir: &Path, name: &str) -> Site {
        let root = dir.join(name);
        Site {
            repo: Repository::open(&root.join("repo")).unwrap(),
            lib: root.join("lib"),
        }
    }

    pub fn open_store(&self, objects: &Arc<Counting>, url: &str) -> Store {
        Store::open(objects.clone(), url, &self.repo).unwrap()
    }

    /// Scans the library and pushes the snapshot.
    pub fn push(&self, store: &Store) -> PushSummary {
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
        store::push(&self.repo, store, scanned.snapshot, &mut chunks, &NullSink).unwrap()
    }

    /// Pushes as [`Site::push`] does; the id of the snapshot object put.
    pub fn push_id(&self, store: &Store) -> String {
        self.push(store).snapshot.expect("the push put a snapshot")
    }

    /// The library's name in the store: its origin URL.
    pub fn library(&self) -> String {
        LocalOrigin::open(&self.lib, false)
            .unwrap()
            .url()
            .to_string()
    }

    /// Pulls `pick` into the library directory (made if missing), deleting what it lacks.
    pub fn pull(&self, store: &Store, pick: Pick) -> SyncSummary {
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
    }
}

/// The churn of the store's measurements and gc tests: a retag of 10 % of the tracks and the
/// deletion of every tenth album (at least one; which ones depends on `seed`).
pub fn churn(lib: &Path, seed: u64) {
    super::genlib_retag(lib, 0.1, seed);
    let mut albums: Vec<PathBuf> = super::list_tree(lib)
        .into_iter()
        .filter(|r| r.components().count() == 2 && lib.join(r).is_dir())
        .collect();
    albums.sort();
    for album in albums.iter().skip(seed as usize % 2).step_by(10) {
        fs::remove_dir_all(lib.join(album)).unwrap();
    }
}
