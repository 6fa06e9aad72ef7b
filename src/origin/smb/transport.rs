//! The SMB transport in the registry: `smb://[USER@]HOST[:PORT]/SHARE[/PATH]`, and how it is
//! opened.
//!
//! The user may be written `DOMAIN;USER`; without one the session is the guest account. A
//! password is never read from the URL (it would be in argv, shell history and `ps`): a URL
//! with `user:password@` is refused, naming [`PASSWORD_VARIABLE`]. The password comes from
//! [`OpenOptions::smb_credentials`] (the command line fills it from `MUSICFS_SMB_PASSWORD`
//! or a credentials file). Parsing connects to nothing; opening signs in, connects the share
//! and checks the root.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use super::credentials::PASSWORD_VARIABLE;
use super::origin::{Session, SmbOrigin};
use super::{names, smb_io, Refusal};
use crate::error::{Error, Result};
use crate::origin::registry::{Location, OpenOptions, Transport};
use crate::origin::{EntryKind, Origin, Policy, WritableOrigin};

/// The SMB transport's entry in the registry.
pub(crate) static TRANSPORT: Transport = Transport {
    name: "smb",
    schemes: &["smb"],
    parse: parse_location,
};

/// The port SMB listens on when the URL names none.
const DEFAULT_PORT: u16 = 445;

/// An SMB origin argument: a server, a share and a directory in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmbLocation {
    /// The account to sign in as (`None`: the guest account, or the credentials file's).
    pub user: Option<String>,
    /// The domain written before the user as `DOMAIN;USER`.
    pub domain: Option<String>,
    /// The server's name or address (an IPv6 address without its brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// The share.
    pub share: String,
    /// The directory inside the share, `/`-separated, without leading or trailing `/`; empty
    /// for the share's root.
    pub path: String,
}

impl SmbLocation {
    /// `smb://host[:port]/share/path`: the name the repository knows the origin by (the
    /// account is not part of it: the same tree read as another user is the same tree).
    pub fn url(&self) -> String {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        let port = match self.port {
            DEFAULT_PORT => String::new(),
            port => format!(":{port}"),
        };
        let mut url = format!("smb://{host}{port}/{}", self.share);
        if !self.path.is_empty() {
            url.push('/');
            url.push_str(&self.path);
        }
        url
    }

    /// The error of a connection to this location that failed with `e`: `Refused` (never
    /// retried) when the server refused this client for good, `Unreachable` (retried) when
    /// transient, bad input otherwise.
    pub(crate) fn connect_error(&self, e: io::Error) -> Error {
        if let Some(refusal) = Refusal::of(&e) {
            return Error::Refused {
                origin: self.url(),
                message: refusal.to_string(),
            };
        }
        match crate::error::io_kind(&e) {
            crate::error::ErrorKind::Transient => Error::Unreachable {
                origin: self.url(),
                message: e.to_string(),
            },
            _ => Error::InvalidInput(format!("{}: {e}", self.url())),
        }
    }

    /// Signs in and checks the root (a directory; when `must_exist`, there), retrying a
    /// connection that fails for a transient reason.
    fn connect(&self, options: &OpenOptions, must_exist: bool) -> Result<SmbOrigin> {
        Policy::connections(options.retries)
            .run(|| {
                let session = Session::open(self, options).map_err(|e| self.connect_error(e))?;
                let origin = SmbOrigin::new(self.clone(), options.clone(), session)
                    .map_err(|e| self.connect_error(e))?;
                match origin.stat(b"")? {
                    Some(root) if root.kind != EntryKind::Dir => Err(Error::InvalidInput(format!(
                        "{}: not a directory",
                        self.url()
                    ))),
                    None if must_exist => Err(Error::InvalidInput(format!(
                        "{}: no such directory in the share",
                        self.url()
                    ))),
                    _ => Ok(origin),
                }
            })
            .map_err(crate::interrupt::explain)
    }
}

