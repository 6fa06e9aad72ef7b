//! A local directory. NFS and SMB mounts are local directories too, so stale-handle and
//! not-connected errors (ESTALE, ENOTCONN) are answered here, inside the transport, by looking
//! the path up again from the root, with [`Policy::READS`]'s backoff between tries (a signal
//! ends the waiting): every path operation (walk, list, `stat`, `open`, the idempotent writes),
//! and every operation on an open file, which is opened again by its path, checked to be the
//! same version (size and mtime; else it fails saying the file changed, never mixing two
//! versions) and read on at the same offset. A temporary file whose handle goes stale may be
//! gone on the server: it fails (transiently) and is never committed. `EIO` is not retried:
//! a failing disk answers it too, and a soft NFS mount that timed out says `ETIMEDOUT` with
//! `softerr` (transient, retried by [`super::Retrying`]). This module never decides anything
//! by the kind of file system it is on.
//!
//! Other file systems mounted inside the directory: a musicfs mount (`fuse.musicfs`, found by
//! device number in the mount table, see [`super::mountinfo`]) is never entered, listed,
//! written or removed: the walk leaves it out, as rsync leaves out an excluded entry, and
//! logs it at debug level. It is no problem and does not make a scan or sync partial. Any
//! other mount is walked through, unless [`LocalOrigin::one_file_system`] is set (rsync's
//! `-x`): then its mount point is listed as an empty directory, and removing a tree never
//! enters it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod walk;

use super::group_commit::{GroupCommit, Member, Ticket};
use super::mountinfo::LazyMountTable;
use super::temp::temp_name;
use super::{
    Capabilities, ChangeKey, EntryKind, EntryStat, MtimeResolution, Origin, OriginFile, Policy,
    TempFile, WalkItem, WritableOrigin,
};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::relpath::RelPath;

/// A directory on a local filesystem.
#[derive(Clone, Debug)]
pub struct LocalOrigin {
    root: PathBuf,
    url: String,
    /// Directories made writable (and readable) for this process while it works inside them,
    /// with the modes to give back: see [`LocalOrigin::lend`].
    lent: Arc<Mutex<BTreeMap<PathBuf, u32>>>,
    /// Stay on the file system of each directory walked into (rsync's `-x`).
    one_file_system: bool,
    /// The flush that temporary files committed together share, opened with the first
    /// one (`None` inside: each file `fsync`s on its own); one for every clone.
    group: Arc<OnceLock<Option<Arc<GroupCommit>>>>,
}

/// The backoff between tries after a stale handle or a lost connection to a mount's server.
const STALE: Policy = Policy::READS;

/// Whether a network mount lost the file (a stale NFS handle: the server no longer knows it
/// by that handle) or its server (`ENOTCONN`: a CIFS session, or a FUSE server, gone): a
/// fresh lookup by path may find it again.
fn is_stale(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ESTALE | libc::ENOTCONN))
}

/// Waits before retry `attempt` under [`STALE`]; a signal ends the wait with an `Interrupted`
/// error (whose caller stops: [`crate::interrupt::check`] then names the signal).
fn pause(attempt: u32) -> io::Result<()> {
    crate::interrupt::sleep(STALE.delay(attempt))
        .map_err(|i| io::Error::new(io::ErrorKind::Interrupted, i.to_string()))
}

