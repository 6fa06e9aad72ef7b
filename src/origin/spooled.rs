//! Spooled: local copies of a remote origin's files, so that each crosses the network once.
//!
//! A sync from a remote origin without an agent reads every changed file twice: the scan
//! chunks it, then the sync copies the chunks it needs. [`Spooled`] wraps any origin and, on
//! the first open of a regular file, downloads it whole into a local directory and serves that
//! copy, to the scan and to every later open while the remote file's stat is unchanged. The
//! copy's stat is the remote stat it was taken at, so a scan records exactly the bytes it
//! chunked. A file that keeps changing while it is copied is served directly instead. The
//! copies live as long as the wrapper, or the [`Spool`] taken from it: dropping it removes them.
//!
//! Put it outside the wrappers that should see only remote reads: `Spooled(BwLimited(o))`
//! charges the bandwidth budget once per download, never for reads of the copy.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{Capabilities, EntryKind, EntryStat, Origin, OriginFile, WalkItem};
use crate::error::{Error, Result};

/// Read size when downloading a file into the spool.
const READ: usize = 256 * 1024;
/// Downloads tried before a file that keeps changing is read directly instead.
const ATTEMPTS: u32 = 3;

/// Any origin, its files read once into a local spool directory.
pub struct Spooled<O: ?Sized> {
    spool: Spool,
    inner: Box<O>,
}

/// The local copies of a [`Spooled`] origin, which can outlive it: a sync retried with a new
/// connection takes the spool of the failed attempt ([`Spooled::into_spool`]) into the next
/// one ([`Spooled::over`]), so that files already downloaded are not downloaded again. A copy
/// is served only while the remote stat still matches the one it was taken at, so a spool
/// carried over never serves stale bytes. Dropping it removes every copy.
pub struct Spool {
    dir: PathBuf,
    /// Complete copies: relative path → the stat the copy was taken at.
    copies: Mutex<HashMap<Vec<u8>, EntryStat>>,
    /// Downloads started, to name partial copies.
    downloads: AtomicU64,
}

impl Spool {
    /// An empty spool keeping its copies in `dir` (created when needed).
    pub fn new(dir: PathBuf) -> Spool {
        Spool {
            dir,
            copies: Mutex::new(HashMap::new()),
            downloads: AtomicU64::new(0),
        }
    }

    /// How many complete copies it holds.
    pub fn len(&self) -> usize {
        self.copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether it holds no copy.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let mut copies = self.copies.lock().unwrap_or_else(PoisonError::into_inner);
        for rel in copies.keys() {
            let _ = fs::remove_file(self.dir.join(blake3::hash(rel).to_hex().as_str()));
        }
        copies.clear();
    }
}

impl<O: ?Sized> Spooled<O> {
    /// Wraps `inner`, keeping copies in `dir` (created when needed).
    pub fn new(inner: Box<O>, dir: PathBuf) -> Self {
        Spooled::over(Spool::new(dir), inner)
    }

    /// Wraps `inner` with the copies of `spool` (taken from an earlier connection to the same
    /// directory).
    pub fn over(spool: Spool, inner: Box<O>) -> Self {
        Spooled { spool, inner }
    }

    /// Its copies, kept for another connection; the inner origin is dropped.
    pub fn into_spool(self) -> Spool {
        self.spool
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        self.spool.dir.join(blake3::hash(rel).to_hex().as_str())
    }

    /// The local copy of `rel`, when one is complete: its bytes are those of the file at the
    /// stat the last open reported.
    pub fn spooled(&self, rel: &[u8]) -> Option<PathBuf> {
        let size = self.spool.copies.lock().ok()?.get(rel)?.size;
        let path = self.path(rel);
        let meta = fs::metadata(&path).ok()?;
        (meta.is_file() && meta.len() == size).then_some(path)
    }

