//! The NFSv3 connections of one server: finding the MOUNT port, mounting the export, a pool
//! of NFS connections shared by the threads of a scan or a sync, and the one place where a
//! remote procedure call is made (with its timeout) and where its failure becomes an
//! [`io::Error`] of a kind [`crate::error::io_kind`] classifies.
//!
//! Every call blocks the calling thread on the process's runtime (`origin::runtime`). A
//! connection that failed at the transport level (a reset, a timeout, a reply that could not
//! be read) is dropped; the next call opens a new one, so a restarted server is reached again
//! without any retry here.
//!
//! Never does: retry a call, or put a credential anywhere but in the RPC header (AUTH_SYS
//! carries only the numeric uid and gids).

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use nfs3_client::nfs3_types::mount::dirpath;
use nfs3_client::nfs3_types::nfs3::{nfs_fh3, nfsstat3};
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::TokioIo;
use nfs3_client::{MountClient, MountError, Nfs3Client, PortmapError, PortmapperClient, RpcError};
use tokio::net::{TcpSocket, TcpStream};

use crate::origin::runtime;

/// One NFS connection.
pub(crate) type Client = Nfs3Client<TokioIo<TcpStream>>;

/// A call made on one connection: borrows the connection for the length of the call.
pub(crate) type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, RpcError>> + Send + 'a>>;

/// The portmapper's port (rpcbind), where the MOUNT service's port is asked when the URL
/// does not give it.
const PORTMAPPER_PORT: u16 = 111;

/// Idle connections kept for reuse; more may be open at once while several threads call.
const IDLE_MAX: usize = 8;

/// What [`Server::mount`] mounted.
pub(crate) struct Mounted {
    /// The exported directory mounted.
    pub dir: Vec<u8>,
    /// Its handle.
    pub root: nfs_fh3,
    /// The rest of the path asked for, below it (relative; empty for the directory itself).
    pub rest: Vec<u8>,
}

/// Where a server is and how to talk to it.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    /// Host name or address, as the URL gives it (an IPv6 address without brackets).
    pub host: String,
    /// The NFS service's port.
    pub nfs_port: u16,
    /// The MOUNT service's port; `None`: ask the portmapper on port 111.
    pub mount_port: Option<u16>,
    /// Limit for connecting.
    pub connect_timeout: Duration,
    /// Limit for one call's answer.
    pub io_timeout: Duration,
}

/// The connections to one server's NFS service, and its credential.
pub(crate) struct Server {
    endpoint: Endpoint,
    /// The server's address, resolved once.
    addr: IpAddr,
    /// AUTH_SYS with this process's effective uid and gid.
    auth: opaque_auth<'static>,
    idle: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// An I/O error of a kind that is retried, with a message.
pub(crate) fn transient(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, message.into())
}

/// A reply that breaks the protocol (or our limits): permanent.
pub(crate) fn invalid_data(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// An RPC failure as an I/O error: transport failures keep their kind (a reset or refused
/// connection is transient), a server out of resources (`SYSTEM_ERR`) is transient, the
/// rest (a refused credential, a program the server does not offer, an unreadable reply) is
/// permanent.
pub(crate) fn rpc_error(what: &str, e: RpcError) -> io::Error {
    match e {
        RpcError::Io(e) => io::Error::new(e.kind(), format!("{what}: {e}")),
        RpcError::Auth(stat) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{what}: the server refused the credential ({stat})"),
        ),
        RpcError::SystemErr => transient(format!("{what}: the server reported a system error")),
        RpcError::ProgUnavail | RpcError::ProgMismatch { .. } | RpcError::ProcUnavail => {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{what}: the server does not offer it ({e})"),
            )
        }
        other => invalid_data(format!("{what}: {other}")),
    }
}

