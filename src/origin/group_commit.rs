//! Durability for many files at once: one `syncfs` of a local destination's file system
//! serves every temporary file that was written out before it began.
//!
//! A sync makes each file durable before renaming it into place. One `fsync` per file makes
//! the file system write each file's data, commit its journal and flush the disk's cache once
//! per file, and an initial sync of many small files waits for little else. Here the commits
//! that arrive together share one flush (a database's group commit): the first becomes the
//! leader and calls `syncfs(2)`, the others wait for it; a commit that arrives while a flush
//! runs waits for the next one, which serves every file that arrived meanwhile. Each file
//! keeps its own guarantee: it is renamed only after a flush that began after its last write
//! has succeeded.
//!
//! `syncfs` is trusted only where it reports what went wrong: on Linux 5.8 and later (before,
//! it returned success whatever writeback failed), on the local file systems listed in
//! [`TRUSTED`], for files on the same file system as the directory it was called on. A flush
//! that fails is never trusted again in this run: every later file is made durable by its own
//! `fsync`, which says precisely which file could not be written.
//!
//! Never does: promise a file durable because a flush that began before its last write
//! succeeded; flush a file system other than the destination's.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use nix::sys::statfs::{self, FsType};

/// File systems whose `syncfs` writes out every dirty file, commits the journal or log, and
/// flushes the device's cache, reporting any writeback error since the directory was opened.
/// Network and FUSE file systems are not here: whether their server makes data durable on a
/// `syncfs` is up to the server, and a file there keeps its own `fsync`.
const TRUSTED: [FsType; 4] = [
    statfs::EXT4_SUPER_MAGIC,
    statfs::XFS_SUPER_MAGIC,
    statfs::BTRFS_SUPER_MAGIC,
    statfs::TMPFS_MAGIC,
];

/// The first Linux release whose `syncfs` reports writeback errors (`errseq` on the super
/// block).
const FIRST_TRUSTED_RELEASE: (u32, u32) = (5, 8);

/// Flushes one file system for the files of one destination that commit together.
pub(crate) struct GroupCommit {
    /// Makes every file written before the call durable: `syncfs` on the destination's root,
    /// open from before the first file was written, so that a writeback error of any later
    /// file is reported by the next call.
    flush: Box<dyn Fn() -> std::io::Result<()> + Send + Sync>,
    /// The file system's device: a file elsewhere (a mount inside the destination) is not
    /// covered by a flush of this one.
    dev: u64,
    /// Temporary files of the destination open now ([`Member`]s): a file committed with no
    /// other under way is flushed on its own, since no other file could share its flush.
    members: AtomicUsize,
    state: Mutex<State>,
    flushed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Flushes begun so far; the next one gets this number.
    begun: u64,
    /// One more than the number of the latest flush that succeeded (0: none has).
    covered: u64,
    /// A flush is under way.
    running: bool,
    /// A flush failed: none is trusted any more in this run.
    failed: bool,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("dev", &self.dev)
            .finish()
    }
}

/// What a file committed through a [`GroupCommit`] holds from it: the number of the first
/// flush that begins after it was written out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket(u64);

impl GroupCommit {
    /// Opens `root` for group commits, when its file system's `syncfs` can be trusted
    /// (see the module's documentation); `None` otherwise, and the caller `fsync`s each file.
    pub(crate) fn open(root: &Path) -> Option<Arc<GroupCommit>> {
        if !release_reports_errors(&std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?) {
            return None;
        }
        let dir = File::open(root).ok()?;
        let kind = statfs::fstatfs(&dir).ok()?.filesystem_type();
        if !TRUSTED.contains(&kind) {
            return None;
        }
        let dev = dir.metadata().ok()?.dev();
        Some(Arc::new(GroupCommit::with_flush(dev, move || {
            nix::unistd::syncfs(&dir).map_err(std::io::Error::from)
        })))
    }

    /// A group commit for the file system `dev` whose flush is `flush`.
    fn with_flush(
        dev: u64,
        flush: impl Fn() -> std::io::Result<()> + Send + Sync + 'static,
    ) -> GroupCommit {
        GroupCommit {
            flush: Box::new(flush),
            dev,
            members: AtomicUsize::new(0),
            state: Mutex::new(State::default()),
            flushed: Condvar::new(),
        }
    }

    /// Counts a new temporary file of the destination until the returned member is dropped.
    pub(crate) fn join(self: &Arc<Self>) -> Member {
        self.members.fetch_add(1, Ordering::SeqCst);
        Member(Arc::clone(self))
    }

