//! Files of an NFS origin: [`NfsFile`], read by handle, and [`NfsTemp`], a temporary file
//! written next to its target and renamed over it.
//!
//! A read handle keeps the file handle it opened: a file replaced on the server makes its
//! next read fail with a stale handle (transient), and the retry wrapper opens the path again
//! and checks it is the same file before reading on; it never reads another file under an
//! old name. Writes are UNSTABLE, in the server's write size; the commit asks COMMIT for the
//! whole file and compares its write verifier with the one every write returned: a server
//! that restarted in between (a new verifier) may have lost the data, so the file is written
//! again from a local spool, then committed again.
//!
//! Never does: hold a whole file in memory, or leave the temporary file of a failed commit
//! when it can remove it.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use nfs3_client::nfs3_types::nfs3::{ftype3, nfs_fh3, writeverf3};

use super::client::{is_stale, transient};
use super::ops::{entry_stat, set_attrs, Shared};
use crate::error::{Error, Result};
use crate::origin::{EntryStat, MtimeResolution, OriginFile, TempFile};
use crate::relpath::{join, name, parent};

/// Times a file is written again after its server restarted, before giving up (transient).
const REWRITES_MAX: usize = 3;

/// A file opened for reading.
pub(crate) struct NfsFile {
    shared: Arc<Shared>,
    handle: nfs_fh3,
    /// Its path below the mounted directory and its file id, to find it again when its
    /// handle goes stale.
    path: Vec<u8>,
    fileid: u64,
    /// Its size when opened (for `SeekFrom::End`).
    size: u64,
    pos: u64,
    /// Bytes read ahead, starting at `buffered_at`.
    buffer: Vec<u8>,
    buffered_at: u64,
    shown: PathBuf,
}

impl NfsFile {
    pub(crate) fn new(
        shared: Arc<Shared>,
        handle: nfs_fh3,
        path: Vec<u8>,
        stat: &EntryStat,
        shown: PathBuf,
    ) -> Self {
        let fileid = match stat.change {
            crate::origin::ChangeKey::Posix { ino, .. } => ino,
            _ => 0,
        };
        let size = stat.size;
        NfsFile {
            shared,
            handle,
            path,
            fileid,
            size,
            pos: 0,
            buffer: Vec::new(),
            buffered_at: 0,
            shown,
        }
    }

    /// `e` as it is: its `errno` is what classifies it (a stale handle is transient), and the
    /// caller names the file.
    fn context(&self, e: io::Error) -> io::Error {
        tracing::trace!("{}: {e}", self.shown.display());
        e
    }

    /// `op` on the file's handle; when the handle is stale, once more on the handle its path
    /// has now, if that is still the same file (same file id). Another file, or none, at the
    /// path: the file changed while it was read, which no retry mends.
    fn on_handle<T>(&mut self, op: impl Fn(&Shared, &nfs_fh3) -> io::Result<T>) -> io::Result<T> {
        match op(&self.shared, &self.handle) {
            Err(e) if is_stale(&e) => {
                self.shared.forget(b"");
                let found = match self.shared.handle(parent(&self.path)) {
                    Ok(dir) => self.shared.lookup(&dir, name(&self.path))?,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
                    Err(e) => return Err(e),
                };
                match found {
                    Some((h, a)) if a.fileid == self.fileid && a.type_ == ftype3::NF3REG => {
                        self.handle = h;
                        op(&self.shared, &self.handle)
                    }
                    _ => Err(io::Error::other(format!(
                        "{}: changed while it was read (its handle went stale and the path \
                         holds another file now)",
                        self.shown.display()
                    ))),
                }
            }
            other => other,
        }
    }
}

impl Read for NfsFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let end = self.buffered_at + self.buffer.len() as u64;
        if self.pos < self.buffered_at || self.pos >= end {
            let (pos, size) = (self.pos, self.shared.rsize);
            let (data, _eof) = self
                .on_handle(|s, h| s.read(h, pos, size))
                .map_err(|e| self.context(e))?;
            self.buffer = data;
            self.buffered_at = self.pos;
            if self.buffer.is_empty() {
                return Ok(0);
            }
        }
        let from = (self.pos - self.buffered_at) as usize;
        let n = out.len().min(self.buffer.len() - from);
        out[..n].copy_from_slice(&self.buffer[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for NfsFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

impl OriginFile for NfsFile {
    fn stat(&mut self) -> io::Result<EntryStat> {
        self.on_handle(|s, h| s.getattr(h)).map(|a| entry_stat(&a))
    }

    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let want = (buf.len() - done).min(self.shared.rsize as usize) as u32;
            let at = offset + done as u64;
            let (data, _eof) = self
                .on_handle(|s, h| s.read(h, at, want))
                .map_err(|e| self.context(e))?;
            if data.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{}: shorter than expected", self.shown.display()),
                ));
            }
            let n = data.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&data[..n]);
            done += n;
        }
        Ok(())
    }
}

