//! Child processes that outlive their owner's `Drop`: ended and reaped on a thread of their
//! own, and waited for before the process exits.
//!
//! A remote shell (`--rsh`) or a `ProxyCommand` is dropped wherever its connection ends,
//! often inside the async runtime, where a drop must not block. [`release`] hands the child
//! to a thread that gives it a grace period to end by itself (its stdin is closed by then),
//! then SIGTERM, then SIGKILL, and reaps it. [`settle`], called by the command line before it
//! returns its exit code, waits for those threads and ends, the same way, every child
//! [`adopt`]ed whose owner is still alive (a reader thread blocked on the child's output keeps
//! its owner alive past the command's end), so that no command — an interrupted one least of
//! all — exits leaving an `ssh` of its own running.
//!
//! Never does: block a drop, or wait in [`settle`] longer than the slowest child's grace plus
//! its SIGTERM second.

use std::process::Child;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The threads still ending a child.
static PENDING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// A child shared by its owner and [`settle`]: `None` once taken by either.
pub type Adopted = Arc<Mutex<Option<Child>>>;

/// Every adopted child, with the grace [`settle`] gives it.
static ADOPTED: Mutex<Vec<(Adopted, Duration)>> = Mutex::new(Vec::new());

/// Shares `child` with [`settle`], which ends it (as [`release`] does, with `grace`) if its
/// owner has not taken it out by the time the command ends.
pub fn adopt(child: Child, grace: Duration) -> Adopted {
    let adopted = Arc::new(Mutex::new(Some(child)));
    let mut all = ADOPTED.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|(a, _)| a.lock().unwrap_or_else(PoisonError::into_inner).is_some());
    all.push((Arc::clone(&adopted), grace));
    adopted
}

/// How long a child has to end after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);

/// Ends `child` on a thread of its own: `grace` to exit by itself, then SIGTERM, a second
/// later SIGKILL; then reaps it. `Duration::ZERO` kills at once.
pub fn release(child: Child, grace: Duration) {
    let mut child = child;
    let spawned = std::thread::Builder::new()
        .name("musicfs-reap".into())
        .spawn(move || end(&mut child, grace));
    match spawned {
        Ok(handle) => {
            let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
            pending.retain(|h| !h.is_finished());
            pending.push(handle);
        }
        Err(e) => tracing::debug!("cannot start a thread to reap a child process: {e}"),
    }
}

/// Ends `child` here, blocking: as [`release`] does on its thread.
pub fn end(child: &mut Child, grace: Duration) {
    let exited = |child: &mut Child, limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            if !matches!(child.try_wait(), Ok(None)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    if grace.is_zero() {
        let _ = child.kill();
    } else if !exited(child, grace) {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if !exited(child, TERM_GRACE) {
            let _ = child.kill();
        }
    }
    let _ = child.wait();
}

/// Ends every adopted child still held by its owner, then waits until every child handed to
/// [`release`] has been reaped.
pub fn settle() {
    let adopted = std::mem::take(&mut *ADOPTED.lock().unwrap_or_else(PoisonError::into_inner));
    for (child, grace) in adopted {
        let taken = child.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(child) = taken {
            release(child, grace);
        }
    }
    let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(PoisonError::into_inner));
    for handle in pending {
        let _ = handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn settle_waits_until_released_children_are_reaped() {
        // One child that ignores SIGTERM (killed after it), and many quick ones released
        // while earlier reaps are still running.
        let stubborn = Command::new("sh")
            .args(["-c", "trap '' TERM; exec sleep 30"])
            .spawn()
            .unwrap();
        let mut pids = vec![stubborn.id()];
        release(stubborn, Duration::from_millis(50));
        for _ in 0..50 {
            let quick = Command::new("sh").args(["-c", "exit 0"]).spawn().unwrap();
            pids.push(quick.id());
            release(quick, Duration::from_millis(200));
        }
        // One still held by its owner: ended by settle.
        let held = adopt(
            Command::new("sleep").arg("30").spawn().unwrap(),
            Duration::from_millis(50),
        );
        pids.push(held.lock().unwrap().as_ref().unwrap().id());
        let started = Instant::now();
        settle();
        assert!(held.lock().unwrap().is_none());
        assert!(started.elapsed() < Duration::from_secs(10));
        for pid in pids {
            // Reaped: the pid no longer names a child of ours.
            let reaped = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(pid as i32),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
            assert!(reaped.is_err(), "child {pid} was not reaped");
        }
    }
}
