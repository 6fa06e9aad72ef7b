//! `Faulty`: a test-only wrapper that injects faults into any origin's file reads, as a
//! flaky network or a failed-over NFS server would: a handle that drops (every later call on
//! it fails with ECONNRESET), short reads, and stalls. Deterministic: faults come from a
//! counter, so a failing run repeats.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use musicfs::origin::{EntryStat, Origin, OriginFile, TempFile, WalkItem, WritableOrigin};

/// Which faults, how often.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Every `drop_every`-th read call drops its handle (0: never).
    pub drop_every: u64,
    /// Reads return at most half of what was asked, every other call.
    pub short_reads: bool,
    /// Every `stall_every`-th read waits 2 ms first (0: never).
    pub stall_every: u64,
}

/// Any writable origin with faults in its file reads.
pub struct Faulty {
    inner: Box<dyn WritableOrigin>,
    faults: Faults,
    calls: Arc<AtomicU64>,
    /// Handles dropped so far.
    pub drops: Arc<AtomicU64>,
}

impl Faulty {
    pub fn new(inner: Box<dyn WritableOrigin>, faults: Faults) -> Faulty {
        Faulty {
            inner,
            faults,
            calls: Arc::new(AtomicU64::new(0)),
            drops: Arc::new(AtomicU64::new(0)),
        }
    }
}

struct FaultyFile {
    inner: Box<dyn OriginFile>,
    faults: Faults,
    calls: Arc<AtomicU64>,
    drops: Arc<AtomicU64>,
    dropped: bool,
}

impl FaultyFile {
    /// Decides this call's fault: `Err` for a drop; `true` for a short read.
    fn fault(&mut self) -> io::Result<bool> {
        let reset = || io::Error::from(io::ErrorKind::ConnectionReset);
        if self.dropped {
            return Err(reset());
        }
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if self.faults.stall_every != 0 && n.is_multiple_of(self.faults.stall_every) {
            std::thread::sleep(Duration::from_millis(2));
        }
        if self.faults.drop_every != 0 && n.is_multiple_of(self.faults.drop_every) {
            self.dropped = true;
            self.drops.fetch_add(1, Ordering::Relaxed);
            return Err(reset());
        }
        Ok(self.faults.short_reads && n.is_multiple_of(2))
    }
}

impl Read for FaultyFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let short = self.fault()?;
        let len = if short {
            buf.len().div_ceil(2)
        } else {
            buf.len()
        };
        self.inner.read(&mut buf[..len])
    }
}

impl Seek for FaultyFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        if self.dropped {
            return Err(io::Error::from(io::ErrorKind::ConnectionReset));
        }
        self.inner.seek(to)
    }
}

impl OriginFile for FaultyFile {
    fn stat(&mut self) -> io::Result<EntryStat> {
        if self.dropped {
            return Err(io::Error::from(io::ErrorKind::ConnectionReset));
        }
        self.inner.stat()
    }

    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.fault()?;
        self.inner.read_exact_at(buf, offset)
    }
}

impl Origin for Faulty {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn display(&self, rel: &[u8]) -> PathBuf {
        self.inner.display(rel)
    }
    fn capabilities(&self) -> musicfs::origin::Capabilities {
        self.inner.capabilities()
    }
    fn local_root(&self) -> Option<&std::path::Path> {
        self.inner.local_root()
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.inner.walk(visit)
    }
    fn open(&self, rel: &[u8]) -> musicfs::Result<Box<dyn OriginFile>> {
        Ok(Box::new(FaultyFile {
            inner: self.inner.open(rel)?,
            faults: self.faults,
            calls: Arc::clone(&self.calls),
            drops: Arc::clone(&self.drops),
            dropped: false,
        }))
    }
    fn stat(&self, rel: &[u8]) -> musicfs::Result<Option<EntryStat>> {
        self.inner.stat(rel)
    }
}

impl WritableOrigin for Faulty {
    fn create_root(&self) -> musicfs::Result<()> {
        self.inner.create_root()
    }
    fn create_temp(&self, rel: &[u8]) -> musicfs::Result<Box<dyn TempFile>> {
        self.inner.create_temp(rel)
    }
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> musicfs::Result<()> {
        self.inner.set_meta(rel, mode, mtime_ns)
    }
    fn create_dir(&self, rel: &[u8]) -> musicfs::Result<()> {
        self.inner.create_dir(rel)
    }
    fn symlink(&self, rel: &[u8], target: &[u8]) -> musicfs::Result<()> {
        self.inner.symlink(rel, target)
    }
    fn rename(&self, from: &[u8], to: &[u8]) -> musicfs::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, rel: &[u8]) -> musicfs::Result<()> {
        self.inner.remove(rel)
    }
    fn sync_dir(&self, rel: &[u8]) -> musicfs::Result<()> {
        self.inner.sync_dir(rel)
    }
}
