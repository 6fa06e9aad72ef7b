//! Bandwidth limits: one budget of bytes per second for a whole run, and the wrappers that
//! spend it.
//!
//! [`Budget`] is shared by every stream of a run (all of a sync's reader threads, the agent
//! connection, the SFTP files), so `--bwlimit 10M` holds the run as a whole to 10 MiB/s, not
//! each stream. [`BwLimited`] wraps any origin and spends the budget on the bytes read from
//! its files and written to its temporary files; [`Limited`] wraps a byte stream (the remote
//! agent's connection). A caller puts the limit where bytes cross to or from the other side:
//! the source's reads of a local sync, the remote side of an SSH sync.
//!
//! The budget is a virtual clock (the generic cell rate algorithm): each spend moves the time
//! at which the budget is next free by `bytes / rate`, and a spender whose time is ahead of
//! now sleeps until it. Credit for idle time is capped at [`BURST`], so a long scan before the
//! transfer does not let the first second of it go through unlimited. Blocking code, blocking
//! waits: the transports here are driven by threads, not by an async executor, so an async
//! limiter (`async-speed-limit`) would have to be driven from blocking code anyway.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Capabilities, EntryStat, Origin, OriginFile, TempFile, WalkItem, WritableOrigin};
use crate::error::Result;

/// Idle time that may be spent at once.
pub const BURST: Duration = Duration::from_millis(100);

/// Bytes per second for a whole run.
#[derive(Debug)]
pub struct Budget {
    rate: u64,
    /// When the budget is next free.
    next: Mutex<Instant>,
}

impl Budget {
    /// A budget of `rate` bytes per second (at least 1).
    pub fn new(rate: u64) -> Arc<Budget> {
        Arc::new(Budget {
            rate: rate.max(1),
            next: Mutex::new(Instant::now()),
        })
    }

    /// The rate, in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Spends `bytes`, sleeping as long as the rate requires.
    pub fn spend(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let wait = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let from = (*next).max(now.checked_sub(BURST).unwrap_or(now));
            *next = from + Duration::from_secs_f64(bytes as f64 / self.rate as f64);
            next.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// Reads a rate the way rsync's `--bwlimit` does: a number, possibly fractional, with an
/// optional unit; no unit means KiB. `K`, `M`, `G` (and `KiB`…) are powers of 1024, `KB`,
/// `MB`, `GB` powers of 1000, `B` bytes. `0` means no limit (`None`).
pub fn parse_rate(text: &str) -> std::result::Result<Option<u64>, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a rate (examples: 500K, 10M, 1.5M)"))?;
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" | "k" | "kib" => 1024.0,
        "b" => 1.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use K, M or G)")),
    };
    let rate = value * multiplier;
    if !rate.is_finite() || rate >= u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(match rate as u64 {
        0 => None,
        r => Some(r),
    })
}

/// A byte stream whose reads and writes spend a [`Budget`].
pub struct Limited<S> {
    inner: S,
    budget: Arc<Budget>,
}

impl<S> Limited<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, budget: Arc<Budget>) -> Self {
        Limited { inner, budget }
    }
}

/// The most read or written at once, so that a large buffer does not wait long in one piece.
const SLICE: usize = 64 << 10;

impl<S: Read> Read for Limited<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len().min(SLICE);
        let n = self.inner.read(&mut buf[..len])?;
        self.budget.spend(n);
        Ok(n)
    }
}

impl<S: Write> Write for Limited<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len().min(SLICE);
        let n = self.inner.write(&buf[..len])?;
        self.budget.spend(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Any origin whose file reads and temporary-file writes spend a [`Budget`].
pub struct BwLimited<O: ?Sized> {
    inner: Box<O>,
    budget: Arc<Budget>,
}

impl<O: ?Sized> BwLimited<O> {
    /// Wraps `inner`.
    pub fn new(inner: Box<O>, budget: Arc<Budget>) -> Self {
        BwLimited { inner, budget }
    }
}

impl<O: ?Sized + Origin> Origin for BwLimited<O> {
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
        Ok(Box::new(LimitedFile {
            inner: self.inner.open(rel)?,
            budget: Arc::clone(&self.budget),
        }))
    }
    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        self.inner.stat(rel)
    }
}

