//! `ProxyCommand`: a local command whose stdin and stdout carry the SSH connection.
//!
//! As OpenSSH does, the command runs as `sh -c "exec COMMAND"` (no shell left in between),
//! its stdin and stdout one end of a socket pair, its stderr the user's. The other end is the
//! stream the session is run over.
//!
//! Never does: leave the command running once the connection that started it is gone (the
//! [`ProxyChild`] is killed and reaped when dropped), or block while reaping it.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

/// The running command, killed and reaped when dropped.
#[derive(Debug)]
pub(crate) struct ProxyChild {
    child: Option<Child>,
}

impl Drop for ProxyChild {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            // Killed at once and reaped on a thread of its own: a drop never blocks, and the
            // command line waits for it before it exits.
            crate::reaper::release(child, std::time::Duration::ZERO);
        }
    }
}

/// Starts `command` (tokens already expanded) and returns the stream to run SSH over. Must be
/// called inside the runtime (the stream registers with its reactor).
///
/// Errors: what creating the socket pair or starting `sh` returns.
pub(crate) fn spawn(command: &str) -> io::Result<(tokio::net::UnixStream, ProxyChild)> {
    let (ours, theirs) = UnixStream::pair()?;
    let stdin = OwnedFd::from(theirs.try_clone()?);
    let stdout = OwnedFd::from(theirs);
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::inherit())
        .spawn()?;
    let child = ProxyChild { child: Some(child) };
    ours.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(ours)?;
    Ok((stream, child))
}