/// An NFS status other than `NFS3_OK` as an I/O error with the matching `errno`, so that
/// [`crate::error::io_kind`] classifies it: `NFS3ERR_STALE` is `ESTALE` (transient),
/// `NFS3ERR_JUKEBOX` (the server is busy fetching the file) `EAGAIN` (transient),
/// `NFS3ERR_NOENT` `ENOENT`.
pub(crate) fn status_error(status: nfsstat3) -> io::Error {
    let errno = match status {
        nfsstat3::NFS3ERR_PERM => libc::EPERM,
        nfsstat3::NFS3ERR_NOENT => libc::ENOENT,
        nfsstat3::NFS3ERR_NXIO => libc::ENXIO,
        nfsstat3::NFS3ERR_ACCES => libc::EACCES,
        nfsstat3::NFS3ERR_EXIST => libc::EEXIST,
        nfsstat3::NFS3ERR_XDEV => libc::EXDEV,
        nfsstat3::NFS3ERR_NODEV => libc::ENODEV,
        nfsstat3::NFS3ERR_NOTDIR => libc::ENOTDIR,
        nfsstat3::NFS3ERR_ISDIR => libc::EISDIR,
        nfsstat3::NFS3ERR_INVAL => libc::EINVAL,
        nfsstat3::NFS3ERR_FBIG => libc::EFBIG,
        nfsstat3::NFS3ERR_NOSPC => libc::ENOSPC,
        nfsstat3::NFS3ERR_ROFS => libc::EROFS,
        nfsstat3::NFS3ERR_MLINK => libc::EMLINK,
        nfsstat3::NFS3ERR_NAMETOOLONG => libc::ENAMETOOLONG,
        nfsstat3::NFS3ERR_NOTEMPTY => libc::ENOTEMPTY,
        nfsstat3::NFS3ERR_DQUOT => libc::EDQUOT,
        nfsstat3::NFS3ERR_STALE | nfsstat3::NFS3ERR_BADHANDLE => libc::ESTALE,
        nfsstat3::NFS3ERR_REMOTE => libc::EREMOTE,
        nfsstat3::NFS3ERR_NOTSUPP => libc::EOPNOTSUPP,
        nfsstat3::NFS3ERR_JUKEBOX => libc::EAGAIN,
        nfsstat3::NFS3ERR_IO
        | nfsstat3::NFS3ERR_SERVERFAULT
        | nfsstat3::NFS3ERR_NOT_SYNC
        | nfsstat3::NFS3ERR_BAD_COOKIE
        | nfsstat3::NFS3ERR_TOOSMALL
        | nfsstat3::NFS3ERR_BADTYPE
        | nfsstat3::NFS3_OK => libc::EIO,
    };
    io::Error::from_raw_os_error(errno)
}

/// Whether an error says a file handle is stale (the object it named is gone, or the server
/// no longer knows the handle).
pub(crate) fn is_stale(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ESTALE)
}

/// This process's AUTH_SYS credential: effective uid, gid and supplementary groups (at most
/// 16, as the protocol allows), and the host name.
fn credential() -> opaque_auth<'static> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let mut gids: Vec<u32> = nix::unistd::getgroups()
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    gids.retain(|&g| g != gid);
    gids.truncate(15);
    gids.insert(0, gid);
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.len() <= 255)
        .unwrap_or_else(|| "musicfs".into());
    opaque_auth::auth_unix(&auth_unix {
        stamp: std::process::id(),
        machinename: Opaque::owned(machine.into_bytes()),
        uid,
        gid,
        gids,
    })
}

/// Connects to `addr` within `limit`: from a reserved port (below 1024) when this process
/// may bind one (servers that check the client's port, as Linux's `secure` exports do, then
/// accept it), else from any port.
async fn connect(addr: SocketAddr, limit: Duration) -> io::Result<TcpStream> {
    let attempt = async {
        if nix::unistd::geteuid().is_root() {
            // A few reserved ports, starting at a random one; taken ones are skipped.
            let start = (std::process::id() as u64 ^ runtime_nonce()) % 400;
            for i in 0..32u64 {
                let port = 600 + ((start + i * 13) % 400) as u16;
                let socket = match addr {
                    SocketAddr::V4(_) => TcpSocket::new_v4()?,
                    SocketAddr::V6(_) => TcpSocket::new_v6()?,
                };
                socket.set_reuseaddr(true)?;
                let local = match addr {
                    SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                    SocketAddr::V6(_) => {
                        SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), port)
                    }
                };
                if socket.bind(local).is_err() {
                    continue;
                }
                match socket.connect(addr).await {
                    Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                    Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => continue,
                    other => return other,
                }
            }
        }
        TcpStream::connect(addr).await
    };
    let stream = tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| transient(format!("no connection to {addr} within {limit:?}")))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Some bits that differ between calls, for spreading reserved source ports.
