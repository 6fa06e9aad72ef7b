//! `NfsOrigin`: a directory of an NFSv3 export, read and written through the userspace
//! client, with the `Origin` and `WritableOrigin` contracts (docs/architecture.md).
//!
//! Stats carry a [`ChangeKey::Posix`] made of the file system id, the file id and the change
//! time, which NFS keeps as a local file system does: a rename keeps the file id, a write
//! changes the ctime. Every name the server lists is checked before it becomes part of a
//! path; a hostile one is reported as a problem of its directory and skipped. Every path this
//! origin sends is built from checked relative paths under its root.
//!
//! Never does: follow a symlink, retry (beyond one fresh lookup of a stale handle, `ops.rs`),
//! or leave the temporary file of a failed commit behind when it can remove it.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::file::{NfsFile, NfsTemp};
use super::ops::{entry_stat, full, set_attrs, Shared};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::origin::temp::temp_name;
use crate::origin::{
    is_temporary, Capabilities, EntryKind, EntryStat, Origin, OriginFile, TempFile, WalkItem,
    WritableOrigin,
};
use crate::relpath::{join, name, parent, RelPath};

/// A directory of an NFS export.
pub struct NfsOrigin {
    shared: Arc<Shared>,
    /// The origin's root below the mounted directory (relative, empty for the mounted one).
    prefix: Vec<u8>,
    url: String,
    capabilities: Capabilities,
}

impl std::fmt::Debug for NfsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NfsOrigin")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A listed directory still to visit: its path and entries, sorted.
type Pending = (Vec<u8>, std::vec::IntoIter<super::ops::Listed>);

