//! Origins: places where a tree of music files lives.
//!
//! An origin lists its tree and opens files for reading; a writable origin can also create,
//! replace and remove entries. Origins know nothing of the repository, and transports know
//! nothing of each other. Paths inside an origin are relative, `/`-separated byte strings.
//! [`Origin`] is the read side every transport offers; [`WritableOrigin`] adds what a sync
//! needs to change a destination safely (temporary files renamed into place).
//!
//! Each transport (`local`, `ssh`, `s3`, `smb`, `nfs`) registers itself in [`registry`]; an origin argument is
//! read with [`OriginSpec::parse`] and opened through it, so code outside this module never
//! names a transport.

pub mod agent_link;
pub mod bwlimit;
mod capability;
pub mod filtered;
#[cfg(test)]
mod forwarding_tests;
mod group_commit;
pub(crate) mod local;
pub mod metered;
mod mountinfo;
#[cfg(feature = "nfs")]
pub mod nfs;
pub mod registry;
pub mod retrying;
pub mod runtime;
pub mod s3;
pub mod smb;
mod spec;
pub mod spooled;
pub mod ssh;
pub mod temp;

use crate::filter::Filter;
pub use agent_link::{AgentConnection, AgentLink, AgentProcess, AgentStatus};
pub use bwlimit::{Budget, BwLimited};
pub use capability::{Capabilities, ChangeKey, Identity, MtimeResolution};
pub use filtered::Filtered;
pub use local::LocalOrigin;
pub use metered::{Meter, Metered, MeteredStream};
#[cfg(feature = "nfs")]
pub use nfs::{NfsLocation, NfsOrigin};
pub use registry::OpenOptions;
pub use retrying::{Policy, Retrying};
pub use s3::S3Credentials;
#[cfg(feature = "s3")]
pub use s3::{S3Location, S3Origin};
pub use smb::SmbCredentials;
#[cfg(feature = "smb")]
pub use smb::{SmbLocation, SmbOrigin};
pub use spec::OriginSpec;
pub use spooled::Spooled;
pub use ssh::{SftpOrigin, SshSpec};
use std::path::PathBuf;
pub use temp::{is_temporary, TEMP_PREFIX, TEMP_SUFFIX};