fn runtime_nonce() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0)
}

/// Runs `future` within `limit`, on the calling thread.
fn within<T>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    runtime::block_on(async {
        tokio::time::timeout(limit, future)
            .await
            .map_err(|_| transient(format!("{what}: no answer within {limit:?}")))?
    })?
}

impl Server {
    /// The server at `endpoint`; resolves its name (no connection yet).
    pub(crate) fn new(endpoint: Endpoint) -> io::Result<Server> {
        let addr = resolve(&endpoint.host, endpoint.nfs_port)?;
        Ok(Server {
            endpoint,
            addr,
            auth: credential(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Mounts `export` through the MOUNT service: the directory mounted, its root handle, and
    /// the rest of `export` below it. When `export` is not itself exported, the longest
    /// exported directory above it is mounted and the rest is to be looked up below it.
    pub(crate) fn mount(&self, export: &[u8]) -> io::Result<Mounted> {
        let endpoint = &self.endpoint;
        let addr = self.addr;
        let auth = self.auth.clone();
        within(
            endpoint.connect_timeout + endpoint.io_timeout * 3,
            "mount",
            async move {
                let mount_port = match endpoint.mount_port {
                    Some(port) => port,
                    None => {
                        let stream = connect(
                            SocketAddr::new(addr, PORTMAPPER_PORT),
                            endpoint.connect_timeout,
                        )
                        .await
                        .map_err(|e| {
                            io::Error::new(
                                e.kind(),
                                format!(
                                    "the portmapper (port {PORTMAPPER_PORT}) did not answer: {e} \
                                     (give the MOUNT port as ?mountport=N)"
                                ),
                            )
                        })?;
                        let mut portmapper = PortmapperClient::new(TokioIo::new(stream));
                        portmapper
                            .getport(
                                nfs3_client::nfs3_types::mount::PROGRAM,
                                nfs3_client::nfs3_types::mount::VERSION,
                                nfs3_client::nfs3_types::portmap::IPPROTO_TCP,
                            )
                            .await
                            .map_err(|e| match e {
                                PortmapError::Rpc(e) => rpc_error("portmapper", e),
                                other => io::Error::new(
                                    io::ErrorKind::Unsupported,
                                    format!("portmapper: no MOUNT v3 service over TCP: {other}"),
                                ),
                            })?
                    }
                };
                let stream =
                    connect(SocketAddr::new(addr, mount_port), endpoint.connect_timeout).await?;
                let mut mount =
                    MountClient::new_with_auth(TokioIo::new(stream), auth, opaque_auth::default());
                let (mounted, rest) = match mount.export().await {
                    Ok(exports) => {
                        let dirs: Vec<Vec<u8>> = exports
                            .into_inner()
                            .into_iter()
                            .map(|e| e.ex_dir.0.to_vec())
                            .collect();
                        split_export(export, &dirs)
                    }
                    // Not listed: mount the whole path.
                    Err(_) => (export.to_vec(), Vec::new()),
                };
                let mounted_ok = mount
                    .mnt(dirpath(Opaque::borrowed(&mounted)))
                    .await
                    .map_err(|e| match e {
                        MountError::Rpc(e) => rpc_error("mount", e),
                        MountError::Denied(stat) => io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            format!(
                                "the server refused to mount {}: {stat}",
                                String::from_utf8_lossy(&mounted)
                            ),
                        ),
                    })?;
                Ok(Mounted {
                    root: nfs_fh3 {
                        data: Opaque::owned(mounted_ok.fhandle.0.to_vec()),
                    },
                    dir: mounted,
                    rest,
                })
            },
        )
    }

    /// A connection from the pool, or a new one.
    fn take(&self) -> io::Result<Client> {
        if let Some(client) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(client);
        }
        let addr = SocketAddr::new(self.addr, self.endpoint.nfs_port);
        let limit = self.endpoint.connect_timeout;
        let stream = runtime::block_on(connect(addr, limit))??;
        Ok(Nfs3Client::new_with_auth(
            TokioIo::new(stream),
            self.auth.clone(),
            opaque_auth::default(),
        ))
    }

    /// Puts a connection back for the next call.
    fn give(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_MAX {
            idle.push(client);
        }
    }

    /// Drops every idle connection (after the server was found restarted).
    pub(crate) fn reset(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Makes one call, named `what` in errors, within the I/O timeout. A connection whose
    /// call failed in a way that leaves it unusable (or timed out) is dropped.
    pub(crate) fn call<T: Send>(
        &self,
        what: &str,
        call: impl for<'a> FnOnce(&'a mut Client) -> Call<'a, T>,
    ) -> io::Result<T> {
        let mut client = self.take()?;
        let limit = self.endpoint.io_timeout;
        let outcome =
            runtime::block_on(async { tokio::time::timeout(limit, call(&mut client)).await })?;
        match outcome {
            Ok(Ok(value)) => {
                self.give(client);
                Ok(value)
            }
            Ok(Err(e)) => {
                if e.is_connection_reusable() {
                    self.give(client);
                }
                Err(rpc_error(what, e))
            }
            Err(_) => Err(transient(format!("{what}: no answer within {limit:?}"))),
        }
    }
}

/// The server's address: an IP address as written, or the first address of a host name.
fn resolve(host: &str, port: u16) -> io::Result<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .map_err(|e| transient(format!("cannot resolve {host}: {e}")))?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| transient(format!("{host} has no address")))
}

