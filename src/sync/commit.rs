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
//! A committer started with [`Committer::start_batched`], for files its caller writes out
//! itself ([`TempFile::write_out`], as a cold sync's copies are), takes the files that share
//! their destination's flush ([`TempFile::shares_flush`]: a local file system's group commit)
//! in batches, as many as are waiting: each is written out, then committed in turn, and the
//! first commit's flush, begun after every file of the batch was written out, makes them all
//! durable. One flush and one thread's wake-up serve a batch, where a thread per file waited
//! for its group otherwise. Other files are committed one per worker, their `fsync`s
//! overlapping.
//!
//! Never does: reorder two commits of one path (a sync writes each path once), or drop a
//! result: every submitted file comes back once, with its outcome, through [`Committer::submit`]
//! or [`Committer::drain`].

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::Result;
use crate::origin::TempFile;

/// Threads committing at once.
pub(super) const THREADS: usize = 8;
/// Files submitted and not yet come back, at most, by default: each holds its temporary file
/// open, and those not yet written out their last bytes.
const IN_FLIGHT: usize = 2 * THREADS;
/// Files one worker commits in one batch, at most.
const BATCH: usize = 256;
/// A batch of files sharing a flush smaller than this leaves its worker resting for
/// [`GATHER_WAIT`], the queue held, before it takes the next one. Files that come faster than
/// their flushes end (a file system whose flush is quick, tmpfs or an idle disk) otherwise
/// wake a worker each, and the wake-ups cost their senders and the worker more than the
/// flushes: the files submitted while it rests wait in the queue, waking no one, and make
/// the next batch.
const GATHER_FILES: usize = 16;
/// How long a worker rests after a small batch ([`GATHER_FILES`]).
const GATHER_WAIT: Duration = Duration::from_millis(1);

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
    /// Most files in flight before [`Committer::submit`] waits for one to come back.
    limit: usize,
}