/// A file opened for reading.
///
/// A handle reads the file it opened: what was at its path when [`Origin::open`] returned.
/// Errors are [`std::io::Error`]s, classified by [`crate::error::io_kind`]: a read may fail
/// transiently (a dropped connection, a stale NFS handle), which [`Retrying`] answers by
/// opening the path again and checking the file's identity before it reads on.
pub trait OriginFile: std::io::Read + std::io::Seek + Send {
    /// The open file's metadata now (compared before and after a read to catch rewrites).
    ///
    /// Idempotent, changes nothing. The change key is the one [`Origin::stat`] would give
    /// the same file (so that a scan's record of it is comparable with a later walk).
    fn stat(&mut self) -> std::io::Result<EntryStat>;
    /// Reads exactly `buf.len()` bytes at `offset`, whatever the `Read` position, which it
    /// leaves untouched.
    ///
    /// Idempotent. A file shorter than `offset + buf.len()` fails with `UnexpectedEof` and
    /// `buf` undefined; a transport failure is an error of its kind, never a short read
    /// reported as success. The bytes are not verified: callers that need a chunk's bytes
    /// hash them.
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

/// A tree of files that can be listed and read.
///
/// Every method may be called any number of times, from several threads at once, and none
/// changes the origin: all are idempotent, which is what lets one retry wrapper
/// ([`Retrying`]) serve every transport. Paths are relative, `/`-separated, each component
/// passing [`bad_name`]; the empty path is the root. Errors carry a kind
/// ([`crate::Error::kind`]): `NotFound` when the entry is not there, `Transient` for
/// failures that may pass (the connection dropped, a timeout, a stale handle), `Permanent`
/// otherwise (permission denied, a protocol violation); reads never return `Locked`.
pub trait Origin: Send + Sync {
    /// The canonical name the repository knows this origin by: the same tree opened twice
    /// gives the same string. Cannot fail.
    fn url(&self) -> &str;
    /// A path for messages: the entry `rel` as the user would find it. Touches nothing.
    fn display(&self, rel: &[u8]) -> PathBuf;
    /// What this origin can do. Constant for the life of the value (a transport that
    /// learns its server's extensions when the session starts fixes them then); wrappers
    /// return their inner origin's. Callers decide by this, never by the transport.
    fn capabilities(&self) -> Capabilities;
    /// How many files a reader should keep under way at once to read this origin fast: 0
    /// (the default) leaves it to the number of CPUs; a local directory asks for one more (a
    /// reader that waits leaves its CPU to it); a transport whose every request waits a
    /// network round trip asks for more, so that a scan keeps the link busy. A hint, constant
    /// for the life of the value; wrappers return their inner origin's.
    fn files_in_flight(&self) -> usize {
        0
    }
    /// The origin's directory on this machine, when it is one. Only for questions about
    /// local paths as such (whether two local trees overlap); never to decide how to read
    /// or write (ask [`Origin::capabilities`]).
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }
    /// Walks the tree depth first, names sorted bytewise, symlinks not followed, each entry
    /// given with its [`EntryStat`] (its change key as [`Origin::stat`] gives it). Never
    /// fails as a whole: an entry or directory that cannot be read is a
    /// [`WalkItem::Problem`] and the walk goes on; our own temporary files are
    /// [`WalkItem::Temporary`]. An origin without symlinks lists none; one without
    /// directories lists the prefixes of its keys as directories.
    fn walk(&self, visit: &mut dyn FnMut(WalkItem));
    /// [`Origin::walk`], leaving out what `filter` excludes: each excluded entry is given as
    /// [`WalkItem::Excluded`] instead, and nothing below an excluded directory is given at
    /// all. An empty filter gives what `walk` gives. Transports override it to ask the filter
    /// before they stat an entry or list a directory, so an excluded tree is never read; the
    /// default walks everything and drops what the filter excludes (correct, not cheaper).
    fn walk_filtered(&self, filter: &Filter, visit: &mut dyn FnMut(WalkItem)) {
        if filter.is_empty() {
            return self.walk(visit);
        }
        let mut skipped: Option<Vec<u8>> = None;
        self.walk(&mut |item| {
            let path = match &item {
                WalkItem::Entry { path, .. }
                | WalkItem::Temporary(path)
                | WalkItem::Problem { path, .. }
                | WalkItem::Excluded(path) => path,
            };
            if let Some(dir) = &skipped {
                // Below the excluded directory, or a problem listing it.
                if path == dir || crate::filter::is_below(path, dir) {
                    return;
                }
                skipped = None;
            }
            if let WalkItem::Entry { path, stat, .. } = &item {
                let is_dir = stat.kind == EntryKind::Dir;
                if filter.excludes(path, is_dir) {
                    if is_dir {
                        skipped = Some(path.clone());
                    }
                    return visit(WalkItem::Excluded(path.clone()));
                }
            }
            visit(item)
        });
    }
    /// Opens a regular file for reading. `NotFound` when nothing is there. Callers open only
    /// entries a walk or [`Origin::stat`] showed to be regular files: what opening another
    /// kind does is the transport's (it may fail at the open or at the first read).
    /// Idempotent: each call is a new handle.
    fn open(&self, rel: &[u8]) -> crate::Result<Box<dyn OriginFile>>;
    /// `lstat` of an entry (`rel` empty: the root); `Ok(None)` when it does not exist (never
    /// a `NotFound` error). Idempotent.
    fn stat(&self, rel: &[u8]) -> crate::Result<Option<EntryStat>>;
}

