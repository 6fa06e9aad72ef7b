//! A directory on an SFTP server.
//!
//! SFTP gives no inode, device or ctime, and mtimes in whole seconds: stats carry no change
//! key ([`ChangeKey::None`]) and the origin claims no stable identity, so a scan compares
//! size, mtime and mode and does no move detection here. Every
//! name the server lists is checked before it becomes part of a path (no `/`, no NUL, not `.`
//! or `..`), and every path this origin sends is built from checked relative paths under the
//! root, so a hostile server cannot make a walk or a sync leave the tree.
//!
//! Reading a changed file costs a network read in the scan and another in the sync that copies
//! it; the `Spooled` wrapper (`origin::spooled`) saves the second.
//!
//! A far server costs a round trip per request waited for, so a walk lists the tree level by
//! level, every directory of a level at once ([`Sftp::read_dirs`]): a no-change scan costs a
//! few round trips per level of the tree rather than per directory. The listings of the whole
//! tree are held until the walk has given them (names and stats: the size of the walk the scan
//! keeps anyway). An open takes the file's stat in the same round trip, and
//! [`Origin::files_in_flight`] asks readers to read several files at once.
//!
//! A server without the `fsync@openssh.com` extension cannot make a file or directory durable:
//! `commit` and `sync_dir` then rely on the server's own writeback.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::sftp::{DirEntries, Sftp, SftpFile, SftpStat};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::origin::temp::temp_name;
use crate::origin::{
    bad_name, is_temporary, Capabilities, ChangeKey, EntryKind, EntryStat, MtimeResolution, Origin,
    OriginFile, TempFile, WalkItem, WritableOrigin,
};
use crate::relpath::{join, parent, RelPath};

/// Files a reader keeps under way at once (each with up to 2 MiB of reads in flight).
const FILES_IN_FLIGHT: usize = 8;

/// Writes reach the server in requests of at least this many bytes (the last one aside).
const WRITE_BUFFER: usize = 256 * 1024;

/// A directory on an SFTP server, readable and writable.
pub struct SftpOrigin {
    sftp: Arc<Sftp>,
    label: String,
    /// Absolute, canonical when it existed at `new`; never ends with `/` unless it is `/`.
    root: Vec<u8>,
    url: String,
}

impl std::fmt::Debug for SftpOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpOrigin")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The entries of a directory still to visit, sorted.
type Listing = std::vec::IntoIter<(Vec<u8>, SftpStat)>;

/// Our stat record of an SFTP one.
fn entry_stat(s: &SftpStat) -> EntryStat {
    EntryStat {
        kind: s.kind,
        size: s.size,
        mtime_ns: s.mtime_ns,
        change: ChangeKey::None,
        mode: s.mode & 0o7777,
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.into())
}