impl NfsOrigin {
    /// The origin at `prefix` below the mounted directory of `shared`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        prefix: Vec<u8>,
        url: String,
        capabilities: Capabilities,
    ) -> NfsOrigin {
        NfsOrigin {
            shared,
            prefix,
            url,
            capabilities,
        }
    }

    /// `rel`, checked, below the mounted directory.
    fn path(&self, rel: &[u8]) -> Result<Vec<u8>> {
        RelPath::new(rel).map_err(|why| {
            Error::InvalidInput(format!("{}: {why}", self.display(rel).display()))
        })?;
        Ok(full(&self.prefix, rel))
    }

    fn err(&self, rel: &[u8], e: io::Error) -> Error {
        Error::io(self.display(rel), e)
    }

    /// The attributes and handle of `path` (below the mounted directory), fresh from the
    /// server; `None` when it (or a parent) is missing or a parent is no directory.
    fn lookup_path(
        &self,
        path: &[u8],
    ) -> io::Result<Option<(nfs3_client::nfs3_types::nfs3::nfs_fh3, EntryStat)>> {
        let shared = &self.shared;
        shared.fresh(|| {
            if path.is_empty() {
                let h = shared.handle(b"")?;
                let a = shared.getattr(&h)?;
                return Ok(Some((h, entry_stat(&a))));
            }
            let dir = match shared.handle(parent(path)) {
                Ok(d) => d,
                Err(e) if missing(&e) => return Ok(None),
                Err(e) => return Err(e),
            };
            match shared.lookup(&dir, name(path)) {
                Ok(Some((h, a))) => {
                    shared.remember(path, &h);
                    Ok(Some((h, entry_stat(&a))))
                }
                Ok(None) => Ok(None),
                Err(e) if missing(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// One walked entry: symlinks with their target, temporaries set aside.
    fn walk_item(&self, rel: Vec<u8>, listed: &super::ops::Listed) -> WalkItem {
        let stat = entry_stat(&listed.attrs);
        if stat.kind == EntryKind::File && is_temporary(&listed.name) {
            return WalkItem::Temporary(rel);
        }
        let target = if stat.kind == EntryKind::Symlink {
            match self.shared.readlink(&listed.handle) {
                Ok(t) if !t.is_empty() && !t.contains(&0) => Some(t),
                Ok(_) => {
                    return WalkItem::Problem {
                        path: rel,
                        message: "the server sent an empty symlink target or one with NUL".into(),
                    }
                }
                Err(e) => {
                    return WalkItem::Problem {
                        message: self.err(&rel, e).to_string(),
                        path: rel,
                    }
                }
            }
        } else {
            None
        };
        WalkItem::Entry {
            path: rel,
            stat,
            target,
        }
    }

    /// The sorted entries of directory `rel`, each handle remembered; hostile names are
    /// reported through `visit` as problems of the directory.
    fn list(&self, rel: &[u8], visit: &mut dyn FnMut(WalkItem)) -> Result<Pending> {
        let path = full(&self.prefix, rel);
        let (mut listed, hostile) = self
            .shared
            .fresh(|| {
                let dir = self.shared.handle(&path)?;
                self.shared.list(&dir)
            })
            .map_err(|e| self.err(rel, e))?;
        for name in hostile {
            visit(WalkItem::Problem {
                path: rel.to_vec(),
                message: format!(
                    "{}: the server listed a name no path may hold, skipped: {name}",
                    self.display(rel).display()
                ),
            });
        }
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        listed.dedup_by(|a, b| a.name == b.name);
        for l in &listed {
            if l.attrs.type_ == nfs3_client::nfs3_types::nfs3::ftype3::NF3DIR {
                self.shared.remember(&join(&path, &l.name), &l.handle);
            }
        }
        Ok((rel.to_vec(), listed.into_iter()))
    }

    /// Removes the tree at `path` bottom up (its handle `handle`, a directory).
    fn remove_tree(&self, path: &[u8]) -> io::Result<()> {
        let shared = &self.shared;
        let dir = shared.handle(path)?;
        let (entries, hostile) = shared.list(&dir)?;
        if let Some(name) = hostile.first() {
            return Err(invalid(format!(
                "the directory holds a name no path may hold: {name}"
            )));
        }
        for e in entries {
            let child = join(path, &e.name);
            if e.attrs.type_ == nfs3_client::nfs3_types::nfs3::ftype3::NF3DIR {
                self.remove_tree(&child)?;
            } else {
                match shared.remove(&dir, &e.name) {
                    Err(e) if missing(&e) => {}
                    other => other?,
                }
            }
        }
        shared.forget(path);
        let up = shared.handle(parent(path))?;
        match shared.rmdir(&up, name(path)) {
            Err(e) if missing(&e) => Ok(()),
            other => other,
        }
    }
}

/// Whether an error means the entry (or a parent) is not there.
fn missing(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR))
        || e.kind() == io::ErrorKind::NotFound
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl Origin for NfsOrigin {
    fn url(&self) -> &str {
        &self.url
    }

    fn display(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            return PathBuf::from(&self.url);
        }
        PathBuf::from(format!("{}/{}", self.url, String::from_utf8_lossy(rel)))
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.walk_filtered(&Filter::none(), visit)
    }

    /// Asks the filter of each listed name, with the kind the listing gives, so an excluded
    /// directory is never listed.
    fn walk_filtered(&self, filter: &Filter, visit: &mut dyn FnMut(WalkItem)) {
        // Every walk looks its directories up afresh (and caches them again as it lists).
        self.shared.forget_below_mount();
        // A stack, not recursion: a hostile server's endless nesting cannot overflow ours.
        let mut stack: Vec<Pending> = Vec::new();
        match self.list(b"", visit) {
            Ok(root) => stack.push(root),
            Err(e) => visit(WalkItem::Problem {
                path: Vec::new(),
                message: e.to_string(),
            }),
        }
        while let Some((dir, entries)) = stack.last_mut() {
            let Some(listed) = entries.next() else {
                stack.pop();
                continue;
            };
            let rel = join(dir, &listed.name);
            let stat_kind = entry_stat(&listed.attrs).kind;
            if !(stat_kind == EntryKind::File && is_temporary(&listed.name))
                && filter.excludes(&rel, stat_kind == EntryKind::Dir)
            {
                visit(WalkItem::Excluded(rel));
                continue;
            }
            let item = self.walk_item(rel.clone(), &listed);
            visit(item);
            if stat_kind == EntryKind::Dir {
                match self.list(&rel, visit) {
                    Ok(children) => stack.push(children),
                    Err(e) => visit(WalkItem::Problem {
                        path: rel,
                        message: e.to_string(),
                    }),
                }
            }
        }
    }

    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        let path = self.path(rel)?;
        let (handle, stat) = self
            .lookup_path(&path)
            .map_err(|e| self.err(rel, e))?
            .ok_or_else(|| self.err(rel, io::Error::from_raw_os_error(libc::ENOENT)))?;
        if stat.kind == EntryKind::Dir {
            return Err(self.err(rel, io::Error::from_raw_os_error(libc::EISDIR)));
        }
        Ok(Box::new(NfsFile::new(
            self.shared.clone(),
            handle,
            path,
            &stat,
            self.display(rel),
        )))
    }

    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        let path = self.path(rel)?;
        self.lookup_path(&path)
            .map(|found| found.map(|(_, stat)| stat))
            .map_err(|e| self.err(rel, e))
    }
}