/// A file being written under a temporary name next to its target.
///
/// Until [`TempFile::commit`] returns `Ok`, the target is untouched: a crash, an error or a
/// dropped value leaves at most a temporary file (named with [`TEMP_PREFIX`] and
/// [`TEMP_SUFFIX`], listed by the next walk as [`WalkItem::Temporary`] and removed by the
/// next sync). Writes are buffered: a write error may surface only at `commit`.
pub trait TempFile: std::io::Write + Send {
    /// Gives the file its final mode and mtime (truncated to the origin's mtime
    /// resolution), makes it durable (only with [`Capabilities::durable_commit`]; without,
    /// the server's own writeback), then renames it over its target in one atomic step
    /// (with [`Capabilities::atomic_replace`]; without it, a commit over an existing target
    /// fails and the target stays as it was). Not idempotent: called once. On error the
    /// temporary file is removed (best effort) and the target is the old one or, for a
    /// failure after the rename, the new one; never a mix. Errors: `Transient` when the
    /// connection failed, `Permanent` for a full disk or permission denied.
    fn commit(self: Box<Self>, mode: u32, mtime_ns: i64) -> crate::Result<()>;
    /// The first half of [`TempFile::commit`], for a caller that commits many files: hands
    /// every byte written to the storage and gives the file its final mode and mtime, so that
    /// `commit` (with the same mode and mtime) has only durability and the rename left, and
    /// the files written out before a flush shared by a destination's files began are all
    /// made durable by it. Called after the last write; a second call does nothing more.
    /// The default does nothing (`commit` does it all). Errors as `commit`'s; the file is then
    /// discarded, never committed.
    fn write_out(&mut self, _mode: u32, _mtime_ns: i64) -> crate::Result<()> {
        Ok(())
    }
    /// Whether this file is made durable by a flush it shares with the other files of its
    /// destination (a local file system's group commit), so that a caller gains by committing
    /// several together, written out first ([`TempFile::write_out`]), rather than each on
    /// a thread of its own. Touches nothing; the default is `false`.
    fn shares_flush(&self) -> bool {
        false
    }
    /// Removes the temporary file (best effort: the next sync removes leftovers). Never
    /// touches the target.
    fn discard(self: Box<Self>);
    /// Whether this file, `size` bytes long once written, can be built in part from its
    /// target's own bytes, so that telling it which bytes the target already holds
    /// ([`TempFile::write_known`]) may save sending them (an object store's server-side
    /// copy). Touches nothing; the default, for transports that gain nothing, is `false`,
    /// and a caller that gets `false` need not work out what the target holds.
    fn reuses_target(&self, _size: u64) -> bool {
        false
    }
    /// Writes `data`, exactly as [`std::io::Write::write_all`] would, and says that the same
    /// bytes are at `target_offset` in the target entry whose change key is `target` (as a
    /// walk or [`Origin::stat`] gave it).
    ///
    /// The caller knows this from the repository: the chunks the target held when it had
    /// that change key. The file may use it only while the target still has that key (an
    /// object store copies with that key as a precondition, and checks what it copied), so a
    /// target replaced since is never read into the new file. The bytes written are the
    /// file's whatever happens: a transport that cannot use the target (the default), or
    /// finds it changed, sends them. Errors as `write_all`'s.
    fn write_known(
        &mut self,
        data: &[u8],
        _target: &ChangeKey,
        _target_offset: u64,
    ) -> std::io::Result<()> {
        std::io::Write::write_all(self, data)
    }
}

