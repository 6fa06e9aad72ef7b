//! The SSH transport over a local command (`-e/--rsh COMMAND`, as rsync spells it; the
//! system OpenSSH when COMMAND is `ssh`) instead of the built-in client.
//!
//! The agent runs as `COMMAND [options] host musicfs serve --stdio` and its protocol goes over
//! the child's stdin and stdout; the SFTP fallback, and `scan`/`verify`/`diff`, run `COMMAND
//! [options] -s host sftp` and speak SFTP (the same client as over russh, [`Sftp`]) over its
//! pipes. Whatever OpenSSH supports then works without musicfs knowing it: jump hosts,
//! control sockets, certificates, FIDO keys, and its own host-key checking. COMMAND is split
//! with shell-words rules and run directly, never through a local shell.
//!
//! Options added for OpenSSH (a COMMAND whose program is named `ssh`): `-o BatchMode=yes` when
//! stdin is not a terminal (cron never hangs on a prompt), `-o ConnectTimeout` from
//! `--timeout`, keepalives that end a dead link after about the I/O timeout, and
//! `StrictHostKeyChecking=accept-new` with `--accept-new-host-key`. `-p PORT` and `-l USER`
//! are added for any COMMAND when the origin names them.
//!
//! The child's exit status 255 is the client's own failure: it becomes one error naming the
//! host, with the last line the client wrote on stderr (kind `Unreachable`, or `HostKey`).
//!
//! Never does: run a local shell, leave a child behind: every process started here is waited
//! for (its stdin closed, then SIGTERM, then SIGKILL) when the last of its handles goes.

use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::Pin;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

use super::session::Shared;
use super::transport::SshSpec;
use super::{Sftp, SftpOrigin};
use crate::error::{Error, Result};
use crate::origin::agent_link::{AgentConnection, AgentProcess, AgentStatus};
use crate::origin::registry::OpenOptions;
use crate::origin::{Origin, Policy, Retrying, WritableOrigin};

/// The end of the child's stderr kept for messages.
const STDERR_TAIL: usize = 4096;
/// Read size from the child's stdout.
const READ: usize = 64 * 1024;
/// Reads from the child's stdout buffered ahead of the protocol.
const READ_AHEAD: usize = 8;
/// How long a child whose stdin was closed may take to end before it is signalled.
const GRACE: Duration = Duration::from_secs(2);

/// A local command that reaches SSH hosts, as the user wrote it, split into words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemoteShell {
    words: Vec<String>,
}

impl RemoteShell {
    /// Splits `command` as a POSIX shell would (quotes, backslashes), without running one.
    ///
    /// Errors: [`Error::InvalidInput`] for an empty command or unbalanced quotes.
    pub fn parse(command: &str) -> Result<RemoteShell> {
        let words = shell_words::split(command)
            .map_err(|e| Error::InvalidInput(format!("--rsh {command:?}: {e}")))?;
        if words.is_empty() {
            return Err(Error::InvalidInput("--rsh: empty command".into()));
        }
        Ok(RemoteShell { words })
    }

    /// Whether the program is OpenSSH's client, which takes `-o` options.
    fn is_openssh(&self) -> bool {
        Path::new(&self.words[0]).file_name() == Some("ssh".as_ref())
    }

    /// The command line: the user's words, our options, then `-s` for a subsystem, the host,
    /// and what to run there.
    pub fn command(
        &self,
        spec: &SshSpec,
        options: &OpenOptions,
        subsystem: bool,
        remote: &str,
    ) -> Command {
        let mut command = Command::new(&self.words[0]);
        command.args(&self.words[1..]);
        if self.is_openssh() {
            if !io::stdin().is_terminal() {
                command.args(["-o", "BatchMode=yes"]);
            }
            let connect = options.connect_timeout.as_secs().max(1);
            // Keepalives every quarter of the I/O timeout, four missed: a dead link ends the
            // client after about one I/O timeout, as the built-in client's keepalives do.
            let alive = (options.io_timeout.as_secs() / 4).max(1);
            command.args(["-o", &format!("ConnectTimeout={connect}")]);
            command.args(["-o", &format!("ServerAliveInterval={alive}")]);
            command.args(["-o", "ServerAliveCountMax=4"]);
            if options.accept_new_host_key {
                command.args(["-o", "StrictHostKeyChecking=accept-new"]);
            }
        }
        if let Some(port) = spec.port {
            command.args(["-p", &port.to_string()]);
        }
        if let Some(user) = &spec.user {
            command.args(["-l", user]);
        }
        if subsystem {
            command.arg("-s");
        }
        command.arg(&spec.host).arg(remote);
        command
    }
}

