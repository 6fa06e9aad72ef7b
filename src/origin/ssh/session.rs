//! One SSH connection: options, connecting (config, host key, authentication), and the tasks
//! it runs on the process's shared runtime (`origin::runtime`), which end with it.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{Config, Handle, Handler};
use russh::keys::PublicKeyOrCertificate;
use russh::Preferred;

use super::auth;
use super::config::{self, Target};
use super::exec::ExecChannel;
use super::hostkey::HostKeyPolicy;
use super::sftp::Sftp;
use crate::error::{Error, Result};
use crate::origin::runtime::{self, TaskGroup};
use crate::origin::SshSpec;

/// How to connect, and where the user's SSH files are.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// Record the key of a host `known_hosts` does not know (OpenSSH's
    /// `StrictHostKeyChecking=accept-new`). A changed key is refused regardless.
    pub accept_new_host_key: bool,
    /// Limit for the TCP connection, the handshake and authentication together.
    pub connect_timeout: Duration,
    /// Limit for waiting on the remote without receiving anything.
    pub io_timeout: Duration,
    /// The home whose `.ssh/{config,known_hosts,id_ed25519,id_ecdsa,id_rsa}` are used.
    pub home: PathBuf,
    /// The ssh-agent socket (`SSH_AUTH_SOCK`), if any.
    pub agent_socket: Option<PathBuf>,
}

impl SshOptions {
    /// Options from the environment: `HOME`, `SSH_AUTH_SOCK`; timeouts of 15 s to connect and
    /// 60 s of silence.
    pub fn from_env() -> SshOptions {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        SshOptions {
            accept_new_host_key: false,
            connect_timeout: Duration::from_secs(15),
            io_timeout: Duration::from_secs(60),
            home: var("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/")),
            agent_socket: var("SSH_AUTH_SOCK").map(PathBuf::from),
        }
    }
}

impl Default for SshOptions {
    fn default() -> SshOptions {
        SshOptions::from_env()
    }
}

/// What the session, its channels and its SFTP handles share: the connection's tasks and the
/// limits. The last of them to go drops it, which ends the connection: its tasks are aborted
/// and its socket fails, so the reader russh runs for it ends and closes it.
pub(crate) struct Shared {
    tasks: TaskGroup,
    /// `user@host:port`.
    pub label: String,
    /// See [`SshOptions::io_timeout`].
    pub io_timeout: Duration,
}

impl Shared {
    /// The tasks and limits of a connection that is not a russh session (the SFTP of
    /// `--rsh`, over a local command's pipes).
    pub(crate) fn detached(label: String, io_timeout: Duration) -> Arc<Shared> {
        Arc::new(Shared {
            tasks: TaskGroup::new(),
            label,
            io_timeout,
        })
    }

    /// Runs `future` to completion on the calling thread (see [`runtime::block_on`]): fails,
    /// instead of panicking, when the caller is itself inside a tokio runtime, and shortly
    /// after a signal asked the process to stop.
    pub fn block_on<F: Future>(&self, future: F) -> io::Result<F::Output> {
        runtime::block_on(future)
    }

    /// Like [`Shared::block_on`], failing with `TimedOut` after the I/O timeout.
    pub fn block_on_timeout<F: Future>(&self, future: F) -> io::Result<F::Output> {
        let limit = self.io_timeout;
        self.block_on(async { tokio::time::timeout(limit, future).await })?
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer from {} for {} s", self.label, limit.as_secs()),
                )
            })
    }

    /// Starts `future` as one of the connection's tasks and returns its handle.
    pub fn start<F>(&self, future: F) -> io::Result<tokio::task::JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.start(future)
    }

    /// Starts `future` as one of the connection's tasks without waiting for it (used by
    /// `Drop`s).
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(future)
    }
}

/// Checks the server's host key during the handshake.
pub(crate) struct Client {
    policy: Arc<HostKeyPolicy>,
}

/// Why the handshake failed: the transport, or our host key policy.
#[derive(Debug)]
pub(crate) enum ClientError {
    Ssh(russh::Error),
    HostKey(Error),
}

impl From<russh::Error> for ClientError {
    fn from(e: russh::Error) -> Self {
        ClientError::Ssh(e)
    }
}

impl Handler for Client {
    type Error = ClientError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, ClientError> {
        match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                self.policy.check(key).map_err(ClientError::HostKey)?;
                Ok(true)
            }
            // Only offered when certificate algorithms are requested, which we never do.
            PublicKeyOrCertificate::Certificate(_) => Err(ClientError::HostKey(Error::HostKey {
                host: self.policy.host_label(),
                message: "the server presented a host certificate, which is not supported".into(),
            })),
        }
    }
}

/// An authenticated SSH connection. Exec channels and SFTP sessions opened from it stay usable
/// after it is dropped; the connection closes when the last of them is gone.
pub struct SshSession {
    shared: Arc<Shared>,
    handle: Handle<Client>,
}

impl fmt::Debug for SshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshSession")
            .field("label", &self.shared.label)
            .finish_non_exhaustive()
    }
}

