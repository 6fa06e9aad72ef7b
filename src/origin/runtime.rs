//! The one async runtime of the process, shared by every transport, and the groups of tasks
//! that a connection starts on it.
//!
//! The network crates (russh, and the S3 and SMB clients to come) are async; the rest of
//! musicfs is blocking (rayon workers, plain threads). Transports meet the two here: their
//! blocking calls wait with [`block_on`] on the calling thread, and their background work (a
//! connection's reader, a channel's pump, reads in flight) runs on a small pool of worker
//! threads built once, on first use. A [`TaskGroup`] owns what one connection started: when it
//! is dropped its tasks are aborted and the streams it guards fail, so nothing outlives the
//! connection, as it would when each connection had a runtime of its own to shut down.
//!
//! Never does: nest runtimes (a [`block_on`] from inside one fails with an error, it does not
//! panic), block in a `Drop`, or keep a task or a socket of a dropped [`TaskGroup`] running.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::Runtime;
use tokio::task::{AbortHandle, JoinHandle};

/// Worker threads of the runtime. The async side only moves bytes between sockets and
/// queues (hashing and chunking run on rayon's pool), so two are plenty whatever the machine.
pub const WORKERS: usize = 2;

/// How long a blocking call may still run once a signal arrived: long enough for a short one
/// (removing a temporary file) to finish, short enough that a wait on a silent remote does not
/// keep the process alive.
const GRACE_AFTER_SIGNAL: Duration = Duration::from_millis(500);

/// The runtime, or why it could not be built.
static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// The process's runtime, built on first use.
fn runtime() -> io::Result<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKERS)
                .thread_name("musicfs-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| io::Error::other(format!("cannot start the async runtime: {e}")))
}

/// Whether the calling thread is inside a tokio runtime (this one or any other), where a
/// blocking wait would nest runtimes.
pub fn inside_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Runs `future` to completion on the calling thread, its I/O and timers driven by the
/// shared runtime.
///
/// Errors: `io::ErrorKind::Other` when the caller is itself inside a tokio runtime (a bug of
/// the caller; never a panic) or the runtime cannot be built; `Interrupted` (see
/// [`crate::interrupt::io_error`]) when a signal asked the process to stop and the future did
/// not finish within 500 ms after it. The future is dropped, unfinished, in both cases.
pub fn block_on<F: Future>(future: F) -> io::Result<F::Output> {
    if inside_runtime() {
        return Err(io::Error::other(
            "a blocking network call was made from inside an async runtime",
        ));
    }
    runtime()?.block_on(until_signalled(future))
}

/// Runs `future`, or gives up with an interrupted error [`GRACE_AFTER_SIGNAL`] after a signal.
async fn until_signalled<F: Future>(future: F) -> io::Result<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut signalled_at = None;
    loop {
        if let Ok(output) = tokio::time::timeout(crate::interrupt::POLL, future.as_mut()).await {
            return Ok(output);
        }
        if let Some(cause) = crate::interrupt::signal() {
            let at = *signalled_at.get_or_insert_with(Instant::now);
            if at.elapsed() >= GRACE_AFTER_SIGNAL {
                return Err(crate::interrupt::io_error(cause));
            }
        }
    }
}

/// The tasks and streams of one connection, which end together when the group is dropped.
///
/// Contract: every task started through the group is aborted when the group is dropped (at
/// its next await point; a task never outlives the group by more than that), and every
/// stream wrapped by [`TaskGroup::guard`] then fails its reads and writes with
/// `ConnectionAborted`, so whatever drives it (a library's own connection task, spawned where
/// the group cannot see it) ends and closes the socket. Dropping never blocks, so a group may
/// be dropped anywhere, inside the runtime included.
pub struct TaskGroup {
    tasks: Mutex<Vec<AbortHandle>>,
    cancel: Arc<CancelState>,
}

impl Default for TaskGroup {
    fn default() -> Self {
        TaskGroup::new()
    }
}