/// `[user@]host[:port]`, for messages.
fn host_label(spec: &SshSpec) -> String {
    let mut label = String::new();
    if let Some(user) = &spec.user {
        label.push_str(user);
        label.push('@');
    }
    label.push_str(&spec.host);
    if let Some(port) = spec.port {
        label.push_str(&format!(":{port}"));
    }
    label
}

/// One child process of the remote shell: reaped when dropped.
struct Process {
    /// `None` once reaped.
    child: crate::reaper::Adopted,
    /// The end of what it wrote on stderr.
    stderr: Arc<Mutex<Vec<u8>>>,
    /// `[user@]host[:port]`.
    host: String,
}

impl Process {
    /// Starts `command` with piped stdin, stdout and stderr; stderr is collected by a thread.
    fn spawn(
        mut command: Command,
        host: &str,
    ) -> Result<(Process, ChildStdin, std::process::ChildStdout)> {
        let program = command.get_program().to_string_lossy().into_owned();
        tracing::debug!(?command, "starting the remote shell");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::InvalidInput(format!("--rsh: cannot run {program}: {e}")))?;
        let (Some(stdin), Some(stdout), Some(mut err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::InvalidInput(format!("--rsh: {program}: no pipes")));
        };
        // The remote end's output arrives through this pipe.
        crate::origin::agent_link::widen_pipe(&stdout, "the remote shell's output");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
                tail.extend_from_slice(&buf[..n]);
                let excess = tail.len().saturating_sub(STDERR_TAIL);
                tail.drain(..excess);
            }
        });
        Ok((
            Process {
                child: crate::reaper::adopt(child, GRACE),
                stderr,
                host: host.to_owned(),
            },
            stdin,
            stdout,
        ))
    }

    fn exit_status(&self, wait: Duration) -> Option<i32> {
        let deadline = Instant::now() + wait;
        loop {
            let status = match self
                .child
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
            {
                Some(child) => child.try_wait(),
                None => return None,
            };
            match status {
                Ok(Some(status)) => return status.code(),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&tail).into_owned()
    }

    /// The client's own failure, when it ended with 255 (OpenSSH's status for its errors):
    /// the last line it wrote, as an error naming the host.
    fn failure(&self, wait: Duration) -> Option<Error> {
        if self.exit_status(wait)? != 255 {
            return None;
        }
        // The stderr thread may still be reading the last line.
        thread::sleep(Duration::from_millis(20));
        let said = self.stderr_tail();
        let last = said
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("the remote shell failed (exit status 255)")
            .to_owned();
        if said.contains("Host key verification failed")
            || said.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        {
            return Some(Error::HostKey {
                host: self.host.clone(),
                message: format!("{last} (OpenSSH's known_hosts check, --rsh)"),
            });
        }
        Some(Error::Unreachable {
            origin: self.host.clone(),
            message: last,
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let Some(child) = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        // Never blocks a drop; the command line waits for it before it exits.
        crate::reaper::release(child, GRACE);
    }
}

/// The child's stdout, read ahead by a thread so that a silent remote can be timed out.
struct ShellReader {
    chunks: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    io_timeout: Duration,
    process: Arc<Process>,
    /// `[user@]host[:port]`, for messages.
    host: String,
}

impl ShellReader {
    fn start(
        mut stdout: std::process::ChildStdout,
        process: Arc<Process>,
        io_timeout: Duration,
    ) -> ShellReader {
        let (tx, chunks) = mpsc::sync_channel(READ_AHEAD);
        thread::spawn(move || loop {
            let mut buf = vec![0u8; READ];
            match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            }
        });
        let host = process.host.clone();
        ShellReader {
            chunks,
            current: Vec::new(),
            at: 0,
            io_timeout,
            process,
            host,
        }
    }
}

impl Read for ShellReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.at == self.current.len() {
            match self.chunks.recv_timeout(self.io_timeout) {
                Ok(chunk) => {
                    self.current = chunk?;
                    self.at = 0;
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "no answer from {} for {} s",
                            self.host,
                            self.io_timeout.as_secs()
                        ),
                    ))
                }
                // The end of its stdout: a clean end, unless the client itself failed.
                Err(RecvTimeoutError::Disconnected) => {
                    return match self.process.failure(Duration::from_secs(2)) {
                        Some(e) => Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            e.to_string(),
                        )),
                        None => Ok(0),
                    };
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The child's stdin; keeps the process alive as long as it is held.
struct ShellWriter {
    stdin: ChildStdin,
    _process: Arc<Process>,
}