/// The export to mount for `path` among the server's exported `dirs`, and the rest of `path`
/// below it (relative, no leading `/`): the longest exported directory that is `path` or a
/// parent of it; none: `path` itself.
pub(crate) fn split_export(path: &[u8], dirs: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    let mut best: Option<&[u8]> = None;
    for dir in dirs {
        let dir = trim_slashes(dir);
        let fits = path == dir
            || dir == b"/"
            || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'));
        if fits && best.is_none_or(|b| dir.len() > b.len()) {
            best = Some(dir);
        }
    }
    match best {
        Some(dir) => {
            let rest = if dir == b"/" {
                &path[1..]
            } else {
                &path[dir.len()..]
            };
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            (dir.to_vec(), rest.to_vec())
        }
        None => (path.to_vec(), Vec::new()),
    }
}

/// `dir` without trailing `/` (but `/` stays `/`).
fn trim_slashes(mut dir: &[u8]) -> &[u8] {
    while dir.len() > 1 && dir.ends_with(b"/") {
        dir = &dir[..dir.len() - 1];
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_export_above_the_path_is_mounted() {
        let dirs = vec![
            b"/srv".to_vec(),
            b"/srv/music/".to_vec(),
            b"/srv/mus".to_vec(),
        ];
        assert_eq!(
            split_export(b"/srv/music/flac/jazz", &dirs),
            (b"/srv/music".to_vec(), b"flac/jazz".to_vec())
        );
        assert_eq!(
            split_export(b"/srv/music", &dirs),
            (b"/srv/music".to_vec(), Vec::new())
        );
        assert_eq!(
            split_export(b"/srv/musical", &dirs),
            (b"/srv".to_vec(), b"musical".to_vec())
        );
        assert_eq!(
            split_export(b"/other/x", &dirs),
            (b"/other/x".to_vec(), Vec::new())
        );
        assert_eq!(
            split_export(b"/a/b", &[b"/".to_vec()]),
            (b"/".to_vec(), b"a/b".to_vec())
        );
    }

    #[test]
    fn statuses_become_errors_of_their_kind() {
        use crate::error::{io_kind, ErrorKind};
        assert_eq!(
            io_kind(&status_error(nfsstat3::NFS3ERR_STALE)),
            ErrorKind::Transient
        );
        assert!(is_stale(&status_error(nfsstat3::NFS3ERR_BADHANDLE)));
        assert_eq!(
            io_kind(&status_error(nfsstat3::NFS3ERR_JUKEBOX)),
            ErrorKind::Transient
        );
        assert_eq!(
            io_kind(&status_error(nfsstat3::NFS3ERR_NOENT)),
            ErrorKind::NotFound
        );
        assert_eq!(
            io_kind(&status_error(nfsstat3::NFS3ERR_NOSPC)),
            ErrorKind::Permanent
        );
        assert_eq!(
            io_kind(&status_error(nfsstat3::NFS3ERR_NOTSUPP)),
            ErrorKind::Unsupported
        );
        assert_eq!(io_kind(&transient("x")), ErrorKind::Transient);
    }
}