impl std::fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskGroup")
            .field("tasks", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl TaskGroup {
    /// An empty group.
    pub fn new() -> TaskGroup {
        TaskGroup {
            tasks: Mutex::new(Vec::new()),
            cancel: Arc::new(CancelState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<AbortHandle>> {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts `future` on the shared runtime as a member of the group and returns its handle
    /// (awaiting it gives a cancelled `JoinError` once the group is dropped). Errors only when
    /// the runtime cannot be built.
    pub fn start<F>(&self, future: F) -> io::Result<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = runtime()?.spawn(future);
        let mut tasks = self.lock();
        // Finished tasks are forgotten here, so the list stays as long as the work in flight.
        tasks.retain(|task| !task.is_finished());
        tasks.push(handle.abort_handle());
        Ok(handle)
    }

    /// Starts `future` in the background without waiting for it (used by `Drop`s); nothing
    /// happens when the runtime cannot be built.
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let _ = self.start(future);
    }

    /// `stream`, made to fail every read and write with `ConnectionAborted` once the group is
    /// dropped (see the type's contract).
    pub fn guard<S>(&self, stream: S) -> Guarded<S> {
        Guarded {
            inner: stream,
            cancel: Arc::clone(&self.cancel),
        }
    }
}

impl Drop for TaskGroup {
    fn drop(&mut self) {
        for task in self.lock().drain(..) {
            task.abort();
        }
        self.cancel.cancel();
    }
}

/// The signal from a dropped [`TaskGroup`] to its guarded streams.
#[derive(Default)]
struct CancelState {
    cancelled: AtomicBool,
    /// The tasks waiting to read and to write, woken by the cancellation.
    readers: Mutex<Option<Waker>>,
    writers: Mutex<Option<Waker>>,
}

impl CancelState {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        for slot in [&self.readers, &self.writers] {
            let waker = slot
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Fails once cancelled; else remembers who to wake when that happens.
    fn check(&self, slot: &Mutex<Option<Waker>>, cx: &Context<'_>) -> io::Result<()> {
        if !self.cancelled.load(Ordering::SeqCst) {
            let mut waker = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        // Checked again after the waker is in place, so a cancellation in between is seen.
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the connection was closed by its owner",
            ));
        }
        Ok(())
    }
}

/// A stream that fails once its [`TaskGroup`] is dropped (see [`TaskGroup::guard`]).
pub struct Guarded<S> {
    inner: S,
    cancel: Arc<CancelState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Err(e) = this.cancel.check(&this.cancel.readers, cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Err(e) = this.cancel.check(&this.cancel.writers, cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Err(e) = this.cancel.check(&this.cancel.writers, cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_runs_and_refuses_to_nest() {
        assert_eq!(block_on(async { 7 }).unwrap(), 7);
        let nested = block_on(async { block_on(async { 1 }) }).unwrap();
        let error = nested.expect_err("nested block_on must fail");
        assert!(
            error.to_string().contains("inside an async runtime"),
            "{error}"
        );
    }

    #[test]
    fn dropping_a_group_aborts_its_tasks() {
        let group = TaskGroup::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let forever = group
            .start(async move {
                // Holds the sender until aborted.
                let _tx = tx;
                std::future::pending::<()>().await
            })
            .unwrap();
        drop(group);
        let joined = block_on(forever).unwrap();
        assert!(joined.expect_err("aborted").is_cancelled());
        assert_eq!(block_on(rx.recv()).unwrap(), None);
    }

    #[test]
    fn a_guarded_stream_fails_once_its_group_is_dropped() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let group = TaskGroup::new();
        let (near, mut far) = tokio::io::duplex(64);
        let mut guarded = group.guard(near);
        // The stream is driven by a task the group does not own, as russh's connection task.
        let elsewhere = TaskGroup::new();
        let reader = elsewhere
            .start(async move {
                let mut buf = [0u8; 8];
                let first = guarded.read(&mut buf).await.map(|n| buf[..n].to_vec());
                // Waits with nothing to read until the group is gone.
                let second = guarded.read(&mut buf).await;
                (first, second)
            })
            .unwrap();
        block_on(far.write_all(b"hi")).unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        drop(group);
        let (first, second) = block_on(reader).unwrap().unwrap();
        assert_eq!(first.unwrap(), b"hi");
        assert_eq!(
            second.expect_err("cancelled").kind(),
            io::ErrorKind::ConnectionAborted
        );
    }
}
