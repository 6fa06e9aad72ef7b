//! What an origin argument names, read the way rsync and scp read theirs.
//!
//! - `ssh://[user@]host[:port]/path` is an SSH origin.
//! - `[user@]host:path` is an SSH origin when nothing before the first `:` is a `/`; an IPv6
//!   host is written in brackets (`[::1]:music`). An empty path is the remote home directory.
//! - Anything else is a local path; a local path with a `:` in its first component is written
//!   `./name:with:colons` or absolute.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where an origin argument points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginSpec {
    /// A local directory (NFS and SMB mounts included).
    Local(PathBuf),
    /// A directory on a host reached over SSH.
    Ssh(SshSpec),
}

/// An SSH origin as written; `~/.ssh/config` may still change the host, port and user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshSpec {
    /// The user, when given.
    pub user: Option<String>,
    /// The host name, alias or address (IPv6 without brackets).
    pub host: String,
    /// The port, when given (only in the `ssh://` form).
    pub port: Option<u16>,
    /// The remote path (empty: the remote home directory).
    pub path: Vec<u8>,
}

impl OriginSpec {
    /// Reads an origin argument.
    pub fn parse(arg: &OsStr) -> Result<OriginSpec> {
        let bytes = arg.as_bytes();
        let bad =
            |why: &str| Error::InvalidInput(format!("{}: {why}", String::from_utf8_lossy(bytes)));
        if let Some(rest) = bytes.strip_prefix(b"ssh://") {
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
            return Ok(OriginSpec::Ssh(SshSpec {
                user: user_name(user).ok_or_else(|| bad("bad user name"))?,
                host,
                port,
                path,
            }));
        }
        if let Some(colon) = remote_colon(bytes) {
            let (authority, path) = (&bytes[..colon], &bytes[colon + 1..]);
            let (user, host) = split_user(authority);
            let host = host_name(host).ok_or_else(|| bad("bad host name"))?;
            return Ok(OriginSpec::Ssh(SshSpec {
                user: user_name(user).ok_or_else(|| bad("bad user name"))?,
                host,
                port: None,
                path: path.to_vec(),
            }));
        }
        Ok(OriginSpec::Local(PathBuf::from(OsString::from_vec(
            bytes.to_vec(),
        ))))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> OriginSpec {
        OriginSpec::Ssh(SshSpec {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            path: path.as_bytes().to_vec(),
        })
    }

    fn parse(s: &str) -> OriginSpec {
        OriginSpec::parse(OsStr::new(s)).unwrap()
    }

    #[test]
    fn rsync_forms() {
        assert_eq!(parse("nas:/music"), ssh(None, "nas", None, "/music"));
        assert_eq!(parse("me@nas:music"), ssh(Some("me"), "nas", None, "music"));
        assert_eq!(parse("nas:"), ssh(None, "nas", None, ""));
        assert_eq!(parse("[::1]:m"), ssh(None, "::1", None, "m"));
        assert_eq!(
            parse("me@[fe80::1]:/m"),
            ssh(Some("me"), "fe80::1", None, "/m")
        );
    }

    #[test]
    fn url_form() {
        assert_eq!(
            parse("ssh://me@nas:2222/srv/music"),
            ssh(Some("me"), "nas", Some(2222), "/srv/music")
        );
        assert_eq!(parse("ssh://nas/~/music"), ssh(None, "nas", None, "music"));
        assert_eq!(parse("ssh://[::1]:22/m"), ssh(None, "::1", Some(22), "/m"));
        for bad in [
            "ssh://nas:0/m",
            "ssh://nas:x/m",
            "ssh:///m",
            "ssh://-oProxy=x/m",
        ] {
            assert!(OriginSpec::parse(OsStr::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_forms() {
        for local in [
            "/music",
            "./nas:music",
            "music",
            "a/b:c",
            "../x:y",
            ":music",
            "",
        ] {
            assert_eq!(
                parse(local),
                OriginSpec::Local(PathBuf::from(local)),
                "{local}"
            );
        }
    }

    #[test]
    fn hostile_hosts_are_refused() {
        for bad in ["-oProxyCommand=x:m", "a b:m", "@:m"] {
            assert!(OriginSpec::parse(OsStr::new(bad)).is_err(), "{bad}");
        }
    }
}