/// An origin a sync can change.
///
/// Contracts shared by every method: a path's parent directory exists (the sync creates
/// directories first); a method that fails has changed nothing visible at its target, or
/// finished it (never half an entry under a final name). `Transient` errors may be retried
/// by calling the method again: every method but [`WritableOrigin::create_temp`] is
/// idempotent (a second call finds the work done). `Unsupported` when the origin lacks the
/// capability a method needs; `Locked` only from [`WritableOrigin::lock`].
pub trait WritableOrigin: Origin {
    /// Creates the root directory, and its missing parents, if it does not exist.
    /// Idempotent.
    fn create_root(&self) -> crate::Result<()>;
    /// Starts a new temporary file that will replace `rel` on [`TempFile::commit`]. Each
    /// call creates a new temporary (never reusing or truncating another), so it is not
    /// idempotent, but a failed or abandoned one is harmless.
    fn create_temp(&self, rel: &[u8]) -> crate::Result<Box<dyn TempFile>>;
    /// Sets mode and mtime of an existing file or directory (the mtime truncated to the
    /// origin's resolution). Idempotent; not atomic (mode then mtime); `NotFound` when the
    /// entry is missing.
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> crate::Result<()>;
    /// Creates a directory whose parent exists; an existing directory is fine (idempotent).
    /// An origin without [`Capabilities::directories`] creates nothing and returns `Ok`:
    /// the directory will exist through the files written below it.
    fn create_dir(&self, rel: &[u8]) -> crate::Result<()>;
    /// Creates or replaces a symlink: made under a temporary name and renamed over `rel`, so
    /// with [`Capabilities::atomic_replace`] `rel` names the old entry or the new link, never
    /// nothing (without it, replacing an existing entry fails). Idempotent. An
    /// origin without [`Capabilities::symlinks`] fails with `Unsupported` and writes
    /// nothing (a sync checks the capability first and reports the link as a problem).
    fn symlink(&self, rel: &[u8], target: &[u8]) -> crate::Result<()>;
    /// Renames an entry, replacing whatever is at `to` in one step (with
    /// [`Capabilities::atomic_replace`]; without it, fails when `to` exists and changes
    /// nothing). Not durable until [`WritableOrigin::sync_dir`] of both parents. `NotFound`
    /// when `from` is missing (so a repeated call after success fails: callers that retry
    /// check `to` first).
    fn rename(&self, from: &[u8], to: &[u8]) -> crate::Result<()>;
    /// Removes a file, symlink or whole directory tree; a missing entry is fine
    /// (idempotent). A tree is removed bottom up, so a failure leaves a smaller tree.
    fn remove(&self, rel: &[u8]) -> crate::Result<()>;
    /// Makes a directory's entries durable (after renames into it): once it returns `Ok`, a
    /// power cut cannot bring back the old names. Idempotent. An origin without
    /// [`Capabilities::durable_commit`] returns `Ok` having done nothing it can promise.
    fn sync_dir(&self, rel: &[u8]) -> crate::Result<()>;
    /// [`WritableOrigin::sync_dir`] of every directory in `rels`, at once where the transport
    /// can (one flush of a local file system for all of them); returns the directories that
    /// failed, each with its error. The default syncs them one after another.
    fn sync_dirs(&self, rels: &[Vec<u8>]) -> Vec<(Vec<u8>, crate::Error)> {
        rels.iter()
            .filter_map(|rel| self.sync_dir(rel).err().map(|e| (rel.clone(), e)))
            .collect()
    }
    /// Makes the directory `rel`, when this process owns it, readable, writable and
    /// searchable for the rest of the sync, as every method of this trait also does on its
    /// own with the directories it works in: a directory copied with a read-only mode (0555,
    /// 0000) must not stop the next sync. [`WritableOrigin::set_meta`] gives a directory its
    /// final mode; [`WritableOrigin::give_back`] restores the rest. Idempotent; an origin
    /// without modes (or without directories) does nothing.
    fn open_up(&self, _rel: &[u8]) -> crate::Result<()> {
        Ok(())
    }
    /// Takes an exclusive lock on the origin itself, held until the returned guard is
    /// dropped, so that two syncs into one destination exclude each other whatever
    /// repositories they use; fails at once with [`crate::Error::Locked`] (kind `Locked`,
    /// never retried) when another holder has it. It must create nothing inside the origin.
    /// `None`: the transport has no such lock, and the repository's lock alone keeps syncs
    /// apart. The root exists.
    fn lock(&self) -> crate::Result<Option<Box<dyn Send>>> {
        Ok(None)
    }
    /// Gives every directory opened up by this origin, and not given its mode since, the
    /// mode it had. Called once, when a sync ends, whatever its outcome; a second call
    /// finds nothing to give back.
    fn give_back(&self) -> crate::Result<()> {
        Ok(())
    }
}

