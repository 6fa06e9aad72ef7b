//! Stopping a command cleanly when it is asked to: SIGINT (Ctrl-C), SIGTERM, or, for `serve`,
//! the other end of the session going away.
//!
//! [`install`] makes SIGINT and SIGTERM record their arrival instead of ending the process.
//! Long-running work calls [`check`] at points where stopping leaves nothing half-done (before
//! each step of a sync, before each chunk of a file being written, between the files a scan or
//! verify reads) and unwinds with [`Error::Interrupted`] through the error paths that already
//! discard a temporary file or leave a batch uncommitted. Waits that could outlast the signal
//! poll for it instead of blocking: [`sleep`], [`ReadAhead`] and the async runtime's waits
//! (`origin::runtime::block_on`). A command therefore ends within a fraction of a second,
//! with its destination holding old or new files only. A second signal ends the process at
//! once with the default action; only that, or SIGKILL, can leave a temporary file, which the
//! next sync removes.
//!
//! This module never installs handlers by itself: `mount` keeps its own (it unmounts on
//! SIGINT, SIGTERM and SIGHUP), and a library caller decides for its own process.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, LazyLock};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error::{Error, Result};

/// How often a wait looks at whether a signal arrived.
pub const POLL: Duration = Duration::from_millis(50);

/// The number of the signal that asked the process to stop (SIGHUP standing for a peer that
/// went away), 0 while none did.
static CAUSE: LazyLock<Arc<AtomicUsize>> = LazyLock::new(|| Arc::new(AtomicUsize::new(0)));
/// Set by the first SIGINT or SIGTERM: the next one takes the default action.
static SIGNALLED: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Why a command stopped before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// SIGINT: Ctrl-C.
    Interrupt,
    /// SIGTERM: a service manager or `kill`.
    Terminate,
    /// The other end of a `serve` session closed the connection.
    Hangup,
}

impl Cause {
    /// The signal's number (SIGHUP for a hangup).
    pub fn signal_number(self) -> i32 {
        match self {
            Cause::Interrupt => SIGINT,
            Cause::Terminate => SIGTERM,
            Cause::Hangup => SIGHUP,
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cause::Interrupt => "SIGINT",
            Cause::Terminate => "SIGTERM",
            Cause::Hangup => "the other end closing the connection",
        })
    }
}

/// Makes SIGINT and SIGTERM stop the process's work at its next [`check`] instead of ending
/// it; a second one ends it at once. Calling it again does nothing.
pub fn install() -> io::Result<()> {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    for signal in [SIGINT, SIGTERM] {
        // Actions run in the order they were registered: the default action only when an
        // earlier signal already set the flag.
        signal_hook::flag::register_conditional_default(signal, Arc::clone(&SIGNALLED))?;
        signal_hook::flag::register_usize(signal, Arc::clone(&CAUSE), signal as usize)?;
        signal_hook::flag::register(signal, Arc::clone(&SIGNALLED))?;
    }
    Ok(())
}

/// What asked the process to stop, if anything did.
pub fn cause() -> Option<Cause> {
    match i32::try_from(CAUSE.load(Ordering::SeqCst)).ok()? {
        SIGINT => Some(Cause::Interrupt),
        SIGTERM => Some(Cause::Terminate),
        SIGHUP => Some(Cause::Hangup),
        _ => None,
    }
}

/// The signal (not a hangup) that asked the process to stop, if one did.
pub fn signal() -> Option<Cause> {
    cause().filter(|c| matches!(c, Cause::Interrupt | Cause::Terminate))
}

/// `Err(Error::Interrupted)` once the process has been asked to stop.
pub fn check() -> Result<()> {
    match cause() {
        Some(cause) => Err(Error::Interrupted { cause }),
        None => Ok(()),
    }
}