fn invalid_data(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Whether a server error means the entry is not there.
fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Lexically normalized absolute path: no empty or `.` components, `..` pops.
fn normalize_absolute(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(path.len() + 1);
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

impl SftpOrigin {
    /// The directory `root` on the server `sftp` is connected to; `label` (such as
    /// `user@host:port`) names the server in the origin's URL and in messages. `root` must
    /// be an existing directory unless `may_create`; a relative one (empty: the login
    /// directory itself) is taken from the login directory.
    pub fn new(sftp: Arc<Sftp>, label: &str, root: &[u8], may_create: bool) -> Result<Self> {
        let root = if root.is_empty() { b"." } else { root };
        let shown = format!("{label}:{}", String::from_utf8_lossy(root));
        if root.contains(&0) {
            return Err(Error::InvalidInput(format!("{shown}: not a valid path")));
        }
        let unreachable = |e: io::Error| Error::Unreachable {
            origin: shown.clone(),
            message: e.to_string(),
        };
        let no_such_dir = || Error::InvalidInput(format!("{shown}: no such directory"));
        // Some servers canonicalize paths that do not exist: lstat decides.
        let (absolute, stat) = match sftp.canonicalize(root) {
            Ok(canonical) => {
                if !canonical.starts_with(b"/") || canonical.contains(&0) {
                    return Err(Error::Protocol {
                        origin: shown,
                        message: format!(
                            "the server canonicalized the root to {:?}",
                            String::from_utf8_lossy(&canonical)
                        ),
                    });
                }
                let stat = sftp.lstat(&canonical).map_err(unreachable)?;
                (normalize_absolute(&canonical), stat)
            }
            Err(e) if is_not_found(&e) => {
                let absolute = if root.starts_with(b"/") {
                    root.to_vec()
                } else {
                    let home = sftp.canonicalize(b".").map_err(unreachable)?;
                    join(&home, root)
                };
                (normalize_absolute(&absolute), None)
            }
            Err(e) => return Err(unreachable(e)),
        };
        match stat {
            None if !may_create => return Err(no_such_dir()),
            Some(s) if s.kind != EntryKind::Dir => {
                return Err(Error::InvalidInput(format!("{shown}: not a directory")))
            }
            _ => {}
        }
        let url = format!("sftp://{label}{}", String::from_utf8_lossy(&absolute));
        Ok(SftpOrigin {
            sftp,
            label: label.to_string(),
            root: absolute,
            url,
        })
    }

    /// The root directory on the server.
    pub fn root(&self) -> &[u8] {
        &self.root
    }

    /// The server path of `rel`, which must be a relative path of checked names.
    fn remote_path(&self, rel: &[u8]) -> Result<Vec<u8>> {
        if rel.is_empty() {
            return Ok(self.root.clone());
        }
        if let Err(why) = RelPath::new(rel) {
            return Err(Error::io(
                self.display(rel),
                invalid(format!("not a relative path: it contains {why}")),
            ));
        }
        let mut path = self.root.clone();
        if path != b"/" {
            path.push(b'/');
        }
        path.extend_from_slice(rel);
        Ok(path)
    }

    /// Creates a new temporary file in the directory of `rel`, with `make` (which gets the
    /// temporary's server path); returns the temporary's relative path and what `make` made.
    fn new_temp<T>(
        &self,
        rel: &[u8],
        mut make: impl FnMut(&[u8]) -> io::Result<T>,
    ) -> Result<(Vec<u8>, T)> {
        let dir = parent(rel);
        let mut attempt = 0u32;
        loop {
            let temp = join(dir, temp_name(rel, attempt).as_bytes());
            let path = self.remote_path(&temp)?;
            match make(&path) {
                Ok(made) => return Ok((temp, made)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
                Err(e) => return Err(Error::io(self.display(rel), e)),
            }
        }
    }

    /// Reads the directory `rel`: checked names, sorted bytewise.
    fn list(&self, rel: &[u8]) -> io::Result<DirEntries> {
        let path = self.remote_path(rel).map_err(|e| invalid(e.to_string()))?;
        checked_listing(self.sftp.read_dir(&path)?)
    }

    /// [`SftpOrigin::list`] of each of `dirs`, listed at once.
    fn list_many(&self, dirs: &[Vec<u8>]) -> Vec<io::Result<DirEntries>> {
        let mut paths = Vec::with_capacity(dirs.len());
        let mut bad = HashMap::new();
        for (i, rel) in dirs.iter().enumerate() {
            match self.remote_path(rel) {
                Ok(path) => paths.push(path),
                Err(e) => {
                    bad.insert(i, invalid(e.to_string()));
                    paths.push(self.root.clone());
                }
            }
        }
        self.sftp
            .read_dirs(&paths)
            .into_iter()
            .enumerate()
            .map(|(i, listed)| match bad.remove(&i) {
                Some(e) => Err(e),
                None => listed.and_then(checked_listing),
            })
            .collect()
    }

    /// The listing of every directory of the tree that `filter` lets in, level by level,
    /// each level's directories listed at once.
    fn list_tree(&self, filter: &Filter) -> HashMap<Vec<u8>, io::Result<Listing>> {
        let mut listings = HashMap::new();
        let mut level: Vec<Vec<u8>> = vec![Vec::new()];
        while !level.is_empty() {
            let listed = self.list_many(&level);
            let mut next = Vec::new();
            for (dir, result) in level.into_iter().zip(listed) {
                if let Ok(entries) = &result {
                    next.extend(
                        entries
                            .iter()
                            .filter(|(_, stat)| stat.kind == EntryKind::Dir)
                            .map(|(name, _)| join(&dir, name))
                            .filter(|rel| !filter.excludes(rel, true)),
                    );
                }
                listings.insert(dir, result.map(Vec::into_iter));
            }
            level = next;
        }
        listings
    }
}

/// A directory's entries as the server gave them, checked (no name that cannot be a path
/// component, none twice) and sorted bytewise.
fn checked_listing(mut entries: DirEntries) -> io::Result<DirEntries> {
    entries.retain(|(name, _)| name != b"." && name != b"..");
    if let Some(why) = entries.iter().find_map(|(name, _)| bad_name(name)) {
        return Err(invalid_data(format!("the server listed {why}")));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    if entries.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(invalid_data("the server listed a name twice"));
    }
    Ok(entries)
}

impl SftpOrigin {
    /// One walked entry: symlinks get their target, temporaries are set aside.
    fn walk_item(&self, rel: Vec<u8>, name: &[u8], stat: &SftpStat) -> WalkItem {
        if stat.kind == EntryKind::File && is_temporary(name) {
            return WalkItem::Temporary(rel);
        }
        let target = if stat.kind == EntryKind::Symlink {
            let target = self
                .remote_path(&rel)
                .map_err(|e| invalid(e.to_string()))
                .and_then(|path| self.sftp.read_link(&path));
            match target {
                Ok(t) if !t.is_empty() && !t.contains(&0) => Some(t),
                Ok(_) => {
                    return WalkItem::Problem {
                        path: rel,
                        message: "the server sent an empty symlink target or one with NUL".into(),
                    }
                }
                Err(e) => {
                    return WalkItem::Problem {
                        path: rel,
                        message: e.to_string(),
                    }
                }
            }
        } else {
            None
        };
        WalkItem::Entry {
            path: rel,
            stat: entry_stat(stat),
            target,
        }
    }
}

/// A remote file read over SFTP.
struct RemoteFile {
    file: SftpFile,
    /// The stat taken with the open, the answer to a `stat` asked before anything is read
    /// (which saves the round trip of an `fstat`); later ones ask the server.
    opened: Option<SftpStat>,
}

impl Read for RemoteFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.opened = None;
        self.file.read(buf)
    }
}

impl Seek for RemoteFile {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.opened = None;
        self.file.seek(pos)
    }
}

