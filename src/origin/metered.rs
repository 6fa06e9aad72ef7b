//! Counting what crosses to and from the other side of a run: the bytes read from a remote
//! origin's files and written to its temporary files, or received from and sent to a remote
//! agent, so that a summary reports what the network carried and not only the chunks the
//! destination lacked (a pull over SFTP, SMB or NFS reads every changed file whole to cut it
//! into chunks; a push writes every changed file whole).
//!
//! [`Meter`] holds the two counts of a run; [`Metered`] wraps any origin and counts its file
//! reads and temporary-file writes; [`MeteredStream`] wraps a byte stream (an agent's
//! connection). A caller puts them where bytes cross to or from the other side, outside a
//! spool (whose local copies are read again without crossing anything) and inside any retry,
//! so that the bytes of failed attempts count too. Payload only: a transport's own framing
//! (HTTP, SMB, RPC, SSH) is not seen here.
//!
//! Bytes given to [`TempFile::write_known`] are not counted as sent: a transport that can use
//! them copies them on the server (an object store's part copy); one that cannot sends them,
//! which the meter does not see.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{
    Capabilities, ChangeKey, EntryStat, Origin, OriginFile, TempFile, WalkItem, WritableOrigin,
};
use crate::error::Result;

/// The bytes a run received from and sent to the other side.
#[derive(Debug, Default)]
pub struct Meter {
    received: AtomicU64,
    sent: AtomicU64,
}

impl Meter {
    /// A meter at zero, to share between the wrappers of one run.
    pub fn new() -> Arc<Meter> {
        Arc::new(Meter::default())
    }

    /// Bytes read from the other side's files or received from its agent.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Bytes written to the other side's files or sent to its agent.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn add_received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn add_sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A byte stream whose reads count as received and whose writes count as sent.
pub struct MeteredStream<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S> MeteredStream<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, meter: Arc<Meter>) -> Self {
        MeteredStream { inner, meter }
    }
}

impl<S: Read> Read for MeteredStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add_received(n);
        Ok(n)
    }
}

impl<S: Write> Write for MeteredStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.meter.add_sent(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Any origin whose file reads count as received and whose temporary-file writes count as
/// sent. Everything else passes through unchanged.
pub struct Metered<O: ?Sized> {
    inner: Box<O>,
    meter: Arc<Meter>,
}

impl<O: ?Sized> Metered<O> {
    /// Wraps `inner`.
    pub fn new(inner: Box<O>, meter: Arc<Meter>) -> Self {
        Metered { inner, meter }
    }
}

impl<O: ?Sized + Origin> Origin for Metered<O> {
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
        Ok(Box::new(MeteredFile {
            inner: self.inner.open(rel)?,
            meter: Arc::clone(&self.meter),
        }))
    }
    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        self.inner.stat(rel)
    }
}

impl<O: ?Sized + WritableOrigin> WritableOrigin for Metered<O> {
    fn create_root(&self) -> Result<()> {
        self.inner.create_root()
    }
    fn create_temp(&self, rel: &[u8]) -> Result<Box<dyn TempFile>> {
        Ok(Box::new(MeteredTemp {
            inner: self.inner.create_temp(rel)?,
            meter: Arc::clone(&self.meter),
        }))
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

struct MeteredFile {
    inner: Box<dyn OriginFile>,
    meter: Arc<Meter>,
}

impl Read for MeteredFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add_received(n);
        Ok(n)
    }
}

impl Seek for MeteredFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

impl OriginFile for MeteredFile {
    fn stat(&mut self) -> io::Result<EntryStat> {
        self.inner.stat()
    }
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)?;
        self.meter.add_received(buf.len());
        Ok(())
    }
}

struct MeteredTemp {
    inner: Box<dyn TempFile>,
    meter: Arc<Meter>,
}

impl Write for MeteredTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.meter.add_sent(n);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl TempFile for MeteredTemp {
    fn commit(self: Box<Self>, mode: u32, mtime_ns: i64) -> Result<()> {
        self.inner.commit(mode, mtime_ns)
    }
    fn write_out(&mut self, mode: u32, mtime_ns: i64) -> Result<()> {
        self.inner.write_out(mode, mtime_ns)
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
        target: &ChangeKey,
        target_offset: u64,
    ) -> io::Result<()> {
        self.inner.write_known(data, target, target_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::LocalOrigin;

    #[test]
    fn reads_and_writes_through_the_wrapper_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![7u8; 10_000]).unwrap();
        let meter = Meter::new();
        let origin = Metered::new(
            Box::new(LocalOrigin::open(dir.path(), false).unwrap()),
            Arc::clone(&meter),
        );
        let mut file = origin.open(b"a").unwrap();
        let mut all = Vec::new();
        file.read_to_end(&mut all).unwrap();
        let mut some = [0u8; 100];
        file.read_exact_at(&mut some, 50).unwrap();
        assert_eq!((meter.received(), meter.sent()), (10_100, 0));

        let mut temp = origin.create_temp(b"b").unwrap();
        temp.write_all(&[1u8; 300]).unwrap();
        temp.write_known(&[2u8; 40], &ChangeKey::None, 0).unwrap();
        temp.commit(0o644, 0).unwrap();
        assert_eq!((meter.received(), meter.sent()), (10_100, 300));
        assert_eq!(std::fs::metadata(dir.path().join("b")).unwrap().len(), 340);

        // A caller that commits many files at once sees what the wrapped file offers.
        let plain = LocalOrigin::open(dir.path(), false).unwrap();
        let bare = plain.create_temp(b"c").unwrap();
        let mut wrapped = origin.create_temp(b"d").unwrap();
        assert_eq!(wrapped.shares_flush(), bare.shares_flush());
        bare.discard();
        wrapped.write_all(&[3u8; 20]).unwrap();
        wrapped.write_out(0o600, 0).unwrap();
        wrapped.commit(0o600, 0).unwrap();
        assert_eq!(std::fs::read(dir.path().join("d")).unwrap(), vec![3u8; 20]);
        assert_eq!((meter.received(), meter.sent()), (10_100, 320));

        let mut stream = MeteredStream::new(io::Cursor::new(vec![0u8; 64]), Arc::clone(&meter));
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).unwrap();
        stream.write_all(b"hello").unwrap();
        assert_eq!((meter.received(), meter.sent()), (10_164, 325));
    }
}
