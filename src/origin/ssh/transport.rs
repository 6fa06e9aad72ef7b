//! The SSH transport in the registry: how an SSH origin is written, and how it is opened.
//!
//! - `ssh://[user@]host[:port]/path` and `sftp://[user@]host[:port]/path`: `/path` is
//!   absolute, `/~/path` relative to the remote home directory. `sftp://` also tells a sync
//!   not to look for the remote agent.
//! - `[user@]host:path`, as rsync and scp write it, when nothing before the first `:` is a
//!   `/`; an IPv6 host is written in brackets (`[::1]:music`). An empty path is the remote
//!   home directory.
//!
//! `scan`, `verify` and `diff` read an SSH origin over SFTP: they chunk and hash the files in
//! this process, against this machine's repository, so they need the bytes, which SFTP gives
//! from any OpenSSH server without musicfs there. A sync first tries the remote agent
//! (`crate::agent`, over this transport's [`AgentLink`](crate::origin::AgentLink), in
//! `link.rs`), which needs only what the repository lacks.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use super::rsh::RemoteShell;
use super::{SftpOrigin, SshOptions, SshSession};
use crate::error::{Error, Result};
use crate::origin::agent_link::AgentLink;
use crate::origin::registry::{Location, OpenOptions, Transport};
use crate::origin::{Origin, Policy, WritableOrigin};

/// The SSH transport's entry in the registry.
pub(crate) static TRANSPORT: Transport = Transport {
    name: "ssh",
    schemes: &["sftp", "ssh"],
    parse: parse_location,
};

/// An SSH origin as written; `~/.ssh/config` may still change the host, port and user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshSpec {
    /// The user, when given.
    pub user: Option<String>,
    /// The host name, alias or address (IPv6 without brackets).
    pub host: String,
    /// The port, when given (only in the URL forms).
    pub port: Option<u16>,
    /// The remote path (empty: the remote home directory).
    pub path: Vec<u8>,
}

/// An SSH origin argument: the host and path, and whether it asked for SFTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SshLocation {
    pub spec: SshSpec,
    pub sftp_only: bool,
}

/// The session settings for `options`, with the user's home and ssh-agent from the
/// environment.
pub(crate) fn ssh_options(options: &OpenOptions) -> SshOptions {
    SshOptions {
        accept_new_host_key: options.accept_new_host_key,
        connect_timeout: options.connect_timeout,
        io_timeout: options.io_timeout,
        bulk: options.bulk,
        ..SshOptions::from_env()
    }
}

/// Which client reaches `spec`'s host: `Some` local command (`--rsh`, `MUSICFS_RSH`), or
/// `None` for the built-in client. The one place where the choice is made.
///
/// Errors: [`Error::InvalidInput`] for a command that does not split into words.
pub(crate) fn remote_shell(spec: &SshSpec, options: &OpenOptions) -> Result<Option<RemoteShell>> {
    if let Some(command) = &options.remote_shell {
        return RemoteShell::parse(command).map(Some);
    }
    // musicfs never switches to OpenSSH by itself (docs/decisions.md): a host whose
    // ~/.ssh/config the built-in client cannot honour is refused by name before connecting
    // (`config::resolve`), the refusal naming `--rsh ssh` as the way out.
    let _ = spec;
    Ok(None)
}

/// Connects to `spec`'s host and opens its directory over SFTP, retrying a connection that
/// fails for a transient reason.
fn open_sftp(spec: &SshSpec, options: &OpenOptions, may_create: bool) -> Result<SftpOrigin> {
    if let Some(shell) = remote_shell(spec, options)? {
        return super::rsh::open_sftp(&shell, spec, options, may_create);
    }
    let ssh = ssh_options(options);
    Policy::connections(options.retries)
        .run(|| {
            let session = SshSession::connect(spec, &ssh)?;
            SftpOrigin::over(&session, &spec.path, may_create)
        })
        .map_err(crate::interrupt::explain)
}