impl OriginFile for RemoteFile {
    fn stat(&mut self) -> io::Result<EntryStat> {
        match self.opened.take() {
            Some(stat) => Ok(entry_stat(&stat)),
            None => self.file.fstat().map(|s| entry_stat(&s)),
        }
    }

    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.opened = None;
        self.file.read_at(buf, offset)
    }
}

/// A temporary file on the server, renamed over its target on commit.
struct RemoteTemp {
    sftp: Arc<Sftp>,
    file: SftpFile,
    /// Server paths.
    path: Vec<u8>,
    target: Vec<u8>,
    /// For messages: the file the temporary becomes (its own name means nothing to a user).
    shown_target: PathBuf,
    buf: Vec<u8>,
}

impl RemoteTemp {
    fn flush_buffer(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl Write for RemoteTemp {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.is_empty() && data.len() >= WRITE_BUFFER {
            self.file.write_all(data)?;
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= WRITE_BUFFER {
            self.flush_buffer()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buffer()?;
        self.file.flush()
    }
}

impl TempFile for RemoteTemp {
    fn commit(mut self: Box<Self>, mode: u32, mtime_ns: i64) -> Result<()> {
        let written = self.flush().and_then(|()| match self.file.fsync() {
            Err(e) if e.kind() != io::ErrorKind::Unsupported => Err(e),
            _ => Ok(()),
        });
        let RemoteTemp {
            sftp,
            file,
            path,
            target,
            shown_target,
            ..
        } = *self;
        // Every write was acknowledged by `flush`, so none can land after the mtime is set;
        // the close is sent on drop without waiting.
        drop(file);
        let result = written
            .and_then(|()| sftp.set_meta(&path, mode, mtime_ns))
            // Named by the file it becomes: the temporary name means nothing to the user.
            .map_err(|e| Error::io(&shown_target, e))
            .and_then(|()| {
                sftp.rename_over(&path, &target)
                    .map_err(|e| Error::io(&shown_target, e))
            });
        if result.is_err() {
            let _ = sftp.remove_file(&path);
        }
        result
    }

    fn discard(self: Box<Self>) {
        let RemoteTemp {
            sftp, file, path, ..
        } = *self;
        drop(file);
        let _ = sftp.remove_file(&path);
    }
}

impl Origin for SftpOrigin {
    fn url(&self) -> &str {
        &self.url
    }

    /// Atomic replace with `posix-rename@openssh.com` (a plain SFTP rename fails over an
    /// existing target), durable commit with `fsync@openssh.com`, as the server offered
    /// them when the session started; symlinks and directories always; no stable identity
    /// (SFTP carries no inode) and whole-second mtimes (version 3 attributes).
    fn capabilities(&self) -> Capabilities {
        let (posix_rename, fsync) = self.sftp.extensions();
        Capabilities {
            atomic_replace: posix_rename,
            durable_commit: fsync,
            symlinks: true,
            directories: true,
            stable_identity: false,
            content_keys: false,
            mtime_resolution: MtimeResolution::Second,
        }
    }

    /// Each file costs round trips (open, reads, stat) that only other files' requests can
    /// fill: readers keep `FILES_IN_FLIGHT` (8) files under way.
    fn files_in_flight(&self) -> usize {
        FILES_IN_FLIGHT
    }

    /// `label:/root/rel`.
    fn display(&self, rel: &[u8]) -> PathBuf {
        let mut shown = Vec::with_capacity(self.label.len() + 1 + self.root.len() + 1 + rel.len());
        shown.extend_from_slice(self.label.as_bytes());
        shown.push(b':');
        shown.extend_from_slice(&self.root);
        if !rel.is_empty() {
            if self.root != b"/" {
                shown.push(b'/');
            }
            shown.extend_from_slice(rel);
        }
        PathBuf::from(OsStr::from_bytes(&shown))
    }

    /// Walks the tree depth first, names sorted bytewise, symlinks not followed. A directory
    /// whose listing fails or holds a name that cannot be a path component is reported as a
    /// problem, with none of its entries.
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.walk_filtered(&Filter::none(), visit)
    }

    /// Asks the filter of each name the listing gives, with the kind the listing gives, so an
    /// excluded entry costs no `readlink` and an excluded directory is never listed.
    fn walk_filtered(&self, filter: &Filter, visit: &mut dyn FnMut(WalkItem)) {
        let mut listings = self.list_tree(filter);
        let mut listed = |rel: &[u8]| {
            listings.remove(rel).unwrap_or_else(|| {
                Err(io::Error::other(
                    "the directory changed kind while it was listed",
                ))
            })
        };
        // Open directories, each with the entries still to visit; a stack, not recursion, so
        // a hostile server's endless nesting cannot overflow ours.
        let mut stack: Vec<(Vec<u8>, Listing)> = Vec::new();
        match listed(b"") {
            Ok(entries) => stack.push((Vec::new(), entries)),
            Err(e) => visit(WalkItem::Problem {
                path: Vec::new(),
                message: e.to_string(),
            }),
        }
        while let Some((dir, entries)) = stack.last_mut() {
            let Some((name, stat)) = entries.next() else {
                stack.pop();
                continue;
            };
            let rel = join(dir, &name);
            if !(stat.kind == EntryKind::File && is_temporary(&name))
                && filter.excludes(&rel, stat.kind == EntryKind::Dir)
            {
                visit(WalkItem::Excluded(rel));
                continue;
            }
            if stat.kind != EntryKind::Dir {
                visit(self.walk_item(rel, &name, &stat));
                continue;
            }
            visit(self.walk_item(rel.clone(), &name, &stat));
            match listed(&rel) {
                Ok(children) => stack.push((rel, children)),
                Err(e) => visit(WalkItem::Problem {
                    path: rel,
                    message: e.to_string(),
                }),
            }
        }
    }

    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        let path = self.remote_path(rel)?;
        let shown = || self.display(rel);
        let (file, stat) = self
            .sftp
            .open_read_stat(&path)
            .map_err(|e| Error::io(shown(), e))?;
        Ok(Box::new(RemoteFile {
            file,
            opened: Some(stat),
        }))
    }

    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        let path = self.remote_path(rel)?;
        self.sftp
            .lstat(&path)
            .map(|s| s.as_ref().map(entry_stat))
            .map_err(|e| Error::io(self.display(rel), e))
    }
}

