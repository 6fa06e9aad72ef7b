//! Retrying: one retry policy, and the wrapper that applies it to any origin.
//!
//! [`Policy`] is the only backoff in musicfs: exponential, capped, with full jitter, so that
//! many clients of one server do not retry in step. [`Retrying`] wraps any [`Origin`] and
//! retries its reads that fail with a transient error ([`ErrorKind::Transient`]): an open or a
//! `stat` is simply tried again (each looks the path up afresh), and an open file whose read
//! fails (a stale NFS handle, a dropped connection) is looked up and opened again by its path,
//! then read again at the same offset, as F8 asks. Only reads are retried: a write whose reply
//! was lost may have happened, so writes are passed through and a failed sync is retried whole
//! by its caller. Around an [`ObjectStore`] (a chunk store's objects), [`Retrying`] retries
//! every call under [`Policy::OBJECTS`]: each is idempotent by that trait's contract (a put
//! of an immutable, content-addressed object made twice stores the same object).

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Capabilities, EntryStat, Identity, Origin, OriginFile, TempFile, WalkItem, WritableOrigin,
};
use crate::error::{io_kind, ErrorKind, Result};
use crate::repo::{ObjectId, ObjectKind, ObjectStore};

/// How many times, and how long apart, an operation is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Retries after the first try (0: none).
    pub retries: u32,
    /// The first delay's upper bound.
    pub base: Duration,
    /// No delay is longer than this.
    pub cap: Duration,
}

impl Policy {
    /// For reads from an origin: 4 retries from 50 ms (about 1.5 s at most in all), enough
    /// for an NFS server's failover or a remounted share.
    pub const READS: Policy = Policy {
        retries: 4,
        base: Duration::from_millis(50),
        cap: Duration::from_secs(2),
    };

    /// For an object store's calls (S3 5xx, SlowDown, timeouts, resets): 5 retries from
    /// 200 ms, up to 10 s apart (about 20 s at most in all).
    pub const OBJECTS: Policy = Policy {
        retries: 5,
        base: Duration::from_millis(200),
        cap: Duration::from_secs(10),
    };

