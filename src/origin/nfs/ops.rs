//! The NFSv3 procedures the origin uses, on file handles, and the cache of handles by path.
//!
//! A path below the mounted export is resolved to a handle by LOOKUPs from the deepest
//! directory whose handle is cached; every handle a lookup or a listing returns is cached.
//! A call that finds a handle stale (`NFS3ERR_STALE`: the directory was replaced on the
//! server, or the server forgot its handles) drops the whole cache and is made once more,
//! resolving its path from the export's root again (mounting it again if its root handle is
//! stale too); stale a second time, the error (`ESTALE`, transient) goes to the caller, whose
//! retry wrapper waits and tries again.
//!
//! Never does: retry anything but that one re-lookup, or cache what a path names beyond the
//! handle (attributes are always fetched fresh).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nfs3_client::nfs3_types::nfs3::{
    cookieverf3, diropargs3, fattr3, filename3, ftype3, nfs_fh3, nfsstat3, nfstime3, sattr3,
    set_atime, set_mode3, set_mtime, stable_how, writeverf3, COMMIT3args, CREATE3args, FSINFO3args,
    GETATTR3args, LOOKUP3args, MKDIR3args, Nfs3Option, Nfs3Result, READ3args, READDIR3args,
    READDIRPLUS3args, READLINK3args, REMOVE3args, RENAME3args, RMDIR3args, SETATTR3args,
    SYMLINK3args, WRITE3args,
};
use nfs3_client::nfs3_types::nfs3::{createhow3, nfspath3, symlinkdata3};
use nfs3_client::nfs3_types::xdr_codec::Opaque;

use super::client::{invalid_data, is_stale, status_error, Server};
use crate::origin::{ChangeKey, EntryKind, EntryStat};
use crate::relpath::{join, name, parent};

/// Reads and writes are at most this large whatever the server offers (its FSINFO `rtmax`
/// and `wtmax`), and at least 4 KiB.
pub(crate) const TRANSFER_MAX: u32 = 1024 * 1024;

/// Handles cached at most; past that the cache starts again empty (a walk of a large library
/// refills what it needs).
const CACHED_MAX: usize = 200_000;

/// Entries of one directory at most: a server that lists more (or never says it is done) is
/// refused.
const LISTING_MAX: usize = 4_000_000;

/// One entry of a directory listing, its name already checked.
pub(crate) struct Listed {
    /// The name.
    pub name: Vec<u8>,
    /// Its attributes.
    pub attrs: fattr3,
    /// Its handle.
    pub handle: nfs_fh3,
}

/// The connection, the export and the handle cache of one origin.
pub(crate) struct Shared {
    /// The connections.
    pub server: Server,
    /// The path given to MOUNT.
    pub export: Vec<u8>,
    /// Handles by path below the mounted directory (`""` is its root).
    handles: Mutex<HashMap<Vec<u8>, nfs_fh3>>,
    /// Cleared when the server refuses READDIRPLUS.
    readdirplus: AtomicBool,
    /// Read and write sizes.
    pub rsize: u32,
    /// See `rsize`.
    pub wsize: u32,
}

/// `result` of a call, its error status as an I/O error.
fn ok<T, E>(result: Nfs3Result<T, E>) -> io::Result<T> {
    match result {
        Nfs3Result::Ok(value) => Ok(value),
        Nfs3Result::Err((status, _)) => Err(status_error(status)),
    }
}

/// ns since the epoch of an NFS time (a server's `nseconds` beyond a second is clamped).
pub(crate) fn time_ns(t: nfstime3) -> i64 {
    i64::from(t.seconds) * 1_000_000_000 + i64::from(t.nseconds.min(999_999_999))
}

/// An NFS time for `mtime_ns`; NFSv3 carries unsigned seconds (1970 to 2106).
pub(crate) fn nfs_time(mtime_ns: i64) -> io::Result<nfstime3> {
    let seconds = u32::try_from(mtime_ns.div_euclid(1_000_000_000)).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "NFSv3 keeps modification times from 1970 to 2106 only",
        )
    })?;
    Ok(nfstime3 {
        seconds,
        nseconds: mtime_ns.rem_euclid(1_000_000_000) as u32,
    })
}

