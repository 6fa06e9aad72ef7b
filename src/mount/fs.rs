//! The FUSE adapter: turns kernel requests into calls on the [`View`] and the [`Reader`].
//!
//! It holds no logic of its own beyond the mapping: names and attributes come from the view,
//! bytes from the reader, and every request that would change anything is answered `EROFS`.
//! Snapshots never change, so attributes and entries are cached by the kernel for an hour
//! and open files keep their page cache (`FOPEN_KEEP_CACHE`); the root and the origin
//! directories, which gain snapshots, only for a second.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::reader::{OpenFile, Reader};
use super::view::{Attr, Entry, Kind, View};

/// How long the kernel may trust what a snapshot's entries are.
const SNAPSHOT_TTL: Duration = Duration::from_secs(3600);
/// How long for the root and origin directories, which gain snapshots.
const LISTING_TTL: Duration = Duration::from_secs(1);
/// The read size asked of the kernel.
pub const MAX_READ: u32 = 1 << 20;

/// The filesystem served to the kernel.
pub struct MusicFs {
    view: Arc<View>,
    reader: Reader,
    open: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
    uid: u32,
    gid: u32,
    /// The mountpoint, to name files in messages as they are seen.
    mountpoint: PathBuf,
}

impl MusicFs {
    /// A filesystem over `view` mounted on `mountpoint`, with a chunk cache of `cache_bytes`,
    /// reaching origins with `origins`; files belong to `uid`:`gid`.
    pub fn new(
        view: Arc<View>,
        mountpoint: &Path,
        cache_bytes: usize,
        origins: crate::origin::OpenOptions,
        uid: u32,
        gid: u32,
    ) -> MusicFs {
        MusicFs {
            reader: Reader::new(view.clone(), cache_bytes, origins),
            view,
            open: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            uid,
            gid,
            mountpoint: mountpoint.to_path_buf(),
        }
    }

    fn file_attr(&self, a: &Attr) -> FileAttr {
        let mtime = if a.mtime_ns >= 0 {
            UNIX_EPOCH + Duration::from_nanos(a.mtime_ns as u64)
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_nanos(a.mtime_ns.unsigned_abs()))
                .unwrap_or(UNIX_EPOCH)
        };
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind: file_type(a.kind),
            perm: (a.mode & 0o7777) as u16,
            nlink: if a.kind == Kind::Dir { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            // Programs size their buffers by this (coreutils reads max(st_blksize, 128 KiB)).
            blksize: MAX_READ,
            flags: 0,
        }
    }

    fn ttl(&self, ino: u64) -> Duration {
        if self.view.changes_with_snapshots(ino) {
            LISTING_TTL
        } else {
            SNAPSHOT_TTL
        }
    }

    fn handle(&self, fh: FileHandle) -> Option<Arc<OpenFile>> {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&fh.0)
            .cloned()
    }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
    }
}

fn io_errno(e: &crate::Error) -> Errno {
    tracing::warn!("{e}");
    Errno::EIO
}

impl Filesystem for MusicFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Large reads: the kernel clamps these to what it allows.
        let _ = config.set_max_readahead(MAX_READ);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.view.lookup(parent.0, name.as_bytes()) {
            Ok(Some(a)) => reply.entry(&self.ttl(a.ino), &self.file_attr(&a), Generation(0)),
            Ok(None) if self.view.entry(parent.0).is_none() => reply.error(Errno::ENOENT),
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(io_errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.view.attr(ino.0) {
            Some(a) => reply.attr(&self.ttl(ino.0), &self.file_attr(&a)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.view.readlink(ino.0) {
            Some(target) => reply.data(&target),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            return reply.error(Errno::EROFS);
        }
        let Some(entry) = self.view.entry(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let Entry::File {
            content,
            origin,
            path,
            ..
        } = entry
        else {
            return reply.error(Errno::EISDIR);
        };
        let Some(origin) = self.view.origin(origin) else {
            return reply.error(Errno::ENOENT);
        };
        let shown = match self.view.mount_path(ino.0) {
            Some(rel) => self.mountpoint.join(rel),
            None => self.mountpoint.clone(),
        };
        match self.reader.open(&content, &origin.url, &path, shown) {
            Ok(file) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                self.open
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(fh, Arc::new(file));
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(io_errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        match self.reader.read(&file, offset, size) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(io_errno(&e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&fh.0);
        reply.ok();
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.view.attr(ino.0) {
            Some(a) if a.kind == Kind::Dir => reply.opened(FileHandle(0), FopenFlags::empty()),
            Some(_) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.view.list(ino.0) {
            Ok(Some(e)) => e,
            Ok(None) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(io_errno(&e)),
        };
        let parent = self.view.parent(ino.0).unwrap_or(ino.0);
        let dots = [
            (INodeNo(ino.0), FileType::Directory, OsStr::new(".")),
            (INodeNo(parent), FileType::Directory, OsStr::new("..")),
        ];
        let listed = entries
            .iter()
            .map(|(name, a)| (INodeNo(a.ino), file_type(a.kind), OsStr::from_bytes(name)));
        for (i, (child, kind, name)) in dots.into_iter().chain(listed).enumerate() {
            if (i as u64) < offset {
                continue;
            }
            if reply.add(child, i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, MAX_READ, 255, MAX_READ);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        // Only SEEK_DATA and SEEK_HOLE reach here; the kernel does the others. A file is all
        // data, with its one hole at its end.
        let Some(file) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let size = i64::try_from(file.size()).unwrap_or(i64::MAX);
        if offset < 0 || offset >= size {
            return reply.error(Errno::ENXIO);
        }
        match whence {
            libc::SEEK_DATA => reply.offset(offset),
            libc::SEEK_HOLE => reply.offset(size),
            _ => reply.error(Errno::EINVAL),
        }
    }

    // No extended attributes. ENOSYS, unlike ENODATA, makes the kernel stop asking: it then
    // answers every getxattr and listxattr of the mount itself (EOPNOTSUPP), where `ls -l`
    // otherwise costs a round trip per file for its ACL and security-label lookups.

    fn getxattr(&self, _req: &Request, ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        tracing::trace!("getxattr {}", ino.0);
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, _size: u32, reply: ReplyXattr) {
        tracing::trace!("listxattr {}", ino.0);
        reply.error(Errno::ENOSYS);
    }

    // Everything below would change the file system, which is read-only.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}
