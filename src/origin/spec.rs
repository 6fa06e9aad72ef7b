//! What an origin argument names, read through the registry of transports
//! ([`super::registry`]) the way rsync and scp users expect:
//!
//! - `scheme://…` is read by the transport that registered the scheme (`ssh://`, `sftp://`,
//!   `file://` in this build); another scheme is refused at once, naming the known ones.
//! - `[user@]host:path` is an SSH origin when nothing before the first `:` is a `/`; an IPv6
//!   host is written in brackets (`[::1]:music`). An empty path is the remote home directory.
//! - Anything else is a local path; a local path with a `:` in its first component is written
//!   `./name:with:colons` or absolute.

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;

use super::agent_link::AgentLink;
use super::registry::{self, Location, OpenOptions};
use super::{Filtered, Origin, Policy, Retrying, WritableOrigin};
use crate::error::Result;

/// An origin argument, read by the transport that claims it; not opened yet.
pub struct OriginSpec {
    location: Box<dyn Location>,
}

impl fmt::Debug for OriginSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.location.fmt(f)
    }
}

impl OriginSpec {
    /// Reads an origin argument. Errors: [`crate::Error::InvalidInput`] naming the argument,
    /// for a scheme no transport of this build registered and for a malformed one.
    pub fn parse(arg: &OsStr) -> Result<OriginSpec> {
        Ok(OriginSpec {
            location: registry::parse(arg)?,
        })
    }

    /// The local directory `path`, taken as it is (never read as a URL or `host:path`): for
    /// paths that come from elsewhere than a command line, such as a remote client.
    pub fn directory(path: &Path) -> OriginSpec {
        OriginSpec {
            location: Box::new(super::local::LocalLocation {
                path: path.to_path_buf(),
            }),
        }
    }