/// Runs a path operation (`open`, `lstat`, a listing) on `path` again under [`STALE`] when a
/// network mount answers ESTALE/ENOTCONN: each try looks the path up afresh from `/`, so a
/// stale root is looked up again too (the origin holds no descriptor of it). What the last
/// try gives is returned: still ESTALE/ENOTCONN (transient) once the retries are spent.
fn retry_stale<T>(path: &Path, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut attempt = 0;
    loop {
        match op() {
            Err(e) if is_stale(&e) && attempt < STALE.retries => {
                tracing::debug!(
                    "{}: {}; looking it up again",
                    path.display(),
                    crate::error::io_reason(&e)
                );
                pause(attempt)?;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// An I/O error of `path` as the library's error, an interrupted wait as
/// [`Error::Interrupted`].
fn path_error(path: &Path, e: io::Error) -> Error {
    match crate::interrupt::cause() {
        Some(cause) if e.kind() == io::ErrorKind::Interrupted => Error::Interrupted { cause },
        _ => Error::io(path, e),
    }
}

/// Whether a lookup failed because the entry is not there: no such name, or a file where the
/// path needs a directory (`song.flac/x`).
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Converts metadata into our stat record.
pub(crate) fn entry_stat(meta: &fs::Metadata) -> EntryStat {
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        EntryKind::File
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    };
    EntryStat {
        kind,
        size: meta.len(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        change: ChangeKey::Posix {
            dev: meta.dev(),
            ino: meta.ino(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        },
        mode: meta.mode() & 0o7777,
    }
}

/// The `SystemTime` of a nanosecond timestamp.
pub(crate) fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

impl LocalOrigin {
    /// An origin rooted at `root`, which must be an existing directory unless `may_create`.
    pub fn open(root: &Path, may_create: bool) -> Result<Self> {
        let meta = match retry_stale(root, || fs::metadata(root)) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound && may_create => None,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(Error::InvalidInput(format!(
                    "{}: no such directory",
                    root.display()
                )))
            }
            Err(e) => {
                return Err(Error::Unreachable {
                    origin: root.display().to_string(),
                    message: crate::error::io_reason(&e),
                })
            }
        };
        if meta.as_ref().is_some_and(|m| !m.is_dir()) {
            return Err(Error::InvalidInput(format!(
                "{}: not a directory",
                root.display()
            )));
        }
        let absolute = match meta {
            Some(_) => {
                retry_stale(root, || fs::canonicalize(root)).map_err(|e| path_error(root, e))?
            }
            None => std::path::absolute(root).map_err(|e| Error::io(root, e))?,
        };
        let url = absolute.to_string_lossy().into_owned();
        Ok(LocalOrigin {
            root: absolute,
            url,
            lent: Arc::default(),
            one_file_system: false,
            group: Arc::default(),
        })
    }

    /// Whether to stay on the root's file system (rsync's `-x`/`--one-file-system`): a
    /// directory on which another file system is mounted is listed as an empty directory,
    /// and [`WritableOrigin::remove`] never deletes inside it. A musicfs mount is left out
    /// either way.
    pub fn one_file_system(mut self, yes: bool) -> Self {
        self.one_file_system = yes;
        self
    }

    /// Whether the directory `dir`, on device `dev`, is another mount than its parent's
    /// (device `parent_dev`) that this origin must not enter.
    fn must_not_enter(&self, dev: u64, parent_dev: u64, mounts: &mut LazyMountTable) -> bool {
        dev != parent_dev && (self.one_file_system || mounts.is_musicfs(dev))
    }

    /// Makes the directory `dir` readable, writable and searchable by this process when it
    /// owns the directory and its mode denies that, remembering the mode to give back, as
    /// rsync does: an archived album made read-only (0555) at the source is copied with that
    /// mode, and the next sync must still be able to change what is inside. Root needs no
    /// such loan.
    fn lend(&self, dir: &Path) -> io::Result<()> {
        // Asked once: a process's effective user does not change under it.
        static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if *ROOT.get_or_init(|| nix::unistd::geteuid().is_root()) {
            return Ok(());
        }
        let mut lent = self.lent.lock().unwrap_or_else(|e| e.into_inner());
        if lent.contains_key(dir) {
            return Ok(());
        }
        let meta = match fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mode = meta.mode() & 0o7777;
        let euid = nix::unistd::geteuid();
        if !meta.is_dir() || meta.uid() != euid.as_raw() || mode & 0o700 == 0o700 {
            return Ok(());
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700))?;
        lent.insert(dir.to_path_buf(), mode);
        Ok(())
    }

    /// [`LocalOrigin::lend`] for the directory that holds `path`.
    fn lend_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(parent) if path != self.root => self.lend(parent),
            _ => Ok(()),
        }
    }

    /// The directory's mode was set for good: nothing to give back.
    fn settled(&self, dir: &Path) {
        let mut lent = self.lent.lock().unwrap_or_else(|e| e.into_inner());
        lent.remove(dir);
    }

    /// Forgets the loans of `dir` and everything below it (they were removed).
    fn forget_below(&self, dir: &Path) {
        let mut lent = self.lent.lock().unwrap_or_else(|e| e.into_inner());
        lent.retain(|p, _| !p.starts_with(dir));
    }

    /// Removes a directory tree, lending each directory inside it first: a read-only directory
    /// (0555) can only be emptied by its owner once it is writable again.
    ///
    /// It never enters a musicfs mount, nor with `one_file_system` any other mount
    /// (`parent_dev` is the device of the directory holding `dir`): that fails instead, and
    /// what is mounted stays as it is.
    fn remove_tree(
        &self,
        dir: &Path,
        parent_dev: u64,
        mounts: &mut LazyMountTable,
    ) -> io::Result<()> {
        let dev = fs::symlink_metadata(dir)?.dev();
        if self.must_not_enter(dev, parent_dev, mounts) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "another file system is mounted here; left alone",
            ));
        }
        self.lend(dir)?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                self.remove_tree(&entry.path(), dev, mounts)?;
            } else {
                fs::remove_file(entry.path())?;
            }
        }
        fs::remove_dir(dir)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a relative one: the root, a `/`, then `rel`, as `Path::join` makes
    /// it, in one allocation of the exact size (a sync asks for several per file).
    pub fn full_path(&self, rel: &[u8]) -> PathBuf {
        let root = self.root.as_os_str().as_bytes();
        if rel.is_empty() {
            return self.root.clone();
        }
        if rel.starts_with(b"/") || root.is_empty() {
            // Not a relative path (the callers refuse it, and name it by this): `join`'s rule.
            return self.root.join(std::ffi::OsStr::from_bytes(rel));
        }
        let slash = !root.ends_with(b"/");
        let mut bytes = Vec::with_capacity(root.len() + usize::from(slash) + rel.len());
        bytes.extend_from_slice(root);
        if slash {
            bytes.push(b'/');
        }
        bytes.extend_from_slice(rel);
        PathBuf::from(std::ffi::OsString::from_vec(bytes))
    }

    /// The absolute path of `rel`, which must be a [`RelPath`]: a path that could leave the
    /// root (`..`, an empty component, a leading `/`) is refused with `InvalidInput`, whoever
    /// passes it.
    fn resolve(&self, rel: &[u8]) -> Result<PathBuf> {
        match RelPath::new(rel) {
            Ok(_) => Ok(self.full_path(rel)),
            Err(why) => Err(Error::io(
                self.full_path(rel),
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("not a relative path: it contains {why}"),
                ),
            )),
        }
    }

    /// Creates a new temporary file next to where `rel` will live. Its errors name the file
    /// it stands for, never the temporary name, which means nothing to the user.
    fn new_temp(&self, rel: &[u8]) -> Result<(PathBuf, File)> {
        let target = self.resolve(rel)?;
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        self.lend(&dir).map_err(|e| Error::io(&target, e))?;
        let mut attempt = 0u32;
        loop {
            let path = dir.join(temp_name(target.as_os_str().as_bytes(), attempt));
            let created = retry_stale(&path, || {
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
            });
            match created {
                Ok(f) => return Ok((path, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
                Err(e) => return Err(path_error(&target, e)),
            }
        }
    }
}

/// A file of a local origin open for reading. When a network mount answers ESTALE or
/// ENOTCONN on its handle, it is opened again by its path (a fresh lookup), and reading goes
/// on from the same offset, if it is still the version first opened.
///
/// Reads are positional (`pread`) from a position kept here, through a small read-ahead
/// buffer: a container parser's many small reads and seeks over a file's head cost one
/// system call for the block they fall in, and a seek none at all. A read as large as the
/// buffer goes straight to the caller's memory.
struct LocalFile {
    file: File,
    /// The absolute path it was opened by.
    path: PathBuf,
    /// Where `Read` is.
    pos: u64,
    /// Size and mtime when it was opened: a file opened again must have both, or it is
    /// another version of the file and nothing more is read from it.
    version: (u64, i64),
    /// Its stat when it was opened, for the first [`OriginFile::stat`]: the `fstat` that
    /// took `version` need not be made twice.
    opened: Option<EntryStat>,
    /// Bytes read ahead: `ahead[..filled]` are the file's bytes at `ahead_at`.
    ahead: Vec<u8>,
    ahead_at: u64,
    filled: usize,
}

/// The read-ahead block of a [`LocalFile`]: a tag block's head, or a small file whole.
const READ_AHEAD: usize = 64 * 1024;

thread_local! {
    /// A read-ahead block let go by a [`LocalFile`] closed on this thread, for the next one
    /// opened: a scan opens files one after another on each thread, and a block kept stays
    /// mapped and in the CPU's cache, where a new one was allocated and zeroed per file.
    static SPARE_AHEAD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The same for the write-behind buffer of a [`LocalTemp`] written out on this thread.
    static SPARE_PENDING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Size and mtime, what must not change between two handles of one file. Not the inode
/// (a CIFS mount without `serverino` numbers inodes anew when it is mounted again) nor the
/// device (a share mounted again is another device).
fn version(meta: &fs::Metadata) -> (u64, i64) {
    (meta.len(), meta.mtime() * 1_000_000_000 + meta.mtime_nsec())
}

impl LocalFile {
    /// Opens `path` for reading, retrying stale lookups.
    fn open(path: PathBuf) -> io::Result<LocalFile> {
        let (file, meta) = retry_stale(&path, || {
            let file = File::open(&path)?;
            let meta = file.metadata()?;
            Ok((file, meta))
        })?;
        Ok(LocalFile {
            file,
            version: version(&meta),
            opened: Some(entry_stat(&meta)),
            path,
            pos: 0,
            ahead: Vec::new(),
            ahead_at: 0,
            filled: 0,
        })
    }

    /// Runs `op` on the open file; when it fails with ESTALE/ENOTCONN, waits ([`STALE`]),
    /// opens the path again and runs `op` on the new handle, until the retries are spent.
    fn again<T>(&mut self, mut op: impl FnMut(&mut File) -> io::Result<T>) -> io::Result<T> {
        let mut attempt = 0;
        loop {
            let e = match op(&mut self.file) {
                Err(e) if is_stale(&e) && attempt < STALE.retries => e,
                other => return other,
            };
            tracing::debug!(
                "{}: {}; opening it again",
                self.path.display(),
                crate::error::io_reason(&e)
            );
            pause(attempt)?;
            attempt += 1;
            match self.reopen() {
                Ok(()) => {}
                // Still stale: the next try fails on the old handle and opens it again.
                Err(e) if is_stale(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens the path again (a fresh lookup) and checks the version.
    fn reopen(&mut self) -> io::Result<()> {
        let file = File::open(&self.path)?;
        let now = version(&file.metadata()?);
        if now != self.version {
            return Err(io::Error::other(format!(
                "the file changed while it was read (opened again after the network mount \
                 lost it, it has size {} and mtime {}, not {} and {}); not mixing two versions",
                now.0, now.1, self.version.0, self.version.1
            )));
        }
        self.file = file;
        Ok(())
    }

    /// Fills the read-ahead block with the file's bytes from `at` (fewer at its end).
    fn fill_ahead(&mut self, at: u64) -> io::Result<()> {
        if self.ahead.is_empty() {
            self.ahead = SPARE_AHEAD.with(|spare| spare.take());
            // A spare holds some file's bytes: only `ahead[..filled]` is ever read.
            self.ahead.resize(READ_AHEAD, 0);
        }
        let mut ahead = std::mem::take(&mut self.ahead);
        let read = self.read_at(&mut ahead, at);
        self.ahead = ahead;
        self.ahead_at = at;
        self.filled = 0;
        self.filled = read?;
        Ok(())
    }

    /// `pread` at `offset`, retried on EINTR; `Ok(0)` at the end of the file.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.again(|f| loop {
            match f.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        })
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        if self.ahead.len() == READ_AHEAD {
            let ahead = std::mem::take(&mut self.ahead);
            SPARE_AHEAD.with(|spare| spare.replace(ahead));
        }
    }
}

impl io::Read for LocalFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // At the end of the version opened, without asking: bytes appended since belong to
        // another version, which a reader's stat after reading tells apart.
        if buf.is_empty() || self.pos >= self.version.0 {
            return Ok(0);
        }
        let in_ahead = self.pos >= self.ahead_at && self.pos < self.ahead_at + self.filled as u64;
        if !in_ahead {
            if buf.len() >= READ_AHEAD {
                let n = self.read_at(buf, self.pos)?;
                self.pos += n as u64;
                return Ok(n);
            }
            self.fill_ahead(self.pos)?;
            if self.filled == 0 {
                return Ok(0);
            }
        }
        let from = (self.pos - self.ahead_at) as usize;
        let n = buf.len().min(self.filled - from);
        buf[..n].copy_from_slice(&self.ahead[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for LocalFile {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let target = match pos {
            io::SeekFrom::Start(n) => Some(n),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            // The end of the version opened: a file that grew or shrank since is another
            // version, which a reader's stat after reading tells apart.
            io::SeekFrom::End(d) => self.version.0.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid seek to a negative or overflowing position",
            )
        })?;
        Ok(self.pos)
    }
}

impl OriginFile for LocalFile {
    fn stat(&mut self) -> io::Result<EntryStat> {
        if let Some(opened) = self.opened.take() {
            return Ok(opened);
        }
        self.again(|f| f.metadata()).map(|m| entry_stat(&m))
    }

    /// A read smaller than the read-ahead block is served from it, filled from `offset` when
    /// it does not hold those bytes: a sync copying a file's chunks one after another reads
    /// a small file in one `pread`, not one per chunk.
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        let held = |f: &LocalFile| {
            end.is_some_and(|end| offset >= f.ahead_at && end <= f.ahead_at + f.filled as u64)
        };
        if !held(self) && buf.len() < READ_AHEAD {
            self.fill_ahead(offset)?;
        }
        if held(self) {
            let from = (offset - self.ahead_at) as usize;
            buf.copy_from_slice(&self.ahead[from..from + buf.len()]);
            return Ok(());
        }
        self.again(|f| f.read_exact_at(buf, offset))
    }
}

/// A temporary file in a local origin, renamed over `target` on commit.
///
/// Its handle is never opened again: on a network mount, a stale handle means the temporary
/// file may be gone from the server, and what was written through it with it. A write that
/// fails (ESTALE, ENOTCONN: transient) fails the file, and a temporary that saw a failed write
/// is never committed, even by a caller that went on.
struct LocalTemp {
    path: PathBuf,
    target: PathBuf,
    file: File,
    /// Bytes written but not yet handed to the kernel: a file's small chunks (tags,
    /// padding, a cover) go down in one `write`, not one each.
    pending: Vec<u8>,
    /// The first write or flush that failed, as its reason.
    failed: Option<String>,
    /// Its place in the destination's group commit, when it has one.
    member: Option<Member>,
    /// Written out ([`TempFile::write_out`]): every byte handed to the kernel, mode and mtime
    /// set; with the ticket of the group's flush that will make it durable, when it has one.
    out: Option<Option<Ticket>>,
}

/// How many bytes a [`LocalTemp`] gathers before it writes them.
const WRITE_BEHIND: usize = 256 * 1024;

/// A piece at least this large is written from the caller's memory, in one `writev` with the
/// bytes gathered before it, instead of being copied into the write-behind buffer: a
/// picture's or an audio piece's bytes cross into the kernel once. Smaller pieces (tags,
/// headers, a region's tail) are still gathered, so that a file's many small pieces cost one
/// call.
const WRITE_DIRECT: usize = 16 * 1024;

impl LocalTemp {
    /// Notes a failed write, passing its error on unchanged (so its kind stays).
    fn noted<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            if self.failed.is_none() {
                self.failed = Some(crate::error::io_reason(e));
            }
        }
        result
    }
}