impl WritableOrigin for NfsOrigin {
    /// Creates the root and its missing parents below the mounted directory, as `mkdir -p`.
    fn create_root(&self) -> Result<()> {
        let shared = &self.shared;
        let mut path = Vec::new();
        for part in self.prefix.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            path = join(&path, part);
            let made = shared.fresh(|| {
                let dir = shared.handle(parent(&path))?;
                match shared.lookup(&dir, part)? {
                    Some((_, a)) if entry_stat(&a).kind == EntryKind::Dir => Ok(()),
                    Some(_) => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                    None => match shared.mkdir(&dir, part, 0o755) {
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
                        other => other,
                    },
                }
            });
            made.map_err(|e| {
                Error::io(
                    PathBuf::from(format!("{} ({})", self.url, String::from_utf8_lossy(&path))),
                    e,
                )
            })?;
        }
        Ok(())
    }

    fn create_temp(&self, rel: &[u8]) -> Result<Box<dyn TempFile>> {
        let path = self.path(rel)?;
        if rel.is_empty() {
            return Err(Error::InvalidInput(format!("{}: not a file", self.url)));
        }
        let dir_path = parent(&path).to_vec();
        let shared = &self.shared;
        for attempt in 0..8 {
            let temp = temp_name(rel, attempt).into_bytes();
            let made = shared.fresh(|| {
                let dir = shared.handle(&dir_path)?;
                shared.create(&dir, &temp, 0o600)
            });
            match made {
                Ok(handle) => {
                    return NfsTemp::new(
                        shared.clone(),
                        handle,
                        dir_path,
                        temp,
                        name(&path).to_vec(),
                        self.display(rel),
                        self.capabilities.mtime_resolution,
                    )
                    .map(|t| Box::new(t) as Box<dyn TempFile>)
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(self.err(rel, e)),
            }
        }
        Err(self.err(
            rel,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "every temporary name tried is taken",
            ),
        ))
    }

    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> Result<()> {
        let path = self.path(rel)?;
        let mtime = self.capabilities.mtime_resolution.truncate(mtime_ns);
        let attrs = set_attrs(Some(mode), Some(mtime)).map_err(|e| self.err(rel, e))?;
        self.shared
            .fresh(|| {
                let h = self.shared.handle(&path)?;
                self.shared.setattr(&h, attrs.clone())
            })
            .map_err(|e| self.err(rel, e))
    }

    fn create_dir(&self, rel: &[u8]) -> Result<()> {
        let path = self.path(rel)?;
        if rel.is_empty() {
            return self.create_root();
        }
        let shared = &self.shared;
        shared
            .fresh(|| {
                let dir = shared.handle(parent(&path))?;
                match shared.mkdir(&dir, name(&path), 0o755) {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        match shared.lookup(&dir, name(&path))? {
                            Some((_, a)) if entry_stat(&a).kind == EntryKind::Dir => Ok(()),
                            _ => Err(e),
                        }
                    }
                    other => other,
                }
            })
            .map_err(|e| self.err(rel, e))
    }

    fn symlink(&self, rel: &[u8], target: &[u8]) -> Result<()> {
        let path = self.path(rel)?;
        if rel.is_empty() || target.is_empty() || target.contains(&0) {
            return Err(Error::InvalidInput(format!(
                "{}: not a symlink that can be made",
                self.display(rel).display()
            )));
        }
        let shared = &self.shared;
        let dir_path = parent(&path).to_vec();
        let temp = temp_name(rel, 0).into_bytes();
        shared
            .fresh(|| {
                let dir = shared.handle(&dir_path)?;
                shared.symlink(&dir, &temp, target)?;
                if let Err(e) = shared.rename(&dir, &temp, &dir, name(&path)) {
                    let _ = shared.remove(&dir, &temp);
                    return Err(e);
                }
                Ok(())
            })
            .map_err(|e| self.err(rel, e))?;
        shared.forget(&path);
        Ok(())
    }

    fn rename(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let from_path = self.path(from)?;
        let to_path = self.path(to)?;
        let shared = &self.shared;
        shared
            .fresh(|| {
                let from_dir = shared.handle(parent(&from_path))?;
                let to_dir = shared.handle(parent(&to_path))?;
                shared.rename(&from_dir, name(&from_path), &to_dir, name(&to_path))
            })
            .map_err(|e| self.err(from, e))?;
        shared.forget(&from_path);
        shared.forget(&to_path);
        Ok(())
    }

    fn remove(&self, rel: &[u8]) -> Result<()> {
        let path = self.path(rel)?;
        if rel.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{}: the root is not removed",
                self.url
            )));
        }
        let shared = &self.shared;
        let outcome = shared.fresh(|| {
            let Some((_, stat)) = self.lookup_path(&path)? else {
                return Ok(());
            };
            if stat.kind == EntryKind::Dir {
                return self.remove_tree(&path);
            }
            let dir = shared.handle(parent(&path))?;
            match shared.remove(&dir, name(&path)) {
                Err(e) if missing(&e) => Ok(()),
                other => other,
            }
        });
        shared.forget(&path);
        outcome.map_err(|e| self.err(rel, e))
    }

    /// NFSv3 servers make directory operations (CREATE, RENAME, REMOVE) durable before they
    /// answer (RFC 1813, section 3.3), so there is nothing left to flush.
    fn sync_dir(&self, _rel: &[u8]) -> Result<()> {
        Ok(())
    }
}
