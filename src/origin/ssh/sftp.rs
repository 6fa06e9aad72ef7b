//! SFTP (version 3, as OpenSSH serves it) behind a blocking, thread-safe API.
//!
//! Requests from several threads share one SFTP channel; each waits only for its own reply.
//! Reads are pipelined: a file read sequentially keeps [`READ_DEPTH`] requests in flight, and
//! writes are sent without waiting, [`WRITE_DEPTH`] at a time, their errors reported by a later
//! call. Memory is bounded by those depths times the request size.
//!
//! Round trips are what a far server costs, so requests that do not depend on each other go
//! out together: an open for reading and the file's `stat`; the two `READDIR`s a small
//! directory needs (its entries, then the end); the listings of many directories at once
//! ([`Sftp::read_dirs`], 32 at a time). Handles are closed without waiting.
//!
//! The SFTP client decodes names as UTF-8, replacing invalid bytes. A remote name that is not
//! UTF-8 therefore cannot be represented: such a name fails with `InvalidData` instead of being
//! returned altered, and paths we send must be UTF-8 (`InvalidInput` otherwise).

use std::io;
use std::sync::Arc;

use russh::client::Msg;
use russh::Channel;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::rawsession::Limits;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::session::Shared;
pub use super::sftp_file::SftpFile;
use crate::origin::EntryKind;

/// Largest read or write request (OpenSSH's own limit is 255 KiB).
const MAX_REQUEST: u64 = 256 * 1024;
/// Read request size when the server does not state its limits.
const DEFAULT_READ: u32 = 64 * 1024;
/// Write request size when the server does not state its limits (the protocol's minimum).
const DEFAULT_WRITE: u32 = 32 * 1024;
/// Largest packet accepted from the server.
const MAX_PACKET: u32 = 512 * 1024;
/// Read requests kept in flight by a sequential reader.
pub(super) const READ_DEPTH: usize = 8;
/// Write requests in flight per file.
pub(super) const WRITE_DEPTH: usize = 8;
/// Open handles per SFTP session. OpenSSH numbers handles from 0; the client library decodes
/// a handle as UTF-8 text, so numbers from 128 up would be mangled.
const MAX_HANDLES: usize = 100;

/// Directories [`Sftp::read_dirs`] lists at once.
const LISTINGS_IN_FLIGHT: usize = 32;

const POSIX_RENAME: &str = "posix-rename@openssh.com";

/// A directory's entries: each name with what `lstat` says of it.
pub type DirEntries = Vec<(Vec<u8>, SftpStat)>;

/// What `lstat` says of a remote entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SftpStat {
    /// Kind of entry.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch (SFTP carries whole seconds).
    pub mtime_ns: i64,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
}

impl SftpStat {
    pub(super) fn from_attrs(attrs: &FileAttributes) -> SftpStat {
        let permissions = attrs.permissions.unwrap_or(0);
        let kind = match permissions & 0o170000 {
            0o100000 => EntryKind::File,
            0o040000 => EntryKind::Dir,
            0o120000 => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
        SftpStat {
            kind,
            size: attrs.size.unwrap_or(0),
            mtime_ns: i64::from(attrs.mtime.unwrap_or(0)) * 1_000_000_000,
            mode: permissions & 0o7777,
        }
    }
}

pub(super) struct Inner {
    pub(super) shared: Arc<Shared>,
    pub(super) raw: Arc<RawSftpSession>,
    pub(super) posix_rename: bool,
    pub(super) fsync: bool,
    pub(super) read_len: u32,
    pub(super) write_len: u32,
    pub(super) handles: Arc<Semaphore>,
    /// Whatever must live as long as the session: the local process at the far end of a
    /// stream that is not a russh channel (dropped last).
    pub(super) _keep: Option<Box<dyn Send + Sync>>,
}

/// An SFTP session. Usable from several threads at once; every call blocks.
#[derive(Clone)]
pub struct Sftp {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sftp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sftp")
            .field("session", &self.inner.shared.label)
            .finish_non_exhaustive()
    }
}