impl LocalTemp {
    /// Hands the gathered bytes, then `buf`, to the kernel, in as few `writev`s as it takes.
    fn write_with_pending(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut both = [io::IoSlice::new(&self.pending), io::IoSlice::new(buf)];
        let mut left: &mut [io::IoSlice<'_>] = &mut both;
        // Drops an empty first slice.
        io::IoSlice::advance_slices(&mut left, 0);
        while !left.is_empty() {
            match self.file.write_vectored(left) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => io::IoSlice::advance_slices(&mut left, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// Hands the gathered bytes to the kernel.
    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(&self.pending);
        self.pending.clear();
        self.noted(written)
    }
}

impl Write for LocalTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.is_some() {
            let refused = Err(io::Error::other("written to after it was written out"));
            return self.noted(refused);
        }
        if buf.len() >= WRITE_DIRECT {
            let written = self.write_with_pending(buf).map(|()| buf.len());
            return self.noted(written);
        }
        if self.pending.len() + buf.len() > WRITE_BEHIND {
            self.write_pending()?;
        }
        if self.pending.capacity() == 0 {
            self.pending = SPARE_PENDING.with(|spare| spare.take());
            self.pending.clear();
            self.pending.reserve_exact(WRITE_BEHIND);
        }
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        let flushed = self.file.flush();
        self.noted(flushed)
    }
}

impl TempFile for LocalTemp {
    fn write_out(&mut self, mode: u32, mtime_ns: i64) -> Result<()> {
        if self.out.is_some() {
            return Ok(());
        }
        // A failed write is noted in `failed` and refused below.
        let _ = self.write_pending();
        // What a file waiting for its flush holds: its handle, not its bytes. The buffer
        // (empty now) serves the next file written on this thread.
        let pending = std::mem::take(&mut self.pending);
        if pending.capacity() == WRITE_BEHIND {
            SPARE_PENDING.with(|spare| spare.replace(pending));
        }
        let io_err = |e| Error::io(&self.target, e);
        if let Some(reason) = &self.failed {
            return Err(io_err(io::Error::other(format!(
                "not written: a write to its temporary file failed ({reason})"
            ))));
        }
        self.file
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err)?;
        self.file
            .set_modified(system_time(mtime_ns))
            .map_err(io_err)?;
        // Taken after the last change to the file: the flush it names begins after them.
        let ticket = match &self.member {
            Some(member) => member.ticket(&self.file).map_err(io_err)?,
            None => None,
        };
        self.out = Some(ticket);
        Ok(())
    }

