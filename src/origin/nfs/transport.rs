//! The NFS transport in the registry: `nfs://HOST[:PORT]/PATH[?mountport=N]`, and how it is
//! opened.
//!
//! `HOST` is a name, an IPv4 address or a bracketed IPv6 address; `PORT` the NFS service's
//! (2049 when left out). `PATH` is absolute, its components names (no `.`, `..` or empty
//! component), taken as bytes without percent-decoding; the longest exported directory above
//! it is mounted and the rest looked up below it. The MOUNT service's port comes from the
//! portmapper (port 111) unless `?mountport=N` gives it. Parsing connects to nothing; opening
//! mounts the export, asks FSINFO for transfer sizes and time granularity, and checks the
//! root.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use super::client::{Endpoint, Server};
use super::ops::{fsinfo, Shared};
use super::origin::NfsOrigin;
use crate::error::{Error, Result};
use crate::origin::registry::{Location, OpenOptions, Transport};
use crate::origin::{Capabilities, EntryKind, MtimeResolution, Origin, Policy, WritableOrigin};

/// The NFS transport's entry in the registry.
pub(crate) static TRANSPORT: Transport = Transport {
    name: "nfs",
    schemes: &["nfs"],
    parse: parse_location,
};

/// The NFS service's usual port.
pub const NFS_PORT: u16 = 2049;

/// An NFS origin argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfsLocation {
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    /// The NFS service's port.
    pub port: u16,
    /// The absolute path on the server, without trailing `/` (but `/` itself).
    pub path: Vec<u8>,
    /// The MOUNT service's port, when given; else the portmapper is asked.
    pub mount_port: Option<u16>,
}

impl NfsLocation {
    /// `nfs://host[:port]/path`, the name the repository knows the origin by (the port only
    /// when it is not 2049; the MOUNT port is how to reach it, not which tree it is).
    pub fn url(&self) -> String {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        let port = match self.port {
            NFS_PORT => String::new(),
            p => format!(":{p}"),
        };
        let path = match self.path.as_slice() {
            b"/" => String::new(),
            p => String::from_utf8_lossy(p).into_owned(),
        };
        format!("nfs://{host}{port}{path}")
    }

    /// The error of a connection that failed with `e`: `Unreachable` (retried by the
    /// connection policy) when transient, bad input otherwise.
    fn connect_error(&self, e: io::Error) -> Error {
        match crate::error::io_kind(&e) {
            crate::error::ErrorKind::Transient => Error::Unreachable {
                origin: self.url(),
                message: e.to_string(),
            },
            _ => Error::InvalidInput(format!("{}: {e}", self.url())),
        }
    }

    /// Mounts, asks FSINFO, and checks the root (an existing directory when `readable`).
    fn connect(&self, options: &OpenOptions, readable: bool) -> Result<NfsOrigin> {
        let url = self.url();
        Policy::connections(options.retries)
            .run(|| {
                let endpoint = Endpoint {
                    host: self.host.clone(),
                    nfs_port: self.port,
                    mount_port: self.mount_port,
                    connect_timeout: options.connect_timeout,
                    io_timeout: options.io_timeout,
                };
                let server = Server::new(endpoint).map_err(|e| self.connect_error(e))?;
                let mounted = server
                    .mount(&self.path)
                    .map_err(|e| self.connect_error(e))?;
                let info = fsinfo(&server, &mounted.root).map_err(|e| self.connect_error(e))?;
                let capabilities = Capabilities {
                    atomic_replace: true,
                    durable_commit: true,
                    symlinks: info.symlinks,
                    directories: true,
                    stable_identity: true,
                    content_keys: false,
                    mtime_resolution: resolution(info.time_delta_ns),
                };
                let shared = Arc::new(Shared::new(
                    server,
                    mounted.dir,
                    mounted.root,
                    info.rsize,
                    info.wsize,
                ));
                let origin = NfsOrigin::new(shared, mounted.rest, url.clone(), capabilities);
                match origin.stat(b"") {
                    Ok(Some(s)) if s.kind == EntryKind::Dir => Ok(origin),
                    Ok(Some(_)) => Err(Error::InvalidInput(format!("{url}: not a directory"))),
                    Ok(None) if !readable => Ok(origin),
                    Ok(None) => Err(Error::InvalidInput(format!("{url}: no such directory"))),
                    Err(e) if e.is_transient() => Err(Error::Unreachable {
                        origin: url.clone(),
                        message: e.to_string(),
                    }),
                    Err(e) => Err(e),
                }
            })
            .map_err(crate::interrupt::explain)
    }
}