impl<O: ?Sized + WritableOrigin> WritableOrigin for BwLimited<O> {
    fn create_root(&self) -> Result<()> {
        self.inner.create_root()
    }
    fn create_temp(&self, rel: &[u8]) -> Result<Box<dyn TempFile>> {
        Ok(Box::new(LimitedTemp {
            inner: self.inner.create_temp(rel)?,
            budget: Arc::clone(&self.budget),
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

struct LimitedFile {
    inner: Box<dyn OriginFile>,
    budget: Arc<Budget>,
}

impl Read for LimitedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len().min(SLICE);
        let n = self.inner.read(&mut buf[..len])?;
        self.budget.spend(n);
        Ok(n)
    }
}

impl Seek for LimitedFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

impl OriginFile for LimitedFile {
    fn stat(&mut self) -> io::Result<EntryStat> {
        self.inner.stat()
    }
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)?;
        self.budget.spend(buf.len());
        Ok(())
    }
}

struct LimitedTemp {
    inner: Box<dyn TempFile>,
    budget: Arc<Budget>,
}

impl Write for LimitedTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len().min(SLICE);
        let n = self.inner.write(&buf[..len])?;
        self.budget.spend(n);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl TempFile for LimitedTemp {
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
    /// Known bytes spend the budget too: whether the transport sends them is decided at
    /// commit (a server-side copy that fails falls back to sending them), and the cap must
    /// hold either way.
    fn write_known(
        &mut self,
        data: &[u8],
        target: &super::ChangeKey,
        target_offset: u64,
    ) -> io::Result<()> {
        self.inner.write_known(data, target, target_offset)?;
        self.budget.spend(data.len());
        Ok(())
    }
}

/// `--bwlimit`'s value for clap.
pub fn rate_arg(text: &str) -> std::result::Result<u64, String> {
    Ok(parse_rate(text)?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_rsync_reads_them() {
        assert_eq!(parse_rate("500K"), Ok(Some(500 * 1024)));
        assert_eq!(parse_rate("10M"), Ok(Some(10 << 20)));
        assert_eq!(parse_rate("1.5m"), Ok(Some(3 << 19)));
        assert_eq!(parse_rate("100"), Ok(Some(100 * 1024)));
        assert_eq!(parse_rate("2MB"), Ok(Some(2_000_000)));
        assert_eq!(parse_rate("1G"), Ok(Some(1 << 30)));
        assert_eq!(parse_rate("0"), Ok(None));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("10X").is_err());
        assert!(parse_rate("").is_err());
    }

    #[test]
    fn a_limited_file_offers_what_the_wrapped_file_offers_to_a_batch_commit() {
        use crate::origin::LocalOrigin;
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let plain = LocalOrigin::open(dir.path(), false).unwrap();
        let origin = BwLimited::new(
            Box::new(LocalOrigin::open(dir.path(), false).unwrap()),
            Budget::new(64 << 20),
        );
        let bare = plain.create_temp(b"a").unwrap();
        let mut limited = origin.create_temp(b"b").unwrap();
        assert_eq!(limited.shares_flush(), bare.shares_flush());
        bare.discard();
        limited.write_all(&[9u8; 100]).unwrap();
        limited.write_out(0o640, 0).unwrap();
        limited.commit(0o640, 0).unwrap();
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), vec![9u8; 100]);
    }

    #[test]
    fn a_budget_shared_by_threads_holds_the_rate_together() {
        // 4 threads spend 200 KiB each at 2 MiB/s: about 0.39 s in all, whatever the split.
        let budget = Budget::new(2 << 20);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let b = &budget;
                s.spawn(move || {
                    for _ in 0..50 {
                        b.spend(4096);
                    }
                });
            }
        });
        let took = start.elapsed().as_secs_f64();
        let want = (800 << 10) as f64 / (2 << 20) as f64 - BURST.as_secs_f64();
        assert!(took >= want * 0.95, "{took} s, expected at least {want} s");
    }
}
