//! Exec channels as blocking byte streams: the remote command's stdout as a reader, its stdin
//! as a writer, and its exit status and stderr on the side.
//!
//! A task of the session (on the shared runtime) moves the channel's messages to the reader
//! through a small bounded queue. When the reader stops reading, the queue and then russh's
//! per-channel buffer fill up, and russh stops reading the connection: memory stays bounded,
//! and every other channel of the same session waits too. Read stdout to its end before
//! waiting for the exit status.

use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use russh::client::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::mpsc;

use super::session::Shared;

/// Most of the remote's stderr that is kept.
const STDERR_TAIL: usize = 4096;
/// Data messages (at most 32 KiB each) queued between the channel and the reader.
const QUEUE: usize = 8;
/// Largest piece one `write` hands to the channel.
const WRITE_PIECE: usize = 64 * 1024;

/// A running remote command.
#[derive(Debug)]
pub struct ExecChannel {
    reader: ExecReader,
    writer: ExecWriter,
    status: ExecStatus,
}

impl ExecChannel {
    pub(crate) fn start(channel: Channel<Msg>, shared: Arc<Shared>) -> ExecChannel {
        let (read_half, write_half) = channel.split();
        let (data_tx, data_rx) = mpsc::channel(QUEUE);
        let status = ExecStatus {
            state: Arc::new(StatusState::default()),
        };
        shared.spawn(pump(read_half, data_tx, Arc::clone(&status.state)));
        ExecChannel {
            reader: ExecReader {
                shared: Arc::clone(&shared),
                data: data_rx,
                current: Bytes::new(),
                end: None,
            },
            writer: ExecWriter {
                shared,
                channel: Some(write_half),
                state: Arc::clone(&status.state),
            },
            status,
        }
    }

    /// Splits into the remote's stdout, its stdin and its status. The reader and the writer may
    /// be used from two threads at once.
    pub fn split(self) -> (ExecReader, ExecWriter, ExecStatus) {
        (self.reader, self.writer, self.status)
    }
}

/// Moves the channel's messages to the reader and the status until the channel closes.
async fn pump(
    mut channel: ChannelReadHalf,
    data_tx: mpsc::Sender<io::Result<Bytes>>,
    state: Arc<StatusState>,
) {
    let mut data_tx = Some(data_tx);
    let mut clean = false;
    while let Some(message) = channel.wait().await {
        match message {
            ChannelMsg::Data { data } => {
                if let Some(tx) = &data_tx {
                    if tx.send(Ok(data)).await.is_err() {
                        // The reader is gone: drop whatever else arrives.
                        data_tx = None;
                    }
                }
            }
            ChannelMsg::ExtendedData { data, ext: 1 } => state.lock().push_stderr(&data),
            ChannelMsg::ExitStatus { exit_status } => state.lock().exit_status = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                let note = format!("\n[killed by signal {signal_name:?}]");
                state.lock().push_stderr(note.as_bytes());
            }
            ChannelMsg::Failure => {
                if let Some(tx) = data_tx.take() {
                    let refused = io::Error::other("the server refused to run the command");
                    let _ = tx.send(Err(refused)).await;
                }
            }
            ChannelMsg::Eof => {
                clean = true;
                data_tx = None;
            }
            ChannelMsg::Close => {
                clean = true;
                break;
            }
            _ => {}
        }
    }
    if !clean {
        if let Some(tx) = data_tx.take() {
            let lost = io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the SSH connection was lost",
            );
            let _ = tx.send(Err(lost)).await;
        }
    }
    drop(data_tx);
    let mut guard = state.lock();
    guard.closed = true;
    drop(guard);
    state.changed.notify_all();
}

/// The remote command's stdout.
pub struct ExecReader {
    shared: Arc<Shared>,
    data: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    /// Set once the stream has ended: `None` inside means a clean end.
    end: Option<Option<(io::ErrorKind, String)>>,
}

impl std::fmt::Debug for ExecReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecReader")
            .field("session", &self.shared.label)
            .field("buffered", &self.current.len())
            .finish_non_exhaustive()
    }
}

