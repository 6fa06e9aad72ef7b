//! The registry of transports: which kinds of origin this build can reach, and how an origin
//! argument is read.
//!
//! Each transport registers one [`Transport`]: its name, the URL schemes it answers
//! (`scheme://…`) and a parse function that turns an argument into a [`Location`], the
//! transport's own reading of it, which can then be opened as an [`Origin`] or a
//! [`WritableOrigin`]. Callers ask the registry ([`crate::origin::OriginSpec::parse`]) and the
//! location; they never name a transport.
//!
//! How an argument is read:
//! 1. `scheme://…`, where the scheme is letters, digits, `+`, `-` and `.` starting with a
//!    letter: the transport that registered the scheme (compared without case) reads it. A
//!    scheme no transport of this build registered is refused at once, naming the schemes it
//!    knows: it is never tried as a host name or a path.
//! 2. Anything else is offered to the transports in the order of [`TRANSPORTS`]; the first
//!    that recognises its form reads it. The local transport, which takes any path, comes
//!    last.
//!
//! Adding a transport: one file under `src/origin/` with a `Location` and a `Transport`, and
//! one line in [`TRANSPORTS`].
//!
//! Never does: connect, or touch the file system, while parsing.

use std::any::Any;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use super::agent_link::AgentLink;
use super::{Origin, WritableOrigin};
use crate::error::{Error, Result};

/// A transport's reader of origin arguments (see [`Transport::parse`]).
pub type ParseFn = fn(arg: &OsStr, scheme: Option<&str>) -> Result<Option<Box<dyn Location>>>;

/// What a transport registers.
pub struct Transport {
    /// The transport's name, for messages (`local`, `ssh`).
    pub name: &'static str,
    /// The URL schemes it reads (`ssh`, `sftp`), lower case.
    pub schemes: &'static [&'static str],
    /// Reads an argument. It is called with every argument whose scheme is one of `schemes`
    /// (`scheme` is then that scheme, lower case), and with every argument that has no
    /// `scheme://` (`scheme` is `None`). `Ok(None)`: not this transport's form (only
    /// allowed without a scheme). Errors are [`Error::InvalidInput`] naming the argument.
    /// It must not connect or touch the file system.
    pub parse: ParseFn,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("name", &self.name)
            .field("schemes", &self.schemes)
            .finish_non_exhaustive()
    }
}

/// Every transport of this build, in the order arguments without a scheme are offered to
/// them. One line per transport.
pub static TRANSPORTS: &[&Transport] = &[
    &super::ssh::transport::TRANSPORT,
    #[cfg(feature = "s3")]
    &super::s3::transport::TRANSPORT,
    #[cfg(feature = "smb")]
    &super::smb::transport::TRANSPORT,
    #[cfg(feature = "nfs")]
    &super::nfs::transport::TRANSPORT,
    &super::local::TRANSPORT,
];

/// Settings for opening an origin. Each transport takes the ones that concern it.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Local directories: don't cross file system boundaries (rsync's `-x`).
    pub one_file_system: bool,
    /// Network transports: trust and remember a host key not known yet (a changed key is
    /// always refused).
    pub accept_new_host_key: bool,
    /// Network transports: limit for connecting.
    pub connect_timeout: Duration,
    /// Network transports: limit for waiting on a silent remote.
    pub io_timeout: Duration,
    /// Network transports: retries of a connection that failed for a transient reason,
    /// with exponential backoff, while the host has not answered once in this run.
    pub retries: u32,
    /// A sync whose host answered at least once: how long it keeps retrying after a
    /// transient failure, counted from the last attempt that reached the host.
    pub retry_for: Duration,
    /// A cap on those retries as well (`--retries` given), `None`: only `retry_for` limits
    /// them.
    pub max_retries: Option<u32>,
    /// Transports that reach a host through a command (SSH): the local command to run
    /// instead of the built-in client (`--rsh`, rsync's `-e`), as the user wrote it, split
    /// with shell-words rules and never run through a shell. `None`: the built-in client.
    pub remote_shell: Option<String>,
    /// Network transports: most of the session's bytes will be bulk data (a pull into an
    /// empty destination), so the transport may choose what costs least per byte over what
    /// costs least per message (SSH: AES-GCM over ChaCha20-Poly1305 where the CPU has AES
    /// instructions, `origin::ssh` `ciphers.rs`).
    pub bulk: bool,
    /// What the origin's walk leaves out (`--exclude`, `--include`, the built-in litter
    /// list): [`crate::origin::OriginSpec`] wraps the origin in a
    /// [`crate::origin::Filtered`]; a remote agent is sent it. Empty: nothing.
    pub filter: crate::filter::Filter,
    /// S3: an access key from a credentials file (`[origin.NAME] credentials`), in place of
    /// the AWS environment's chain. `None`: the environment, profile and shared files.
    pub s3_credentials: Option<crate::origin::s3::S3Credentials>,
    /// SMB: the password (from `MUSICFS_SMB_PASSWORD`), or the account, password and domain
    /// of a credentials file (`MUSICFS_SMB_CREDENTIALS`, `[origin.NAME] credentials`).
    /// `None`: the guest account.
    pub smb_credentials: Option<crate::origin::smb::SmbCredentials>,
}