/// Maps an SFTP failure to an I/O error of the matching kind.
pub(super) fn sftp_error(what: &str, e: SftpError) -> io::Error {
    let kind = match &e {
        SftpError::Status(status) => match status.status_code {
            StatusCode::NoSuchFile => io::ErrorKind::NotFound,
            StatusCode::PermissionDenied => io::ErrorKind::PermissionDenied,
            StatusCode::Eof => io::ErrorKind::UnexpectedEof,
            StatusCode::BadMessage => io::ErrorKind::InvalidInput,
            StatusCode::OpUnsupported => io::ErrorKind::Unsupported,
            StatusCode::NoConnection | StatusCode::ConnectionLost => {
                io::ErrorKind::ConnectionAborted
            }
            StatusCode::Ok | StatusCode::Failure => io::ErrorKind::Other,
        },
        SftpError::Timeout => io::ErrorKind::TimedOut,
        SftpError::IO(_) | SftpError::UnexpectedBehavior(_) => io::ErrorKind::ConnectionAborted,
        SftpError::UnexpectedPacket => io::ErrorKind::InvalidData,
        SftpError::Limited(_) => io::ErrorKind::InvalidInput,
    };
    let message = match &e {
        SftpError::Status(status) if !status.error_message.is_empty() => {
            status.error_message.clone()
        }
        _ => e.to_string(),
    };
    io::Error::new(kind, format!("sftp {what}: {message}"))
}

/// A path we send: it must be UTF-8.
fn path_text(path: &[u8]) -> io::Result<String> {
    String::from_utf8(path.to_vec()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: SFTP paths must be UTF-8",
                String::from_utf8_lossy(path)
            ),
        )
    })
}

/// A name the server sent, refused if the client library had to alter it.
fn name_bytes(name: String) -> io::Result<Vec<u8>> {
    if name.contains(char::REPLACEMENT_CHARACTER) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name}: remote name is not UTF-8, which SFTP cannot carry here"),
        ));
    }
    Ok(name.into_bytes())
}

