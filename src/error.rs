//! The library's error type.
//!
//! Rules: every error names what it was working on (a path, an origin, a repository) and keeps
//! its source; [`Error::is_transient`] says whether trying again can help, so one retry policy
//! can serve every caller. Messages never contain credentials. `anyhow` is used only at the
//! command-line edge, never here.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file or directory, worded for people ([`io_reason`]).
    #[error("{}: {}", shown(path), io_reason(source))]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The repository's database failed.
    #[error("repository {path}: {message}")]
    Repository {
        /// The repository directory.
        path: PathBuf,
        /// What the database said.
        message: String,
    },
    /// Stored data does not hash to its id, cannot be decoded, or is missing where another
    /// object refers to it.
    #[error("repository {path}: the index (index.redb) is damaged ({what}); run musicfs repair-index to rebuild it from what can still be read")]
    Corrupt {
        /// The repository directory.
        path: PathBuf,
        /// Which object, by kind and id, and what is wrong with it.
        what: String,
    },
    /// A location named by the user (`--repo`, `MUSICFS_REPO`) holds no repository. Only the
    /// default location is created implicitly.
    #[error("no repository at {path}; create one with musicfs init {path}")]
    NoRepository {
        /// The directory.
        path: PathBuf,
    },
    /// `musicfs init` was pointed at a directory that holds other things.
    #[error(
        "{path} is not empty and is not a musicfs repository; choose a new or empty directory"
    )]
    NotARepository {
        /// The directory.
        path: PathBuf,
    },
    /// A repository (it has `repo.toml` or `locks/`) whose `index.redb` is missing or empty:
    /// opening it would silently start over with no snapshots.
    #[error("repository {path}: the index (index.redb) is {state}; run musicfs repair-index to start a new, empty one (its snapshots are lost; the next scan of each origin reads all its files again)")]
    IndexMissing {
        /// The repository directory.
        path: PathBuf,
        /// `"missing"` or `"empty"`.
        state: &'static str,
    },
    /// `index.redb` is damaged: redb reported corruption, or panicked on a page it read (the
    /// panic was contained). The handle that met it refuses any further use.
    #[error("repository {path}: the index (index.redb) is damaged ({detail}); run musicfs repair-index to rebuild it from what can still be read")]
    IndexDamaged {
        /// The repository directory.
        path: PathBuf,
        /// What redb said.
        detail: String,
    },
    /// The index is being rebuilt by `musicfs repair-index`, or `repair-index` found it in use
    /// by another musicfs process.
    #[error("repository {path}: {reason}")]
    IndexLocked {
        /// The repository directory.
        path: PathBuf,
        /// Who holds it, and what to do.
        reason: String,
    },
    /// Another gc holds a chunk store's gc lock.
    #[error("{store}: {reason}")]
    StoreLocked {
        /// The store's URL.
        store: String,
        /// Who holds the lock, since when, and what to do.
        reason: String,
    },
    /// The repository was written by a newer or unknown format.
    #[error("repository {path}: format version {found} is not supported (this musicfs reads {supported})")]
    Format {
        /// The repository directory.
        path: PathBuf,
        /// The version on disk.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// Another process holds the lock on a destination.
    #[error("{path}: another musicfs sync is running on this destination (lock held on {lock})")]
    Locked {
        /// The destination.
        path: PathBuf,
        /// What holds the lock: a file inside the repository, or the destination itself.
        lock: PathBuf,
    },
    /// An origin could not be reached or is not a directory.
    #[error("{origin}: {message}")]
    Unreachable {
        /// The origin as the user spelled it.
        origin: String,
        /// Why.
        message: String,
    },
    /// An origin's server refused this client for good, for a reason that no retry changes
    /// (an SMB server that requires encryption this client cannot negotiate).
    #[error("{origin}: {message}")]
    Refused {
        /// The origin as the repository knows it.
        origin: String,
        /// Why, and what to do.
        message: String,
    },
    /// A sync's destination cannot be written: found once, before anything is read from the
    /// source.
    #[error("DST {}: cannot write here: {reason}", shown(path))]
    NotWritable {
        /// The destination, as its origin displays it.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// Bad input from the user: an argument, a path, a snapshot name.
    #[error("{0}")]
    InvalidInput(String),
    /// A mountpoint cannot be mounted on, or a mount did not come up.
    #[error("{path}: {message}")]
    Mount {
        /// The mountpoint.
        path: PathBuf,
        /// What is wrong, and what to do about it when something can be done.
        message: String,
    },
    /// A file kept changing while it was read.
    #[error("{path}: changed while being read ({attempts} attempts); skipped")]
    Unstable {
        /// The file.
        path: PathBuf,
        /// How many times it was read.
        attempts: u32,
    },
    /// A chunk needed to build a file could not be read, or failed its hash everywhere.
    #[error("{path}: chunk {chunk} is not available from any source")]
    ChunkUnavailable {
        /// The file being built.
        path: PathBuf,
        /// The chunk's short id.
        chunk: String,
    },
    /// Verified chunks did not rebuild the file their content describes (a transformed region
    /// that does not round-trip); nothing was written under the file's name.
    #[error("{path}: the rebuilt file does not match content {content}")]
    Rebuild {
        /// The file being built.
        path: PathBuf,
        /// The content's short id.
        content: String,
    },
    /// A host's key is unknown (and new keys are not accepted) or has changed.
    #[error("{host}: {message}")]
    HostKey {
        /// The host as `[host]:port`.
        host: String,
        /// What is wrong and how to resolve it.
        message: String,
    },
    /// A remote end broke the protocol: a bad handshake, a hostile path, data that fails its
    /// hash. Nothing it sent was written.
    #[error("{origin}: {message}")]
    Protocol {
        /// The remote origin.
        origin: String,
        /// What it sent.
        message: String,
    },
    /// The remote host has no musicfs to talk to (the command was not found, or closed the
    /// connection before the handshake).
    #[error("{origin}: no remote musicfs: {message}")]
    NoRemoteAgent {
        /// The remote origin.
        origin: String,
        /// What the remote end said, if anything.
        message: String,
    },
    /// A signal (or, for `serve`, the client going away) stopped the work; what was finished
    /// is recorded, and nothing half-done was left under a final name.
    #[error("interrupted by {cause}")]
    Interrupted {
        /// What asked the process to stop.
        cause: crate::interrupt::Cause,
    },
    /// The remote end of a sync failed; its message is passed on.
    #[error("{origin}: remote musicfs: {message}")]
    Remote {
        /// The remote origin.
        origin: String,
        /// What the remote end reported.
        message: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } => io_kind(source),
            Error::Locked { .. } | Error::IndexLocked { .. } | Error::StoreLocked { .. } => {
                ErrorKind::Locked
            }
            Error::Unstable { .. } | Error::Unreachable { .. } => ErrorKind::Transient,
            Error::ChunkUnavailable { .. } => ErrorKind::NotFound,
            // The user asked to stop: trying again would defeat the point.
            Error::Interrupted { .. } => ErrorKind::Permanent,
            _ => ErrorKind::Permanent,
        }
    }

    /// Whether retrying the same operation later can succeed ([`ErrorKind::Transient`]).
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }
}

