//! Commits of written files on worker threads, so that one file's fsync overlaps the writing
//! of the next ones.
//!
//! A sync into a directory of this machine makes every file durable before renaming it into
//! place ([`TempFile::commit`]). Done one after another, each `fsync` waits for the disk
//! alone, and an initial sync of many small files spends most of its time there. Handed to a
//! few threads, several commits wait at once: the file system writes them out together (one
//! journal commit serves all the `fsync`s that arrived while it ran) while the sync goes on
//! assembling the next files. Each file keeps its own guarantee — durable, then renamed —
//! and [`Committer::drain`] gives the caller the point after which every file it submitted is
//! either in place or reported.
//!
//! Never does: reorder two commits of one path (a sync writes each path once), or drop a
//! result: every submitted file comes back once, with its outcome, through [`Committer::submit`]
//! or [`Committer::drain`].

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::error::Result;
use crate::origin::TempFile;

/// Threads committing at once.
pub(super) const THREADS: usize = 8;
/// Files submitted and not yet come back, at most: each holds its temporary file open.
const IN_FLIGHT: usize = 2 * THREADS;

struct Job<T> {
    file: Box<dyn TempFile>,
    mode: u32,
    mtime_ns: i64,
    ticket: T,
}

/// Commits temporary files on worker threads; `T` is what the caller needs back with each
/// outcome.
pub(super) struct Committer<T: Send + 'static> {
    jobs: Option<Sender<Job<T>>>,
    done: Receiver<(T, Result<()>)>,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
}

impl<T: Send + 'static> Committer<T> {
    /// Starts `threads` workers. Errors: the system refused to start a thread.
    pub(super) fn start(threads: usize) -> std::io::Result<Committer<T>> {
        let (jobs, queue) = mpsc::channel::<Job<T>>();
        let queue = Arc::new(Mutex::new(queue));
        let (report, done) = mpsc::channel();
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            let report = report.clone();
            let worker = std::thread::Builder::new()
                .name(format!("musicfs-commit-{i}"))
                .spawn(move || loop {
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(job) = next else { return };
                    let outcome = job.file.commit(job.mode, job.mtime_ns);
                    if report.send((job.ticket, outcome)).is_err() {
                        return;
                    }
                })?;
            workers.push(worker);
        }
        Ok(Committer {
            jobs: Some(jobs),
            done,
            workers,
            in_flight: 0,
        })
    }

    /// Hands `file` over to be committed with `mode` and `mtime_ns`; returns the outcomes of
    /// the files whose commits have ended since the last call, waiting for one when too many
    /// are in flight.
    pub(super) fn submit(
        &mut self,
        file: Box<dyn TempFile>,
        mode: u32,
        mtime_ns: i64,
        ticket: T,
    ) -> Vec<(T, Result<()>)> {
        let mut ended = Vec::new();
        while self.in_flight >= IN_FLIGHT {
            match self.done.recv() {
                Ok(outcome) => {
                    self.in_flight -= 1;
                    ended.push(outcome);
                }
                Err(_) => break,
            }
        }
        let job = Job {
            file,
            mode,
            mtime_ns,
            ticket,
        };
        match self.jobs.as_ref().map(|jobs| jobs.send(job)) {
            Some(Ok(())) => self.in_flight += 1,
            // Every worker is gone (they end only when the queue closes): commit here.
            Some(Err(mpsc::SendError(job))) => {
                let outcome = job.file.commit(job.mode, job.mtime_ns);
                ended.push((job.ticket, outcome));
            }
            None => {}
        }
        ended.extend(self.ended());
        ended
    }

    /// The outcomes of the commits that have ended, without waiting.
    pub(super) fn ended(&mut self) -> Vec<(T, Result<()>)> {
        let mut ended = Vec::new();
        while let Ok(outcome) = self.done.try_recv() {
            self.in_flight -= 1;
            ended.push(outcome);
        }
        ended
    }

    /// Waits until every file submitted has been committed (or failed to be), and returns
    /// their outcomes.
    pub(super) fn drain(&mut self) -> Vec<(T, Result<()>)> {
        let mut ended = Vec::new();
        while self.in_flight > 0 {
            match self.done.recv() {
                Ok(outcome) => {
                    self.in_flight -= 1;
                    ended.push(outcome);
                }
                Err(_) => break,
            }
        }
        ended
    }
}

impl<T: Send + 'static> Drop for Committer<T> {
    /// Closes the queue and waits for the workers: a commit under way ends (its file renamed
    /// into place, or its temporary file removed) before the sync returns.
    fn drop(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// A temporary file that counts its commits and takes a while over each.
    struct Slow {
        committed: Arc<AtomicUsize>,
        fail: bool,
    }

    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl TempFile for Slow {
        fn commit(self: Box<Self>, _mode: u32, _mtime_ns: i64) -> Result<()> {
            std::thread::sleep(Duration::from_micros(200));
            self.committed.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return Err(crate::Error::InvalidInput("refused".into()));
            }
            Ok(())
        }
        fn discard(self: Box<Self>) {}
    }

    #[test]
    fn every_submitted_file_comes_back_once_with_its_outcome() {
        // Repeated: a lost or doubled outcome, or a deadlock between a full queue and the
        // workers, shows on a 2-core machine as a count that is off or a run that hangs.
        let deadline = Instant::now() + Duration::from_secs(60);
        for round in 0..200 {
            assert!(
                Instant::now() < deadline,
                "round {round}: too slow, a hang?"
            );
            let committed = Arc::new(AtomicUsize::new(0));
            let mut committer = Committer::start(THREADS).unwrap();
            let mut back = Vec::new();
            let files = 1 + round % 50;
            for i in 0..files {
                let file = Box::new(Slow {
                    committed: Arc::clone(&committed),
                    fail: i % 7 == 3,
                });
                back.extend(committer.submit(file, 0o644, 0, i));
            }
            back.extend(committer.drain());
            assert_eq!(committed.load(Ordering::SeqCst), files);
            let mut tickets: Vec<usize> = back.iter().map(|(t, _)| *t).collect();
            tickets.sort_unstable();
            assert_eq!(tickets, (0..files).collect::<Vec<_>>());
            for (ticket, outcome) in &back {
                assert_eq!(outcome.is_err(), ticket % 7 == 3, "file {ticket}");
            }
        }
    }
}