    /// Removes every copy.
    pub fn clear(&self) {
        let mut copies = self
            .spool
            .copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for rel in copies.keys() {
            let _ = fs::remove_file(self.path(rel));
        }
        copies.clear();
    }

    /// The existing copy of `rel`, when it was taken at `stat`.
    fn reuse(&self, rel: &[u8], stat: &EntryStat) -> Option<CopyFile> {
        let mut copies = self.spool.copies.lock().ok()?;
        if copies.get(rel) != Some(stat) {
            return None;
        }
        match File::open(self.path(rel)) {
            Ok(file) if file.metadata().is_ok_and(|m| m.len() == stat.size) => Some(CopyFile {
                file,
                stat: stat.clone(),
            }),
            _ => {
                copies.remove(rel);
                None
            }
        }
    }
}

impl<O: ?Sized + Origin> Spooled<O> {
    /// Downloads `rel` into the spool and opens the copy; `None` when the file kept changing
    /// while it was copied (the caller then reads it directly, from `file`).
    fn copy(
        &self,
        rel: &[u8],
        file: &mut Box<dyn OriginFile>,
        before: EntryStat,
    ) -> Result<Option<CopyFile>> {
        if let Some(copy) = self.reuse(rel, &before) {
            return Ok(Some(copy));
        }
        fs::create_dir_all(&self.spool.dir).map_err(|e| Error::io(&self.spool.dir, e))?;
        let target = self.path(rel);
        // Unique per download, so two opens of one file never write the same partial copy.
        let part = self.spool.dir.join(format!(
            "{}.{}.part",
            blake3::hash(rel).to_hex(),
            self.spool.downloads.fetch_add(1, Ordering::Relaxed)
        ));
        let copied = self
            .download_stable(rel, file, before, &part)
            .and_then(|stat| {
                let Some(stat) = stat else { return Ok(None) };
                fs::rename(&part, &target)
                    .and_then(|()| File::open(&target))
                    .map(|local| Some((local, stat)))
                    .map_err(|e| Error::io(&target, e))
            });
        let Some((local, stat)) = copied.inspect_err(|_| {
            let _ = fs::remove_file(&part);
        })?
        else {
            let _ = fs::remove_file(&part);
            return Ok(None);
        };
        self.spool
            .copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(rel.to_vec(), stat.clone());
        Ok(Some(CopyFile { file: local, stat }))
    }

    /// Copies the file into `part` until a copy starts and ends at the same stat, which it
    /// returns; `None` when the file changed during every attempt.
    fn download_stable(
        &self,
        rel: &[u8],
        file: &mut Box<dyn OriginFile>,
        mut before: EntryStat,
        part: &Path,
    ) -> Result<Option<EntryStat>> {
        let shown = self.inner.display(rel);
        let remote = |e| Error::io(&shown, e);
        for _ in 0..ATTEMPTS {
            let complete = download(file.as_mut(), part, before.size).map_err(|e| match e {
                Download::Local(e) => Error::io(part, e),
                Download::Remote(e) => remote(e),
            })?;
            let after = file.stat().map_err(remote)?;
            if complete && after == before {
                return Ok(Some(after));
            }
            // The file changed while it was copied: copy it again from a fresh handle.
            *file = self.inner.open(rel)?;
            before = file.stat().map_err(remote)?;
        }
        Ok(None)
    }
}

impl<O: ?Sized + Origin> Origin for Spooled<O> {
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

    /// Opens a regular file's local copy, downloading it first when there is none for its
    /// current stat.
    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        let mut file = self.inner.open(rel)?;
        let before = file.stat().map_err(|e| Error::io(self.display(rel), e))?;
        if before.kind == EntryKind::File {
            if let Some(copy) = self.copy(rel, &mut file, before)? {
                return Ok(Box::new(copy));
            }
        }
        Ok(file)
    }

    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        self.inner.stat(rel)
    }
}

enum Download {
    Local(io::Error),
    Remote(io::Error),
}

