//! Every wrapper of an origin forwards what it does not change: the origin's own answer to
//! each method with a default (`files_in_flight`, `local_root`, `walk_filtered`, `sync_dirs`)
//! reaches the caller through any stack of wrappers. A wrapper that forgot one would fall back
//! to the trait's default silently (a local directory's one shared flush for many directories
//! becoming one `fsync` each), so each is checked here for every wrapper.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::bwlimit::{Budget, BwLimited};
use super::filtered::Filtered;
use super::metered::{Meter, Metered};
use super::retrying::{Breaker, Policy, Retrying};
use super::spooled::Spooled;
use super::{
    Capabilities, EntryStat, LocalOrigin, Origin, OriginFile, TempFile, WalkItem, WritableOrigin,
};
use crate::error::Result;
use crate::filter::Filter;

/// What no default gives: the number of files the recording origin asks to have in flight.
const IN_FLIGHT: usize = 37;

/// Calls that reached the origin under the wrappers.
#[derive(Default)]
pub(super) struct Reached {
    /// Calls of `sync_dirs`, one for many directories.
    pub sync_dirs: AtomicU64,
    /// Calls of `sync_dir`, one directory each.
    pub sync_dir: AtomicU64,
    pub walk_filtered: AtomicU64,
}

/// A local directory that answers the defaulted methods its own way and counts the calls.
/// Its many-directory sync touches nothing and fails transiently (a dropped connection) for
/// the directories whose names begin with `lost`.
pub(super) struct Recording {
    inner: LocalOrigin,
    reached: Arc<Reached>,
}

impl Origin for Recording {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn display(&self, rel: &[u8]) -> PathBuf {
        self.inner.display(rel)
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn files_in_flight(&self) -> usize {
        IN_FLIGHT
    }
    fn local_root(&self) -> Option<&Path> {
        self.inner.local_root()
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.inner.walk(visit)
    }
    fn walk_filtered(&self, filter: &Filter, visit: &mut dyn FnMut(WalkItem)) {
        self.reached.walk_filtered.fetch_add(1, Ordering::SeqCst);
        self.inner.walk_filtered(filter, visit)
    }
    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        self.inner.open(rel)
    }
    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        self.inner.stat(rel)
    }
}

impl WritableOrigin for Recording {
    fn create_root(&self) -> Result<()> {
        self.inner.create_root()
    }
    fn create_temp(&self, rel: &[u8]) -> Result<Box<dyn TempFile>> {
        self.inner.create_temp(rel)
    }
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> Result<()> {
        self.inner.set_meta(rel, mode, mtime_ns)
    }
    fn create_dir(&self, rel: &[u8]) -> Result<()> {
        self.inner.create_dir(rel)
    }
    fn symlink(&self, rel: &[u8], target: &[u8]) -> Result<()> {
        self.inner.symlink(rel, target)
    }
    fn rename(&self, from: &[u8], to: &[u8]) -> Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, rel: &[u8]) -> Result<()> {
        self.inner.remove(rel)
    }
    fn sync_dir(&self, rel: &[u8]) -> Result<()> {
        self.reached.sync_dir.fetch_add(1, Ordering::SeqCst);
        self.inner.sync_dir(rel)
    }
    fn sync_dirs(&self, rels: &[Vec<u8>]) -> Vec<(Vec<u8>, crate::Error)> {
        self.reached.sync_dirs.fetch_add(1, Ordering::SeqCst);
        rels.iter()
            .filter(|rel| rel.starts_with(b"lost"))
            .map(|rel| {
                let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
                (rel.clone(), crate::Error::io("nas:/music/lost", reset))
            })
            .collect()
    }
}

/// A recording origin over `dir`, where it makes `a/` and `b/`, and what reaches it.
pub(super) fn recording(dir: &Path) -> (Recording, Arc<Reached>) {
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::create_dir_all(dir.join("b")).unwrap();
    let reached = Arc::new(Reached::default());
    let origin = Recording {
        inner: LocalOrigin::open(dir, false).unwrap(),
        reached: Arc::clone(&reached),
    };
    (origin, reached)
}