/// A file being written under a temporary name in its target's directory.
pub(crate) struct NfsTemp {
    shared: Arc<Shared>,
    handle: nfs_fh3,
    /// The directory (below the mounted one), the temporary name and the target's name.
    dir: Vec<u8>,
    temp: Vec<u8>,
    target: Vec<u8>,
    shown: PathBuf,
    resolution: MtimeResolution,
    /// Bytes not sent yet, sent once a write size is full.
    pending: Vec<u8>,
    /// Bytes sent so far.
    sent: u64,
    /// Every byte written, to write the file again after a server restart.
    spool: std::fs::File,
    /// The verifier of the first write; `changed` when a later one differed.
    verf: Option<writeverf3>,
    changed: bool,
}

impl NfsTemp {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        handle: nfs_fh3,
        dir: Vec<u8>,
        temp: Vec<u8>,
        target: Vec<u8>,
        shown: PathBuf,
        resolution: MtimeResolution,
    ) -> Result<NfsTemp> {
        let spool = match tempfile::tempfile() {
            Ok(f) => f,
            Err(e) => {
                let _ = shared.handle(&dir).and_then(|d| shared.remove(&d, &temp));
                return Err(Error::io(
                    shown,
                    io::Error::new(e.kind(), format!("cannot create a local spool file: {e}")),
                ));
            }
        };
        Ok(NfsTemp {
            shared,
            handle,
            dir,
            temp,
            target,
            shown,
            resolution,
            pending: Vec::new(),
            sent: 0,
            spool,
            verf: None,
            changed: false,
        })
    }

    /// Notes a write verifier: a change means the server restarted since the first write.
    fn note(&mut self, verf: writeverf3) {
        match self.verf {
            None => self.verf = Some(verf),
            Some(v) if v != verf => self.changed = true,
            Some(_) => {}
        }
    }

    /// Sends the pending bytes.
    fn send(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let verf = self.shared.write(&self.handle, self.sent, &self.pending)?;
        self.spool.write_all(&self.pending)?;
        self.note(verf);
        self.sent += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Writes the whole file again from the spool.
    fn rewrite(&mut self) -> io::Result<()> {
        tracing::debug!(
            "{}: the NFS server restarted during the write; writing the file again",
            self.shown.display()
        );
        self.verf = None;
        self.changed = false;
        self.spool.seek(SeekFrom::Start(0))?;
        let mut offset = 0u64;
        let mut chunk = vec![0u8; self.shared.wsize as usize];
        loop {
            let n = self.spool.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            let verf = self.shared.write(&self.handle, offset, &chunk[..n])?;
            self.note(verf);
            offset += n as u64;
        }
        Ok(())
    }

    /// Sends what is pending, makes the data stable, sets mode and mtime and renames the file
    /// over its target.
    fn finish(&mut self, mode: u32, mtime_ns: i64) -> io::Result<()> {
        self.send()?;
        let mut rewrites = 0;
        loop {
            let committed = self.shared.commit(&self.handle)?;
            let same = self.verf.is_none_or(|v| v == committed);
            if same && !self.changed {
                break;
            }
            if rewrites == REWRITES_MAX {
                return Err(transient(
                    "the NFS server kept restarting while the file was written",
                ));
            }
            rewrites += 1;
            self.rewrite()?;
        }
        let attrs = set_attrs(Some(mode), Some(self.resolution.truncate(mtime_ns)))?;
        self.shared.setattr(&self.handle, attrs)?;
        let shared = self.shared.clone();
        shared.fresh(|| {
            let dir = shared.handle(&self.dir)?;
            shared.rename(&dir, &self.temp, &dir, &self.target)
        })?;
        shared.forget(&join(&self.dir, &self.target));
        Ok(())
    }

    /// Removes the temporary file, best effort.
    fn remove_temp(&self) {
        let removed = self
            .shared
            .handle(&self.dir)
            .and_then(|d| self.shared.remove(&d, &self.temp));
        if let Err(e) = removed {
            tracing::debug!("{}: temporary file left: {e}", self.shown.display());
        }
    }
}

impl Write for NfsTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.shared.wsize as usize - self.pending.len();
        let n = buf.len().min(room);
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() >= self.shared.wsize as usize {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TempFile for NfsTemp {
    fn commit(mut self: Box<Self>, mode: u32, mtime_ns: i64) -> Result<()> {
        match self.finish(mode, mtime_ns) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.remove_temp();
                Err(Error::io(self.shown.clone(), e))
            }
        }
    }

    fn discard(self: Box<Self>) {
        self.remove_temp();
    }
}