/// SSH wire encoding of a string.
fn put_string(out: &mut Vec<u8>, value: &str) -> io::Result<()> {
    let len = u32::try_from(value.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path too long"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value.as_bytes());
    Ok(())
}

impl Sftp {
    pub(crate) fn start(channel: Channel<Msg>, shared: Arc<Shared>) -> io::Result<Sftp> {
        Sftp::start_over(channel.into_stream(), shared, None)
    }

    /// SFTP over any byte stream to an SFTP server (a russh channel, a local command's
    /// pipes); `keep` lives as long as the session.
    pub(crate) fn start_over<S>(
        stream: S,
        shared: Arc<Shared>,
        keep: Option<Box<dyn Send + Sync>>,
    ) -> io::Result<Sftp>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let config = russh_sftp::client::Config {
            max_packet_len: MAX_PACKET,
            request_timeout_secs: shared.io_timeout.as_secs().max(1),
            ..Default::default()
        };
        let started = shared.block_on_timeout(async {
            let mut raw = RawSftpSession::new_with_config(stream, config);
            let version = raw.init().await.map_err(|e| sftp_error("init", e))?;
            let has =
                |name: &str, ver: &str| version.extensions.get(name).is_some_and(|v| v == ver);
            let limits = if has(russh_sftp::extensions::LIMITS, "1") {
                let limits = raw.limits().await.map_err(|e| sftp_error("limits", e))?;
                let limits = Limits::from(limits);
                raw.set_limits(limits);
                Some(limits)
            } else {
                None
            };
            let request = |limit: Option<u64>, default: u32| match limit {
                Some(limit) => limit.min(MAX_REQUEST) as u32,
                None => default,
            };
            Ok::<_, io::Error>(Inner {
                shared: Arc::clone(&shared),
                raw: Arc::new(raw),
                posix_rename: has(POSIX_RENAME, "1"),
                fsync: has(russh_sftp::extensions::FSYNC, "1"),
                read_len: request(limits.and_then(|l| l.read_len), DEFAULT_READ).max(1),
                write_len: request(limits.and_then(|l| l.write_len), DEFAULT_WRITE).max(1),
                handles: Arc::new(Semaphore::new(MAX_HANDLES)),
                _keep: None,
            })
        })??;
        let started = Inner {
            _keep: keep,
            ..started
        };
        tracing::debug!(
            session = %started.shared.label,
            read_len = started.read_len,
            write_len = started.write_len,
            posix_rename = started.posix_rename,
            fsync = started.fsync,
            "sftp started"
        );
        Ok(Sftp {
            inner: Arc::new(started),
        })
    }

    fn run<T, F>(&self, future: F) -> io::Result<T>
    where
        F: std::future::Future<Output = io::Result<T>>,
    {
        self.inner.shared.block_on(future)?
    }

    /// Takes one of the session's handle slots, waiting at most the I/O timeout.
    async fn handle_slot(&self) -> io::Result<OwnedSemaphorePermit> {
        handle_slot(&self.inner).await
    }

    /// The absolute, resolved form of `path` (`realpath`).
    pub fn canonicalize(&self, path: &[u8]) -> io::Result<Vec<u8>> {
        let path = path_text(path)?;
        let name = self.run(async {
            self.inner
                .raw
                .realpath(path)
                .await
                .map_err(|e| sftp_error("realpath", e))
        })?;
        let file = name.files.into_iter().next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "sftp realpath: empty reply")
        })?;
        name_bytes(file.filename)
    }

    /// The entry's own attributes (symlinks not followed); `None` if it does not exist.
    pub fn lstat(&self, path: &[u8]) -> io::Result<Option<SftpStat>> {
        let path = path_text(path)?;
        self.run(self.lstat_text(path))
    }

    async fn lstat_text(&self, path: String) -> io::Result<Option<SftpStat>> {
        match self.inner.raw.lstat(path).await {
            Ok(attrs) => Ok(Some(SftpStat::from_attrs(&attrs.attrs))),
            Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => {
                Ok(None)
            }
            Err(e) => Err(sftp_error("lstat", e)),
        }
    }

    /// The directory's entries (without `.` and `..`) with their `lstat` attributes, in the
    /// server's order.
    pub fn read_dir(&self, path: &[u8]) -> io::Result<DirEntries> {
        let path = path_text(path)?;
        self.run(list_dir(Arc::clone(&self.inner), path))
    }

    /// The entries of each directory of `paths`, as [`Sftp::read_dir`] gives them, in the order
    /// of `paths`: up to `LISTINGS_IN_FLIGHT` (32) listings are under way at once, so that many
    /// small directories cost a few round trips, not a few each.
    pub fn read_dirs(&self, paths: &[Vec<u8>]) -> Vec<io::Result<DirEntries>> {
        let limit = Arc::new(Semaphore::new(LISTINGS_IN_FLIGHT));
        let started: Vec<io::Result<_>> = paths
            .iter()
            .map(|path| {
                let path = path_text(path)?;
                let inner = Arc::clone(&self.inner);
                let limit = Arc::clone(&limit);
                self.inner.shared.start(async move {
                    let _turn = limit.acquire_owned().await.map_err(|_| {
                        io::Error::new(io::ErrorKind::ConnectionAborted, "listing abandoned")
                    })?;
                    list_dir(inner, path).await
                })
            })
            .collect();
        started
            .into_iter()
            .map(|task| {
                let task = task?;
                self.inner
                    .shared
                    .block_on(task)?
                    .map_err(|e| io::Error::other(format!("sftp listing: {e}")))?
            })
            .collect()
    }

    /// A symlink's target.
    pub fn read_link(&self, path: &[u8]) -> io::Result<Vec<u8>> {
        let path = path_text(path)?;
        let name = self.run(async {
            self.inner
                .raw
                .readlink(path)
                .await
                .map_err(|e| sftp_error("readlink", e))
        })?;
        let file = name.files.into_iter().next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "sftp readlink: empty reply")
        })?;
        name_bytes(file.filename)
    }

    async fn open(
        &self,
        path: String,
        flags: OpenFlags,
        attrs: FileAttributes,
    ) -> io::Result<SftpFile> {
        let permit = self.handle_slot().await?;
        let handle = self
            .inner
            .raw
            .open(path, flags, attrs)
            .await
            .map_err(|e| sftp_error("open", e))?
            .handle;
        Ok(SftpFile::new(Arc::clone(&self.inner), handle, permit))
    }

    /// Opens a file for reading.
    pub fn open_read(&self, path: &[u8]) -> io::Result<SftpFile> {
        let path = path_text(path)?;
        self.run(self.open(path, OpenFlags::READ, FileAttributes::empty()))
    }

    /// Opens a file for reading and takes its `stat` (which follows symlinks, as the open
    /// does) in the same round trip: both requests go out before either reply is awaited.
    /// The server handles them one after the other, so a file replaced between the two shows
    /// as a stat that differs from the handle's own (`fstat`) later.
    pub fn open_read_stat(&self, path: &[u8]) -> io::Result<(SftpFile, SftpStat)> {
        let path = path_text(path)?;
        let raw = Arc::clone(&self.inner.raw);
        let stat_path = path.clone();
        let stat = self
            .inner
            .shared
            .start(async move { raw.stat(stat_path).await })?;
        let file = self.run(self.open(path, OpenFlags::READ, FileAttributes::empty()));
        let stat = self
            .inner
            .shared
            .block_on(stat)?
            .map_err(|e| io::Error::other(format!("sftp stat: {e}")))?
            .map_err(|e| sftp_error("stat", e))?;
        Ok((file?, SftpStat::from_attrs(&stat.attrs)))
    }

    /// Creates a new file for writing (`O_CREAT | O_EXCL | O_WRONLY`) with permissions `mode`;
    /// `AlreadyExists` if the path exists.
    pub fn create_new(&self, path: &[u8], mode: u32) -> io::Result<SftpFile> {
        let path = path_text(path)?;
        let attrs = FileAttributes {
            permissions: Some(mode & 0o7777),
            ..FileAttributes::empty()
        };
        let flags = OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE;
        self.run(async {
            match self.open(path.clone(), flags, attrs).await {
                Ok(file) => Ok(file),
                // SFTP v3 has no "exists" status; OpenSSH answers a generic failure.
                Err(e) if e.kind() == io::ErrorKind::Other => match self.lstat_text(path).await {
                    Ok(Some(_)) => Err(io::Error::new(io::ErrorKind::AlreadyExists, e.to_string())),
                    _ => Err(e),
                },
                Err(e) => Err(e),
            }
        })
    }

    /// Whether the server offers `posix-rename@openssh.com` and `fsync@openssh.com`.
    pub fn extensions(&self) -> (bool, bool) {
        (self.inner.posix_rename, self.inner.fsync)
    }

    /// Renames `from` to `to`, atomically replacing `to` if it exists (`posix-rename@openssh.com`;
    /// without that extension, a plain SFTP rename, which fails if `to` exists).
    pub fn rename_over(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        let (from, to) = (path_text(from)?, path_text(to)?);
        self.run(async {
            let raw = &self.inner.raw;
            if !self.inner.posix_rename {
                raw.rename(from, to)
                    .await
                    .map_err(|e| sftp_error("rename", e))?;
                return Ok(());
            }
            let mut data = Vec::with_capacity(8 + from.len() + to.len());
            put_string(&mut data, &from)?;
            put_string(&mut data, &to)?;
            match raw.extended(POSIX_RENAME, data).await {
                Ok(Packet::Status(status)) if status.status_code == StatusCode::Ok => Ok(()),
                Ok(Packet::Status(status)) => Err(sftp_error("rename", SftpError::Status(status))),
                Ok(_) => Err(sftp_error("rename", SftpError::UnexpectedPacket)),
                Err(e) => Err(sftp_error("rename", e)),
            }
        })
    }

    /// Sets permissions (`mode & 0o7777`) and both access and modification time (whole seconds
    /// of `mtime_ns`). Follows symlinks, as SFTP's setstat does.
    pub fn set_meta(&self, path: &[u8], mode: u32, mtime_ns: i64) -> io::Result<()> {
        let path = path_text(path)?;
        let seconds = u32::try_from(mtime_ns.div_euclid(1_000_000_000)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "modification time outside what SFTP can carry (1970 to 2106)",
            )
        })?;
        let attrs = FileAttributes {
            permissions: Some(mode & 0o7777),
            atime: Some(seconds),
            mtime: Some(seconds),
            ..FileAttributes::empty()
        };
        self.run(async {
            self.inner
                .raw
                .setstat(path, attrs)
                .await
                .map_err(|e| sftp_error("setstat", e))?;
            Ok(())
        })
    }

    /// Creates a directory with permissions `mode`; an existing directory is fine.
    pub fn mkdir(&self, path: &[u8], mode: u32) -> io::Result<()> {
        let path = path_text(path)?;
        let attrs = FileAttributes {
            permissions: Some(mode & 0o7777),
            ..FileAttributes::empty()
        };
        self.run(async {
            match self.inner.raw.mkdir(path.clone(), attrs).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let error = sftp_error("mkdir", e);
                    match self.lstat_text(path).await {
                        Ok(Some(stat)) if stat.kind == EntryKind::Dir => Ok(()),
                        Ok(Some(_)) => Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            error.to_string(),
                        )),
                        _ => Err(error),
                    }
                }
            }
        })
    }

    /// Creates a symlink at `path` pointing to `target`.
    pub fn symlink(&self, path: &[u8], target: &[u8]) -> io::Result<()> {
        let (path, target) = (path_text(path)?, path_text(target)?);
        self.run(async {
            // OpenSSH reads SSH_FXP_SYMLINK's two paths in the opposite order to the draft
            // standard, and the client sends them in the standard's order: swap them.
            self.inner
                .raw
                .symlink(target, path)
                .await
                .map_err(|e| sftp_error("symlink", e))?;
            Ok(())
        })
    }

    /// Removes a file or symlink.
    pub fn remove_file(&self, path: &[u8]) -> io::Result<()> {
        let path = path_text(path)?;
        self.run(async {
            self.inner
                .raw
                .remove(path)
                .await
                .map_err(|e| sftp_error("remove", e))?;
            Ok(())
        })
    }

    /// Removes an empty directory.
    pub fn remove_dir(&self, path: &[u8]) -> io::Result<()> {
        let path = path_text(path)?;
        self.run(async {
            self.inner
                .raw
                .rmdir(path)
                .await
                .map_err(|e| sftp_error("rmdir", e))?;
            Ok(())
        })
    }

    /// Flushes a directory's entries to disk, if the server can (`fsync@openssh.com` on the
    /// directory opened as a file). Best effort: a server that cannot is not an error.
    pub fn fsync_dir(&self, path: &[u8]) -> io::Result<()> {
        if !self.inner.fsync {
            return Ok(());
        }
        let path = path_text(path)?;
        self.run(async {
            let _slot = self.handle_slot().await?;
            let raw = &self.inner.raw;
            let handle = match raw
                .open(path, OpenFlags::READ, FileAttributes::empty())
                .await
            {
                Ok(handle) => handle.handle,
                Err(e) => {
                    tracing::debug!("fsync_dir: cannot open the directory: {e}");
                    return Ok(());
                }
            };
            if let Err(e) = raw.fsync(handle.as_str()).await {
                tracing::debug!("fsync_dir: {e}");
            }
            let _ = raw.close(handle).await;
            Ok(())
        })
    }
}

