//! An open remote file: pipelined reads ahead of the position, writes sent without waiting.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::StatusCode;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use super::sftp::{sftp_error, Inner, SftpStat, READ_DEPTH, WRITE_DEPTH};

/// How far a read may run ahead of the position after an open or a seek elsewhere. Every
/// byte requested crosses the network whether it is read or not (dropping a request does not
/// stop the server's reply), so a reader that jumps about (an audio parser looking at a
/// header, then the end) asks for little, and one that reads on earns a deeper pipeline, as
/// TCP's slow start does.
const FIRST_WINDOW: u64 = 32 * 1024;

/// How many replies an open file keeps for reading again (at most 2 MiB with 256 KiB replies).
const RECENT: usize = 8;

/// What one read request brought back: data, or `None` at end of file.
type ReadReply = Result<Option<Vec<u8>>, SftpError>;

/// An open remote file. Blocking [`Read`], [`Write`] and [`Seek`]; the handle is closed on
/// drop, after any writes still in flight.
pub struct SftpFile {
    inner: Arc<Inner>,
    handle: String,
    permit: Option<OwnedSemaphorePermit>,
    /// Position of the next `read` or `write`.
    pos: u64,
    /// Data read ahead; `buffer[buffer_used..]` is at `pos`.
    buffer: Arc<Vec<u8>>,
    buffer_used: usize,
    /// Reads in flight, in file order: (offset, length, reply).
    reads: VecDeque<(u64, u32, JoinHandle<ReadReply>)>,
    /// Offset of the next read request to send.
    next_read: u64,
    /// The server said end of file at `pos`.
    eof: bool,
    /// The last replies read, newest last, at most [`RECENT`] of them: a parser that seeks
    /// back (to a header it looked at, or 8 KiB behind where it is) reads them again from
    /// here instead of over the network.
    recent: VecDeque<(u64, Arc<Vec<u8>>)>,
    /// Bytes that may be requested ahead of `pos`: [`FIRST_WINDOW`] after an open or a seek
    /// elsewhere (or the length the caller asks for, when more), doubled by each reply read in
    /// order, up to `READ_DEPTH` requests.
    window: u64,
    /// Writes in flight.
    writes: VecDeque<JoinHandle<Result<(), SftpError>>>,
}