    /// For connections and whole remote syncs: `retries` retries, from up to 1 s, doubling
    /// up to 60 s.
    pub const fn connections(retries: u32) -> Policy {
        Policy {
            retries,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }

    /// How long to wait before retry `attempt` (0 for the first retry): a random delay up to
    /// `base * 2^attempt`, capped ("full jitter"), and never less than a tenth of its bound.
    pub fn delay(&self, attempt: u32) -> Duration {
        let bound = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        bound.mul_f64(0.1 + 0.9 * random_fraction())
    }

    /// Whether retry `attempt` (0 for the first retry) may still be made under a time budget:
    /// the retries are not spent (`cap`, when given: `--retries`) and less than `budget` has
    /// passed since `since` (the first failure, or the last progress after it). Reads the
    /// clock, nothing else.
    pub fn within(attempt: u32, cap: Option<u32>, budget: Duration, since: Instant) -> bool {
        cap.is_none_or(|cap| attempt < cap) && since.elapsed() < budget
    }

    /// Runs `op` until it succeeds, fails with an error that is not transient, or the retries
    /// are spent; waits between tries (ending early on a signal).
    pub fn run<T>(&self, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            match op() {
                Err(e) if e.is_transient() && attempt < self.retries => {
                    tracing::debug!("{e}; retrying");
                    crate::interrupt::sleep(self.delay(attempt))?;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

impl<O: ObjectStore> ObjectStore for Retrying<O> {
    fn put(&self, kind: ObjectKind, id: &ObjectId, bytes: &[u8]) -> Result<()> {
        self.policy.run(|| self.inner.put(kind, id, bytes))
    }
    fn read(&self, kind: ObjectKind, id: &ObjectId, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.policy.run(|| self.inner.read(kind, id, offset, len))
    }
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectId>> {
        self.policy.run(|| self.inner.list(kind))
    }
    fn size(&self, kind: ObjectKind, id: &ObjectId) -> Result<u64> {
        self.policy.run(|| self.inner.size(kind, id))
    }
    fn remove(&self, kind: ObjectKind, id: &ObjectId) -> Result<()> {
        self.policy.run(|| self.inner.remove(kind, id))
    }
}

/// A number in [0, 1), different on every call (not for cryptography).
fn random_fraction() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut h = blake3::Hasher::new();
    h.update(&nanos.to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    let bytes = h.finalize();
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes.as_bytes()[..8]);
    (u64::from_le_bytes(word) >> 11) as f64 / (1u64 << 53) as f64
}

/// Any origin, its reads retried under a [`Policy`].
pub struct Retrying<O> {
    inner: Arc<O>,
    policy: Policy,
}

impl<O> Retrying<O> {
    /// Wraps `inner`, retrying its reads under `policy`.
    pub fn new(inner: O, policy: Policy) -> Self {
        Retrying {
            inner: Arc::new(inner),
            policy,
        }
    }

    /// The wrapped origin.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

impl<O: Origin + 'static> Origin for Retrying<O> {
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
        self.inner.files_in_flight()
    }

    fn local_root(&self) -> Option<&Path> {
        self.inner.local_root()
    }

    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.inner.walk(visit)
    }
    fn walk_filtered(&self, filter: &crate::filter::Filter, visit: &mut dyn FnMut(WalkItem)) {
        self.inner.walk_filtered(filter, visit)
    }

    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        let file = self.policy.run(|| self.inner.open(rel))?;
        Ok(Box::new(RetryingFile {
            origin: Arc::clone(&self.inner),
            rel: rel.to_vec(),
            file,
            pos: 0,
            policy: self.policy,
            first: None,
        }))
    }

    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        self.policy.run(|| self.inner.stat(rel))
    }
}

impl<O: WritableOrigin + 'static> WritableOrigin for Retrying<O> {
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
        self.inner.sync_dir(rel)
    }
    fn sync_dirs(&self, rels: &[Vec<u8>]) -> Vec<(Vec<u8>, crate::Error)> {
        self.inner.sync_dirs(rels)
    }
    fn open_up(&self, rel: &[u8]) -> Result<()> {
        self.inner.open_up(rel)
    }
    fn lock(&self) -> Result<Option<Box<dyn Send>>> {
        self.inner.lock()
    }
    fn give_back(&self) -> Result<()> {
        self.inner.give_back()
    }
}

/// A file of a [`Retrying`] origin: a read that fails transiently opens the path again.
struct RetryingFile<O> {
    origin: Arc<O>,
    rel: Vec<u8>,
    file: Box<dyn OriginFile>,
    /// Where `Read` is, to resume there in a file opened again.
    pos: u64,
    policy: Policy,
    /// The file's identity, from the caller's `stat()` (scans take it before reading) or
    /// taken before the first `read`: a file opened again after a failure must match it, or a
    /// stream would be spliced from two versions. `read_exact_at` alone takes none: its
    /// callers (a sync's chunk reads) verify every chunk's hash instead.
    first: Option<(u64, i64, Option<Identity>)>,
}

/// What must not change between two handles of one file: size, mtime and the change key's
/// identity (device and inode, where the transport has them). Not the whole change key: a
/// POSIX ctime moves with a `chmod` that leaves the bytes alone.
fn identity(s: &EntryStat) -> (u64, i64, Option<Identity>) {
    (s.size, s.mtime_ns, s.change.identity())
}

