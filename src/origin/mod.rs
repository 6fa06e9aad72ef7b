//! Origins: places where a tree of music files lives.
//!
//! An origin lists its tree and opens files for reading; a writable origin can also create,
//! replace and remove entries. Origins know nothing of the repository, and transports know
//! nothing of each other. Paths inside an origin are relative, `/`-separated byte strings.
//! [`Origin`] is the read side every transport offers; [`WritableOrigin`] adds what a sync
//! needs to change a destination safely (temporary files renamed into place).
//!
//! Each transport (`local`, `ssh`) registers itself in [`registry`]; an origin argument is
//! read with [`OriginSpec::parse`] and opened through it, so code outside this module never
//! names a transport.

pub mod agent_link;
pub mod bwlimit;
pub(crate) mod local;
mod mountinfo;
pub mod registry;
pub mod retrying;
pub mod runtime;
mod spec;
pub mod spooled;
pub mod ssh;
pub mod temp;

pub use agent_link::{AgentConnection, AgentLink, AgentProcess, AgentStatus};
pub use bwlimit::{Budget, BwLimited};
pub use local::LocalOrigin;
pub use registry::OpenOptions;
pub use retrying::{Policy, Retrying};
pub use spec::OriginSpec;
pub use spooled::Spooled;
pub use ssh::{SftpOrigin, SshSpec};
use std::path::PathBuf;
pub use temp::{is_temporary, TEMP_PREFIX, TEMP_SUFFIX};

/// A file opened for reading.
pub trait OriginFile: std::io::Read + std::io::Seek + Send {
    /// The open file's metadata now (compared before and after a read to catch rewrites).
    fn stat(&mut self) -> std::io::Result<EntryStat>;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

/// A tree of files that can be listed and read.
pub trait Origin: Send + Sync {
    /// The canonical name the repository knows this origin by.
    fn url(&self) -> &str;
    /// A path for messages: the entry `rel` as the user would find it.
    fn display(&self, rel: &[u8]) -> PathBuf;
    /// The local directory, for a local origin.
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }
    /// Walks the tree depth first, names sorted bytewise, symlinks not followed.
    fn walk(&self, visit: &mut dyn FnMut(WalkItem));
    /// Opens a regular file for reading.
    fn open(&self, rel: &[u8]) -> crate::Result<Box<dyn OriginFile>>;
    /// `lstat` of an entry (`rel` empty: the root); `None` when it does not exist.
    fn stat(&self, rel: &[u8]) -> crate::Result<Option<EntryStat>>;
}

/// A file being written under a temporary name next to its target.
pub trait TempFile: std::io::Write + Send {
    /// Makes the file durable with its final mode and mtime, then renames it over its target
    /// in one atomic step.
    fn commit(self: Box<Self>, mode: u32, mtime_ns: i64) -> crate::Result<()>;
    /// Removes the temporary file (best effort: the next sync removes leftovers).
    fn discard(self: Box<Self>);
}

/// An origin a sync can change.
pub trait WritableOrigin: Origin {
    /// Creates the root directory if it does not exist.
    fn create_root(&self) -> crate::Result<()>;
    /// Starts a new temporary file that will replace `rel`.
    fn create_temp(&self, rel: &[u8]) -> crate::Result<Box<dyn TempFile>>;
    /// Sets mode and mtime of an existing file or directory.
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> crate::Result<()>;
    /// Creates a directory whose parent exists (an existing one is fine).
    fn create_dir(&self, rel: &[u8]) -> crate::Result<()>;
    /// Creates or replaces a symlink, atomically.
    fn symlink(&self, rel: &[u8], target: &[u8]) -> crate::Result<()>;
    /// Renames an entry, replacing whatever is at `to`.
    fn rename(&self, from: &[u8], to: &[u8]) -> crate::Result<()>;
    /// Removes a file, symlink or whole directory tree; a missing entry is fine.
    fn remove(&self, rel: &[u8]) -> crate::Result<()>;
    /// Makes a directory's entries durable (after renames into it).
    fn sync_dir(&self, rel: &[u8]) -> crate::Result<()>;
    /// Makes the directory `rel`, when this process owns it, readable, writable and
    /// searchable for the rest of the sync, as every method of this trait also does on its
    /// own with the directories it works in: a directory copied with a read-only mode (0555,
    /// 0000) must not stop the next sync. [`WritableOrigin::set_meta`] gives a directory its
    /// final mode; [`WritableOrigin::give_back`] restores the rest.
    fn open_up(&self, _rel: &[u8]) -> crate::Result<()> {
        Ok(())
    }
    /// Takes an exclusive lock on the origin itself, held until the returned guard is
    /// dropped, so that two syncs into one destination exclude each other whatever
    /// repositories they use; fails at once with [`crate::Error::Locked`] when another holder
    /// has it. It must create nothing inside the origin. `None`: the transport has no such
    /// lock, and the repository's lock alone keeps syncs apart. The root exists.
    fn lock(&self) -> crate::Result<Option<Box<dyn Send>>> {
        Ok(None)
    }
    /// Gives every directory opened up by this origin, and not given its mode since, the
    /// mode it had. Called once, when a sync ends, whatever its outcome.
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
    fn local_root(&self) -> Option<&std::path::Path> {
        (**self).local_root()
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        (**self).walk(visit)
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
    /// Inode change time, ns since the epoch.
    pub ctime_ns: i64,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
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
    /// An entry that could not be read; the walk goes on.
    Problem {
        /// Relative path.
        path: Vec<u8>,
        /// What went wrong.
        message: String,
    },
}

/// Why `name` cannot be one component of a relative path, if it cannot: empty, `.`, `..`, or
/// holding `/` or NUL. Names that come from elsewhere (an SFTP listing, a remote musicfs) pass
/// this before they are used.
pub fn bad_name(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() {
        Some("an empty name")
    } else if name == b"." || name == b".." {
        Some("a `.` or `..` entry")
    } else if name.contains(&b'/') {
        Some("a name containing `/`")
    } else if name.contains(&0) {
        Some("a name containing NUL")
    } else {
        None
    }
}