    /// A ticket for a file of the file system `dev`, whose every byte has been written:
    /// `None` when a flush of this file system cannot make it durable (it lies on another
    /// one, or a flush has failed), and the caller `fsync`s it.
    fn ticket(&self, dev: u64) -> Option<Ticket> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (dev == self.dev && !state.failed).then_some(Ticket(state.begun))
    }

    /// Whether a flush of this file system can make an entry of the file system `dev`
    /// durable (it is the same one, and no flush has failed).
    pub(crate) fn covers(&self, dev: u64) -> bool {
        self.ticket(dev).is_some()
    }

    /// Whether a flush that began after `ticket` was taken has succeeded (and none failed).
    fn covered(&self, ticket: Ticket) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        !state.failed && state.covered > ticket.0
    }

    /// Makes everything written to this file system before the call durable, sharing the
    /// flush with any commit under way: `false` when the flush failed, and the caller syncs
    /// each entry on its own.
    pub(crate) fn flush_now(&self) -> bool {
        self.ticket(self.dev)
            .is_some_and(|ticket| self.wait(ticket))
    }

    /// Waits until a flush that began after `ticket` was taken has ended, leading one when
    /// none is under way. `true` when it succeeded: the file is durable. `false` when a
    /// flush failed: the caller `fsync`s the file, and learns which error was its own.
    pub(crate) fn wait(&self, ticket: Ticket) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if state.failed {
                return false;
            }
            if state.covered > ticket.0 {
                return true;
            }
            if state.running {
                state = self
                    .flushed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let number = state.begun;
            state.begun += 1;
            state.running = true;
            drop(state);
            let flushed = (self.flush)();
            state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.running = false;
            match flushed {
                Ok(()) => state.covered = state.covered.max(number + 1),
                Err(e) => {
                    if !state.failed {
                        tracing::warn!(
                            error = %e,
                            "syncfs of the destination failed: each file is flushed on its own from now on"
                        );
                    }
                    state.failed = true;
                }
            }
            self.flushed.notify_all();
        }
    }
}

/// A temporary file of the destination, counted by its [`GroupCommit`] while it lives.
#[derive(Debug)]
pub(crate) struct Member(Arc<GroupCommit>);

impl Member {
    /// The ticket of `file`, whose every byte and metadata have just been written out: the
    /// number of the first flush that will begin after now. `None` when a flush of this file
    /// system cannot make it durable (it lies on another one, or a flush has failed).
    /// Errors: its `fstat`'s.
    pub(crate) fn ticket(&self, file: &File) -> std::io::Result<Option<Ticket>> {
        Ok(self.0.ticket(file.metadata()?.dev()))
    }