/// Our stat record of NFS attributes: the change key is the file system id, the file id and
/// the change time.
pub(crate) fn entry_stat(a: &fattr3) -> EntryStat {
    EntryStat {
        kind: match a.type_ {
            ftype3::NF3REG => EntryKind::File,
            ftype3::NF3DIR => EntryKind::Dir,
            ftype3::NF3LNK => EntryKind::Symlink,
            _ => EntryKind::Other,
        },
        size: a.size,
        mtime_ns: time_ns(a.mtime),
        change: ChangeKey::Posix {
            dev: a.fsid,
            ino: a.fileid,
            ctime_ns: time_ns(a.ctime),
        },
        mode: a.mode & 0o7777,
    }
}

/// Attributes that set `mode` and, when given, the mtime.
pub(crate) fn set_attrs(mode: Option<u32>, mtime_ns: Option<i64>) -> io::Result<sattr3> {
    Ok(sattr3 {
        mode: match mode {
            Some(m) => set_mode3::Some(m & 0o7777),
            None => set_mode3::None,
        },
        mtime: match mtime_ns {
            Some(t) => set_mtime::SET_TO_CLIENT_TIME(nfs_time(t)?),
            None => set_mtime::DONT_CHANGE,
        },
        atime: set_atime::DONT_CHANGE,
        ..Default::default()
    })
}

fn dirop(dir: &nfs_fh3, name: &[u8]) -> diropargs3<'static> {
    diropargs3 {
        dir: dir.clone(),
        name: filename3::from(name.to_vec()),
    }
}

