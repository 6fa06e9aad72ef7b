//! The lock that keeps two syncs off one destination.
//!
//! It lives in the repository (`locks/<hash of the destination>.lock`), never in the
//! destination, because music players index every file they find there. It is an advisory
//! `flock`, so the kernel drops it when its holder dies: a `kill -9` never leaves a stale lock.
//!
//! A lock held is waited for a moment ([`GRACE`]) before a sync is refused: a lock is an open
//! file, and a process that starts another program (an `ssh`, a test harness's child) lends
//! a copy of each of its descriptors to the child until the child's `exec` closes it, so a lock
//! its holder has just let go of can still be held by such a copy for a few milliseconds.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a lock held by another is waited for before the sync is refused.
const GRACE: Duration = Duration::from_secs(2);

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
        let deadline = Instant::now() + GRACE;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Locked {
                        path: PathBuf::from(destination),
                        lock: path,
                    })
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
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

    /// A lock let go of while a second holder waits (as when a child process still held a
    /// copy of its descriptor) is taken, not refused.
    #[test]
    fn a_lock_let_go_of_within_the_grace_is_taken() {
        let dir = tempfile::tempdir().expect("temp dir");
        for _ in 0..20 {
            let first = DestinationLock::acquire(dir.path(), "/music").expect("first lock");
            let waiter = std::thread::spawn({
                let dir = dir.path().to_path_buf();
                move || DestinationLock::acquire(&dir, "/music").map(|_| ())
            });
            std::thread::sleep(Duration::from_millis(30));
            drop(first);
            waiter
                .join()
                .expect("the waiter ends")
                .expect("the lock, once let go of, is taken");
        }
    }
}