    fn shares_flush(&self) -> bool {
        self.member.is_some()
    }

    fn commit(mut self: Box<Self>, mode: u32, mtime_ns: i64) -> Result<()> {
        if let Err(e) = self.write_out(mode, mtime_ns) {
            let _ = fs::remove_file(&self.path);
            return Err(e);
        }
        let LocalTemp {
            path,
            target,
            file,
            member,
            out,
            ..
        } = *self;
        let result = (|| {
            match &member {
                Some(member) => member.make_durable(&file, out.flatten()),
                None => file.sync_all(),
            }
            .map_err(|e| Error::io(&target, e))?;
            drop(file);
            drop(member);
            fs::rename(&path, &target).map_err(|e| Error::io(&target, e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&path);
        }
        result
    }

    fn discard(self: Box<Self>) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Origin for LocalOrigin {
    fn url(&self) -> &str {
        &self.url
    }

    fn display(&self, rel: &[u8]) -> PathBuf {
        self.full_path(rel)
    }

    /// Everything: a POSIX file system renames over a target atomically, fsyncs files and
    /// directories, keeps symlinks, directories, inode numbers and nanosecond mtimes.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_replace: true,
            durable_commit: true,
            symlinks: true,
            directories: true,
            stable_identity: true,
            content_keys: false,
            mtime_resolution: MtimeResolution::Nanosecond,
        }
    }

    /// One file more than there are CPUs: a reader waits now and then (for a page the cache
    /// no longer holds, for room among the copies waiting for their flush, for the
    /// allocator's lock), and with one reader per CPU the CPU it leaves sits idle meanwhile.
    /// On two CPUs a third reader took 12 % off the cold sync of 100,000 files
    /// (`docs/benchmarks.md`).
    fn files_in_flight(&self) -> usize {
        std::thread::available_parallelism().map_or(1, usize::from) + 1
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    /// Walks the tree depth first, names sorted bytewise, symlinks not followed; mounts
    /// inside it as the module documentation says.
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.walk_within(&Filter::none(), visit);
    }

    fn walk_filtered(&self, filter: &Filter, visit: &mut dyn FnMut(WalkItem)) {
        self.walk_within(filter, visit);
    }

    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        let path = self.resolve(rel)?;
        match LocalFile::open(path.clone()) {
            Ok(file) => Ok(Box::new(file)),
            Err(e) => Err(path_error(&path, e)),
        }
    }

    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        let path = self.resolve(rel)?;
        match retry_stale(&path, || fs::symlink_metadata(&path)) {
            Ok(m) => Ok(Some(entry_stat(&m))),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(path_error(&path, e)),
        }
    }
}