/// What kind of failure an error is: what its caller may do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// What was asked for does not exist there (a file, a chunk at a location).
    NotFound,
    /// The origin or the operation cannot do this at all (no symlinks, no such capability).
    Unsupported,
    /// The same operation may succeed later: a dropped connection, a timeout, a stale NFS
    /// handle (look the path up again), a file that kept changing. Retried by
    /// `origin::Retrying` and by a sync's retry loop.
    Transient,
    /// Trying again will not help: permission denied, bad input, damage, a protocol error.
    Permanent,
    /// Another process holds a lock. Never retried: the command exits 4 at once.
    Locked,
}

/// A path for a message: never empty (the current directory shows as `.`).
fn shown(path: &std::path::Path) -> std::path::Display<'_> {
    if path.as_os_str().is_empty() {
        std::path::Path::new(".").display()
    } else {
        path.display()
    }
}

/// An I/O error worded for people: the system's reason in lower case without its
/// `(os error N)`, and, for the failures a user can do something about, what to do
/// (`permission denied; check the owner and mode of this path and of its directory`).
pub fn io_reason(e: &io::Error) -> String {
    let reason = lower_first(&without_os_error(&e.to_string()));
    let advice = match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => {
            "check the owner and mode of this path and of its directory"
        }
        Some(libc::ENOSPC | libc::EDQUOT) => {
            "free space on that device and run again: nothing is lost, the next run goes on from here"
        }
        Some(libc::EROFS) => "it is mounted read-only: remount it read-write, or choose another place",
        Some(libc::ENOENT) => "it is not there (removed or renamed meanwhile?)",
        Some(libc::ENOTDIR) => "a part of this path is a file where a directory is expected",
        Some(libc::EISDIR) => "a directory stands where a file is expected",
        Some(libc::EMFILE | libc::ENFILE) => {
            "raise the limit of open files (ulimit -n) and run again"
        }
        Some(libc::ESTALE | libc::ENOTCONN) => {
            "the network mount is gone: remount it and run again"
        }
        Some(libc::EIO) => {
            "the device reports a read or write error: check it (dmesg), and copy this file from elsewhere"
        }
        _ => "",
    };
    if advice.is_empty() {
        reason
    } else {
        format!("{reason}; {advice}")
    }
}

