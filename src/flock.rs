//! Taking an advisory `flock`, with a moment's patience.
//!
//! Every lock musicfs takes (a destination's, the index's) is a `flock` on an open file, which
//! the kernel drops when its last descriptor closes. A process that starts another program (an
//! `ssh`, a test harness's child) lends its child a copy of each descriptor until the child's
//! `exec` closes it: a lock its holder has just let go of can still be held by such a copy for
//! a few milliseconds. So a lock found held is tried again for up to [`GRACE`] (1 s) before
//! the caller is told it is held.

use std::fs::{File, TryLockError};
use std::io;
use std::time::{Duration, Instant};

/// How long a lock found held is tried again: far longer than a child's way from its fork to
/// its `exec`, short enough that a sync refused by another's lock says so at once.
pub const GRACE: Duration = Duration::from_secs(1);

/// Takes the lock on `file`, exclusive or `shared`: `Ok(false)` when another holds it still
/// after [`GRACE`].
pub fn take(file: &File, shared: bool) -> io::Result<bool> {
    let deadline = Instant::now() + GRACE;
    loop {
        let taken = match shared {
            true => file.try_lock_shared(),
            false => file.try_lock(),
        };
        match taken {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> File {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .expect("open the lock file")
    }

    /// A lock let go of while a second taker waits (as when a child process still held a
    /// copy of its descriptor) is taken; one held throughout is not, and a shared lock admits
    /// another shared one at once.
    #[test]
    fn a_lock_let_go_of_within_the_grace_is_taken_and_one_held_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("l.lock");
        for _ in 0..10 {
            let first = open(&path);
            assert!(take(&first, false).unwrap());
            let waiter = std::thread::spawn({
                let path = path.clone();
                move || take(&open(&path), false)
            });
            std::thread::sleep(Duration::from_millis(30));
            drop(first);
            assert!(waiter.join().unwrap().unwrap(), "taken once let go of");
        }
        let held = open(&path);
        assert!(take(&held, false).unwrap());
        let started = Instant::now();
        assert!(!take(&open(&path), false).unwrap());
        assert!(started.elapsed() >= GRACE);
        drop(held);
        let (a, b) = (open(&path), open(&path));
        assert!(take(&a, true).unwrap() && take(&b, true).unwrap());
    }
}