impl SshSession {
    /// Resolves `spec` through `<home>/.ssh/config`, connects, checks the host key against
    /// `<home>/.ssh/known_hosts` and authenticates (ssh-agent keys, then key files).
    ///
    /// Errors: [`Error::Unreachable`] when the host cannot be reached in time,
    /// [`Error::HostKey`] for an unknown or changed host key, [`Error::InvalidInput`] when
    /// authentication fails or the configuration cannot be read.
    pub fn connect(spec: &SshSpec, options: &SshOptions) -> Result<SshSession> {
        let target = config::resolve(spec, &options.home)?;
        let label = format!("{}@{}:{}", target.user, target.host, target.port);
        let shared = Arc::new(Shared {
            tasks: TaskGroup::new(),
            label: label.clone(),
            io_timeout: options.io_timeout,
        });
        let unreachable = |message: String| Error::Unreachable {
            origin: label.clone(),
            message,
        };
        let limit = options.connect_timeout;
        // The timer is created inside the runtime, where it must be. The socket is guarded by
        // the session's tasks: a connection given up (a timeout, an error) ends with them.
        let connecting = async {
            tokio::time::timeout(
                limit,
                connect_async(&target, options, &label, &shared.tasks),
            )
            .await
        };
        let handle = match shared.block_on(connecting) {
            // Called from inside an async runtime, or no runtime: a bug of the caller, or of
            // the system, not of the network.
            Err(e) => return Err(Error::InvalidInput(format!("{label}: {e}"))),
            Ok(Err(_elapsed)) => {
                return Err(unreachable(format!(
                    "no SSH connection within {:.1} s",
                    limit.as_secs_f64()
                )))
            }
            Ok(Ok(result)) => result?,
        };
        tracing::debug!(session = %label, "connected");
        Ok(SshSession { shared, handle })
    }

    /// `user@host:port`, for messages.
    pub fn label(&self) -> &str {
        &self.shared.label
    }

    fn channel_error(&self, what: &str, e: impl fmt::Display) -> Error {
        Error::Unreachable {
            origin: self.shared.label.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// Runs `command` on an exec channel. Blocks; call it from a plain thread.
    pub fn exec(&self, command: &str) -> Result<ExecChannel> {
        let opening = async {
            let channel = self.handle.channel_open_session().await?;
            channel.exec(true, command).await?;
            Ok::<_, russh::Error>(channel)
        };
        let channel = self
            .shared
            .block_on_timeout(opening)
            .map_err(|e| self.channel_error("cannot run a command", e))?
            .map_err(|e| self.channel_error("cannot run a command", e))?;
        tracing::debug!(session = %self.shared.label, command, "exec");
        Ok(ExecChannel::start(channel, Arc::clone(&self.shared)))
    }

    /// Opens the SFTP subsystem. Blocks; call it from a plain thread.
    pub fn sftp(&self) -> Result<Sftp> {
        let opening = async {
            let channel = self.handle.channel_open_session().await?;
            channel.request_subsystem(true, "sftp").await?;
            Ok::<_, russh::Error>(channel)
        };
        let channel = self
            .shared
            .block_on_timeout(opening)
            .map_err(|e| self.channel_error("cannot open SFTP", e))?
            .map_err(|e| self.channel_error("cannot open SFTP", e))?;
        Sftp::start(channel, Arc::clone(&self.shared))
            .map_err(|e| self.channel_error("cannot start SFTP", e))
    }
}

/// TCP connection, handshake with host key check, authentication.
async fn connect_async(
    target: &Target,
    options: &SshOptions,
    label: &str,
    tasks: &TaskGroup,
) -> Result<Handle<Client>> {
    let unreachable = |message: String| Error::Unreachable {
        origin: label.to_owned(),
        message,
    };
    let policy = Arc::new(HostKeyPolicy {
        known_hosts: options.home.join(".ssh").join("known_hosts"),
        host: target.host.clone(),
        port: target.port,
        accept_new: options.accept_new_host_key,
    });
    // Keepalives end a dead connection after about one I/O timeout, waking every waiter.
    let keepalive = (options.io_timeout / 4).max(Duration::from_secs(1));
    let config = Arc::new(Config {
        preferred: Preferred {
            key: policy.preferred_algorithms(&Preferred::DEFAULT.key),
            ..Preferred::DEFAULT
        },
        keepalive_interval: Some(keepalive),
        keepalive_max: 4,
        nodelay: true,
        channel_buffer_size: 32,
        ..Config::default()
    });
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| unreachable(format!("cannot connect: {e}")))?;
    let client = Client {
        policy: Arc::clone(&policy),
    };
    let mut handle = russh::client::connect_stream(config, tasks.guard(stream), client)
        .await
        .map_err(|e| match e {
            ClientError::HostKey(e) => e,
            ClientError::Ssh(e) => unreachable(format!("SSH handshake failed: {e}")),
        })?;
    auth::authenticate(
        &mut handle,
        &target.user,
        options.agent_socket.as_deref(),
        &target.identity_files,
    )
    .await
    .map_err(|message| Error::InvalidInput(format!("{label}: {message}")))?;
    Ok(handle)
}