    /// Makes `file`, whose every byte has been written, durable: through a flush shared with
    /// the files committed at the same time, or, when it is the only file under way, when it
    /// lies on another file system, or when a shared flush has failed, through its own
    /// `fsync`. `written` is its ticket when it was taken as the file was written out
    /// ([`Member::ticket`]): a flush begun since then, already over, makes it durable without
    /// waiting, even when it is the last file under way. Errors: its own `fsync`'s.
    pub(crate) fn make_durable(&self, file: &File, written: Option<Ticket>) -> std::io::Result<()> {
        let group = &self.0;
        let shared = group.members.load(Ordering::SeqCst) > 1;
        let ticket = match written {
            Some(ticket) => Some(ticket),
            None if shared => group.ticket(file.metadata()?.dev()),
            None => None,
        };
        if let Some(ticket) = ticket {
            if (shared || group.covered(ticket)) && group.wait(ticket) {
                return Ok(());
            }
        }
        file.sync_all()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.0.members.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether a kernel release (`6.1.0-27-amd64`) is at least [`FIRST_TRUSTED_RELEASE`].
fn release_reports_errors(release: &str) -> bool {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= FIRST_TRUSTED_RELEASE,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Runs `work` on a thread and fails the test if it has not ended within a minute: a
    /// waiter left waiting for a flush nobody leads is a hang, not a slow test.
    fn within_a_minute(work: impl FnOnce() + Send + 'static) {
        let (done, ended) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            work();
            let _ = done.send(());
        });
        match ended.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => worker.join().unwrap(),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::panic::resume_unwind(worker.join().unwrap_err())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("group commit hung"),
        }
    }

    /// Many committers at once, each noting when its last write happened on a shared clock;
    /// every flush notes when it began. A file told it is durable must have a successful
    /// flush that began after its write. Flushes fail from the `fail_from`th on.
    fn committers(threads: usize, files: usize, fail_from: u64) {
        let clock = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(AtomicU64::new(0));
        let succeeded = Arc::new(Mutex::new(Vec::new()));
        let group = {
            let (clock, calls, succeeded) = (clock.clone(), calls.clone(), succeeded.clone());
            Arc::new(GroupCommit::with_flush(7, move || {
                let began = clock.fetch_add(1, Ordering::SeqCst);
                let call = calls.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(50 + began % 200));
                if call + 1 >= fail_from {
                    return Err(std::io::Error::other("injected"));
                }
                succeeded.lock().unwrap().push(began);
                Ok(())
            }))
        };
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (group, clock, succeeded) = (group.clone(), clock.clone(), succeeded.clone());
                std::thread::spawn(move || {
                    let mut trusted = 0;
                    for _ in 0..files {
                        let written = clock.fetch_add(1, Ordering::SeqCst);
                        let Some(ticket) = group.ticket(7) else {
                            continue;
                        };
                        if group.wait(ticket) {
                            trusted += 1;
                            let flushes = succeeded.lock().unwrap();
                            assert!(
                                flushes.iter().any(|&began| began > written),
                                "a file written at {written} was called durable by flushes \
                                 begun at {flushes:?}"
                            );
                        }
                    }
                    trusted
                })
            })
            .collect();
        let trusted: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        let flushes = calls.load(Ordering::SeqCst);
        if fail_from == u64::MAX {
            assert_eq!(
                trusted,
                threads * files,
                "every file is durable when no flush fails"
            );
        } else {
            assert!(
                flushes <= fail_from,
                "no flush after the first that failed ({flushes})"
            );
            assert!(
                group.ticket(7).is_none(),
                "a failed flush is never trusted again"
            );
        }
    }

    #[test]
    fn concurrent_commits_are_durable_only_after_a_flush_begun_after_their_writes() {
        within_a_minute(|| {
            for _ in 0..20 {
                committers(8, 100, u64::MAX);
            }
        });
    }

    #[test]
    fn after_a_failed_flush_no_commit_waits_and_none_is_called_durable_by_it() {
        within_a_minute(|| {
            for fail_from in 1..20 {
                committers(8, 50, fail_from);
            }
        });
    }

    #[test]
    fn a_file_on_another_file_system_gets_no_ticket() {
        let group = GroupCommit::with_flush(7, || Ok(()));
        assert!(group.ticket(7).is_some());
        assert!(group.ticket(8).is_none());
    }

    #[test]
    fn a_file_committed_alone_is_flushed_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let dev = std::fs::metadata(dir.path()).unwrap().dev();
        let calls = Arc::new(AtomicU64::new(0));
        let group = {
            let calls = calls.clone();
            Arc::new(GroupCommit::with_flush(dev, move || {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }))
        };
        let file = File::create(dir.path().join("a")).unwrap();
        let alone = group.join();
        alone.make_durable(&file, None).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 0, "one file: its own fsync");
        let other = group.join();
        alone.make_durable(&file, None).unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "two files under way: one shared flush"
        );
        drop(other);
        drop(alone);
        assert_eq!(group.members.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_file_written_out_before_a_flush_that_succeeded_is_durable_by_it_even_when_last() {
        let dir = tempfile::tempdir().unwrap();
        let dev = std::fs::metadata(dir.path()).unwrap().dev();
        let calls = Arc::new(AtomicU64::new(0));
        let group = {
            let calls = calls.clone();
            Arc::new(GroupCommit::with_flush(dev, move || {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }))
        };
        let (a, b) = (
            File::create(dir.path().join("a")).unwrap(),
            File::create(dir.path().join("b")).unwrap(),
        );
        let (first, last) = (group.join(), group.join());
        let (ta, tb) = (first.ticket(&a).unwrap(), last.ticket(&b).unwrap());
        first.make_durable(&a, ta).unwrap();
        drop(first);
        last.make_durable(&b, tb).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one flush for both");
        // Written out after that flush began: the next one, or its own fsync.
        let late = last.ticket(&b).unwrap();
        assert!(!group.covered(late.unwrap()));
    }

    #[test]
    fn releases_before_5_8_are_not_trusted() {
        assert!(release_reports_errors("6.1.0-27-amd64\n"));
        assert!(release_reports_errors("5.8.0"));
        assert!(release_reports_errors("5.10.16.3-microsoft-standard-WSL2"));
        assert!(!release_reports_errors("5.7.19"));
        assert!(!release_reports_errors("4.19.0-21-amd64"));
        assert!(!release_reports_errors("garbage"));
        assert!(!release_reports_errors(""));
    }
}