/// `text` without the ` (os error N)` the standard library appends to a system error, wherever
/// it occurs.
pub fn without_os_error(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" (os error ") {
        let after = &rest[at + " (os error ".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(')') {
            out.push_str(&rest[..at]);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..at + 1]);
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// `text` with its first letter in lower case, unless it starts an acronym (`I/O`).
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && second.is_lowercase() => {
            first.to_lowercase().chain(text.chars().skip(1)).collect()
        }
        _ => text.to_string(),
    }
}

/// The kind of an I/O error.
pub fn io_kind(e: &io::Error) -> ErrorKind {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => return ErrorKind::NotFound,
        Some(
            libc::ESTALE
            | libc::ENOTCONN
            | libc::EAGAIN
            | libc::EINTR
            | libc::ETIMEDOUT
            | libc::ECONNRESET
            | libc::ECONNABORTED
            | libc::ECONNREFUSED
            | libc::EPIPE
            | libc::ENETDOWN
            | libc::ENETUNREACH
            | libc::EHOSTUNREACH,
        ) => return ErrorKind::Transient,
        Some(libc::ENOSYS | libc::EOPNOTSUPP) => return ErrorKind::Unsupported,
        Some(_) => return ErrorKind::Permanent,
        None => {}
    }
    match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::Unsupported => ErrorKind::Unsupported,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::NotConnected
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::TimedOut
        | io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_worded_without_their_number() {
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(
            io_reason(&denied),
            "permission denied; check the owner and mode of this path and of its directory"
        );
        let full = Error::io("/lib/a.mp3", io::Error::from_raw_os_error(libc::ENOSPC));
        let text = full.to_string();
        assert!(
            text.starts_with("/lib/a.mp3: no space left on device; free space"),
            "{text}"
        );
        for code in [
            libc::EROFS,
            libc::EMFILE,
            libc::ESTALE,
            libc::EIO,
            libc::ENOTDIR,
            1000,
        ] {
            let text = io_reason(&io::Error::from_raw_os_error(code));
            assert!(!text.contains("os error"), "{text}");
            assert!(
                !text.starts_with(char::is_uppercase) || text.starts_with("I/O"),
                "{text}"
            );
        }
        assert!(
            io_reason(&io::Error::from_raw_os_error(libc::EIO)).starts_with("input/output error;")
        );
        assert!(io_reason(&io::Error::from_raw_os_error(libc::EMFILE)).contains("ulimit -n"));
    }

    #[test]
    fn an_empty_path_shows_as_the_current_directory() {
        let e = Error::io("", io::Error::from_raw_os_error(libc::EACCES));
        assert!(e.to_string().starts_with(".: permission denied"), "{e}");
    }

    #[test]
    fn only_the_os_error_suffix_goes() {
        assert_eq!(
            without_os_error("a: Broken pipe (os error 32): b"),
            "a: Broken pipe: b"
        );
        assert_eq!(
            without_os_error("Permission denied (os error 13)"),
            "Permission denied"
        );
        assert_eq!(
            without_os_error("I/O thing (os error x)"),
            "I/O thing (os error x)"
        );
    }
}