impl WritableOrigin for SftpOrigin {
    /// Creates the root and any missing parents, as `mkdir -p`.
    fn create_root(&self) -> Result<()> {
        let mut path = Vec::with_capacity(self.root.len());
        for part in self.root.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            path.push(b'/');
            path.extend_from_slice(part);
            let shown =
                || PathBuf::from(format!("{}:{}", self.label, String::from_utf8_lossy(&path)));
            match self.sftp.lstat(&path).map_err(|e| Error::io(shown(), e))? {
                // A symlinked parent is fine: creating below it fails if it is no directory.
                Some(s) if matches!(s.kind, EntryKind::Dir | EntryKind::Symlink) => {}
                Some(_) => {
                    return Err(Error::io(
                        shown(),
                        io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                    ))
                }
                None => self
                    .sftp
                    .mkdir(&path, 0o755)
                    .map_err(|e| Error::io(shown(), e))?,
            }
        }
        Ok(())
    }

    /// Creates `.musicfs-<16 hex>.tmp`, mode 0600, in the directory of `rel`.
    fn create_temp(&self, rel: &[u8]) -> Result<Box<dyn TempFile>> {
        let target = self.remote_path(rel)?;
        let sftp = &self.sftp;
        let (_, (path, file)) = self.new_temp(rel, |path| {
            sftp.create_new(path, 0o600).map(|f| (path.to_vec(), f))
        })?;
        Ok(Box::new(RemoteTemp {
            sftp: Arc::clone(&self.sftp),
            file,
            path,
            target,
            shown_target: self.display(rel),
            buf: Vec::with_capacity(WRITE_BUFFER),
        }))
    }

    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> Result<()> {
        let path = self.remote_path(rel)?;
        self.sftp
            .set_meta(&path, mode, mtime_ns)
            .map_err(|e| Error::io(self.display(rel), e))
    }

    /// Creates a directory, mode 0755 (its parent exists; an existing one is fine).
    fn create_dir(&self, rel: &[u8]) -> Result<()> {
        let path = self.remote_path(rel)?;
        self.sftp
            .mkdir(&path, 0o755)
            .map_err(|e| Error::io(self.display(rel), e))
    }

    /// Creates the link under a temporary name, then renames it over `rel`.
    fn symlink(&self, rel: &[u8], target: &[u8]) -> Result<()> {
        if target.is_empty() || target.contains(&0) {
            return Err(Error::io(
                self.display(rel),
                invalid("a symlink target must be non-empty and without NUL"),
            ));
        }
        let final_path = self.remote_path(rel)?;
        let sftp = &self.sftp;
        let (_, path) = self.new_temp(rel, |path| {
            sftp.symlink(path, target).map(|()| path.to_vec())
        })?;
        self.sftp.rename_over(&path, &final_path).map_err(|e| {
            let _ = self.sftp.remove_file(&path);
            Error::io(self.display(rel), e)
        })
    }

    fn rename(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let (from_path, to_path) = (self.remote_path(from)?, self.remote_path(to)?);
        self.sftp
            .rename_over(&from_path, &to_path)
            .map_err(|e| Error::io(self.display(from), e))
    }

    /// Removes a file, symlink or whole directory tree, children first; symlinks are removed,
    /// never followed.
    fn remove(&self, rel: &[u8]) -> Result<()> {
        let path = self.remote_path(rel)?;
        let stat = self
            .sftp
            .lstat(&path)
            .map_err(|e| Error::io(self.display(rel), e))?;
        match stat {
            None => Ok(()),
            Some(s) if s.kind == EntryKind::Dir => self.remove_tree(rel),
            Some(_) => self.remove_entry(rel, false),
        }
    }

    fn sync_dir(&self, rel: &[u8]) -> Result<()> {
        let path = self.remote_path(rel)?;
        match self.sftp.fsync_dir(&path) {
            Err(e) if e.kind() != io::ErrorKind::Unsupported => {
                Err(Error::io(self.display(rel), e))
            }
            _ => Ok(()),
        }
    }
}

