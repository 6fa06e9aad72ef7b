//! A local directory. NFS and SMB mounts are local directories too, so stale-handle and
//! not-connected errors (ESTALE, ENOTCONN) are retried by looking the path up again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    is_temporary, EntryKind, EntryStat, Origin, OriginFile, TempFile, WalkItem, WritableOrigin,
    TEMP_PREFIX, TEMP_SUFFIX,
};
use crate::error::{Error, Result};

/// A directory on a local filesystem.
#[derive(Clone, Debug)]
pub struct LocalOrigin {
    root: PathBuf,
    url: String,
}

/// Runs `op`, retrying a few times with backoff when a network mount answers ESTALE/ENOTCONN.
fn retry_stale<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut delay = Duration::from_millis(50);
    for _ in 0..4 {
        match op() {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ESTALE | libc::ENOTCONN)) => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            other => return other,
        }
    }
    op()
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
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        dev: meta.dev(),
        ino: meta.ino(),
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
        let meta = match fs::metadata(root) {
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
                    message: e.to_string(),
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
            Some(_) => fs::canonicalize(root).map_err(|e| Error::io(root, e))?,
            None => std::path::absolute(root).map_err(|e| Error::io(root, e))?,
        };
        let url = absolute.to_string_lossy().into_owned();
        Ok(LocalOrigin {
            root: absolute,
            url,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a relative one.
    pub fn full_path(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(std::ffi::OsStr::from_bytes(rel))
        }
    }

    fn relative(&self, path: &Path) -> Vec<u8> {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .as_os_str()
            .as_bytes()
            .to_vec()
    }

    /// Creates a new temporary file next to where `rel` will live.
    fn new_temp(&self, rel: &[u8]) -> Result<(PathBuf, File)> {
        let target = self.full_path(rel);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        let mut attempt = 0u32;
        loop {
            let nonce = blake3::hash(
                format!(
                    "{}{:?}{}{attempt}",
                    std::process::id(),
                    SystemTime::now(),
                    target.display()
                )
                .as_bytes(),
            )
            .to_hex();
            let path = dir.join(format!("{TEMP_PREFIX}{}{TEMP_SUFFIX}", &nonce[..16]));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => return Ok((path, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }
}

/// A file of a local origin open for reading.
struct LocalFile {
    file: File,
}

impl io::Read for LocalFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        retry_stale(|| self.file.read(buf))
    }
}

impl io::Seek for LocalFile {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl OriginFile for LocalFile {
    fn stat(&mut self) -> io::Result<EntryStat> {
        self.file.metadata().map(|m| entry_stat(&m))
    }

    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        retry_stale(|| self.file.read_exact_at(buf, offset))
    }
}

/// A temporary file in a local origin, renamed over `target` on commit.
struct LocalTemp {
    path: PathBuf,
    target: PathBuf,
    file: File,
}

impl Write for LocalTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl TempFile for LocalTemp {
    fn commit(self: Box<Self>, mode: u32, mtime_ns: i64) -> Result<()> {
        let LocalTemp { path, target, file } = *self;
        let result = (|| {
            let io_err = |e| Error::io(&path, e);
            file.sync_all().map_err(io_err)?;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io_err)?;
            file.set_modified(system_time(mtime_ns)).map_err(io_err)?;
            drop(file);
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

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    /// Walks the tree depth first, names sorted bytewise, symlinks not followed.
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        let walker = walkdir::WalkDir::new(&self.root)
            .min_depth(1)
            .follow_links(false)
            .sort_by_file_name();
        for item in walker {
            match item {
                Ok(entry) => {
                    let rel = self.relative(entry.path());
                    if entry.file_type().is_file() && is_temporary(entry.file_name().as_bytes()) {
                        visit(WalkItem::Temporary(rel));
                        continue;
                    }
                    match entry.metadata() {
                        Ok(meta) => {
                            let stat = entry_stat(&meta);
                            let target = if stat.kind == EntryKind::Symlink {
                                match fs::read_link(entry.path()) {
                                    Ok(t) => Some(t.into_os_string().into_vec()),
                                    Err(e) => {
                                        visit(WalkItem::Problem {
                                            path: rel,
                                            message: e.to_string(),
                                        });
                                        continue;
                                    }
                                }
                            } else {
                                None
                            };
                            visit(WalkItem::Entry {
                                path: rel,
                                stat,
                                target,
                            });
                        }
                        Err(e) => visit(WalkItem::Problem {
                            path: rel,
                            message: e.to_string(),
                        }),
                    }
                }
                Err(e) => {
                    let path = e.path().map(|p| self.relative(p)).unwrap_or_default();
                    visit(WalkItem::Problem {
                        path,
                        message: e
                            .io_error()
                            .map(|io| io.to_string())
                            .unwrap_or_else(|| e.to_string()),
                    });
                }
            }
        }
    }

    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        let path = self.full_path(rel);
        let file = retry_stale(|| File::open(&path)).map_err(|e| Error::io(&path, e))?;
        Ok(Box::new(LocalFile { file }))
    }

    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        let path = self.full_path(rel);
        match retry_stale(|| fs::symlink_metadata(&path)) {
            Ok(m) => Ok(Some(entry_stat(&m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
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
            target: self.full_path(rel),
            file,
        }))
    }

    /// Sets mode and mtime of an existing file or directory.
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> Result<()> {
        let path = self.full_path(rel);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(&path, e))?;
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        file.set_modified(system_time(mtime_ns))
            .map_err(|e| Error::io(&path, e))
    }

    /// Creates a directory (its parent exists).
    fn create_dir(&self, rel: &[u8]) -> Result<()> {
        let path = self.full_path(rel);
        match fs::create_dir(&path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(Error::io(&path, e)),
            _ => Ok(()),
        }
    }

    /// Creates or replaces a symlink, atomically through a temporary name.
    fn symlink(&self, rel: &[u8], target: &[u8]) -> Result<()> {
        let final_path = self.full_path(rel);
        let (temp, file) = self.new_temp(rel)?;
        drop(file);
        fs::remove_file(&temp).map_err(|e| Error::io(&temp, e))?;
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &temp)
            .map_err(|e| Error::io(&temp, e))?;
        fs::rename(&temp, &final_path).map_err(|e| Error::io(&final_path, e))
    }

    /// Renames an entry within the origin, replacing whatever is at `to`.
    fn rename(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let (from, to) = (self.full_path(from), self.full_path(to));
        fs::rename(&from, &to).map_err(|e| Error::io(&from, e))
    }

    /// Removes a file, symlink or whole directory tree.
    fn remove(&self, rel: &[u8]) -> Result<()> {
        let path = self.full_path(rel);
        let result = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        result.map_err(|e| Error::io(&path, e))
    }

    /// Flushes a directory's entries (after renames into it).
    fn sync_dir(&self, rel: &[u8]) -> Result<()> {
        let path = self.full_path(rel);
        File::open(&path)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&path, e))
    }
}