/// Copies `file` from offset 0 into `part`; `Ok(false)` when its length is not `size` (it
/// changed).
fn download(
    file: &mut dyn OriginFile,
    part: &Path,
    size: u64,
) -> std::result::Result<bool, Download> {
    let mut out = File::create(part).map_err(Download::Local)?;
    file.seek(SeekFrom::Start(0)).map_err(Download::Remote)?;
    let mut buf = vec![0u8; READ];
    let mut copied = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Download::Remote(e)),
        };
        copied += n as u64;
        if copied > size {
            return Ok(false);
        }
        out.write_all(&buf[..n]).map_err(Download::Local)?;
    }
    Ok(copied == size)
}

/// A complete local copy of a file. Its bytes never change, so its stat is the stat the copy
/// was taken at.
struct CopyFile {
    file: File,
    stat: EntryStat,
}

impl Read for CopyFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for CopyFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl OriginFile for CopyFile {
    fn stat(&mut self) -> io::Result<EntryStat> {
        Ok(self.stat.clone())
    }

    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::LocalOrigin;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Many threads open the same files through one spool at once, many times, under a
    /// deadline: each sees the whole file, and nothing waits on anything forever.
    #[test]
    fn concurrent_opens_of_one_spool_never_hang_and_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lib");
        fs::create_dir_all(&root).unwrap();
        let files: Vec<(Vec<u8>, Vec<u8>)> = (0..3u32)
            .map(|i| {
                let data: Vec<u8> = (0..(300_000 + i * 70_001)).map(|n| (n ^ i) as u8).collect();
                let name = format!("f{i}").into_bytes();
                fs::write(root.join(format!("f{i}")), &data).unwrap();
                (name, data)
            })
            .collect();
        let spooled = Spooled::new(
            Box::new(LocalOrigin::open(&root, false).unwrap()),
            dir.path().join("spool"),
        );
        let (done, finished) = mpsc::channel();
        std::thread::scope(|scope| {
            for t in 0..8usize {
                let (spooled, files, done) = (&spooled, &files, done.clone());
                scope.spawn(move || {
                    for round in 0..100usize {
                        let (name, data) = &files[(t + round) % files.len()];
                        let mut f = spooled.open(name).unwrap();
                        let mut got = Vec::new();
                        f.read_to_end(&mut got).unwrap();
                        assert!(&got == data, "thread {t}, round {round}");
                    }
                    done.send(()).unwrap();
                });
            }
            drop(done);
            for _ in 0..8 {
                finished
                    .recv_timeout(Duration::from_secs(120))
                    .expect("a reader hung on the spool");
            }
        });
        for (name, _) in &files {
            assert!(spooled.spooled(name).is_some());
        }
    }

    /// A spool taken from one wrapper into the next (a sync retried with a new connection)
    /// keeps its copies, serves them, and removes them when the last owner goes.
    #[test]
    fn a_spool_outlives_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lib");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("song"), vec![7u8; 100_000]).unwrap();
        let spool_dir = dir.path().join("spool");
        let first = Spooled::new(
            Box::new(LocalOrigin::open(&root, false).unwrap()),
            spool_dir.clone(),
        );
        let mut got = Vec::new();
        first.open(b"song").unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), 100_000);
        let copy = first.spooled(b"song").expect("spooled");
        let spool = first.into_spool();
        assert_eq!(spool.len(), 1);
        assert!(copy.exists(), "the copy went with the first connection");
        let second = Spooled::over(spool, Box::new(LocalOrigin::open(&root, false).unwrap()));
        assert_eq!(second.spooled(b"song"), Some(copy.clone()));
        let mut again = Vec::new();
        second
            .open(b"song")
            .unwrap()
            .read_to_end(&mut again)
            .unwrap();
        assert_eq!(again, got);
        drop(second);
        assert!(!copy.exists(), "the copy outlived the spool");
    }
}