impl<O: Origin> RetryingFile<O> {
    /// Runs `op` on the open file; after a transient failure, waits, opens the path again
    /// and runs it on the new file.
    fn again<T>(
        &mut self,
        mut op: impl FnMut(&mut dyn OriginFile) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut attempt = 0;
        loop {
            let e = match op(&mut *self.file) {
                Err(e) if io_kind(&e) == ErrorKind::Transient && attempt < self.policy.retries => e,
                other => return other,
            };
            tracing::debug!(
                "{}: {e}; opening it again",
                self.origin.display(&self.rel).display()
            );
            crate::interrupt::sleep(self.policy.delay(attempt))
                .map_err(|i| io::Error::new(io::ErrorKind::Interrupted, i.to_string()))?;
            attempt += 1;
            match self.origin.open(&self.rel) {
                Ok(mut file) => {
                    let now = file.stat().map(|s| identity(&s));
                    match (self.first, now) {
                        (Some(first), Ok(now)) if first != now => {
                            return Err(io::Error::other(
                                "changed while it was read (opened again after a failure)",
                            ))
                        }
                        (None, Ok(now)) => self.first = Some(now),
                        _ => {}
                    }
                    file.seek(SeekFrom::Start(self.pos))?;
                    self.file = file;
                }
                Err(reopen) if reopen.is_transient() => {}
                Err(reopen) => return Err(io::Error::other(reopen.to_string())),
            }
        }
    }
}