/// The wrappers of a writable origin, each over a fresh recording origin in `dir`.
fn writable_wrappers(dir: &Path) -> Vec<(&'static str, Box<dyn WritableOrigin>, Arc<Reached>)> {
    let mut out: Vec<(&'static str, Box<dyn WritableOrigin>, Arc<Reached>)> = Vec::new();
    let (origin, reached) = recording(dir);
    let origin: Box<dyn WritableOrigin> = Box::new(origin);
    out.push((
        "BwLimited",
        Box::new(BwLimited::new(origin, Budget::new(1 << 30))),
        reached,
    ));
    let (origin, reached) = recording(dir);
    let origin: Box<dyn WritableOrigin> = Box::new(origin);
    out.push((
        "Metered",
        Box::new(Metered::new(origin, Meter::new())),
        reached,
    ));
    let (origin, reached) = recording(dir);
    let origin: Box<dyn WritableOrigin> = Box::new(origin);
    out.push((
        "Retrying",
        Box::new(Retrying::new(origin, Policy::READS)),
        reached,
    ));
    let (origin, reached) = recording(dir);
    let origin: Box<dyn WritableOrigin> = Box::new(origin);
    out.push(("Breaker", Box::new(Breaker::new(origin)), reached));
    let (origin, reached) = recording(dir);
    let origin: Box<dyn WritableOrigin> = Box::new(origin);
    out.push((
        "Filtered",
        Box::new(Filtered::new(origin, Filter::none())),
        reached,
    ));
    out
}

#[test]
fn every_writable_wrapper_gives_the_origins_own_answers() {
    let dir = tempfile::tempdir().unwrap();
    let dirs = vec![b"a".to_vec(), b"b".to_vec()];
    for (name, wrapped, reached) in writable_wrappers(dir.path()) {
        assert_eq!(
            wrapped.files_in_flight(),
            IN_FLIGHT,
            "{name}: files_in_flight"
        );
        assert_eq!(wrapped.local_root(), Some(dir.path()), "{name}: local_root");
        assert!(
            wrapped.sync_dirs(&dirs).is_empty(),
            "{name}: sync_dirs failed"
        );
        assert_eq!(
            reached.sync_dirs.load(Ordering::SeqCst),
            1,
            "{name}: sync_dirs did not reach the origin whole"
        );
        let mut seen = 0;
        wrapped.walk(&mut |_| seen += 1);
        assert!(seen >= 2, "{name}: the walk saw {seen} entries");
    }
}

#[test]
fn a_spooled_source_gives_the_origins_own_answers() {
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let (origin, reached) = recording(dir.path());
    let origin: Box<dyn Origin> = Box::new(OriginOnly(Box::new(origin)));
    let spooled = Spooled::new(origin, spool.path().to_path_buf());
    assert_eq!(spooled.files_in_flight(), IN_FLIGHT);
    assert_eq!(spooled.local_root(), Some(dir.path()));
    let filter = Filter::none();
    let mut seen = 0;
    spooled.walk_filtered(&filter, &mut |_| seen += 1);
    assert!(seen >= 2, "the walk saw {seen} entries");
    assert_eq!(reached.walk_filtered.load(Ordering::SeqCst), 1);
}

/// A writable origin seen as a source only, as a pull's source is.
struct OriginOnly(Box<dyn WritableOrigin>);

impl Origin for OriginOnly {
    fn url(&self) -> &str {
        self.0.url()
    }
    fn display(&self, rel: &[u8]) -> PathBuf {
        self.0.display(rel)
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn files_in_flight(&self) -> usize {
        self.0.files_in_flight()
    }
    fn local_root(&self) -> Option<&Path> {
        self.0.local_root()
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.0.walk(visit)
    }
    fn walk_filtered(&self, filter: &Filter, visit: &mut dyn FnMut(WalkItem)) {
        self.0.walk_filtered(filter, visit)
    }
    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        self.0.open(rel)
    }
    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        self.0.stat(rel)
    }
}