impl WritableOrigin for LocalOrigin {
    /// Creates the root directory if it does not exist.
    fn create_root(&self) -> Result<()> {
        fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))
    }

    fn create_temp(&self, rel: &[u8]) -> Result<Box<dyn TempFile>> {
        let (path, file) = self.new_temp(rel)?;
        Ok(Box::new(LocalTemp {
            path,
            target: self.resolve(rel)?,
            file,
            pending: Vec::new(),
            failed: None,
            out: None,
            member: self
                .group
                .get_or_init(|| GroupCommit::open(&self.root))
                .as_ref()
                .map(GroupCommit::join),
        }))
    }

    /// Sets mode and mtime of an existing file or directory, by path: neither needs the
    /// entry to be readable (a 0000 directory gets its mtime too).
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> Result<()> {
        let path = self.resolve(rel)?;
        retry_stale(&path, || {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        })
        .map_err(|e| path_error(&path, e))?;
        self.settled(&path);
        let mtime = nix::sys::time::TimeSpec::new(
            mtime_ns.div_euclid(1_000_000_000),
            mtime_ns.rem_euclid(1_000_000_000),
        );
        retry_stale(&path, || {
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &path,
                &nix::sys::time::TimeSpec::UTIME_OMIT,
                &mtime,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(io::Error::from)
        })
        .map_err(|e| path_error(&path, e))
    }

    /// Creates a directory (its parent exists); an existing directory is fine, anything else
    /// in its place (a file, a symlink) is refused.
    fn create_dir(&self, rel: &[u8]) -> Result<()> {
        let path = self.resolve(rel)?;
        self.lend_parent(&path).map_err(|e| Error::io(&path, e))?;
        // A retry after a lost reply finds the directory made: that is fine.
        match retry_stale(&path, || fs::create_dir(&path)) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => Ok(()),
                    _ => Err(Error::io(&path, e)),
                }
            }
            Err(e) => Err(path_error(&path, e)),
            Ok(()) => Ok(()),
        }
    }

    /// Creates or replaces a symlink, atomically through a temporary name.
    fn symlink(&self, rel: &[u8], target: &[u8]) -> Result<()> {
        let final_path = self.resolve(rel)?;
        let (temp, file) = self.new_temp(rel)?;
        drop(file);
        fs::remove_file(&temp).map_err(|e| Error::io(&final_path, e))?;
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &temp)
            .map_err(|e| Error::io(&final_path, e))?;
        fs::rename(&temp, &final_path).map_err(|e| {
            let _ = fs::remove_file(&temp);
            Error::io(&final_path, e)
        })
    }

    /// Renames an entry within the origin, replacing whatever is at `to`.
    fn rename(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let (from, to) = (self.resolve(from)?, self.resolve(to)?);
        self.lend_parent(&from).map_err(|e| Error::io(&from, e))?;
        self.lend_parent(&to).map_err(|e| Error::io(&to, e))?;
        fs::rename(&from, &to).map_err(|e| Error::io(&from, e))
    }

    /// Removes a file, symlink or whole directory tree; all of it again from a fresh lookup
    /// after a stale handle (what was removed is not missed).
    fn remove(&self, rel: &[u8]) -> Result<()> {
        let path = self.resolve(rel)?;
        let result = retry_stale(&path, || match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => self.lend_parent(&path).and_then(|()| {
                let parent = path.parent().unwrap_or(&self.root);
                let parent_dev = fs::symlink_metadata(parent)?.dev();
                self.remove_tree(&path, parent_dev, &mut LazyMountTable::default())
            }),
            Ok(_) => self
                .lend_parent(&path)
                .and_then(|()| fs::remove_file(&path)),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(e),
        });
        if result.is_ok() {
            self.forget_below(&path);
        }
        result.map_err(|e| path_error(&path, e))
    }

    /// An exclusive `flock` on the root directory's own descriptor: Linux allows it on a
    /// directory, and it creates no file (players index every file they find).
    fn lock(&self) -> Result<Option<Box<dyn Send>>> {
        let open = || File::open(&self.root);
        let dir = match open() {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                self.lend(&self.root).and_then(|()| open())
            }
            other => other,
        }
        .map_err(|e| Error::io(&self.root, e))?;
        match crate::flock::take(&dir, false) {
            Ok(true) => Ok(Some(Box::new(dir))),
            Ok(false) => Err(Error::Locked {
                path: self.root.clone(),
                lock: self.root.clone(),
            }),
            Err(e) => Err(Error::io(&self.root, e)),
        }
    }

    fn open_up(&self, rel: &[u8]) -> Result<()> {
        let path = self.resolve(rel)?;
        self.lend(&path).map_err(|e| Error::io(&path, e))
    }

    fn give_back(&self) -> Result<()> {
        let lent = std::mem::take(&mut *self.lent.lock().unwrap_or_else(|e| e.into_inner()));
        let mut first = None;
        // Deepest first, so that a directory still searchable is never needed after its
        // parent got a mode that denies the search.
        for (dir, mode) in lent.into_iter().rev() {
            if let Err(e) = fs::set_permissions(&dir, fs::Permissions::from_mode(mode)) {
                if e.kind() != io::ErrorKind::NotFound && first.is_none() {
                    first = Some(Error::io(&dir, e));
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Flushes a directory's entries (after renames into it).
    fn sync_dir(&self, rel: &[u8]) -> Result<()> {
        let path = self.resolve(rel)?;
        retry_stale(&path, || File::open(&path).and_then(|d| d.sync_all()))
            .map_err(|e| path_error(&path, e))
    }

    /// One flush of the file system for every directory, when the destination has a group
    /// commit and every directory lies on its file system (a directory that does not, or a
    /// flush that fails, gets its own `fsync`).
    fn sync_dirs(&self, rels: &[Vec<u8>]) -> Vec<(Vec<u8>, Error)> {
        let group = self.group.get().and_then(Option::as_ref);
        let mut own = Vec::new();
        for rel in rels {
            let shared = group.is_some_and(|group| {
                self.resolve(rel)
                    .ok()
                    .and_then(|path| fs::symlink_metadata(path).ok())
                    .is_some_and(|meta| meta.is_dir() && group.covers(meta.dev()))
            });
            if !shared {
                own.push(rel);
            }
        }
        if own.len() < rels.len() && !group.is_some_and(|group| group.flush_now()) {
            own = rels.iter().collect();
        }
        own.into_iter()
            .filter_map(|rel| self.sync_dir(rel).err().map(|e| (rel.clone(), e)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::is_temporary;

    /// Bytes that differ at every offset, so a read from the wrong place shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn positional_reads_through_the_read_ahead_block_give_the_files_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = pattern(3 * READ_AHEAD + 123);
        fs::write(dir.path().join("f"), &bytes).unwrap();
        let origin = LocalOrigin::open(dir.path(), false).unwrap();
        let mut file = origin.open(b"f").unwrap();
        // Small reads inside a block, across its end, past it, back before it, a read as
        // large as the block, and the file's last bytes.
        let reads = [
            (0, 10),
            (10, 4000),
            (READ_AHEAD - 5, 10),
            (2 * READ_AHEAD + 1, 300),
            (7, 9),
            (READ_AHEAD, READ_AHEAD),
            (bytes.len() - 50, 50),
            (0, bytes.len()),
        ];
        for (at, len) in reads {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, at as u64).unwrap();
            assert_eq!(buf, bytes[at..at + len], "{len} bytes at {at}");
        }
        let mut buf = [0u8; 2];
        let past = file.read_exact_at(&mut buf, bytes.len() as u64 - 1);
        assert_eq!(past.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_temporary_file_written_in_pieces_of_every_size_commits_them_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let origin = LocalOrigin::open(dir.path(), false).unwrap();
        let bytes = pattern(5 * WRITE_BEHIND + 999);
        let mut temp = origin.create_temp(b"f").unwrap();
        let mut at = 0;
        // Around both sizes: gathered, written from the caller's memory after what was
        // gathered, and small pieces that fill the buffer.
        let small = std::iter::repeat_n(WRITE_DIRECT - 1, WRITE_BEHIND / WRITE_DIRECT + 2);
        for len in [
            1,
            100,
            WRITE_BEHIND - 50,
            60,
            WRITE_BEHIND,
            7,
            WRITE_BEHIND + 1,
            WRITE_DIRECT - 1,
            WRITE_DIRECT,
            3,
            WRITE_DIRECT + 1,
            WRITE_DIRECT,
        ]
        .into_iter()
        .chain(small)
        {
            let end = (at + len).min(bytes.len());
            temp.write_all(&bytes[at..end]).unwrap();
            at = end;
        }
        temp.write_all(&bytes[at..]).unwrap();
        temp.commit(0o640, 1_700_000_000_000_000_000).unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), bytes);
    }

    #[test]
    fn files_read_and_written_one_after_another_on_a_thread_get_only_their_own_bytes() {
        // Each thread keeps a closed file's read-ahead block and a written-out file's
        // write-behind buffer for the next file: a shorter file after a longer one must not
        // see the longer one's bytes past its end.
        let dir = tempfile::tempdir().unwrap();
        let origin = LocalOrigin::open(dir.path(), false).unwrap();
        let sizes = [
            READ_AHEAD + 999,
            10,
            3000,
            0,
            READ_AHEAD - 1,
            1,
            WRITE_BEHIND - 3,
        ];
        for round in 0..3 {
            for (n, &len) in sizes.iter().enumerate() {
                let bytes: Vec<u8> = pattern(len + round).into_iter().rev().collect();
                let name = format!("r{round}-{n}");
                fs::write(dir.path().join(&name), &bytes).unwrap();
                let mut file = origin.open(name.as_bytes()).unwrap();
                let mut read = Vec::new();
                io::Read::read_to_end(&mut file, &mut read).unwrap();
                assert_eq!(read, bytes, "{name}: read");
                let mut head = vec![0u8; bytes.len().min(100)];
                file.read_exact_at(&mut head, 0).unwrap();
                assert_eq!(head, bytes[..head.len()], "{name}: positional read");
                drop(file);
                let copy = format!("{name}.copy");
                let mut temp = origin.create_temp(copy.as_bytes()).unwrap();
                for piece in read.chunks(777) {
                    temp.write_all(piece).unwrap();
                }
                temp.write_out(0o644, 1_700_000_000_000_000_000).unwrap();
                temp.commit(0o644, 1_700_000_000_000_000_000).unwrap();
                assert_eq!(fs::read(dir.path().join(&copy)).unwrap(), bytes, "{copy}");
            }
        }
    }

    #[test]
    fn full_paths_are_what_path_join_makes() {
        for root in ["/", "/music", "/music/", "relative/root", "/a/b c/ü"] {
            let origin = LocalOrigin {
                root: PathBuf::from(root),
                ..LocalOrigin::open(&std::env::temp_dir(), false).unwrap()
            };
            for rel in [
                &b""[..],
                b"a",
                b"a/b.flac",
                b"Artist/Album/01 \xff.mp3",
                b"/absolute",
                b"../up",
            ] {
                assert_eq!(
                    origin.full_path(rel),
                    Path::new(root).join(std::ffi::OsStr::from_bytes(rel)),
                    "{root} + {}",
                    String::from_utf8_lossy(rel)
                );
            }
        }
    }

    #[test]
    fn paths_that_could_leave_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::write(dir.path().join("secret"), b"outside").unwrap();
        fs::write(root.join("inside"), b"inside").unwrap();
        let origin = LocalOrigin::open(&root, false).unwrap();
        let origin: &dyn WritableOrigin = &origin;
        for bad in [
            &b"../secret"[..],
            b"/etc/passwd",
            b"a//b",
            b"./inside",
            b"inside/..",
        ] {
            let shown = String::from_utf8_lossy(bad);
            assert!(origin.open(bad).is_err(), "{shown}");
            assert!(origin.stat(bad).is_err(), "{shown}");
            assert!(origin.create_temp(bad).is_err(), "{shown}");
            assert!(origin.remove(bad).is_err(), "{shown}");
            assert!(origin.rename(b"inside", bad).is_err(), "{shown}");
        }
        assert_eq!(fs::read(dir.path().join("secret")).unwrap(), b"outside");
        assert_eq!(fs::read(root.join("inside")).unwrap(), b"inside");
        assert!(origin.open(b"inside").is_ok());
    }

    #[test]
    fn destination_lock_excludes_a_second_holder_and_creates_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = LocalOrigin::open(dir.path(), false).expect("open");
        let b = LocalOrigin::open(dir.path(), false).expect("open again");
        let held = a.lock().expect("first lock");
        assert!(held.is_some());
        assert!(
            matches!(b.lock(), Err(Error::Locked { .. })),
            "a second lock on the same directory is refused"
        );
        assert_eq!(
            fs::read_dir(dir.path()).expect("list").count(),
            0,
            "the lock leaves no file in the destination"
        );
        drop(held);
        assert!(b.lock().expect("lock once released").is_some());
    }

    #[test]
    fn files_committed_together_are_whole_under_their_names_and_directories_sync_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let origin = LocalOrigin::open(dir.path(), false).expect("open");
        for d in ["a", "b"] {
            origin.create_dir(d.as_bytes()).expect("mkdir");
        }
        // Several temporary files open at once: their commits share the group's flushes.
        let files: Vec<(String, Vec<u8>)> = (0..24)
            .map(|i| {
                (
                    format!("{}/f{i}", ["a", "b"][i % 2]),
                    pattern(1000 + i * 977),
                )
            })
            .collect();
        std::thread::scope(|s| {
            for chunk in files.chunks(6) {
                let origin = &origin;
                s.spawn(move || {
                    let mut temps = Vec::new();
                    for (name, bytes) in chunk {
                        let mut temp = origin.create_temp(name.as_bytes()).expect("temp");
                        temp.write_all(bytes).expect("write");
                        temps.push(temp);
                    }
                    for temp in temps {
                        temp.commit(0o640, 1_700_000_000_000_000_000)
                            .expect("commit");
                    }
                });
            }
        });
        for (name, bytes) in &files {
            let path = dir.path().join(name);
            assert_eq!(&fs::read(&path).expect("read"), bytes, "{name}");
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o640
            );
        }
        let leftovers: Vec<_> = ["a", "b"]
            .iter()
            .flat_map(|d| fs::read_dir(dir.path().join(d)).unwrap())
            .filter(|e| is_temporary(e.as_ref().unwrap().file_name().as_bytes()))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let failed = origin.sync_dirs(&[b"a".to_vec(), b"gone".to_vec(), b"b".to_vec()]);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, b"gone", "only the missing directory fails");
    }
}