/// The mtime resolution of a server whose time granularity (FSINFO `time_delta`) is
/// `delta_ns`: never finer than a microsecond, since servers that answer 1 ns do not all
/// keep it (nfs-ganesha 4.3 with its VFS backend says 1 ns and keeps µs; a claim too fine
/// would make every later sync see every mtime changed, one too coarse costs nothing).
fn resolution(delta_ns: i64) -> MtimeResolution {
    match delta_ns {
        ..=1_000 => MtimeResolution::Microsecond,
        1_001..=1_000_000_000 => MtimeResolution::Second,
        _ => MtimeResolution::TwoSeconds,
    }
}

impl Location for NfsLocation {
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
    let shown = String::from_utf8_lossy(bytes);
    let bad = |why: &str| Error::InvalidInput(format!("{shown}: {why}"));
    let rest = bytes.get(scheme.len() + "://".len()..).unwrap_or_default();
    let (rest, query) = match rest.iter().position(|&b| b == b'?') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let slash = rest
        .iter()
        .position(|&b| b == b'/')
        .ok_or_else(|| bad("no path (nfs://HOST[:PORT]/EXPORT/PATH)"))?;
    let authority = std::str::from_utf8(&rest[..slash]).map_err(|_| bad("bad host"))?;
    let (host, port) = split_host_port(authority).map_err(|why| bad(&why))?;
    let mut path = rest[slash..].to_vec();
    while path.len() > 1 && path.ends_with(b"/") {
        path.pop();
    }
    if path != b"/" {
        for part in path[1..].split(|&b| b == b'/') {
            if let Some(why) = crate::relpath::bad_name(part) {
                return Err(bad(&format!("bad path: {why}")));
            }
        }
    }
    let mut mount_port = None;
    if let Some(query) = query {
        let query = std::str::from_utf8(query).map_err(|_| bad("bad query"))?;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("mountport", n)) => {
                    mount_port = Some(port_number(n).map_err(|why| bad(&why))?);
                }
                _ => {
                    return Err(bad(&format!(
                        "unknown option {pair:?} (known: mountport=N)"
                    )))
                }
            }
        }
    }
    Ok(Some(Box::new(NfsLocation {
        host,
        port,
        path,
        mount_port,
    })))
}

/// `host[:port]` or `[v6][:port]`.
fn split_host_port(authority: &str) -> std::result::Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| "an unclosed [ in the host".to_string())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| "bad host".to_string())?),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
    {
        return Err(format!("bad host {host:?}"));
    }
    let port = match port {
        Some(p) => port_number(p)?,
        None => NFS_PORT,
    };
    Ok((host.to_string(), port))
}

fn port_number(text: &str) -> std::result::Result<u16, String> {
    match text.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("bad port {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arg: &str) -> Result<NfsLocation> {
        let location = parse_location(OsStr::new(arg), Some("nfs"))?.expect("an nfs location");
        Ok(location
            .as_any()
            .downcast_ref::<NfsLocation>()
            .expect("NfsLocation")
            .clone())
    }

    #[test]
    fn urls_name_a_host_a_port_and_a_path() {
        let plain = parse("nfs://nas/srv/music/").unwrap();
        assert_eq!(
            plain,
            NfsLocation {
                host: "nas".into(),
                port: 2049,
                path: b"/srv/music".to_vec(),
                mount_port: None,
            }
        );
        assert_eq!(plain.url(), "nfs://nas/srv/music");
        let full = parse("nfs://127.0.0.1:20490/export/a b?mountport=20491").unwrap();
        assert_eq!((full.port, full.mount_port), (20490, Some(20491)));
        assert_eq!(full.path, b"/export/a b");
        assert_eq!(full.url(), "nfs://127.0.0.1:20490/export/a b");
        let v6 = parse("nfs://[::1]:2050/x").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 2050));
        assert_eq!(v6.url(), "nfs://[::1]:2050/x");
        assert_eq!(parse("nfs://nas/").unwrap().url(), "nfs://nas");
    }

    #[test]
    fn bad_urls_are_refused_naming_the_argument() {
        for arg in [
            "nfs://",
            "nfs://nas",
            "nfs:///export",
            "nfs://nas:0/x",
            "nfs://nas:99999/x",
            "nfs://nas:port/x",
            "nfs://nas/a/../b",
            "nfs://nas/a//b",
            "nfs://nas/./a",
            "nfs://nas/x?port=3",
            "nfs://nas/x?mountport=abc",
            "nfs://[::1/x",
            "nfs://na s/x",
        ] {
            let message = parse(arg).expect_err(arg).to_string();
            assert!(message.starts_with(arg), "{message}");
        }
        assert!(parse_location(OsStr::new("nas:/x"), None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn resolutions_follow_the_time_delta() {
        assert_eq!(resolution(1), MtimeResolution::Microsecond);
        assert_eq!(resolution(0), MtimeResolution::Microsecond);
        assert_eq!(resolution(1_000), MtimeResolution::Microsecond);
        assert_eq!(resolution(1_000_000_000), MtimeResolution::Second);
        assert_eq!(resolution(2_000_000_000), MtimeResolution::TwoSeconds);
    }
}