/// Like [`check`], for a signal only: work that answers the other end of a session stops on a
/// signal, and sees the other end hang up in its own stream.
pub fn check_signal() -> Result<()> {
    match signal() {
        Some(cause) => Err(Error::Interrupted { cause }),
        None => Ok(()),
    }
}

/// Records that the other end of this process's session went away (see
/// [`ReadAhead::hanging_up`]).
pub fn hang_up() {
    let _ = CAUSE.compare_exchange(0, SIGHUP as usize, Ordering::SeqCst, Ordering::SeqCst);
}

/// `error`, or the interruption that caused it: a failure once the process was asked to stop
/// (a connection cut short, a read refused) is reported as the interruption.
pub fn explain(error: Error) -> Error {
    match (&error, cause()) {
        (Error::Interrupted { .. }, _) | (_, None) => error,
        (_, Some(cause)) => Error::Interrupted { cause },
    }
}

/// The I/O error a wait or a read fails with once the process was asked to stop.
pub fn io_error(cause: Cause) -> io::Error {
    io::Error::other(Error::Interrupted { cause })
}

/// Sleeps for `duration`, or less when a signal arrives, which it returns.
pub fn sleep(duration: Duration) -> Result<()> {
    let deadline = Instant::now() + duration;
    loop {
        check_signal()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(POLL));
    }
}

/// A byte stream read ahead on a thread of its own, so that its reader neither blocks past a
/// signal nor holds up the other end: `read` waits for data in steps of [`POLL`] and fails with
/// [`Error::Interrupted`] (inside an [`io::Error`]) once a signal arrived, and up to `depth`
/// blocks are taken from the stream while the reader does something else.
pub struct ReadAhead {
    blocks: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    used: usize,
    ended: bool,
}

/// The most one block of a [`ReadAhead`] holds.
const BLOCK: usize = 64 * 1024;

impl ReadAhead {
    /// Starts reading `input`, at most `depth` blocks of up to 64 KiB ahead of the reader.
    pub fn new(input: Box<dyn Read + Send>, depth: usize) -> ReadAhead {
        ReadAhead::start(input, depth, false)
    }

    /// Like [`ReadAhead::new`], for the input of a `serve` session, whose end means that the
    /// client went away: it records [`Cause::Hangup`], so that work which does not read the
    /// input (a scan) stops too. Every byte before the end is still delivered.
    pub fn hanging_up(input: Box<dyn Read + Send>, depth: usize) -> ReadAhead {
        ReadAhead::start(input, depth, true)
    }

    fn start(mut input: Box<dyn Read + Send>, depth: usize, hang_up_at_end: bool) -> ReadAhead {
        let (tx, blocks) = mpsc::sync_channel(depth);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; BLOCK];
            loop {
                match input.read(&mut buf) {
                    Ok(0) => {
                        if hang_up_at_end {
                            hang_up();
                        }
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Ok(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        ReadAhead {
            blocks,
            current: Vec::new(),
            used: 0,
            ended: false,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(cause) = signal() {
            return Err(io_error(cause));
        }
        while self.used == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.blocks.recv_timeout(POLL) {
                Ok(Ok(block)) => {
                    self.current = block;
                    self.used = 0;
                }
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => self.ended = true,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(cause) = signal() {
                        return Err(io_error(cause));
                    }
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.used);
        buf[..n].copy_from_slice(&self.current[self.used..self.used + n]);
        self.used += n;
        Ok(n)
    }
}

/// A reader that fails with [`Error::Interrupted`] (inside an [`io::Error`]) once the process
/// was asked to stop, so that reading a large file ends within one read of a signal.
pub struct Checked<R>(pub R);

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(cause) = cause() {
            return Err(io_error(cause));
        }
        self.0.read(buf)
    }
}

impl<R: io::Seek> io::Seek for Checked<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.0.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_signal() {
        assert_eq!(
            Error::Interrupted {
                cause: Cause::Interrupt
            }
            .to_string(),
            "interrupted by SIGINT"
        );
    }
}