impl Location for SmbLocation {
    fn transport(&self) -> &'static str {
        TRANSPORT.name
    }

    fn open(&self, options: &OpenOptions) -> Result<Box<dyn Origin>> {
        Ok(Box::new(self.connect(options, true)?))
    }

    fn open_writable(&self, options: &OpenOptions) -> Result<Box<dyn WritableOrigin>> {
        Ok(Box::new(self.connect(options, false)?))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn parse_location(arg: &OsStr, scheme: Option<&str>) -> Result<Option<Box<dyn Location>>> {
    let Some(scheme) = scheme else {
        return Ok(None);
    };
    let bytes = arg.as_bytes();
    let shown = String::from_utf8_lossy(bytes).into_owned();
    let bad = |why: String| Error::InvalidInput(format!("{}: {why}", redact(&shown)));
    let rest = bytes.get(scheme.len() + "://".len()..).unwrap_or_default();
    let rest = std::str::from_utf8(rest).map_err(|_| bad("not UTF-8 (SMB names are)".into()))?;
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    let (mut user, mut domain) = (None, None);
    if let Some(userinfo) = userinfo {
        if userinfo.contains(':') {
            return Err(bad(format!(
                "a password in the URL is refused (it would show in the process list and the shell's history); put it in the environment variable {PASSWORD_VARIABLE} or in a credentials file (MUSICFS_SMB_CREDENTIALS, or `credentials` of a named origin)"
            )));
        }
        let (d, u) = match userinfo.split_once(';') {
            Some((d, u)) => (Some(d), u),
            None => (None, userinfo),
        };
        if u.is_empty() {
            return Err(bad("an empty user name before `@`".into()));
        }
        user = Some(u.to_string());
        domain = d.filter(|d| !d.is_empty()).map(str::to_string);
    }
    let (host, port) = split_host_port(hostport).map_err(|why| bad(why.into()))?;
    let tail = tail.trim_end_matches('/');
    let (share, path) = tail.split_once('/').unwrap_or((tail, ""));
    if share.is_empty() {
        return Err(bad(
            "no share: write smb://[USER@]HOST[:PORT]/SHARE[/PATH]".into()
        ));
    }
    if let Some(why) = names::bad_share(share) {
        return Err(bad(format!("bad share name {share:?}: {why}")));
    }
    for component in path.split('/').filter(|_| !path.is_empty()) {
        if let Some(why) = names::unstorable(component.as_bytes()) {
            return Err(bad(format!("bad path {path:?}: {why}")));
        }
    }
    Ok(Some(Box::new(SmbLocation {
        user,
        domain,
        host,
        port,
        share: share.to_string(),
        path: path.to_string(),
    })))
}

/// `HOST[:PORT]` or `[IPV6][:PORT]`.
fn split_host_port(text: &str) -> std::result::Result<(String, u16), &'static str> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an unclosed `[` in the host")?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or("junk after `]` in the host")?,
                ),
            ),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'))
    {
        return Err("a host name is letters, digits, `.`, `-` and `_`");
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err("the port is a number from 1 to 65535"),
        },
    };
    Ok((host.to_string(), port))
}

/// The argument for messages: a `user:password@` part, which is refused, is shown as
/// `user:***@` (so the refusal itself never repeats the password).
fn redact(arg: &str) -> String {
    let Some((scheme, rest)) = arg.split_once("://") else {
        return arg.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        _ => arg.to_string(),
    }
}

/// An [`smb2::Error`] of signing in, as an I/O error (kept here so `origin.rs` reads alone).
pub(crate) fn sign_in_error(e: smb2::Error) -> io::Error {
    smb_io("signing in", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arg: &str) -> Result<SmbLocation> {
        let location = parse_location(OsStr::new(arg), Some("smb"))?.expect("an smb location");
        Ok(location
            .as_any()
            .downcast_ref::<SmbLocation>()
            .expect("SmbLocation")
            .clone())
    }

    #[test]
    fn urls_name_a_server_a_share_and_a_path() {
        let l = parse("smb://alice@nas/music/flac/").unwrap();
        assert_eq!(
            (
                l.user.as_deref(),
                l.host.as_str(),
                l.port,
                l.share.as_str(),
                l.path.as_str()
            ),
            (Some("alice"), "nas", 445, "music", "flac")
        );
        assert_eq!(l.url(), "smb://nas/music/flac");
        let guest = parse("smb://127.0.0.1:4450/share").unwrap();
        assert_eq!((guest.user.as_deref(), guest.port), (None, 4450));
        assert_eq!(guest.url(), "smb://127.0.0.1:4450/share");
        let v6 = parse("smb://WORK;bob@[::1]:1445/s/a b/ü").unwrap();
        assert_eq!(
            (v6.domain.as_deref(), v6.user.as_deref(), v6.host.as_str()),
            (Some("WORK"), Some("bob"), "::1")
        );
        assert_eq!(v6.url(), "smb://[::1]:1445/s/a b/ü");
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_showing_it() {
        let message = parse("smb://alice:hunter2@nas/music")
            .unwrap_err()
            .to_string();
        assert!(message.contains(PASSWORD_VARIABLE), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("alice:***@nas"), "{message}");
    }

    #[test]
    fn bad_urls_are_refused_naming_the_argument() {
        for arg in [
            "smb://",
            "smb://nas",
            "smb://nas/",
            "smb://nas:0/s",
            "smb://nas:x/s",
            "smb://@nas/s",
            "smb://nas/s/../x",
            "smb://nas/s/a:b",
            "smb://nas/s/trailing.",
            "smb://na s/s",
            "smb://nas/sh*re",
        ] {
            let message = parse(arg).expect_err(arg).to_string();
            assert!(message.starts_with(arg), "{message}");
        }
        assert!(parse_location(OsStr::new("nas/x"), None).unwrap().is_none());
    }
}
