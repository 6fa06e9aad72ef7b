//! How a sync reaches the other end of a remote origin: a link that can start the remote agent
//! (`musicfs serve --stdio`) there and hand back its byte streams, and open the same remote
//! directory as a plain origin when there is no agent to talk to.
//!
//! The agent protocol (`crate::agent`) runs over any such link; it never knows what carries
//! the bytes. A transport offers a link through [`Location::agent`](super::registry::Location);
//! SSH does (an exec channel for the agent, SFTP on the same session for the fallback), and
//! so could a local command that reaches the host (`--rsh`), whose streams are a child
//! process's stdout and stdin and whose status is its exit status.
//!
//! Never does: speak the agent protocol, retry (the caller retries a whole sync, one
//! connection per attempt), or decide when to fall back (the caller does, on the agent's
//! silence and on the user's options).

use std::fmt;
use std::io::{Read, Write};
use std::time::Duration;

use super::registry::OpenOptions;
use super::{Origin, WritableOrigin};
use crate::error::Result;

/// The exit status a POSIX shell gives a command it cannot find.
pub const COMMAND_NOT_FOUND: u32 = 127;

/// The size asked of a pipe that carries the agent's output: one of its buffered writes
/// (`agent::serve` writes 1 MiB at a time), and Linux's default limit for an unprivileged
/// user. With the default 64 KiB, each write woke the reader sixteen times.
const PIPE_BYTES: nix::libc::c_int = 1 << 20;

/// Asks `fd`, when it is a pipe that carries the agent's output (the agent's standard output,
/// or the remote shell's that a client reads), to hold one of the agent's writes whole. A
/// pipe that refuses (over the system's limit for the user), or a descriptor that is not a
/// pipe, stays as it is: `what` names it in the debug log.
pub fn widen_pipe(fd: impl std::os::fd::AsFd, what: &str) {
    if let Err(e) = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BYTES)) {
        tracing::debug!("{what} keeps its pipe size: {e}");
    }
}

/// A way to reach the host of a remote origin, where a sync may run the agent.
///
/// The same link may reach the host in more than one way (SSH: the built-in client, or a
/// local command such as OpenSSH's `ssh` when [`OpenOptions::remote_shell`] is set); the
/// choice is made in `connect`, from the options, and nothing above the link sees it.
pub trait AgentLink: fmt::Debug + Send + Sync {
    /// The remote directory, as the agent is to be asked for it: the path as the argument
    /// wrote it (relative paths are relative to the remote home).
    fn remote_dir(&self) -> &[u8];

    /// Whether the argument asked for the fallback alone (`sftp://`): a sync then never
    /// starts the agent.
    fn fallback_only(&self) -> bool;

    /// What the fallback origin is, for messages ("SFTP").
    fn fallback_name(&self) -> &'static str;

    /// Connects, once: no retry (the caller retries the whole sync under
    /// `Policy::connections`, with a new connection each time). The connection lives until
    /// the returned value and everything opened from it are dropped.
    ///
    /// Errors: [`crate::Error::Unreachable`] (transient) when the host cannot be reached or
    /// stops answering within `options`' timeouts, [`crate::Error::HostKey`] for a host whose
    /// identity is unknown or changed, [`crate::Error::InvalidInput`] when authentication or
    /// the configuration fails, `Interrupted` after a signal.
    fn connect(&self, options: &OpenOptions) -> Result<Box<dyn AgentConnection>>;
}

/// One connection to the host of a remote origin (see [`AgentLink::connect`]).
pub trait AgentConnection: Send {
    /// The remote directory as messages name it (`user@host:port:path`).
    fn origin(&self) -> &str;

    /// Runs `command` on the host, through its shell as written (so `sudo musicfs serve
    /// --stdio` works), and returns its stdout, stdin and status. Each call starts a new
    /// process; the connection stays usable for the fallback while it runs. Succeeding says
    /// only that the command was handed over: a host without the program answers with an
    /// end of its stdout and [`COMMAND_NOT_FOUND`] as its status, which the protocol sees as
    /// an agent that ended before its greeting.
    ///
    /// Errors: [`crate::Error::Unreachable`] (transient) when the connection cannot carry a
    /// new process (lost, refused), `Interrupted` after a signal.
    fn start_agent(&self, command: &str) -> Result<AgentProcess>;