impl std::fmt::Debug for SftpFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpFile")
            .field("session", &self.inner.shared.label)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl SftpFile {
    pub(super) fn new(inner: Arc<Inner>, handle: String, permit: OwnedSemaphorePermit) -> SftpFile {
        SftpFile {
            inner,
            handle,
            permit: Some(permit),
            pos: 0,
            buffer: Arc::default(),
            buffer_used: 0,
            recent: VecDeque::new(),
            reads: VecDeque::new(),
            next_read: 0,
            eof: false,
            window: FIRST_WINDOW,
            writes: VecDeque::new(),
        }
    }

    fn send_read(&self, offset: u64, len: u32) -> io::Result<JoinHandle<ReadReply>> {
        let raw = Arc::clone(&self.inner.raw);
        let handle = self.handle.clone();
        self.inner.shared.start(async move {
            match raw.read(handle, offset, len).await {
                Ok(data) => Ok(Some(data.data)),
                Err(SftpError::Status(status)) if status.status_code == StatusCode::Eof => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn wait_read(&self, reply: JoinHandle<ReadReply>, len: u32) -> io::Result<Option<Vec<u8>>> {
        let data = self
            .inner
            .shared
            .block_on(reply)?
            .map_err(|e| {
                io::Error::new(io::ErrorKind::ConnectionAborted, format!("sftp read: {e}"))
            })?
            .map_err(|e| sftp_error("read", e))?;
        match data {
            Some(data) if data.len() > len as usize => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "sftp read: the server sent more than was asked",
            )),
            // An empty reply would make no progress: take it as the end.
            Some(data) if data.is_empty() => Ok(None),
            other => Ok(other),
        }
    }

    /// Drops read-ahead state, for a seek or a write.
    fn forget_reads(&mut self) {
        for (_, _, reply) in self.reads.drain(..) {
            reply.abort();
        }
        self.buffer = Arc::default();
        self.buffer_used = 0;
        self.eof = false;
        self.window = FIRST_WINDOW;
    }

    /// Makes a kept reply that holds the position the buffer; whether there was one.
    fn reuse_recent(&mut self) -> bool {
        let pos = self.pos;
        let found = self
            .recent
            .iter()
            .rev()
            .find(|(offset, data)| *offset <= pos && pos < offset + data.len() as u64);
        match found {
            Some((offset, data)) => {
                self.buffer_used = (pos - offset) as usize;
                self.buffer = Arc::clone(data);
                true
            }
            None => false,
        }
    }

    /// The most that may be in flight ahead of the position.
    fn max_window(&self) -> u64 {
        u64::from(self.inner.read_len) * READ_DEPTH as u64
    }

    /// Waits for every write in flight; the first failure is returned.
    fn finish_writes(&mut self) -> io::Result<()> {
        let mut first_error = None;
        while let Some(write) = self.writes.pop_front() {
            let result = self
                .inner
                .shared
                .block_on(write)
                .and_then(|joined| joined.map_err(|e| io::Error::other(format!("sftp write: {e}"))))
                .and_then(|done| done.map_err(|e| sftp_error("write", e)));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The file's attributes, after writes in flight are done.
    pub fn fstat(&mut self) -> io::Result<SftpStat> {
        self.finish_writes()?;
        let raw = Arc::clone(&self.inner.raw);
        let handle = self.handle.clone();
        let attrs = self
            .inner
            .shared
            .block_on(async move { raw.fstat(handle).await })?
            .map_err(|e| sftp_error("fstat", e))?;
        Ok(SftpStat::from_attrs(&attrs.attrs))
    }

    /// Flushes the file to the server's disk (`fsync@openssh.com`); `Unsupported` if the server
    /// lacks that extension.
    pub fn fsync(&mut self) -> io::Result<()> {
        self.finish_writes()?;
        if !self.inner.fsync {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "sftp fsync: the server does not offer fsync@openssh.com",
            ));
        }
        let raw = Arc::clone(&self.inner.raw);
        let handle = self.handle.clone();
        self.inner
            .shared
            .block_on(async move { raw.fsync(handle).await })?
            .map_err(|e| sftp_error("fsync", e))?;
        Ok(())
    }

    /// Fills `buf` from `offset` (several requests in flight); `UnexpectedEof` if the file ends
    /// first. Leaves the position of `read` and `write` alone.
    pub fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.finish_writes()?;
        let read_len = self.inner.read_len as usize;
        let mut done = 0;
        while done < buf.len() {
            let mut pending = VecDeque::new();
            let mut queued = done;
            while pending.len() < READ_DEPTH && queued < buf.len() {
                let len = read_len.min(buf.len() - queued);
                let reply = self.send_read(offset + queued as u64, len as u32)?;
                pending.push_back((queued, len, reply));
                queued += len;
            }
            let result: io::Result<()> = (|| {
                while let Some((at, len, reply)) = pending.pop_front() {
                    let data = self.wait_read(reply, len as u32)?.ok_or_else(|| {
                        io::Error::new(io::ErrorKind::UnexpectedEof, "sftp read: file too short")
                    })?;
                    buf[at..at + data.len()].copy_from_slice(&data);
                    done = at + data.len();
                    if data.len() < len {
                        // A short reply: ask again from where it stopped.
                        break;
                    }
                }
                Ok(())
            })();
            for (_, _, reply) in pending.drain(..) {
                reply.abort();
            }
            result?;
        }
        Ok(())
    }
}

impl Read for SftpFile {
    /// Reads from the position, keeping requests in flight ahead of it: up to 8 (2 MiB) for
    /// a file read on in order, less after a seek (see `FIRST_WINDOW`).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.finish_writes()?;
        while self.buffer_used == self.buffer.len() {
            if self.eof {
                return Ok(0);
            }
            if self.reuse_recent() {
                break;
            }
            if self.reads.is_empty() {
                self.next_read = self.pos;
            }
            // What the caller asked for is wanted whatever the window: a reader that hands
            // in a large buffer gets it in one round trip rather than after the ramp.
            let window = self.window.max(buf.len() as u64).min(self.max_window());
            let limit = self.pos + window;
            while self.reads.len() < READ_DEPTH && self.next_read < limit {
                let len = u64::from(self.inner.read_len).min(window) as u32;
                let reply = self.send_read(self.next_read, len)?;
                self.reads.push_back((self.next_read, len, reply));
                self.next_read += u64::from(len);
            }
            let Some((offset, len, reply)) = self.reads.pop_front() else {
                continue;
            };
            let data = match self.wait_read(reply, len) {
                Ok(data) => data,
                Err(e) => {
                    self.forget_reads();
                    return Err(e);
                }
            };
            if offset > self.pos {
                // A gap (after a short reply): ask again from the position.
                self.drop_reads();
                continue;
            }
            let Some(data) = data else {
                self.drop_reads();
                self.eof = true;
                continue;
            };
            if data.len() < len as usize {
                // Requests after a short reply start past its end.
                self.drop_reads();
            }
            let end = offset + data.len() as u64;
            if end <= self.pos {
                // Bytes before a seek forward within what was in flight.
                continue;
            }
            let data = Arc::new(data);
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back((offset, Arc::clone(&data)));
            self.buffer_used = (self.pos - offset) as usize;
            self.buffer = data;
            self.window = (self.window * 2).min(self.max_window());
        }
        let available = &self.buffer[self.buffer_used..];
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.buffer_used += n;
        self.pos += n as u64;
        Ok(n)
    }
}