    /// The name of the transport that read the argument.
    pub fn transport(&self) -> &'static str {
        self.location.transport()
    }

    /// The local directory the argument names, when it names one.
    pub fn local_dir(&self) -> Option<&Path> {
        self.location.local_dir()
    }

    /// The name the repository records this origin by, when it can be told without opening
    /// it: a local directory's canonical path (its absolute path when it does not exist), as
    /// [`Origin::url`] names it. `None`: open the origin and ask [`Origin::url`]. Reads the
    /// file system; never connects.
    pub fn recorded_url(&self) -> Option<String> {
        let path = self.local_dir()?;
        let resolved = std::fs::canonicalize(path).or_else(|_| std::path::absolute(path));
        resolved.ok().map(|p| p.to_string_lossy().into_owned())
    }

    /// The link over which a sync may start the remote agent, when the transport has one
    /// (see [`Location::agent`]).
    pub fn agent(&self) -> Option<&dyn AgentLink> {
        self.location.agent()
    }

    /// The SSH host and path, for an SSH origin.
    #[cfg(test)]
    fn ssh(&self) -> Option<&super::SshSpec> {
        self.location
            .as_any()
            .downcast_ref::<super::ssh::transport::SshLocation>()
            .map(|l| &l.spec)
    }

    /// Opens the origin for reading (see [`Location::open`]), its reads retried under
    /// [`Policy::READS`] whatever the transport, its walk filtered by
    /// [`OpenOptions::filter`].
    pub fn open(&self, options: &OpenOptions) -> Result<Box<dyn Origin>> {
        let origin = Retrying::new(self.location.open(options)?, Policy::READS);
        Ok(match options.filter.is_empty() {
            true => Box::new(origin),
            false => Box::new(Filtered::new(origin, options.filter.clone())),
        })
    }

    /// Opens the origin as a sync's destination (see [`Location::open_writable`]), its reads
    /// retried under [`Policy::READS`], its walk filtered by [`OpenOptions::filter`].
    pub fn open_writable(&self, options: &OpenOptions) -> Result<Box<dyn WritableOrigin>> {
        let origin = Retrying::new(self.location.open_writable(options)?, Policy::READS);
        Ok(match options.filter.is_empty() {
            true => Box::new(origin),
            false => Box::new(Filtered::new(origin, options.filter.clone())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::SshSpec;
    use std::path::PathBuf;

    fn ssh(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> SshSpec {
        SshSpec {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            path: path.as_bytes().to_vec(),
        }
    }

    fn parse(s: &str) -> OriginSpec {
        OriginSpec::parse(OsStr::new(s)).unwrap()
    }

    /// The SSH reading of `s`, which must be one.
    fn ssh_of(s: &str) -> SshSpec {
        let spec = parse(s);
        assert_eq!(spec.transport(), "ssh", "{s}");
        spec.ssh().cloned().unwrap()
    }

    #[test]
    fn rsync_forms() {
        assert_eq!(ssh_of("nas:/music"), ssh(None, "nas", None, "/music"));
        assert_eq!(
            ssh_of("me@nas:music"),
            ssh(Some("me"), "nas", None, "music")
        );
        assert_eq!(ssh_of("nas:"), ssh(None, "nas", None, ""));
        assert_eq!(ssh_of("[::1]:m"), ssh(None, "::1", None, "m"));
        assert_eq!(
            ssh_of("me@[fe80::1]:/m"),
            ssh(Some("me"), "fe80::1", None, "/m")
        );
        assert!(!parse("nas:/music").agent().unwrap().fallback_only());
    }

    #[test]
    fn url_form() {
        assert_eq!(
            ssh_of("ssh://me@nas:2222/srv/music"),
            ssh(Some("me"), "nas", Some(2222), "/srv/music")
        );
        assert_eq!(ssh_of("ssh://nas/~/music"), ssh(None, "nas", None, "music"));
        assert_eq!(ssh_of("ssh://[::1]:22/m"), ssh(None, "::1", Some(22), "/m"));
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
    fn sftp_urls_are_ssh_origins_read_over_sftp() {
        assert_eq!(
            ssh_of("sftp://me@nas:2222/srv/music"),
            ssh(Some("me"), "nas", Some(2222), "/srv/music")
        );
        assert_eq!(ssh_of("SFTP://nas/~/m"), ssh(None, "nas", None, "m"));
        assert!(parse("sftp://nas/m").agent().unwrap().fallback_only());
        assert!(!parse("ssh://nas/m").agent().unwrap().fallback_only());
        // The URL an SFTP origin is recorded under reads back as that origin.
        assert_eq!(
            ssh_of("sftp://root@127.0.0.1:2222/srv/music"),
            ssh(Some("root"), "127.0.0.1", Some(2222), "/srv/music")
        );
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
            "./s3://bucket/m",
            "/abs/foo://x",
        ] {
            let spec = parse(local);
            assert_eq!(spec.transport(), "local", "{local}");
            assert_eq!(spec.local_dir(), Some(Path::new(local)), "{local}");
            assert!(spec.agent().is_none() && spec.ssh().is_none());
        }
    }

    #[test]
    fn file_urls_are_local_paths() {
        assert_eq!(
            parse("file:///srv/music").local_dir(),
            Some(Path::new("/srv/music"))
        );
        assert_eq!(
            parse("file://localhost/m").local_dir(),
            Some(Path::new("/m"))
        );
        assert_eq!(
            parse("file:///My%20Music/%C3%A9t%C3%A9%2x%").local_dir(),
            Some(Path::new("/My Music/été%2x%"))
        );
        for bad in ["file://nas/m", "file://"] {
            assert!(OriginSpec::parse(OsStr::new(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            OriginSpec::directory(Path::new("nas:m")).local_dir(),
            Some(PathBuf::from("nas:m").as_path())
        );
    }

    #[test]
    fn unknown_schemes_are_refused_naming_the_scheme() {
        for (arg, scheme) in [
            ("webdav://bucket/music", "webdav://"),
            ("afp://me@server/share/m", "afp://"),
            ("foo://x/y", "foo://"),
            ("HTTP://x", "http://"),
        ] {
            let e = OriginSpec::parse(OsStr::new(arg)).unwrap_err();
            let message = e.to_string();
            assert!(
                matches!(e, crate::Error::InvalidInput(_)),
                "{arg}: {message}"
            );
            assert!(message.contains(scheme), "{arg}: {message}");
            assert!(
                message.contains("ssh://") && message.contains("sftp://"),
                "{message}"
            );
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn hostile_hosts_are_refused() {
        for bad in ["-oProxyCommand=x:m", "a b:m", "@:m"] {
            assert!(OriginSpec::parse(OsStr::new(bad)).is_err(), "{bad}");
        }
    }
}
