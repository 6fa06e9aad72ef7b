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
use tokio::io::{AsyncRead, AsyncWrite};

use super::auth;
use super::config::{self, AddressFamily, AgentChoice, Proxy, Target};
use super::exec::ExecChannel;
use super::hostkey::HostKeyPolicy;
use super::proxy;
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
    /// Most of the session's bytes will be bulk data (a cold pull): offer the cipher that
    /// costs least per byte first (`ciphers::default_order`).
    pub bulk: bool,
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
            bulk: false,
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
    /// Resolves `spec` through `<home>/.ssh/config`, connects (directly, through the
    /// `ProxyJump` hosts, each checked and authenticated in turn, or over the `ProxyCommand`),
    /// checks the host key against the `known_hosts` files and authenticates (ssh-agent keys,
    /// then key files). Jump hosts and the proxy command live as long as the session and
    /// what was opened from it, and end with them. `ConnectTimeout` bounds the whole, chain
    /// included.
    ///
    /// Errors: [`Error::Unreachable`] when the host (or a jump host) cannot be reached in time,
    /// [`Error::HostKey`] for an unknown or changed host key, [`Error::InvalidInput`] when
    /// authentication fails, the configuration cannot be read, or it uses a keyword the
    /// built-in client refuses (named with its file and line; see `docs/ssh-config.md`).
    pub fn connect(spec: &SshSpec, options: &SshOptions) -> Result<SshSession> {
        // Everything the chain of hosts needs is checked before anything is connected.
        if let Some(refusal) = config::unsupported(spec, &options.home)? {
            return Err(refusal.into());
        }
        let target = config::resolve(spec, &options.home)?;
        let limit = target.connect_timeout.unwrap_or(options.connect_timeout);
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
        // The timer is created inside the runtime, where it must be. The socket is guarded by
        // the session's tasks: a connection given up (a timeout, an error) ends with them.
        let connecting = async {
            tokio::time::timeout(limit, establish(&target, options, &label, &shared.tasks, 0)).await
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

/// A byte stream an SSH session can run over: a TCP socket, a `ProxyCommand`'s pipes, or a
/// channel of a jump host's session.
trait Carrier: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Carrier for T {}

/// Keeps `value` (a jump host's session, a `ProxyCommand`) alive as long as `tasks`: it is
/// dropped when the group is.
fn keep<T: Send + 'static>(tasks: &TaskGroup, value: T) -> Result<()> {
    tasks
        .start(async move {
            let _kept = value;
            std::future::pending::<()>().await
        })
        .map(drop)
        .map_err(|e| Error::InvalidInput(e.to_string()))
}

/// The stream to `target`: TCP, a `ProxyCommand`, or a `direct-tcpip` channel through its
/// jump hosts (each connected, checked and authenticated as a target of its own).
async fn carrier(
    target: &Target,
    options: &SshOptions,
    label: &str,
    tasks: &TaskGroup,
    hops: usize,
) -> Result<Box<dyn Carrier>> {
    let unreachable = |message: String| Error::Unreachable {
        origin: label.to_owned(),
        message,
    };
    match &target.proxy {
        Proxy::Direct => {
            let addresses = tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|e| unreachable(format!("cannot resolve {}: {e}", target.host)))?;
            let mut last = None;
            for address in addresses {
                let wanted = match target.address_family {
                    AddressFamily::Any => true,
                    AddressFamily::Inet => address.is_ipv4(),
                    AddressFamily::Inet6 => address.is_ipv6(),
                };
                if !wanted {
                    continue;
                }
                match tokio::net::TcpStream::connect(address).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        return Ok(Box::new(tasks.guard(stream)));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(unreachable(match last {
                Some(e) => format!("cannot connect: {e}"),
                None => format!("{} has no address of the wanted family", target.host),
            }))
        }
        Proxy::Command(command) => {
            let (stream, child) = proxy::spawn(command).map_err(|e| {
                unreachable(format!("cannot run the ProxyCommand {command:?}: {e}"))
            })?;
            tracing::debug!(session = %label, command, "ProxyCommand started");
            keep(tasks, child)?;
            Ok(Box::new(tasks.guard(stream)))
        }
        Proxy::Jump(chain) => {
            let Some((last, before)) = chain.split_last() else {
                return Err(unreachable("ProxyJump names no host".into()));
            };
            if hops + chain.len() > config::MAX_HOPS {
                return Err(Error::InvalidInput(format!(
                    "{label}: more than {} jump hosts (a ProxyJump loop?)",
                    config::MAX_HOPS
                )));
            }
            let mut jump = config::resolve(last, &options.home)?;
            // The hops before the last reach it; the first one is reached as it is configured.
            if !before.is_empty() {
                jump.proxy = Proxy::Jump(before.to_vec());
            }
            let jump_label = format!("{}@{}:{}", jump.user, jump.host, jump.port);
            let handle = Box::pin(establish(&jump, options, &jump_label, tasks, hops + 1)).await?;
            let channel = handle
                .channel_open_direct_tcpip(
                    target.host.as_str(),
                    u32::from(target.port),
                    "127.0.0.1",
                    0,
                )
                .await
                .map_err(|e| {
                    unreachable(format!(
                        "the jump host {jump_label} could not connect to {}:{}: {e}",
                        target.host, target.port
                    ))
                })?;
            tracing::debug!(session = %label, jump = %jump_label, "through jump host");
            keep(tasks, handle)?;
            Ok(Box::new(channel.into_stream()))
        }
    }
}

/// Connection, handshake with host key check, authentication.
async fn establish(
    target: &Target,
    options: &SshOptions,
    label: &str,
    tasks: &TaskGroup,
    hops: usize,
) -> Result<Handle<Client>> {
    let unreachable = |message: String| Error::Unreachable {
        origin: label.to_owned(),
        message,
    };
    let (host, port) = match &target.host_key_alias {
        Some(alias) => (alias.clone(), 22),
        None => (target.host.clone(), target.port),
    };
    let policy = Arc::new(HostKeyPolicy {
        known_hosts: target
            .known_hosts
            .iter()
            .chain(&target.global_known_hosts)
            .cloned()
            .collect(),
        learn_into: target.known_hosts.first().cloned(),
        host,
        port,
        accept_new: options.accept_new_host_key || target.accept_new == Some(true),
    });
    // Keepalives end a dead connection after about one I/O timeout, waking every waiter,
    // unless the configuration sets its own (ServerAliveInterval 0: none).
    let (keepalive_interval, keepalive_max) = match target.server_alive_interval {
        Some(interval) if interval.is_zero() => (None, 0),
        Some(interval) => (Some(interval), target.server_alive_count_max.unwrap_or(3)),
        None => (
            Some((options.io_timeout / 4).max(Duration::from_secs(1))),
            target.server_alive_count_max.unwrap_or(4),
        ),
    };
    let config = Arc::new(Config {
        preferred: Preferred {
            key: policy.preferred_algorithms(&Preferred::DEFAULT.key),
            cipher: std::borrow::Cow::Owned(super::ciphers::preference(
                target.ciphers.as_deref(),
                options.bulk,
            )),
            ..Preferred::DEFAULT
        },
        keepalive_interval,
        keepalive_max,
        nodelay: true,
        channel_buffer_size: 32,
        ..Config::default()
    });
    let stream = carrier(target, options, label, tasks, hops).await?;
    let client = Client {
        policy: Arc::clone(&policy),
    };
    let mut handle = russh::client::connect_stream(config, stream, client)
        .await
        .map_err(|e| match e {
            ClientError::HostKey(e) => e,
            ClientError::Ssh(e) => unreachable(match &target.proxy {
                Proxy::Command(command) => {
                    format!("SSH handshake over the ProxyCommand {command:?} failed: {e}")
                }
                _ => format!("SSH handshake failed: {e}"),
            }),
        })?;
    let agent = match &target.agent {
        AgentChoice::Default => options.agent_socket.clone(),
        AgentChoice::Disabled => None,
        AgentChoice::Socket(path) => Some(path.clone()),
    };
    auth::authenticate(
        &mut handle,
        &target.user,
        agent.as_deref(),
        &target.identity_files,
        target.identities_only,
    )
    .await
    .map_err(|message| Error::InvalidInput(format!("{label}: {message}")))?;
    Ok(handle)
}
