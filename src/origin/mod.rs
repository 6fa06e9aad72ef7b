//! Origins: places where a tree of music files lives.
//!
//! An origin lists its tree and opens files for reading; a writable origin can also create,
//! replace and remove entries. Origins know nothing of the repository, and transports know
//! nothing of each other. Paths inside an origin are relative, `/`-separated byte strings.
//! Today the only transport is a local directory (NFS and SMB mounts included).

pub(crate) mod local;
mod spec;
pub mod ssh;

pub use local::LocalOrigin;
pub use spec::{OriginSpec, SshSpec};

/// Opens an origin argument as a local directory, refusing (with a clear message) the SSH
/// forms that name a remote one.
pub fn open_local(arg: &std::path::Path, may_create: bool) -> crate::Result<LocalOrigin> {
    match OriginSpec::parse(arg.as_os_str())? {
        OriginSpec::Local(path) => LocalOrigin::open(&path, may_create),
        OriginSpec::Ssh(_) => Err(crate::Error::InvalidInput(format!(
            "{}: SSH origins are not supported yet (a local path with a colon is written ./{})",
            arg.display(),
            arg.display()
        ))),
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

/// Marks the temporary files a sync writes before renaming them into place.
pub const TEMP_PREFIX: &str = ".musicfs-";
/// Suffix of temporary files.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Whether a file name is one of our temporary files.
pub fn is_temporary(name: &[u8]) -> bool {
    name.starts_with(TEMP_PREFIX.as_bytes()) && name.ends_with(TEMP_SUFFIX.as_bytes())
}