/// The local transport in the registry: a path (any argument no other transport claims), or
/// `file:///absolute/path` (`file://localhost/…` too; `%XX` escapes decoded).
pub(crate) static TRANSPORT: super::registry::Transport = super::registry::Transport {
    name: "local",
    schemes: &["file"],
    parse: parse_location,
};

/// A local directory, as an origin argument names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LocalLocation {
    pub path: PathBuf,
}

fn parse_location(
    arg: &std::ffi::OsStr,
    scheme: Option<&str>,
) -> Result<Option<Box<dyn super::registry::Location>>> {
    let bytes = arg.as_bytes();
    let path = match scheme {
        None => bytes.to_vec(),
        Some(_) => {
            // `file://` + authority + absolute path; the authority may only be this host.
            let rest = bytes.get("file://".len()..).unwrap_or_default();
            let slash = rest.iter().position(|&b| b == b'/').ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{}: a file:// origin needs an absolute path (file:///music)",
                    arg.to_string_lossy()
                ))
            })?;
            let host = &rest[..slash];
            if !host.is_empty() && !host.eq_ignore_ascii_case(b"localhost") {
                return Err(Error::InvalidInput(format!(
                    "{}: a file:// origin is on this host (file:///path); use host:path for another",
                    arg.to_string_lossy()
                )));
            }
            percent_decoded(&rest[slash..])
        }
    };
    Ok(Some(Box::new(LocalLocation {
        path: PathBuf::from(std::ffi::OsString::from_vec(path)),
    })))
}

/// `%XX` escapes replaced by their byte, as file managers write `file://` URLs
/// (`file:///My%20Music`); a `%` not followed by two hex digits stays as it is.
fn percent_decoded(path: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let escaped = match (path[i], path.get(i + 1), path.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(path[i]);
                i += 1;
            }
        }
    }
    out
}

impl super::registry::Location for LocalLocation {
    fn transport(&self) -> &'static str {
        TRANSPORT.name
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn open(&self, options: &super::registry::OpenOptions) -> Result<Box<dyn Origin>> {
        Ok(Box::new(
            LocalOrigin::open(&self.path, false)?.one_file_system(options.one_file_system),
        ))
    }

    fn open_writable(
        &self,
        options: &super::registry::OpenOptions,
    ) -> Result<Box<dyn WritableOrigin>> {
        Ok(Box::new(
            LocalOrigin::open(&self.path, true)?.one_file_system(options.one_file_system),
        ))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