impl Read for ExecReader {
    /// Reads stdout; `Ok(0)` at its end. Waiting longer than the I/O timeout fails with
    /// `TimedOut`; a lost connection fails with `ConnectionAborted`.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            match &self.end {
                Some(None) => return Ok(0),
                Some(Some((kind, message))) => return Err(io::Error::new(*kind, message.clone())),
                None => {}
            }
            match self.shared.block_on_timeout(self.data.recv())? {
                Some(Ok(data)) => self.current = data,
                Some(Err(e)) => self.end = Some(Some((e.kind(), e.to_string()))),
                None => self.end = Some(None),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// The remote command's stdin. Dropping it sends end-of-file.
pub struct ExecWriter {
    shared: Arc<Shared>,
    channel: Option<ChannelWriteHalf<Msg>>,
    /// Whether the channel has closed: a write then fails instead of waiting for a window
    /// that no one will open.
    state: Arc<StatusState>,
}

impl std::fmt::Debug for ExecWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecWriter")
            .field("session", &self.shared.label)
            .finish_non_exhaustive()
    }
}

impl Write for ExecWriter {
    /// Sends up to 64 KiB, waiting while the remote's window is full (at most the I/O timeout);
    /// fails with `BrokenPipe` once the channel has closed (the remote command ended).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let channel = self
            .channel
            .as_ref()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        let n = buf.len().min(WRITE_PIECE);
        if n == 0 {
            return Ok(0);
        }
        let piece = Bytes::copy_from_slice(&buf[..n]);
        self.shared
            .block_on_timeout(unless_closed(&self.state, channel.data_bytes(piece)))??
            .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e.to_string()))?;
        Ok(n)
    }

    /// Data is handed to the connection by `write` already.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ExecWriter {
    fn drop(&mut self) {
        if let Some(channel) = self.channel.take() {
            // Queued after every piece `write` has handed over, so it arrives after them.
            self.shared.spawn(async move {
                let _ = channel.eof().await;
            });
        }
    }
}

/// How often a write waiting for the remote's window looks whether the channel has closed.
const CLOSED_POLL: Duration = Duration::from_millis(100);

/// Runs `send`, failing with `BrokenPipe` once the channel has closed.
async fn unless_closed<F: std::future::Future>(
    state: &StatusState,
    send: F,
) -> io::Result<F::Output> {
    let mut send = std::pin::pin!(send);
    loop {
        if let Ok(output) = tokio::time::timeout(CLOSED_POLL, send.as_mut()).await {
            return Ok(output);
        }
        if state.lock().closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the remote command has ended",
            ));
        }
    }
}

#[derive(Default)]
struct StatusState {
    inner: Mutex<StatusInner>,
    changed: Condvar,
}

#[derive(Default)]
struct StatusInner {
    exit_status: Option<u32>,
    stderr: Vec<u8>,
    closed: bool,
}

impl StatusState {
    fn lock(&self) -> MutexGuard<'_, StatusInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StatusInner {
    fn push_stderr(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(STDERR_TAIL)..];
        self.stderr.extend_from_slice(data);
        let excess = self.stderr.len().saturating_sub(STDERR_TAIL);
        self.stderr.drain(..excess);
    }
}

/// The remote command's exit status and the end of its stderr.
#[derive(Clone)]
pub struct ExecStatus {
    state: Arc<StatusState>,
}

impl std::fmt::Debug for ExecStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.state.lock();
        f.debug_struct("ExecStatus")
            .field("exit_status", &inner.exit_status)
            .field("closed", &inner.closed)
            .finish()
    }
}

impl ExecStatus {
    /// The exit status, once the channel has closed; waits up to `wait` for that. `None` if it
    /// did not close in time, or closed without a status (a signal, a lost connection).
    pub fn exit_status(&self, wait: Duration) -> Option<u32> {
        let deadline = Instant::now() + wait;
        let mut inner = self.state.lock();
        while !inner.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            inner = match self.state.changed.wait_timeout(inner, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        inner.exit_status
    }

    /// The last 4 KiB (at most) the remote wrote to stderr, as text.
    pub fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.state.lock().stderr).into_owned()
    }
}