impl Location for SshLocation {
    fn transport(&self) -> &'static str {
        TRANSPORT.name
    }

    fn agent(&self) -> Option<&dyn AgentLink> {
        Some(self)
    }

    fn open(&self, options: &OpenOptions) -> Result<Box<dyn Origin>> {
        Ok(Box::new(open_sftp(&self.spec, options, false)?))
    }

    fn open_writable(&self, options: &OpenOptions) -> Result<Box<dyn WritableOrigin>> {
        Ok(Box::new(open_sftp(&self.spec, options, true)?))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl SftpOrigin {
    /// The directory `root` over a new SFTP channel of `session` (see [`SftpOrigin::new`]).
    pub fn over(session: &SshSession, root: &[u8], may_create: bool) -> Result<SftpOrigin> {
        SftpOrigin::new(Arc::new(session.sftp()?), session.label(), root, may_create)
    }
}

fn parse_location(arg: &OsStr, scheme: Option<&str>) -> Result<Option<Box<dyn Location>>> {
    let bytes = arg.as_bytes();
    let bad = |why: &str| Error::InvalidInput(format!("{}: {why}", String::from_utf8_lossy(bytes)));
    let spec = match scheme {
        Some(scheme) => {
            let rest = bytes.get(scheme.len() + "://".len()..).unwrap_or_default();
            let slash = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(slash);
            let (user, host_port) = split_user(authority);
            let (host, port) = split_port(host_port).ok_or_else(|| bad("bad port"))?;
            let host = host_name(host).ok_or_else(|| bad("bad host name"))?;
            // `ssh://host/music` names /music, as in a URL; `ssh://host/~/music` the home's.
            let path = match path.strip_prefix(b"/~/") {
                Some(home) => home.to_vec(),
                None => path.to_vec(),
            };
            SshSpec {
                user: user_name(user).ok_or_else(|| bad("bad user name"))?,
                host,
                port,
                path,
            }
        }
        None => {
            let Some(colon) = remote_colon(bytes) else {
                return Ok(None);
            };
            let (authority, path) = (&bytes[..colon], &bytes[colon + 1..]);
            let (user, host) = split_user(authority);
            let host = host_name(host).ok_or_else(|| bad("bad host name"))?;
            SshSpec {
                user: user_name(user).ok_or_else(|| bad("bad user name"))?,
                host,
                port: None,
                path: path.to_vec(),
            }
        }
    };
    Ok(Some(Box::new(SshLocation {
        spec,
        sftp_only: scheme == Some("sftp"),
    })))
}

/// The `:` that separates host from path in `[user@]host:path`, if the argument has that form.
fn remote_colon(bytes: &[u8]) -> Option<usize> {
    // A bracketed IPv6 host: `[::1]:path` or `user@[::1]:path`.
    let host_start = bytes.iter().position(|&b| b == b'@').map_or(0, |at| at + 1);
    if bytes.get(host_start) == Some(&b'[') {
        let close = host_start + bytes[host_start..].iter().position(|&b| b == b']')?;
        return (bytes.get(close + 1) == Some(&b':')).then_some(close + 1);
    }
    let colon = bytes.iter().position(|&b| b == b':')?;
    (colon > 0 && !bytes[..colon].contains(&b'/')).then_some(colon)
}

fn split_user(authority: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_port(host_port: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let (host, port) = if host_port.starts_with(b"[") {
        let close = host_port.iter().position(|&b| b == b']')?;
        (&host_port[..=close], &host_port[close + 1..])
    } else {
        match host_port.iter().rposition(|&b| b == b':') {
            Some(c) => (&host_port[..c], &host_port[c..]),
            None => (host_port, &[][..]),
        }
    };
    if port.is_empty() {
        return Some((host, None));
    }
    let digits = std::str::from_utf8(port.strip_prefix(b":")?).ok()?;
    Some((host, Some(digits.parse().ok().filter(|&p: &u16| p != 0)?)))
}

/// A host name or address: printable, no spaces, brackets stripped from IPv6.
fn host_name(host: &[u8]) -> Option<String> {
    let host = host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host);
    let host = str_of(host)?;
    let ok = !host.is_empty()
        && !host.starts_with('-')
        && host
            .chars()
            .all(|c| c.is_ascii_graphic() && !"@/[]".contains(c));
    ok.then_some(host)
}

/// `None` when a user is given but is not a usable name; `Some(None)` when none is given.
fn user_name(user: Option<&[u8]>) -> Option<Option<String>> {
    match user {
        None => Some(None),
        Some(u) => str_of(u).filter(|u| !u.starts_with('-')).map(Some),
    }
}

fn str_of(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    (!s.is_empty() && !s.chars().any(|c| c.is_control() || c == ' ')).then(|| s.to_string())
}
