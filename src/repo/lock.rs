//! The lock that keeps two syncs off one destination.
//!
//! It lives in the repository (`locks/<hash of the destination>.lock`), never in the
//! destination, because music players index every file they find there. It is an advisory
//! `flock`, so the kernel drops it when its holder dies: a `kill -9` never leaves a stale lock.
//! A lock found held is tried again for a moment first (`crate::flock`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A held destination lock, released on drop.
#[derive(Debug)]
pub struct DestinationLock {
    _file: File,
    path: PathBuf,
}

impl DestinationLock {
    pub(super) fn acquire(dir: &Path, destination: &str) -> Result<Self> {
        let name = blake3::hash(destination.as_bytes()).to_hex();
        let path = dir.join(format!("{}.lock", &name[..16]));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        if !crate::flock::take(&file, false).map_err(|e| Error::io(&path, e))? {
            return Err(Error::Locked {
                path: PathBuf::from(destination),
                lock: path,
            });
        }
        // For people wondering what a lock file belongs to.
        let _ = file.set_len(0);
        let _ = writeln!(file, "{} pid {}", destination, std::process::id());
        Ok(DestinationLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_a_second_holder_until_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = DestinationLock::acquire(dir.path(), "/music").expect("first lock");
        match DestinationLock::acquire(dir.path(), "/music") {
            Err(Error::Locked { path, lock }) => {
                assert_eq!(path, PathBuf::from("/music"));
                assert_eq!(lock, first.path());
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        DestinationLock::acquire(dir.path(), "/other").expect("another destination");
        drop(first);
        DestinationLock::acquire(dir.path(), "/music").expect("lock again once released");
    }
}