impl Shared {
    /// The origin's shared state, with the export's root handle and transfer sizes known.
    pub(crate) fn new(
        server: Server,
        export: Vec<u8>,
        root: nfs_fh3,
        rsize: u32,
        wsize: u32,
    ) -> Shared {
        let mut handles = HashMap::new();
        handles.insert(Vec::new(), root);
        Shared {
            server,
            export,
            handles: Mutex::new(handles),
            readdirplus: AtomicBool::new(true),
            rsize,
            wsize,
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, nfs_fh3>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers the handle of `path`.
    pub(crate) fn remember(&self, path: &[u8], handle: &nfs_fh3) {
        let mut cache = self.cache();
        if cache.len() >= CACHED_MAX {
            let root = cache.remove(&b""[..]);
            cache.clear();
            if let Some(root) = root {
                cache.insert(Vec::new(), root);
            }
        }
        cache.insert(path.to_vec(), handle.clone());
    }

    /// Forgets the handle of `path` and of everything below it (after a rename or removal).
    pub(crate) fn forget(&self, path: &[u8]) {
        let mut cache = self.cache();
        if path.is_empty() {
            return cache.clear();
        }
        cache.retain(|k, _| {
            !(k.as_slice() == path || (k.starts_with(path) && k.get(path.len()) == Some(&b'/')))
        });
    }

    /// Forgets every handle but the mounted directory's, so that the next lookups see the
    /// tree as it is now: a directory renamed away on the server and another made in its
    /// place keeps a valid handle, which would go on naming the old one.
    pub(crate) fn forget_below_mount(&self) {
        self.cache().retain(|k, _| k.is_empty());
    }

    /// Runs `op`, and once more after dropping every cached handle when it found one stale.
    pub(crate) fn fresh<T>(&self, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        match op() {
            Err(e) if is_stale(&e) => {
                tracing::debug!("stale NFS handle; looking the path up again from the export");
                self.forget(b"");
                op()
            }
            other => other,
        }
    }

    /// The handle of `path` (below the mounted directory): cached, or looked up from the
    /// deepest cached parent. `NotFound` when a component is missing.
    pub(crate) fn handle(&self, path: &[u8]) -> io::Result<nfs_fh3> {
        if let Some(h) = self.cache().get(path) {
            return Ok(h.clone());
        }
        if path.is_empty() {
            let root = self.server.mount(&self.export)?.root;
            self.server.reset();
            self.remember(b"", &root);
            return Ok(root);
        }
        let dir = self.handle(parent(path))?;
        match self.lookup(&dir, name(path))? {
            Some((h, _)) => {
                self.remember(path, &h);
                Ok(h)
            }
            None => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }

    /// LOOKUP of `name` in `dir`: its handle and attributes; `None` when absent.
    pub(crate) fn lookup(
        &self,
        dir: &nfs_fh3,
        name: &[u8],
    ) -> io::Result<Option<(nfs_fh3, fattr3)>> {
        let args = LOOKUP3args {
            what: dirop(dir, name),
        };
        let res = self
            .server
            .call("LOOKUP", |c| Box::pin(async move { c.lookup(&args).await }))?;
        match res {
            Nfs3Result::Ok(ok) => {
                let attrs = match ok.obj_attributes {
                    Nfs3Option::Some(a) => a,
                    Nfs3Option::None => self.getattr(&ok.object)?,
                };
                Ok(Some((ok.object, attrs)))
            }
            Nfs3Result::Err((nfsstat3::NFS3ERR_NOENT, _)) => Ok(None),
            Nfs3Result::Err((status, _)) => Err(status_error(status)),
        }
    }

    /// GETATTR.
    pub(crate) fn getattr(&self, handle: &nfs_fh3) -> io::Result<fattr3> {
        let args = GETATTR3args {
            object: handle.clone(),
        };
        let res = self.server.call("GETATTR", |c| {
            Box::pin(async move { c.getattr(&args).await })
        })?;
        ok(res).map(|r| r.obj_attributes)
    }

    /// The entries of a directory, `.` and `..` left out; hostile names (holding `/` or NUL,
    /// empty) are not entries: each is returned in the second list, escaped, for a report.
    pub(crate) fn list(&self, dir: &nfs_fh3) -> io::Result<(Vec<Listed>, Vec<String>)> {
        if self.readdirplus.load(Ordering::Relaxed) {
            match self.list_plus(dir) {
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    tracing::debug!("the server refuses READDIRPLUS; listing with READDIR");
                    self.readdirplus.store(false, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        self.list_plain(dir)
    }

    /// A listing through READDIRPLUS (names, attributes and handles in one call).
    fn list_plus(&self, dir: &nfs_fh3) -> io::Result<(Vec<Listed>, Vec<String>)> {
        let mut cookie = 0u64;
        let mut verf = cookieverf3::default();
        let mut listed = Vec::new();
        let mut hostile = Vec::new();
        loop {
            let args = READDIRPLUS3args {
                dir: dir.clone(),
                cookie,
                cookieverf: verf,
                dircount: 32 * 1024,
                maxcount: 256 * 1024,
            };
            let res = self.server.call("READDIRPLUS", |c| {
                Box::pin(async move { c.readdirplus(&args).await })
            })?;
            let page = ok(res)?;
            verf = page.cookieverf;
            let entries = page.reply.entries.into_inner();
            let last = entries.last().map(|e| e.cookie);
            for e in entries {
                let name = e.name.0.to_vec();
                if !keep(&name, &mut hostile) {
                    continue;
                }
                let (handle, attrs) = match (e.name_handle, e.name_attributes) {
                    (Nfs3Option::Some(h), Nfs3Option::Some(a)) => (h, a),
                    // The server left them out: ask.
                    _ => match self.lookup(dir, &name)? {
                        Some(found) => found,
                        None => continue,
                    },
                };
                listed.push(Listed {
                    name,
                    attrs,
                    handle,
                });
            }
            if page.reply.eof {
                break;
            }
            cookie = next_cookie(cookie, last, listed.len() + hostile.len())?;
        }
        Ok((listed, hostile))
    }

    /// A listing through READDIR, then LOOKUP of each name (for servers without
    /// READDIRPLUS).
    fn list_plain(&self, dir: &nfs_fh3) -> io::Result<(Vec<Listed>, Vec<String>)> {
        let mut cookie = 0u64;
        let mut verf = cookieverf3::default();
        let mut names = Vec::new();
        let mut hostile = Vec::new();
        loop {
            let args = READDIR3args {
                dir: dir.clone(),
                cookie,
                cookieverf: verf,
                count: 64 * 1024,
            };
            let res = self.server.call("READDIR", |c| {
                Box::pin(async move { c.readdir(&args).await })
            })?;
            let page = ok(res)?;
            verf = page.cookieverf;
            let entries = page.reply.entries.into_inner();
            let last = entries.last().map(|e| e.cookie);
            for e in entries {
                let name = e.name.0.to_vec();
                if keep(&name, &mut hostile) {
                    names.push(name);
                }
            }
            if page.reply.eof {
                break;
            }
            cookie = next_cookie(cookie, last, names.len() + hostile.len())?;
        }
        let mut listed = Vec::with_capacity(names.len());
        for name in names {
            // Gone since the listing: not an entry any more.
            if let Some((handle, attrs)) = self.lookup(dir, &name)? {
                listed.push(Listed {
                    name,
                    attrs,
                    handle,
                });
            }
        }
        Ok((listed, hostile))
    }

    /// READLINK.
    pub(crate) fn readlink(&self, handle: &nfs_fh3) -> io::Result<Vec<u8>> {
        let args = READLINK3args {
            symlink: handle.clone(),
        };
        let res = self.server.call("READLINK", |c| {
            Box::pin(async move { c.readlink(&args).await })
        })?;
        ok(res).map(|r| r.data.0.to_vec())
    }

    /// READ of at most `count` bytes at `offset`: the bytes and whether the file ends there.
    pub(crate) fn read(
        &self,
        handle: &nfs_fh3,
        offset: u64,
        count: u32,
    ) -> io::Result<(Vec<u8>, bool)> {
        let args = READ3args {
            file: handle.clone(),
            offset,
            count: count.min(self.rsize),
        };
        let res = self
            .server
            .call("READ", |c| Box::pin(async move { c.read(&args).await }))?;
        let r = ok(res)?;
        let data = r.data.to_vec();
        if data.len() > args_count(count, self.rsize) {
            return Err(invalid_data("the server sent more than was asked"));
        }
        Ok((data, r.eof))
    }

    /// WRITE of all of `data` at `offset` (as many calls as the server needs), UNSTABLE; the
    /// write verifier of the last answer.
    pub(crate) fn write(
        &self,
        handle: &nfs_fh3,
        mut offset: u64,
        mut data: &[u8],
    ) -> io::Result<writeverf3> {
        let mut verf = writeverf3::default();
        while !data.is_empty() {
            let n = data.len().min(self.wsize as usize);
            let args = WRITE3args {
                file: handle.clone(),
                offset,
                count: n as u32,
                stable: stable_how::UNSTABLE,
                data: Opaque::owned(data[..n].to_vec()),
            };
            let res = self
                .server
                .call("WRITE", |c| Box::pin(async move { c.write(&args).await }))?;
            let r = ok(res)?;
            let written = (r.count as usize).min(n);
            if written == 0 {
                return Err(invalid_data("the server wrote nothing"));
            }
            verf = r.verf;
            offset += written as u64;
            data = &data[written..];
        }
        Ok(verf)
    }

    /// COMMIT of the whole file: its write verifier now.
    pub(crate) fn commit(&self, handle: &nfs_fh3) -> io::Result<writeverf3> {
        let args = COMMIT3args {
            file: handle.clone(),
            offset: 0,
            count: 0,
        };
        let res = self
            .server
            .call("COMMIT", |c| Box::pin(async move { c.commit(&args).await }))?;
        ok(res).map(|r| r.verf)
    }

    /// CREATE of a new file (GUARDED: `EEXIST` when the name is taken) with `mode`.
    pub(crate) fn create(&self, dir: &nfs_fh3, name: &[u8], mode: u32) -> io::Result<nfs_fh3> {
        let args = CREATE3args {
            where_: dirop(dir, name),
            how: createhow3::GUARDED(set_attrs(Some(mode), None)?),
        };
        let res = self
            .server
            .call("CREATE", |c| Box::pin(async move { c.create(&args).await }))?;
        let r = ok(res)?;
        match r.obj {
            Nfs3Option::Some(h) => Ok(h),
            Nfs3Option::None => self
                .lookup(dir, name)?
                .map(|(h, _)| h)
                .ok_or_else(|| invalid_data("a created file is not there")),
        }
    }

    /// MKDIR with `mode`.
    pub(crate) fn mkdir(&self, dir: &nfs_fh3, name: &[u8], mode: u32) -> io::Result<()> {
        let args = MKDIR3args {
            where_: dirop(dir, name),
            attributes: set_attrs(Some(mode), None)?,
        };
        let res = self
            .server
            .call("MKDIR", |c| Box::pin(async move { c.mkdir(&args).await }))?;
        ok(res).map(|_| ())
    }

    /// SYMLINK `name` in `dir` pointing at `target`.
    pub(crate) fn symlink(&self, dir: &nfs_fh3, name: &[u8], target: &[u8]) -> io::Result<()> {
        let args = SYMLINK3args {
            where_: dirop(dir, name),
            symlink: symlinkdata3 {
                symlink_attributes: sattr3::default(),
                symlink_data: nfspath3::from(target.to_vec()),
            },
        };
        let res = self.server.call("SYMLINK", |c| {
            Box::pin(async move { c.symlink(&args).await })
        })?;
        ok(res).map(|_| ())
    }

    /// SETATTR.
    pub(crate) fn setattr(&self, handle: &nfs_fh3, attrs: sattr3) -> io::Result<()> {
        let args = SETATTR3args {
            object: handle.clone(),
            new_attributes: attrs,
            guard: Nfs3Option::None,
        };
        let res = self.server.call("SETATTR", |c| {
            Box::pin(async move { c.setattr(&args).await })
        })?;
        ok(res).map(|_| ())
    }

    /// RENAME, replacing what is at the target.
    pub(crate) fn rename(
        &self,
        from_dir: &nfs_fh3,
        from: &[u8],
        to_dir: &nfs_fh3,
        to: &[u8],
    ) -> io::Result<()> {
        let args = RENAME3args {
            from: dirop(from_dir, from),
            to: dirop(to_dir, to),
        };
        let res = self
            .server
            .call("RENAME", |c| Box::pin(async move { c.rename(&args).await }))?;
        ok(res).map(|_| ())
    }

    /// REMOVE of a file or symlink.
    pub(crate) fn remove(&self, dir: &nfs_fh3, name: &[u8]) -> io::Result<()> {
        let args = REMOVE3args {
            object: dirop(dir, name),
        };
        let res = self
            .server
            .call("REMOVE", |c| Box::pin(async move { c.remove(&args).await }))?;
        ok(res).map(|_| ())
    }

    /// RMDIR of an empty directory.
    pub(crate) fn rmdir(&self, dir: &nfs_fh3, name: &[u8]) -> io::Result<()> {
        let args = RMDIR3args {
            object: dirop(dir, name),
        };
        let res = self
            .server
            .call("RMDIR", |c| Box::pin(async move { c.rmdir(&args).await }))?;
        ok(res).map(|_| ())
    }
}

/// What FSINFO says of a file system.
pub(crate) struct FsInfo {
    /// Read size, capped by [`TRANSFER_MAX`].
    pub rsize: u32,
    /// Write size, capped likewise.
    pub wsize: u32,
    /// The server's time granularity, ns.
    pub time_delta_ns: i64,
    /// Whether it makes symlinks.
    pub symlinks: bool,
}

/// FSINFO of a handle.
pub(crate) fn fsinfo(server: &Server, root: &nfs_fh3) -> io::Result<FsInfo> {
    let args = FSINFO3args {
        fsroot: root.clone(),
    };
    let res = server.call("FSINFO", |c| Box::pin(async move { c.fsinfo(&args).await }))?;
    let info = ok(res)?;
    let size = |max: u32, pref: u32| {
        let n = if max == 0 { pref } else { max };
        n.clamp(4096, TRANSFER_MAX)
    };
    Ok(FsInfo {
        rsize: size(info.rtmax, info.rtpref),
        wsize: size(info.wtmax, info.wtpref),
        time_delta_ns: time_ns(info.time_delta),
        symlinks: info.properties & nfs3_client::nfs3_types::nfs3::FSF3_SYMLINK != 0,
    })
}

/// `count` as the server may answer it.
fn args_count(count: u32, rsize: u32) -> usize {
    count.min(rsize) as usize
}

/// Whether a listed name is an entry: `.` and `..` are not, and neither is a name no path
/// may hold (`/`, NUL, empty), which goes to `hostile`, escaped.
fn keep(name: &[u8], hostile: &mut Vec<String>) -> bool {
    if name == b"." || name == b".." {
        return false;
    }
    match crate::relpath::bad_name(name) {
        None => true,
        Some(why) => {
            hostile.push(format!("{} ({why})", name.escape_ascii()));
            false
        }
    }
}

/// The cookie to list on from: the last entry's, which must move on.
fn next_cookie(previous: u64, last: Option<u64>, listed: usize) -> io::Result<u64> {
    if listed > LISTING_MAX {
        return Err(invalid_data("the server lists too many entries"));
    }
    match last {
        Some(c) if c != previous => Ok(c),
        _ => Err(invalid_data(
            "the server's listing does not move on (no entries and no end)",
        )),
    }
}

/// The path `rel` (relative to the origin's root `prefix`) below the mounted directory.
pub(crate) fn full(prefix: &[u8], rel: &[u8]) -> Vec<u8> {
    match (prefix.is_empty(), rel.is_empty()) {
        (_, true) => prefix.to_vec(),
        (true, false) => rel.to_vec(),
        (false, false) => join(prefix, rel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_within_the_protocol_range() {
        let t = nfs_time(1_600_000_000_123_456_789).unwrap();
        assert_eq!((t.seconds, t.nseconds), (1_600_000_000, 123_456_789));
        assert_eq!(time_ns(t), 1_600_000_000_123_456_789);
        assert!(nfs_time(-1).is_err());
        assert!(nfs_time(i64::from(u32::MAX) * 1_000_000_000 + 1_000_000_000).is_err());
        let hostile = nfstime3 {
            seconds: 1,
            nseconds: u32::MAX,
        };
        assert_eq!(time_ns(hostile), 1_999_999_999);
    }

    #[test]
    fn hostile_names_are_set_aside() {
        let mut hostile = Vec::new();
        assert!(!keep(b".", &mut hostile));
        assert!(!keep(b"..", &mut hostile));
        assert!(hostile.is_empty());
        assert!(!keep(b"a/b", &mut hostile));
        assert!(!keep(b"a\0b", &mut hostile));
        assert!(!keep(b"", &mut hostile));
        assert!(keep(b"song.flac", &mut hostile));
        assert_eq!(hostile.len(), 3);
        assert!(hostile[1].contains("\\x00"), "{hostile:?}");
    }

    #[test]
    fn a_listing_must_move_on() {
        assert_eq!(next_cookie(0, Some(5), 1).unwrap(), 5);
        assert!(next_cookie(5, Some(5), 1).is_err());
        assert!(next_cookie(5, None, 1).is_err());
        assert!(next_cookie(0, Some(1), LISTING_MAX + 1).is_err());
    }
}
