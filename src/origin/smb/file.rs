//! Open files of an SMB origin: [`SmbFile`], read at any offset through one open handle, and
//! [`SmbTemp`], a temporary file next to its target, written in large requests and renamed
//! over the target (ReplaceIfExists) at commit.
//!
//! Never does: read a file in small requests (reads go through a buffer of [`READ_AHEAD`]),
//! or leave its temporary file behind after a commit, a discard or a drop.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use smb2::{FileReader, FileTimes, FileWriter, RenameOptions};

use super::origin::{entry_stat, filetime_ns, ns_filetime, Session, Shared};
use super::smb_io;
use crate::error::{Error, Result};
use crate::origin::runtime::block_on;
use crate::origin::temp::temp_name;
use crate::origin::{EntryStat, OriginFile, TempFile};

/// What one sequential read asks the server for.
const READ_AHEAD: u64 = 1024 * 1024;
/// What a temporary file buffers before it sends a write.
const WRITE_BUFFER: usize = 1024 * 1024;
/// Opens of a file replaced while it was opened before giving up.
const OPEN_ATTEMPTS: u32 = 4;
/// Temporary names tried before giving up (each one is random).
const TEMP_ATTEMPTS: u32 = 8;

/// A file opened for reading.
pub(crate) struct SmbFile {
    shared: Arc<Shared>,
    /// The session the handle lives on.
    session: Arc<Session>,
    rel: Vec<u8>,
    stable: bool,
    reader: Option<FileReader>,
    /// The file as it was opened: what it is once its path names another.
    opened: EntryStat,
    size: u64,
    position: u64,
    /// Bytes read ahead, starting at `buffer_at`.
    buffer: Vec<u8>,
    buffer_at: u64,
}

impl SmbFile {
    /// Opens `path` (the share path of `rel`).
    pub(crate) fn open(
        shared: Arc<Shared>,
        rel: &[u8],
        path: String,
        stable: bool,
    ) -> io::Result<SmbFile> {
        // A file replaced between the open and the stat that names it is opened again (the
        // path then names the new file), a few times at most: a consistent answer, not a
        // retry of a failure.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match SmbFile::open_once(shared.clone(), rel, path.clone(), stable) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted && attempt < OPEN_ATTEMPTS => {}
                other => return other,
            }
        }
    }

    fn open_once(
        shared: Arc<Shared>,
        rel: &[u8],
        path: String,
        stable: bool,
    ) -> io::Result<SmbFile> {
        let session = shared.session()?;
        let reader = shared.run_on(&session, "open", |tree, conn| async move {
            tree.open_file_reader(conn, &path).await
        })?;
        let info = reader.info().clone();
        let close = |reader: FileReader| {
            drop(block_on(async move {
                let _ = reader.close().await;
            }))
        };
        if info.is_directory {
            close(reader);
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "a directory, not a file",
            ));
        }
        // The open's answer has no file id: the path's stat gives it, when it is still the
        // file opened (same size and change time); else the file was replaced in between.
        let mut opened = entry_stat(false, info.size, info.modified, info.changed, None);
        if stable {
            let now = match shared.stat(rel, stable) {
                Ok(now) => now,
                Err(e) => {
                    close(reader);
                    return Err(e);
                }
            };
            match now {
                Some(now)
                    if now.size == opened.size
                        && now.change.identity().is_some()
                        && ctime(&now) == Some(filetime_ns(info.changed)) =>
                {
                    opened.change = now.change;
                }
                _ => {
                    close(reader);
                    return Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "replaced while it was opened",
                    ));
                }
            }
        }
        Ok(SmbFile {
            size: reader.size(),
            shared,
            session,
            rel: rel.to_vec(),
            stable,
            reader: Some(reader),
            opened,
            position: 0,
            buffer: Vec::new(),
            buffer_at: 0,
        })
    }

    /// Up to `len` bytes at `offset` (fewer only at the end of the file).
    fn read_at(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let reader = self
            .reader
            .as_ref()
            .ok_or_else(|| io::Error::other("the file was closed"))?;
        let result =
            block_on(reader.read_at(offset, len)).and_then(|r| r.map_err(|e| smb_io("read", e)));
        if let Err(e) = &result {
            if super::session_lost(e) {
                // The handle went with the session: the next open signs in again.
                self.shared.lost(&self.session);
            }
        }
        result
    }
}

impl Read for SmbFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.position >= self.size {
            return Ok(0);
        }
        let end = self.buffer_at + self.buffer.len() as u64;
        if self.position < self.buffer_at || self.position >= end {
            let want = READ_AHEAD.max(buf.len() as u64);
            self.buffer = self.read_at(self.position, want)?;
            self.buffer_at = self.position;
            if self.buffer.is_empty() {
                return Ok(0);
            }
        }
        let start = (self.position - self.buffer_at) as usize;
        let n = buf.len().min(self.buffer.len() - start);
        buf[..n].copy_from_slice(&self.buffer[start..start + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for SmbFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
        };
        self.position = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position)
    }
}