impl SftpOrigin {
    /// Removes the directory `rel` and everything below it, depth first.
    fn remove_tree(&self, rel: &[u8]) -> Result<()> {
        // Directories whose children are still to remove, with those children.
        let mut stack: Vec<(Vec<u8>, Listing)> = Vec::new();
        let listed = |dir: &[u8]| match self.list(dir) {
            Ok(entries) => Ok(entries),
            Err(e) if is_not_found(&e) => Ok(Vec::new()),
            Err(e) => Err(Error::io(self.display(dir), e)),
        };
        stack.push((rel.to_vec(), listed(rel)?.into_iter()));
        while let Some((dir, entries)) = stack.last_mut() {
            match entries.next() {
                Some((name, stat)) => {
                    let child = join(dir, &name);
                    if stat.kind == EntryKind::Dir {
                        let children = listed(&child)?;
                        stack.push((child, children.into_iter()));
                    } else {
                        self.remove_entry(&child, false)?;
                    }
                }
                None => {
                    let dir = std::mem::take(dir);
                    stack.pop();
                    self.remove_entry(&dir, true)?;
                }
            }
        }
        Ok(())
    }

    /// Removes one file, symlink or empty directory; a missing one is fine.
    fn remove_entry(&self, rel: &[u8], dir: bool) -> Result<()> {
        let path = self.remote_path(rel)?;
        let result = if dir {
            self.sftp.remove_dir(&path)
        } else {
            self.sftp.remove_file(&path)
        };
        match result {
            Err(e) if !is_not_found(&e) => Err(Error::io(self.display(rel), e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_names_that_are_no_path_component_are_refused() {
        for name in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b"] {
            assert!(bad_name(name).is_some(), "{name:?}");
        }
        for name in [&b"..."[..], b".hidden", b"a..b", b"Caf\xc3\xa9", b" "] {
            assert_eq!(bad_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn roots_are_normalized_lexically() {
        assert_eq!(normalize_absolute(b"/srv//music/./"), b"/srv/music");
        assert_eq!(normalize_absolute(b"/srv/a/../music"), b"/srv/music");
        assert_eq!(normalize_absolute(b"/../.."), b"/");
        assert_eq!(normalize_absolute(b"/"), b"/");
    }
}