impl SftpFile {
    /// Drops the reads in flight, keeping the window.
    fn drop_reads(&mut self) {
        for (_, _, reply) in self.reads.drain(..) {
            reply.abort();
        }
    }
}

impl Write for SftpFile {
    /// Sends up to one request's worth at the position without waiting for the reply; up to
    /// 8 writes are in flight. A failed write is reported by a later call.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.reads.is_empty() || self.buffer_used < self.buffer.len() {
            self.forget_reads();
        }
        // What was read is no longer what the file holds.
        self.recent.clear();
        if self.writes.len() >= WRITE_DEPTH {
            if let Some(write) = self.writes.pop_front() {
                self.inner
                    .shared
                    .block_on(write)?
                    .map_err(|e| io::Error::other(format!("sftp write: {e}")))?
                    .map_err(|e| sftp_error("write", e))?;
            }
        }
        let n = buf.len().min(self.inner.write_len as usize);
        let data = buf[..n].to_vec();
        let raw = Arc::clone(&self.inner.raw);
        let handle = self.handle.clone();
        let offset = self.pos;
        let write = self
            .inner
            .shared
            .start(async move { raw.write(handle, offset, data).await.map(|_| ()) })?;
        self.writes.push_back(write);
        self.pos += n as u64;
        Ok(n)
    }

    /// Waits until every write has been acknowledged.
    fn flush(&mut self) -> io::Result<()> {
        self.finish_writes()
    }
}

impl Seek for SftpFile {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        self.finish_writes()?;
        let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "seek before the start");
        let target = match from {
            SeekFrom::Start(offset) => offset,
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta).ok_or_else(invalid)?,
            SeekFrom::End(delta) => self
                .fstat()?
                .size
                .checked_add_signed(delta)
                .ok_or_else(invalid)?,
        };
        let buffer_start = self.pos - self.buffer_used as u64;
        let buffer_end = buffer_start + self.buffer.len() as u64;
        if target == self.pos {
            return Ok(target);
        }
        if buffer_start <= target && target < buffer_end {
            // Within the reply being read.
            self.buffer_used = (target - buffer_start) as usize;
            self.pos = target;
        } else if target > self.pos && target < self.next_read && !self.reads.is_empty() {
            // Within the requests in flight: their replies up to it are passed over.
            self.buffer = Arc::default();
            self.buffer_used = 0;
            self.pos = target;
        } else {
            // Elsewhere: what is in flight is of no use, the kept replies may be.
            self.forget_reads();
            self.pos = target;
        }
        Ok(self.pos)
    }
}

impl Drop for SftpFile {
    fn drop(&mut self) {
        for (_, _, reply) in self.reads.drain(..) {
            reply.abort();
        }
        let writes: Vec<_> = self.writes.drain(..).collect();
        let raw = Arc::clone(&self.inner.raw);
        let handle = std::mem::take(&mut self.handle);
        let permit = self.permit.take();
        // Closing never blocks the dropping thread; the slot is freed once the handle is.
        self.inner.shared.spawn(async move {
            for write in writes {
                let _ = write.await;
            }
            let _ = raw.close(handle).await;
            drop(permit);
        });
    }
}