/// An opened origin, boxed, is an origin: wrappers such as [`Retrying`] take whatever the
/// registry opened.
impl<O: Origin + ?Sized> Origin for Box<O> {
    fn url(&self) -> &str {
        (**self).url()
    }
    fn display(&self, rel: &[u8]) -> PathBuf {
        (**self).display(rel)
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn files_in_flight(&self) -> usize {
        (**self).files_in_flight()
    }
    fn local_root(&self) -> Option<&std::path::Path> {
        (**self).local_root()
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        (**self).walk(visit)
    }
    fn walk_filtered(&self, filter: &Filter, visit: &mut dyn FnMut(WalkItem)) {
        (**self).walk_filtered(filter, visit)
    }
    fn open(&self, rel: &[u8]) -> crate::Result<Box<dyn OriginFile>> {
        (**self).open(rel)
    }
    fn stat(&self, rel: &[u8]) -> crate::Result<Option<EntryStat>> {
        (**self).stat(rel)
    }
}

impl<O: WritableOrigin + ?Sized> WritableOrigin for Box<O> {
    fn create_root(&self) -> crate::Result<()> {
        (**self).create_root()
    }
    fn create_temp(&self, rel: &[u8]) -> crate::Result<Box<dyn TempFile>> {
        (**self).create_temp(rel)
    }
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> crate::Result<()> {
        (**self).set_meta(rel, mode, mtime_ns)
    }
    fn create_dir(&self, rel: &[u8]) -> crate::Result<()> {
        (**self).create_dir(rel)
    }
    fn symlink(&self, rel: &[u8], target: &[u8]) -> crate::Result<()> {
        (**self).symlink(rel, target)
    }
    fn rename(&self, from: &[u8], to: &[u8]) -> crate::Result<()> {
        (**self).rename(from, to)
    }
    fn remove(&self, rel: &[u8]) -> crate::Result<()> {
        (**self).remove(rel)
    }
    fn sync_dir(&self, rel: &[u8]) -> crate::Result<()> {
        (**self).sync_dir(rel)
    }
    fn sync_dirs(&self, rels: &[Vec<u8>]) -> Vec<(Vec<u8>, crate::Error)> {
        (**self).sync_dirs(rels)
    }
    fn open_up(&self, rel: &[u8]) -> crate::Result<()> {
        (**self).open_up(rel)
    }
    fn lock(&self) -> crate::Result<Option<Box<dyn Send>>> {
        (**self).lock()
    }
    fn give_back(&self) -> crate::Result<()> {
        (**self).give_back()
    }
}

/// The kind of a directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (device, socket, fifo): recorded nowhere, reported.
    Other,
}

/// What `lstat` says of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryStat {
    /// Kind of entry.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// What tells, without reading, that the content may have changed (and, with
    /// [`Capabilities::stable_identity`], which file this is whatever its path).
    pub change: ChangeKey,
    /// Permission bits.
    pub mode: u32,
}

/// One entry met while walking an origin.
#[derive(Debug)]
pub enum WalkItem {
    /// An entry, with its path relative to the root.
    Entry {
        /// Relative path.
        path: Vec<u8>,
        /// Its metadata.
        stat: EntryStat,
        /// A symlink's target.
        target: Option<Vec<u8>>,
    },
    /// A temporary file left by an interrupted sync.
    Temporary(Vec<u8>),
    /// An entry a filter excludes ([`Origin::walk_filtered`]), with its path; nothing below
    /// it is given (a transport that prunes neither stat'ed it nor entered it). A sync leaves
    /// it alone at its destination.
    Excluded(Vec<u8>),
    /// An entry that could not be read; the walk goes on.
    Problem {
        /// Relative path.
        path: Vec<u8>,
        /// What went wrong.
        message: String,
    },
}

pub use crate::relpath::bad_name;