impl<O: Origin> RetryingFile<O> {
    /// The stat of this handle, which becomes the file's identity: asked again of the same
    /// handle after a transient failure, never of a file opened again, which could be another
    /// one while the identity is not known.
    fn stat_here(&mut self) -> io::Result<EntryStat> {
        let mut attempt = 0;
        loop {
            match self.file.stat() {
                Ok(stat) => {
                    self.first.get_or_insert(identity(&stat));
                    return Ok(stat);
                }
                Err(e) if io_kind(&e) == ErrorKind::Transient && attempt < self.policy.retries => {
                    crate::interrupt::sleep(self.policy.delay(attempt))
                        .map_err(|i| io::Error::new(io::ErrorKind::Interrupted, i.to_string()))?;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl<O: Origin> Read for RetryingFile<O> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A stream continued in a file opened again must be the same file: know what it is
        // (one `stat`, unless the caller already asked for it).
        if self.first.is_none() {
            self.stat_here()?;
        }
        let n = self.again(|f| f.read(buf))?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<O: Origin> Seek for RetryingFile<O> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.again(|f| f.seek(to))?;
        Ok(self.pos)
    }
}

impl<O: Origin> OriginFile for RetryingFile<O> {
    fn stat(&mut self) -> io::Result<EntryStat> {
        if self.first.is_none() {
            return self.stat_here();
        }
        self.again(|f| f.stat())
    }

    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.again(|f| f.read_exact_at(buf, offset))
    }
}

/// Any origin reached over one connection, which stops at the first transient failure: that
/// failure is kept, and every later call fails with it at once, without touching the
/// connection again. A sync over a link that dropped then ends quickly with one transient
/// error (which its caller retries whole, with a new connection) instead of one problem per
/// remaining file, each waiting for its own timeout.
///
/// Contract: until the first transient error, every call is the inner origin's, unchanged.
/// After it, [`Breaker::tripped`] returns it, `open`, `stat` and the writes fail with it
/// ([`crate::Error::Unreachable`], kind `Transient`), and `walk` visits nothing more. Only a
/// connection's failures trip it (`Unreachable`, and I/O errors of a transient kind: a
/// timeout, a closed session); other errors, a file that kept changing included, pass
/// through and trip nothing. A walk whose entries report problems asks the root's `stat`, so
/// that a listing cut short by the connection trips the breaker too. Reads of a file already open
/// are the file's own: put the breaker outside [`super::Spooled`], whose opens download
/// whole files, so that a read failing there is an open failing here. A temporary file it
/// hands out trips it when its commit fails for the connection, and refuses writes and
/// commits once it has tripped (the target is then untouched, as `TempFile` promises).
pub struct Breaker<O> {
    inner: O,
    trip: Trip,
}

/// A breaker's state, shared with the temporary files it hands out.
#[derive(Clone, Default)]
struct Trip {
    /// The first transient failure, as a message.
    tripped: Arc<std::sync::Mutex<Option<String>>>,
    /// Raised when it trips, for whoever reports what follows (see [`Breaker::signalling`]).
    signal: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Trip {
    fn tripped(&self) -> Option<String> {
        self.tripped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Trips on a connection's failure (not on a file that kept changing, which is transient
    /// too but says nothing about the connection).
    fn note(&self, e: &crate::Error) {
        let connection = match e {
            crate::Error::Unreachable { .. } => true,
            crate::Error::Io { source, .. } => io_kind(source) == ErrorKind::Transient,
            _ => false,
        };
        if connection {
            self.tripped
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_or_insert_with(|| e.to_string());
            if let Some(signal) = &self.signal {
                signal.store(true, Ordering::SeqCst);
            }
        }
    }
}

impl<O> Breaker<O> {
    /// Wraps `inner`.
    pub fn new(inner: O) -> Self {
        Breaker {
            inner,
            trip: Trip::default(),
        }
    }

    /// Also raises `signal` when it trips (a sink that stops reporting the problems which
    /// follow a dropped connection watches it).
    pub fn signalling(self, signal: Arc<std::sync::atomic::AtomicBool>) -> Self {
        Breaker {
            trip: Trip {
                signal: Some(signal),
                ..self.trip
            },
            inner: self.inner,
        }
    }

    /// The first transient failure met, if any.
    pub fn tripped(&self) -> Option<String> {
        self.trip.tripped()
    }

    /// The wrapped origin.
    pub fn into_inner(self) -> O {
        self.inner
    }
}

impl<O: Origin> Breaker<O> {
    /// The error every call fails with once tripped.
    fn refuse(&self) -> Result<()> {
        match self.tripped() {
            Some(message) => Err(crate::Error::Unreachable {
                origin: self.inner.url().to_owned(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Runs `op` unless tripped; trips on its transient failure.
    fn guard<T>(&self, op: impl FnOnce() -> Result<T>) -> Result<T> {
        self.refuse()?;
        let result = op();
        if let Err(e) = &result {
            self.trip.note(e);
        }
        result
    }
}

impl<O: Origin> Origin for Breaker<O> {
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
        self.inner.files_in_flight()
    }
    fn local_root(&self) -> Option<&Path> {
        self.inner.local_root()
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.walk_filtered(&crate::filter::Filter::none(), visit)
    }
    fn walk_filtered(&self, filter: &crate::filter::Filter, visit: &mut dyn FnMut(WalkItem)) {
        if self.refuse().is_err() {
            return;
        }
        let mut problems = false;
        self.inner.walk_filtered(filter, &mut |item| {
            if self.tripped().is_some() {
                return;
            }
            if matches!(item, WalkItem::Problem { .. }) && !problems {
                problems = true;
                // Was it the connection? Then the rest of the listing is not to be trusted.
                if self.guard(|| self.inner.stat(b"")).is_err() && self.tripped().is_some() {
                    return;
                }
            }
            visit(item)
        });
    }
    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        self.guard(|| self.inner.open(rel))
    }
    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        self.guard(|| self.inner.stat(rel))
    }
}

impl<O: WritableOrigin> WritableOrigin for Breaker<O> {
    fn create_root(&self) -> Result<()> {
        self.guard(|| self.inner.create_root())
    }
    fn create_temp(&self, rel: &[u8]) -> Result<Box<dyn TempFile>> {
        let file = self.guard(|| self.inner.create_temp(rel))?;
        Ok(Box::new(BreakerTemp {
            inner: file,
            trip: self.trip.clone(),
            origin: self.inner.url().to_owned(),
        }))
    }
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> Result<()> {
        self.guard(|| self.inner.set_meta(rel, mode, mtime_ns))
    }
    fn create_dir(&self, rel: &[u8]) -> Result<()> {
        self.guard(|| self.inner.create_dir(rel))
    }
    fn symlink(&self, rel: &[u8], target: &[u8]) -> Result<()> {
        self.guard(|| self.inner.symlink(rel, target))
    }
    fn rename(&self, from: &[u8], to: &[u8]) -> Result<()> {
        self.guard(|| self.inner.rename(from, to))
    }
    fn remove(&self, rel: &[u8]) -> Result<()> {
        self.guard(|| self.inner.remove(rel))
    }
    fn sync_dir(&self, rel: &[u8]) -> Result<()> {
        self.guard(|| self.inner.sync_dir(rel))
    }
    /// The origin's own (a local directory's is one flush for all), unless tripped: then each
    /// fails at once, as [`WritableOrigin::sync_dir`] does.
    fn sync_dirs(&self, rels: &[Vec<u8>]) -> Vec<(Vec<u8>, crate::Error)> {
        if self.refuse().is_err() {
            return rels
                .iter()
                .filter_map(|rel| self.sync_dir(rel).err().map(|e| (rel.clone(), e)))
                .collect();
        }
        let failed = self.inner.sync_dirs(rels);
        for (_, e) in &failed {
            self.trip.note(e);
        }
        failed
    }
    fn open_up(&self, rel: &[u8]) -> Result<()> {
        self.guard(|| self.inner.open_up(rel))
    }
    fn lock(&self) -> Result<Option<Box<dyn Send>>> {
        self.guard(|| self.inner.lock())
    }
    fn give_back(&self) -> Result<()> {
        self.inner.give_back()
    }
}

/// A temporary file of a [`Breaker`] origin: a commit that fails because the connection did
/// trips the breaker; writes and commits after it fail at once.
struct BreakerTemp {
    inner: Box<dyn TempFile>,
    trip: Trip,
    origin: String,
}

impl BreakerTemp {
    fn refused(&self) -> Option<io::Error> {
        self.trip
            .tripped()
            .map(|message| io::Error::new(io::ErrorKind::ConnectionAborted, message))
    }
}

impl io::Write for BreakerTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(e) = self.refused() {
            return Err(e);
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.refused() {
            return Err(e);
        }
        self.inner.flush()
    }
}

impl TempFile for BreakerTemp {
    fn commit(self: Box<Self>, mode: u32, mtime_ns: i64) -> Result<()> {
        if let Some(message) = self.trip.tripped() {
            self.inner.discard();
            return Err(crate::Error::Unreachable {
                origin: self.origin,
                message,
            });
        }
        let trip = self.trip.clone();
        let result = self.inner.commit(mode, mtime_ns);
        if let Err(e) = &result {
            trip.note(e);
        }
        result
    }
    fn write_out(&mut self, mode: u32, mtime_ns: i64) -> Result<()> {
        if let Some(message) = self.trip.tripped() {
            return Err(crate::Error::Unreachable {
                origin: self.origin.clone(),
                message,
            });
        }
        let result = self.inner.write_out(mode, mtime_ns);
        if let Err(e) = &result {
            self.trip.note(e);
        }
        result
    }
    fn shares_flush(&self) -> bool {
        self.inner.shares_flush()
    }
    fn discard(self: Box<Self>) {
        self.inner.discard()
    }
    fn reuses_target(&self, size: u64) -> bool {
        self.inner.reuses_target(size)
    }
    fn write_known(
        &mut self,
        data: &[u8],
        target: &super::ChangeKey,
        target_offset: u64,
    ) -> io::Result<()> {
        if let Some(e) = self.refused() {
            return Err(e);
        }
        self.inner.write_known(data, target, target_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects in a directory whose next `failures` calls fail: transiently (a dropped
    /// connection), or for good (permission denied) when `permanent`.
    struct Flaky {
        inner: crate::repo::LocalObjects,
        failures: AtomicU64,
        permanent: bool,
        calls: AtomicU64,
    }

    impl Flaky {
        fn fail(&self) -> Result<()> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let left = self.failures.load(Ordering::SeqCst);
            if left == 0 {
                return Ok(());
            }
            self.failures.store(left - 1, Ordering::SeqCst);
            let kind = match self.permanent {
                true => io::ErrorKind::PermissionDenied,
                false => io::ErrorKind::ConnectionReset,
            };
            Err(crate::Error::io(
                PathBuf::from("s3://box/x"),
                io::Error::from(kind),
            ))
        }
    }

    impl ObjectStore for Flaky {
        fn put(&self, kind: ObjectKind, id: &ObjectId, bytes: &[u8]) -> Result<()> {
            self.fail()?;
            self.inner.put(kind, id, bytes)
        }
        fn read(
            &self,
            kind: ObjectKind,
            id: &ObjectId,
            offset: u64,
            len: usize,
        ) -> Result<Vec<u8>> {
            self.fail()?;
            self.inner.read(kind, id, offset, len)
        }
        fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectId>> {
            self.fail()?;
            self.inner.list(kind)
        }
        fn size(&self, kind: ObjectKind, id: &ObjectId) -> Result<u64> {
            self.fail()?;
            self.inner.size(kind, id)
        }
        fn remove(&self, kind: ObjectKind, id: &ObjectId) -> Result<()> {
            self.fail()?;
            self.inner.remove(kind, id)
        }
    }

    #[test]
    fn object_store_calls_are_retried_on_transient_failures_only() {
        let dir = tempfile::tempdir().unwrap();
        let fast = Policy {
            retries: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        };
        let flaky = |failures: u64, permanent: bool| {
            Retrying::new(
                Flaky {
                    inner: crate::repo::LocalObjects::new(dir.path()),
                    failures: AtomicU64::new(failures),
                    permanent,
                    calls: AtomicU64::new(0),
                },
                fast,
            )
        };
        let id = ObjectId::of(b"pack");
        // Two resets, then the put and every later call go through.
        let objects = flaky(2, false);
        objects.put(ObjectKind::StorePack, &id, b"pack").unwrap();
        assert_eq!(objects.inner().calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            objects.read(ObjectKind::StorePack, &id, 0, 4).unwrap(),
            b"pack"
        );
        assert_eq!(objects.list(ObjectKind::StorePack).unwrap(), vec![id]);
        assert_eq!(objects.size(ObjectKind::StorePack, &id).unwrap(), 4);
        // More resets than retries: the last error comes back, transient.
        let objects = flaky(10, false);
        let e = objects.list(ObjectKind::StorePack).unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert_eq!(objects.inner().calls.load(Ordering::SeqCst), 4);
        // Permission denied is not tried again.
        let objects = flaky(1, true);
        assert!(objects.remove(ObjectKind::StorePack, &id).is_err());
        assert_eq!(objects.inner().calls.load(Ordering::SeqCst), 1);
        assert!(!objects
            .inner()
            .inner
            .list(ObjectKind::StorePack)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn delays_grow_are_capped_and_jittered() {
        let p = Policy {
            retries: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        for attempt in 0..10 {
            let bound = Duration::from_millis(100 << attempt.min(4)).min(Duration::from_secs(1));
            let d = p.delay(attempt);
            assert!(d <= bound && d >= bound / 10, "{attempt}: {d:?}");
        }
        let many: std::collections::HashSet<Duration> = (0..50).map(|_| p.delay(3)).collect();
        assert!(many.len() > 40, "no jitter: {many:?}");
    }

    #[test]
    fn only_transient_errors_are_retried() {
        let p = Policy {
            retries: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        };
        let mut tries = 0;
        let r: Result<()> = p.run(|| {
            tries += 1;
            Err(crate::Error::io(
                "x",
                io::Error::from_raw_os_error(libc::ESTALE),
            ))
        });
        assert!(r.is_err());
        assert_eq!(tries, 4);
        let mut tries = 0;
        let r: Result<()> = p.run(|| {
            tries += 1;
            Err(crate::Error::Locked {
                path: "d".into(),
                lock: "l".into(),
            })
        });
        assert!(r.is_err());
        assert_eq!(tries, 1, "a held lock is not retried");
        let mut tries = 0;
        let r = p.run(|| {
            tries += 1;
            if tries < 3 {
                Err(crate::Error::io(
                    "x",
                    io::Error::from(io::ErrorKind::ConnectionReset),
                ))
            } else {
                Ok(7)
            }
        });
        assert_eq!(r.unwrap(), 7);
    }

    /// An origin whose opened files fail their first `fail` reads with ESTALE, as a file
    /// handle of a failed-over NFS server does; opens are counted.
    struct Stale {
        inner: crate::origin::LocalOrigin,
        fail: std::sync::Mutex<u32>,
        opens: AtomicU64,
    }

    struct StaleFile {
        inner: Box<dyn OriginFile>,
        stale: bool,
    }

    impl Read for StaleFile {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.stale {
                return Err(io::Error::from_raw_os_error(libc::ESTALE));
            }
            self.inner.read(buf)
        }
    }
    impl Seek for StaleFile {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.inner.seek(to)
        }
    }
    impl OriginFile for StaleFile {
        fn stat(&mut self) -> io::Result<EntryStat> {
            self.inner.stat()
        }
        fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            if self.stale {
                return Err(io::Error::from_raw_os_error(libc::ESTALE));
            }
            self.inner.read_exact_at(buf, offset)
        }
    }

    impl Origin for Stale {
        fn url(&self) -> &str {
            self.inner.url()
        }
        fn display(&self, rel: &[u8]) -> PathBuf {
            self.inner.display(rel)
        }
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
            self.inner.walk(visit)
        }
        fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
            self.opens.fetch_add(1, Ordering::Relaxed);
            let mut fail = self.fail.lock().unwrap();
            let stale = *fail > 0;
            *fail = fail.saturating_sub(1);
            Ok(Box::new(StaleFile {
                inner: self.inner.open(rel)?,
                stale,
            }))
        }
        fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
            self.inner.stat(rel)
        }
    }

    #[test]
    fn a_stale_handle_is_opened_again_by_its_path_and_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("f"), &bytes).unwrap();
        let policy = Policy {
            retries: 4,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        };
        let stale = |fail| Stale {
            inner: crate::origin::LocalOrigin::open(dir.path(), false).unwrap(),
            fail: std::sync::Mutex::new(fail),
            opens: AtomicU64::new(0),
        };
        // Two stale handles, then a good one: read_exact_at and Read both get the bytes.
        let origin = Retrying::new(stale(2), policy);
        let mut f = origin.open(b"f").unwrap();
        let mut buf = vec![0u8; 1000];
        f.read_exact_at(&mut buf, 5000).unwrap();
        assert_eq!(buf, bytes[5000..6000]);
        assert_eq!(origin.inner().opens.load(Ordering::Relaxed), 3);
        let origin = Retrying::new(stale(1), policy);
        let mut f = origin.open(b"f").unwrap();
        f.seek(SeekFrom::Start(40_000)).unwrap();
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, bytes[40_000..]);
        // More stale handles than retries: the error comes back, still transient.
        let origin = Retrying::new(stale(10), policy);
        let mut f = origin.open(b"f").unwrap();
        let e = f.read_exact_at(&mut buf, 0).unwrap_err();
        assert_eq!(io_kind(&e), ErrorKind::Transient);
        assert_eq!(origin.inner().opens.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_time_budget_ends_retries_and_a_cap_too() {
        let now = Instant::now();
        assert!(Policy::within(100, None, Duration::from_secs(60), now));
        assert!(!Policy::within(3, Some(3), Duration::from_secs(60), now));
        assert!(Policy::within(2, Some(3), Duration::from_secs(60), now));
        let long_ago = now - Duration::from_secs(61);
        assert!(!Policy::within(0, None, Duration::from_secs(60), long_ago));
    }

    /// An origin whose connection drops after `ok` opens: every later call fails with a
    /// closed session; calls are counted.
    struct Dropping {
        inner: crate::origin::LocalOrigin,
        ok: u64,
        calls: AtomicU64,
    }

    impl Dropping {
        fn call(&self) -> Result<()> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.ok {
                return Ok(());
            }
            Err(crate::Error::io(
                "nas:/music/x",
                io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "sftp read: session closed",
                ),
            ))
        }
    }

    impl Origin for Dropping {
        fn url(&self) -> &str {
            self.inner.url()
        }
        fn display(&self, rel: &[u8]) -> PathBuf {
            self.inner.display(rel)
        }
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
            self.inner.walk(visit)
        }
        fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
            self.call()?;
            self.inner.open(rel)
        }
        fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
            self.call()?;
            self.inner.stat(rel)
        }
    }

    #[test]
    fn a_breaker_stops_at_the_first_dropped_connection() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"a").unwrap();
        let signal = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let breaker = Breaker::new(Dropping {
            inner: crate::origin::LocalOrigin::open(dir.path(), false).unwrap(),
            ok: 2,
            calls: AtomicU64::new(0),
        })
        .signalling(Arc::clone(&signal));
        assert!(breaker.open(b"a").is_ok());
        assert!(breaker.stat(b"a").unwrap().is_some());
        assert!(breaker.tripped().is_none());
        let err = breaker.open(b"a").err().expect("the connection dropped");
        assert!(err.is_transient());
        assert!(signal.load(Ordering::SeqCst));
        let first = breaker.tripped().expect("tripped");
        assert!(first.contains("session closed"), "{first}");
        // Every later call fails at once, without reaching the inner origin.
        for _ in 0..100 {
            let again = breaker.stat(b"a").expect_err("still tripped");
            assert!(again.is_transient(), "{again}");
        }
        let mut visited = 0;
        breaker.walk(&mut |_| visited += 1);
        assert_eq!(visited, 0);
        assert_eq!(breaker.into_inner().calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_breaker_syncs_many_directories_as_its_origin_does_and_trips_on_a_dropped_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (origin, reached) = crate::origin::forwarding_tests::recording(dir.path());
        let breaker = Breaker::new(origin);
        let dirs = |names: &[&str]| {
            names
                .iter()
                .map(|n| n.as_bytes().to_vec())
                .collect::<Vec<_>>()
        };
        // The origin's own call, once for them all (a local directory's one flush).
        assert!(breaker.sync_dirs(&dirs(&["a", "b", "c"])).is_empty());
        assert!(breaker.tripped().is_none());
        let failed = breaker.sync_dirs(&dirs(&["d", "lost"]));
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, b"lost");
        assert!(breaker.tripped().is_some(), "a dropped connection trips it");
        // Tripped: each directory fails at once, and the origin is not asked again.
        let refused = breaker.sync_dirs(&dirs(&["e", "f"]));
        assert_eq!(refused.len(), 2);
        assert!(refused.iter().all(|(_, e)| e.is_transient()));
        assert_eq!(reached.sync_dirs.load(Ordering::SeqCst), 2);
        assert_eq!(reached.sync_dir.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_breaker_lets_other_errors_through() {
        let dir = tempfile::tempdir().unwrap();
        let breaker = Breaker::new(crate::origin::LocalOrigin::open(dir.path(), false).unwrap());
        assert!(breaker.open(b"missing").is_err());
        assert!(breaker.tripped().is_none());
        assert_eq!(breaker.stat(b"missing").unwrap(), None);
    }
}