    /// The remote directory as a readable origin over this connection, for a sync that has no
    /// agent to talk to; its reads are retried (`Retrying` under `Policy::READS`), as those of
    /// every origin the registry opens. Its root must be an existing directory.
    ///
    /// Errors: [`crate::Error::InvalidInput`] when the root is missing or not a directory,
    /// [`crate::Error::Unreachable`] (transient) when the connection fails, an error of kind
    /// unsupported when the link has no fallback.
    fn open_fallback(&self) -> Result<Box<dyn Origin>>;

    /// The remote directory as a sync's destination over this connection (see
    /// [`AgentConnection::open_fallback`]); a missing root is created when the sync starts.
    /// Errors as [`AgentConnection::open_fallback`].
    fn open_fallback_writable(&self) -> Result<Box<dyn WritableOrigin>>;

    /// A new file at `path` on the host (absolute, or relative to the remote home), created
    /// with permission bits `mode` and opened for writing, over the link's file transfer (for
    /// SSH: SFTP), for deploying the agent (`crate::agent::deploy`). Fails when `path` exists.
    /// The file is written in order; `flush` waits until everything written has arrived, and
    /// dropping the writer closes the file. Nothing checks the bytes but the caller.
    ///
    /// Errors: [`crate::Error::Unreachable`] (transient) when the connection fails;
    /// [`crate::Error::Io`] when the host refuses the file (it exists, a missing directory, no
    /// permission), and of kind unsupported (the default) when the link has no file transfer.
    fn create_file(&self, path: &[u8], _mode: u32) -> Result<Box<dyn Write + Send>> {
        Err(crate::Error::Io {
            path: String::from_utf8_lossy(path).into_owned().into(),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("{}: this link cannot create files", self.origin()),
            ),
        })
    }
}

/// A running remote agent: its byte streams and its status.
pub struct AgentProcess {
    /// What the agent writes (its stdout). `Ok(0)` at its end; a lost connection or a silent
    /// one past the I/O timeout is an error of kind `ConnectionAborted` or `TimedOut`.
    pub input: Box<dyn Read + Send>,
    /// What the agent reads (its stdin). Dropping it ends the agent's input. A write after the
    /// agent ended fails with `BrokenPipe`.
    pub output: Box<dyn Write + Send>,
    /// How it ended, and what it said on stderr.
    pub status: Box<dyn AgentStatus>,
}

impl fmt::Debug for AgentProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentProcess").finish_non_exhaustive()
    }
}

/// The end of a remote agent, as far as the link can tell.
pub trait AgentStatus: Send {
    /// The exit status once the agent has ended, waiting up to `wait` for that; `None` when it
    /// has not ended in time or ended without one (a signal, a lost connection).
    /// [`COMMAND_NOT_FOUND`] means the host has no such program. Never fails; may be called
    /// any number of times.
    fn exit_status(&self, wait: Duration) -> Option<u32>;

    /// The end of what the agent wrote to stderr (a few KiB at most), as text; empty when it
    /// wrote nothing or the link cannot tell. Never waits.
    fn stderr_tail(&self) -> String;

    /// Why the link itself failed, when the agent's stream ended because of the link and not
    /// of the agent: a local client (`--rsh`) that exited with its own error status, waiting
    /// up to `wait` for it to end. The error names the host and says what the client said:
    /// [`crate::Error::Unreachable`] (transient), or [`crate::Error::HostKey`]. A caller
    /// that met the end of the agent's output before its greeting asks this before deciding
    /// that the host has no agent. `None` (the default) for links whose connection failures
    /// surface when connecting, or when the link did not fail. Never fails; may be called
    /// any number of times.
    fn link_failure(&self, _wait: Duration) -> Option<crate::Error> {
        None
    }
}