impl Write for ShellWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stdin.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stdin.flush()
    }
}

/// How a remote agent started through the remote shell ended.
struct ShellStatus(Arc<Process>);

impl AgentStatus for ShellStatus {
    fn exit_status(&self, wait: Duration) -> Option<u32> {
        self.0.exit_status(wait).and_then(|c| u32::try_from(c).ok())
    }

    fn stderr_tail(&self) -> String {
        self.0.stderr_tail()
    }

    fn link_failure(&self, wait: Duration) -> Option<Error> {
        self.0.failure(wait)
    }
}

/// The child's stdout and stdin as one async stream, for the SFTP client.
struct ShellStream {
    stdout: pipe::Receiver,
    stdin: Option<pipe::Sender>,
}

impl AsyncRead for ShellStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for ShellStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }
    /// Closes the child's stdin: the SFTP session is over, and the client ends.
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stdin = None;
        Poll::Ready(Ok(()))
    }
}

/// SFTP to `spec`'s host through the remote shell: `COMMAND -s host sftp`.
fn start_sftp(shell: &RemoteShell, spec: &SshSpec, options: &OpenOptions) -> Result<Sftp> {
    let host = host_label(spec);
    let (process, stdin, stdout) =
        Process::spawn(shell.command(spec, options, true, "sftp"), &host)?;
    let process = Arc::new(process);
    let shared: Arc<Shared> = Shared::detached(host.clone(), options.io_timeout);
    let stream = crate::origin::runtime::block_on(async {
        Ok::<_, io::Error>(ShellStream {
            stdout: pipe::Receiver::from_owned_fd(OwnedFd::from(stdout))?,
            stdin: Some(pipe::Sender::from_owned_fd(OwnedFd::from(stdin))?),
        })
    })
    .and_then(|r| r)
    .map_err(|e| Error::InvalidInput(format!("{host}: --rsh: {e}")))?;
    let keep: Box<dyn Send + Sync> = Box::new(Arc::clone(&process));
    Sftp::start_over(stream, shared, Some(keep)).map_err(|e| {
        // A client that failed says why on its stderr; a server without SFTP ends the stream.
        process
            .failure(options.connect_timeout)
            .unwrap_or(Error::Unreachable {
                origin: host.clone(),
                message: format!("cannot start SFTP through {}: {e}", shell.words[0]),
            })
    })
}

/// The directory of `spec` over SFTP through the remote shell, its connection retried while
/// it fails for a transient reason (see [`crate::origin::registry::Location::open`]).
pub(crate) fn open_sftp(
    shell: &RemoteShell,
    spec: &SshSpec,
    options: &OpenOptions,
    may_create: bool,
) -> Result<SftpOrigin> {
    let label = host_label(spec);
    Policy::connections(options.retries)
        .run(|| {
            let sftp = start_sftp(shell, spec, options)?;
            SftpOrigin::new(Arc::new(sftp), &label, &spec.path, may_create)
        })
        .map_err(crate::interrupt::explain)
}

/// A "connection" through the remote shell: each agent and each SFTP session is a process of
/// its own (which OpenSSH's `ControlMaster` may multiplex over one TCP connection).
pub(crate) struct ShellConnection {
    shell: RemoteShell,
    spec: SshSpec,
    options: OpenOptions,
    origin: String,
}

impl ShellConnection {
    /// Checks the command; starts nothing yet.
    pub fn new(shell: RemoteShell, spec: &SshSpec, options: &OpenOptions) -> ShellConnection {
        ShellConnection {
            origin: format!(
                "{}:{}",
                host_label(spec),
                String::from_utf8_lossy(&spec.path)
            ),
            shell,
            spec: spec.clone(),
            options: options.clone(),
        }
    }