impl<T: Send + 'static> Committer<T> {
    /// Starts `threads` workers, each committing one file at a time. Errors: the system
    /// refused to start a thread.
    pub(super) fn start(threads: usize) -> std::io::Result<Committer<T>> {
        Committer::spawn(threads, IN_FLIGHT, 1)
    }

    /// Starts `threads` workers that commit the files sharing a flush in batches, and hold at
    /// most `in_flight` files at once (more files make larger batches). For files the caller
    /// has written out before submitting them ([`TempFile::write_out`]): a file in flight
    /// then holds a handle, not its bytes, and the space on the destination a batch takes
    /// was taken before it was submitted (a batch writes every file out before renaming
    /// any, so files replacing larger ones would otherwise need room for all at once).
    /// Errors: the system refused to start a thread.
    pub(super) fn start_batched(threads: usize, in_flight: usize) -> std::io::Result<Committer<T>> {
        Committer::spawn(threads, in_flight, BATCH)
    }

    fn spawn(threads: usize, in_flight: usize, most: usize) -> std::io::Result<Committer<T>> {
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
                    let waiting = queue.lock().unwrap_or_else(PoisonError::into_inner);
                    let Some(batch) = next_batch(&waiting, most) else {
                        return;
                    };
                    // A batch that shares a flush keeps the queue while it is committed: the
                    // files submitted meanwhile wait there for the next batch and its one
                    // flush, rather than waking a worker each. Other files are committed
                    // while the next worker takes the next file.
                    let keep = most > 1 && batch.iter().all(|job| job.file.shares_flush());
                    let rest = keep && batch.len() < GATHER_FILES;
                    let waiting = keep.then_some(waiting);
                    if !commit_batch(batch, &report) {
                        return;
                    }
                    if rest {
                        std::thread::sleep(GATHER_WAIT);
                    }
                    drop(waiting);
                })?;
            workers.push(worker);
        }
        Ok(Committer {
            jobs: Some(jobs),
            done,
            workers,
            in_flight: 0,
            limit: in_flight.max(1),
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
        while self.in_flight >= self.limit {
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

/// The next files for a worker: one, waiting for it; then, while they share their flush,
/// every file already waiting, up to `most`. `None` once the queue is closed.
fn next_batch<T>(queue: &Receiver<Job<T>>, most: usize) -> Option<Vec<Job<T>>> {
    let first = queue.recv().ok()?;
    let mut batch = vec![first];
    while batch.len() < most && batch.iter().all(|job| job.file.shares_flush()) {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Writes out every file of `batch`, then commits each: the first commit's flush began after
/// all of them were written out, and makes them all durable. Reports each outcome; `false`
/// when nobody takes them any more.
fn commit_batch<T>(batch: Vec<Job<T>>, report: &Sender<(T, Result<()>)>) -> bool {
    let written: Vec<(Job<T>, Result<()>)> = batch
        .into_iter()
        .map(|mut job| {
            let out = job.file.write_out(job.mode, job.mtime_ns);
            (job, out)
        })
        .collect();
    let mut open = true;
    for (job, out) in written {
        let outcome = match out {
            Ok(()) => job.file.commit(job.mode, job.mtime_ns),
            Err(e) => {
                job.file.discard();
                Err(e)
            }
        };
        // A closed report channel still lets the batch's commits end: a file is never left
        // half-way between written out and renamed.
        open &= report.send((job.ticket, outcome)).is_ok();
    }
    open
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

    /// A flush shared by the [`Grouped`] files: numbered as they begin, as a group commit's.
    #[derive(Default)]
    struct Flushes {
        /// (flushes begun, one more than the number of the latest that ended).
        state: Mutex<(u64, u64)>,
        /// Every file's events in order: (file, `true` for its write-out, `false` for its
        /// commit).
        log: Mutex<Vec<(usize, bool)>>,
    }

    /// A temporary file that shares its flush with the others of its group, as a local
    /// destination's do: its write-out takes a ticket, its commit waits for a flush begun
    /// after it (leading one when none is over) and fails when it was not written out.
    struct Grouped {
        id: usize,
        flushes: Arc<Flushes>,
        ticket: Option<u64>,
        fail_write_out: bool,
        committed: Arc<AtomicUsize>,
        discarded: Arc<AtomicUsize>,
    }

    impl Write for Grouped {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl TempFile for Grouped {
        fn write_out(&mut self, _mode: u32, _mtime_ns: i64) -> Result<()> {
            if self.fail_write_out {
                return Err(crate::Error::InvalidInput("no space".into()));
            }
            if self.ticket.is_none() {
                self.flushes.log.lock().unwrap().push((self.id, true));
                self.ticket = Some(self.flushes.state.lock().unwrap().0);
            }
            Ok(())
        }
        fn shares_flush(&self) -> bool {
            true
        }
        fn commit(self: Box<Self>, _mode: u32, _mtime_ns: i64) -> Result<()> {
            let ticket = self.ticket.expect("committed without being written out");
            let covered = self.flushes.state.lock().unwrap().1 > ticket;
            if !covered {
                // The committer holds its queue through a batch: no other flush runs.
                let number = {
                    let mut state = self.flushes.state.lock().unwrap();
                    state.0 += 1;
                    state.0 - 1
                };
                std::thread::sleep(Duration::from_micros(300));
                let mut state = self.flushes.state.lock().unwrap();
                state.1 = state.1.max(number + 1);
                assert!(state.1 > ticket, "a flush begun before the write-out");
            }
            self.flushes.log.lock().unwrap().push((self.id, false));
            self.committed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn discard(self: Box<Self>) {
            self.discarded.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn files_sharing_a_flush_are_written_out_before_their_commits_and_each_comes_back_once() {
        // Repeated under a deadline: batches taken while others are submitted, files whose
        // write-out fails among them, files that share no flush in between, and a committer
        // dropped with files still queued.
        let deadline = Instant::now() + Duration::from_secs(120);
        for round in 0..150 {
            assert!(
                Instant::now() < deadline,
                "round {round}: too slow, a hang?"
            );
            let flushes = Arc::new(Flushes::default());
            let committed = Arc::new(AtomicUsize::new(0));
            let discarded = Arc::new(AtomicUsize::new(0));
            let mut committer = if round % 3 == 2 {
                Committer::start(THREADS).unwrap()
            } else {
                Committer::start_batched(THREADS, 1 + round % 40).unwrap()
            };
            let files = 1 + (round * 7) % 120;
            let mut back = Vec::new();
            for i in 0..files {
                let file: Box<dyn TempFile> = if i % 11 == 5 {
                    Box::new(Slow {
                        committed: Arc::clone(&committed),
                        fail: false,
                    })
                } else {
                    let mut file = Grouped {
                        id: i,
                        flushes: Arc::clone(&flushes),
                        ticket: None,
                        fail_write_out: i % 13 == 4,
                        committed: Arc::clone(&committed),
                        discarded: Arc::clone(&discarded),
                    };
                    // Half written out by the caller, as a cold copy's are.
                    if i % 2 == 0 {
                        let _ = file.write_out(0o644, 0);
                    }
                    Box::new(file)
                };
                back.extend(committer.submit(file, 0o644, 0, i));
            }
            if round % 5 == 4 {
                // Dropped without a drain: every queued file still ends, committed.
                drop(committer);
                let failing = (0..files).filter(|i| i % 13 == 4 && i % 11 != 5).count();
                assert_eq!(committed.load(Ordering::SeqCst), files - failing);
                assert_eq!(discarded.load(Ordering::SeqCst), failing);
                continue;
            }
            back.extend(committer.drain());
            let mut tickets: Vec<usize> = back.iter().map(|(t, _)| *t).collect();
            tickets.sort_unstable();
            assert_eq!(tickets, (0..files).collect::<Vec<_>>());
            for (ticket, outcome) in &back {
                let fails = ticket % 13 == 4 && ticket % 11 != 5;
                assert_eq!(outcome.is_err(), fails, "file {ticket}");
            }
            let log = flushes.log.lock().unwrap();
            for i in 0..files {
                let out = log.iter().position(|&e| e == (i, true));
                let commit = log.iter().position(|&e| e == (i, false));
                if let Some(commit) = commit {
                    assert!(out.is_some_and(|out| out < commit), "file {i}: {log:?}");
                }
            }
        }
    }
}