/// Takes one of the session's handle slots, waiting at most the I/O timeout.
async fn handle_slot(inner: &Inner) -> io::Result<OwnedSemaphorePermit> {
    let waiting = Arc::clone(&inner.handles).acquire_owned();
    match tokio::time::timeout(inner.shared.io_timeout, waiting).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the SFTP session is closed",
        )),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "too many SFTP files are open at once",
        )),
    }
}

/// Lists one directory: `OPENDIR`, then `READDIR`s two at a time (a directory that fits in
/// one reply is read, and its end seen, in one round trip), then a `CLOSE` not waited for.
///
/// Two `READDIR`s on one handle may reach the server in either order; it answers each with
/// the next entries or the end, so the pair's replies hold every entry up to the end either
/// way, and the loop stops only when it has both replies and one of them was the end.
async fn list_dir(inner: Arc<Inner>, path: String) -> io::Result<DirEntries> {
    let slot = handle_slot(&inner).await?;
    let raw = Arc::clone(&inner.raw);
    let handle = raw
        .opendir(path)
        .await
        .map_err(|e| sftp_error("opendir", e))?
        .handle;
    let listed = read_entries(&inner, &handle).await;
    // The slot is freed once the server has closed the handle.
    inner.shared.spawn(async move {
        let _ = raw.close(handle).await;
        drop(slot);
    });
    listed
}

/// The entries behind an open directory handle, until the server says the end.
async fn read_entries(inner: &Inner, handle: &str) -> io::Result<DirEntries> {
    let mut entries = Vec::new();
    loop {
        let raw = Arc::clone(&inner.raw);
        let second_handle = handle.to_string();
        let second = inner
            .shared
            .start(async move { raw.readdir(second_handle).await })?;
        let first = inner.raw.readdir(handle).await;
        let second = second
            .await
            .map_err(|e| io::Error::other(format!("sftp readdir: {e}")))?;
        let mut ended = false;
        for reply in [first, second] {
            match reply {
                Ok(name) => {
                    // A reply without names would make no progress: taken as the end, so a
                    // server that never says it cannot keep the walk here.
                    ended |= name.files.is_empty();
                    for file in name.files {
                        if file.filename == "." || file.filename == ".." {
                            continue;
                        }
                        let stat = SftpStat::from_attrs(&file.attrs);
                        entries.push((name_bytes(file.filename)?, stat));
                    }
                }
                Err(SftpError::Status(status)) if status.status_code == StatusCode::Eof => {
                    ended = true
                }
                Err(e) => return Err(sftp_error("readdir", e)),
            }
        }
        if ended {
            return Ok(entries);
        }
    }
}