    fn sftp(&self, may_create: bool) -> Result<Retrying<SftpOrigin>> {
        let sftp = start_sftp(&self.shell, &self.spec, &self.options)?;
        let origin = SftpOrigin::new(
            Arc::new(sftp),
            &host_label(&self.spec),
            &self.spec.path,
            may_create,
        )?;
        Ok(Retrying::new(origin, Policy::READS))
    }
}

impl AgentConnection for ShellConnection {
    fn origin(&self) -> &str {
        &self.origin
    }

    fn start_agent(&self, command: &str) -> Result<AgentProcess> {
        let host = host_label(&self.spec);
        let (process, stdin, stdout) = Process::spawn(
            self.shell
                .command(&self.spec, &self.options, false, command),
            &host,
        )?;
        let process = Arc::new(process);
        Ok(AgentProcess {
            input: Box::new(ShellReader::start(
                stdout,
                Arc::clone(&process),
                self.options.io_timeout,
            )),
            output: Box::new(ShellWriter {
                stdin,
                _process: Arc::clone(&process),
            }),
            status: Box::new(ShellStatus(process)),
        })
    }

    fn open_fallback(&self) -> Result<Box<dyn Origin>> {
        Ok(Box::new(self.sftp(false)?))
    }

    fn open_fallback_writable(&self) -> Result<Box<dyn WritableOrigin>> {
        Ok(Box::new(self.sftp(true)?))
    }

    /// Over `COMMAND -s host sftp`: the file keeps that process until it is dropped.
    fn create_file(&self, path: &[u8], mode: u32) -> Result<Box<dyn Write + Send>> {
        let sftp = start_sftp(&self.shell, &self.spec, &self.options)?;
        super::link::create_file(&sftp, &self.origin, path, mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(user: Option<&str>, port: Option<u16>) -> SshSpec {
        SshSpec {
            user: user.map(str::to_owned),
            host: "nas".into(),
            port,
            path: b"music".to_vec(),
        }
    }

    fn words(command: &Command) -> Vec<String> {
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn commands_are_split_like_a_shell_and_never_through_one() {
        let shell = RemoteShell::parse(r#"my-ssh -i "/keys/my key" -x"#).expect("parse");
        let command = shell.command(
            &spec(Some("ann"), Some(2222)),
            &OpenOptions::default(),
            false,
            "musicfs serve --stdio",
        );
        assert_eq!(
            words(&command),
            [
                "my-ssh",
                "-i",
                "/keys/my key",
                "-x",
                "-p",
                "2222",
                "-l",
                "ann",
                "nas",
                "musicfs serve --stdio"
            ]
        );
        let sftp = shell.command(&spec(None, None), &OpenOptions::default(), true, "sftp");
        assert_eq!(
            words(&sftp),
            ["my-ssh", "-i", "/keys/my key", "-x", "-s", "nas", "sftp"]
        );
        assert!(RemoteShell::parse("").is_err());
        assert!(RemoteShell::parse("  ").is_err());
        assert!(RemoteShell::parse("ssh 'unbalanced").is_err());
    }

    #[test]
    fn openssh_gets_timeouts_and_batch_mode_off_a_terminal() {
        let shell = RemoteShell::parse("/usr/bin/ssh -F cfg").expect("parse");
        let options = OpenOptions {
            connect_timeout: Duration::from_secs(7),
            io_timeout: Duration::from_secs(20),
            accept_new_host_key: true,
            ..OpenOptions::default()
        };
        let all = words(&shell.command(&spec(None, None), &options, false, "true")).join(" ");
        assert!(all.starts_with("/usr/bin/ssh -F cfg "), "{all}");
        assert!(all.contains("-o ConnectTimeout=7"), "{all}");
        assert!(all.contains("-o ServerAliveInterval=5"), "{all}");
        assert!(all.contains("-o StrictHostKeyChecking=accept-new"), "{all}");
        assert!(all.ends_with(" nas true"), "{all}");
        assert_eq!(
            all.contains("BatchMode=yes"),
            !io::stdin().is_terminal(),
            "{all}"
        );
    }
}