impl OriginFile for SmbFile {
    /// The entry at the file's path now while the path still names the file opened (same
    /// file id), so a rewrite in place shows; once the path names another file or nothing,
    /// the file as it was opened (SMB has no query of an open handle's file id here).
    fn stat(&mut self) -> io::Result<EntryStat> {
        let now = self.shared.stat(&self.rel, self.stable)?;
        match now {
            Some(now) if !self.stable || now.change.identity() == self.opened.change.identity() => {
                Ok(now)
            }
            _ => Ok(self.opened.clone()),
        }
    }

    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            ));
        }
        let bytes = self.read_at(offset, buf.len() as u64)?;
        if bytes.len() != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than it was when opened",
            ));
        }
        buf.copy_from_slice(&bytes);
        Ok(())
    }
}

impl Drop for SmbFile {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            // Closed with an answer where possible; else the client queues the CLOSE.
            let _ = block_on(async move {
                let _ = reader.close().await;
            });
        }
    }
}

/// The change time of a stat made by [`entry_stat`] with a file id.
fn ctime(stat: &EntryStat) -> Option<i64> {
    match stat.change {
        crate::origin::ChangeKey::Posix { ctime_ns, .. } => Some(ctime_ns),
        _ => None,
    }
}

/// A temporary file next to its target (see [`TempFile`]).
pub(crate) struct SmbTemp {
    shared: Arc<Shared>,
    rel: Vec<u8>,
    /// Share paths of the temporary file and of its target.
    temp: String,
    target: String,
    writer: Option<FileWriter>,
    buffer: Vec<u8>,
}

impl SmbTemp {
    /// Creates a new temporary file for `target` (the share path of `rel`), exclusively.
    pub(crate) fn create(shared: Arc<Shared>, rel: &[u8], target: String) -> Result<SmbTemp> {
        let dir = match target.rfind('/') {
            Some(i) => &target[..=i],
            None => "",
        };
        let mut last = None;
        for attempt in 0..TEMP_ATTEMPTS {
            let temp = format!("{dir}{}", temp_name(rel, attempt));
            let path = temp.clone();
            match shared.run("create", |tree, conn| async move {
                tree.create_file_writer_exclusive(conn, &path).await
            }) {
                Ok(writer) => {
                    return Ok(SmbTemp {
                        shared,
                        rel: rel.to_vec(),
                        temp,
                        target,
                        writer: Some(writer),
                        buffer: Vec::with_capacity(WRITE_BUFFER),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(shared.error(rel, e)),
            }
        }
        let e = last.unwrap_or_else(|| io::Error::other("no temporary name was free"));
        Err(shared.error(rel, e))
    }

    /// Sends what is buffered.
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::other("the file was closed"))?;
        let data = std::mem::take(&mut self.buffer);
        let result =
            block_on(writer.write_chunk(&data)).and_then(|r| r.map_err(|e| smb_io("write", e)));
        self.buffer = data;
        self.buffer.clear();
        result
    }

    /// Closes the handle without flushing and removes the temporary file (best effort).
    fn remove(&mut self) {
        let writer = self.writer.take();
        let temp = self.temp.clone();
        let _ = block_on(async move {
            if let Some(writer) = writer {
                let _ = writer.abort().await;
            }
        });
        let _ = self.shared.run("delete", |tree, mut conn| async move {
            tree.delete_file(&mut conn, &temp).await
        });
    }

    fn finish(&mut self, mtime_ns: i64) -> io::Result<()> {
        let time = ns_filetime(mtime_ns)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an mtime before 1601"))?;
        self.send()?;
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| io::Error::other("the file was closed"))?;
        block_on(async move {
            // Times set on the writing handle are kept by its close.
            writer
                .set_times(FileTimes::new().set_modified(time))
                .await?;
            writer.finish().await.map(drop)
        })
        .and_then(|r| r.map_err(|e| smb_io("write", e)))?;
        let (from, to) = (self.temp.clone(), self.target.clone());
        self.shared.run("rename", |tree, mut conn| async move {
            tree.rename_with(
                &mut conn,
                &from,
                &to,
                RenameOptions::new().replace_if_exists(true),
            )
            .await
        })
    }
}

impl Write for SmbTemp {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= WRITE_BUFFER {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl TempFile for SmbTemp {
    /// Sets the mtime on the writing handle (the mode is not stored: SMB has none), closes
    /// it after a FLUSH, and renames it over the target with ReplaceIfExists.
    fn commit(mut self: Box<Self>, _mode: u32, mtime_ns: i64) -> Result<()> {
        match self.finish(mtime_ns) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.remove();
                Err(Error::io(self.shared.display(&self.rel), e))
            }
        }
    }

    fn discard(mut self: Box<Self>) {
        self.remove();
    }
}

impl Drop for SmbTemp {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.remove();
        }
    }
}