impl Default for OpenOptions {
    /// Stay on no file system; 15 s to connect, 60 s of silence, 3 retries of a first
    /// connection, 5 minutes of retries once the host answered; the built-in SSH client; no
    /// filter; S3 credentials from the AWS environment; no SMB password.
    fn default() -> Self {
        OpenOptions {
            one_file_system: false,
            accept_new_host_key: false,
            connect_timeout: Duration::from_secs(15),
            io_timeout: Duration::from_secs(60),
            retries: 3,
            retry_for: Duration::from_secs(300),
            max_retries: None,
            remote_shell: None,
            bulk: false,
            filter: crate::filter::Filter::none(),
            s3_credentials: None,
            smb_credentials: None,
        }
    }
}

/// One transport's reading of an origin argument: what to open, not yet opened.
///
/// A location is plain data: making one (a transport's parse function) touches neither the
/// network nor the file system, and every method but the two `open`s is a pure accessor. Each
/// `open` is a new origin (a new connection, where the transport has connections), so both
/// may be called any number of times; neither creates anything at the location.
pub trait Location: fmt::Debug + Send + Sync + Any {
    /// The name of the transport that read it. Cannot fail.
    fn transport(&self) -> &'static str;
    /// The local directory the argument names, when it names one. (`diff` lets an existing
    /// directory win over reading its name as a snapshot id.) Only about local paths as
    /// such; what an opened origin can do is its `capabilities()`.
    fn local_dir(&self) -> Option<&Path> {
        None
    }
    /// The link over which a sync may start the remote agent on the origin's host and open
    /// its fallback (see [`AgentLink`]), for transports that reach a host that can run
    /// commands; `None` (the default) for the others, which a sync opens with
    /// [`Location::open`] and [`Location::open_writable`] and syncs in this process. Never
    /// connects.
    fn agent(&self) -> Option<&dyn AgentLink> {
        None
    }
    /// Opens the origin for reading; its root must be an existing directory. Connecting is
    /// retried (transient failures, [`OpenOptions::retries`] times) before it returns.
    /// Errors: [`Error::InvalidInput`] (kind `Permanent`) when the root is missing or not a
    /// directory, [`Error::Unreachable`] (kind `Transient`) and the other connection errors
    /// when it cannot be reached; never `Locked`. The origin returned states its
    /// capabilities; a transport lacking one still opens.
    fn open(&self, options: &OpenOptions) -> Result<Box<dyn Origin>>;
    /// Opens the origin as a sync's destination: a missing root is fine (the sync creates it
    /// with [`WritableOrigin::create_root`]); nothing is created here. Errors as
    /// [`Location::open`]; a transport that cannot write at all fails with kind
    /// `Unsupported`.
    fn open_writable(&self, options: &OpenOptions) -> Result<Box<dyn WritableOrigin>>;
    /// For the registry's tests and accessors.
    fn as_any(&self) -> &dyn Any;
}

/// The scheme of `scheme://…`, lower case, if the argument has that form.
pub(crate) fn url_scheme(arg: &[u8]) -> Option<String> {
    let end = arg.windows(3).position(|w| w == b"://")?;
    let scheme = &arg[..end];
    let first = *scheme.first()?;
    let valid = first.is_ascii_alphabetic()
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then(|| String::from_utf8_lossy(scheme).to_ascii_lowercase())
}

/// Every URL scheme this build knows, sorted.
pub fn schemes() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = TRANSPORTS
        .iter()
        .flat_map(|t| t.schemes.iter().copied())
        .collect();
    all.sort_unstable();
    all
}

/// Reads an argument through the registry (see the module documentation).
pub(crate) fn parse(arg: &OsStr) -> Result<Box<dyn Location>> {
    let bytes = arg.as_bytes();
    if let Some(scheme) = url_scheme(bytes) {
        let Some(transport) = TRANSPORTS
            .iter()
            .find(|t| t.schemes.contains(&scheme.as_str()))
        else {
            let known: Vec<String> = schemes().iter().map(|s| format!("{s}://")).collect();
            return Err(Error::InvalidInput(format!(
                "{}: no transport for {scheme}:// in this build (it knows {}, host:path and local paths; a local directory with this name is written ./{})",
                arg.to_string_lossy(),
                known.join(", "),
                arg.to_string_lossy()
            )));
        };
        return (transport.parse)(arg, Some(&scheme))?.ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: not a {scheme}:// origin",
                arg.to_string_lossy()
            ))
        });
    }
    for transport in TRANSPORTS {
        if let Some(location) = (transport.parse)(arg, None)? {
            return Ok(location);
        }
    }
    Err(Error::InvalidInput(format!(
        "{}: not an origin this build can read",
        arg.to_string_lossy()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_url_schemes() {
        assert_eq!(url_scheme(b"s3://bucket/m").as_deref(), Some("s3"));
        assert_eq!(url_scheme(b"SSH://h/m").as_deref(), Some("ssh"));
        assert_eq!(url_scheme(b"svn+ssh://h/m").as_deref(), Some("svn+ssh"));
        for none in [
            &b"./s3://b"[..],
            b"/abs://x",
            b"://x",
            b"1x://y",
            b"nas:/music",
            b"a b://c",
            b"music",
        ] {
            assert_eq!(url_scheme(none), None, "{}", String::from_utf8_lossy(none));
        }
    }

    #[test]
    fn every_scheme_has_one_transport() {
        let all = schemes();
        let mut unique = all.clone();
        unique.dedup();
        assert_eq!(all, unique);
        for scheme in all {
            assert_eq!(
                url_scheme(format!("{scheme}://x").as_bytes()).as_deref(),
                Some(scheme)
            );
        }
    }
}
