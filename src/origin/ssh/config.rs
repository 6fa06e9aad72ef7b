//! Where an [`SshSpec`] really points: `<home>/.ssh/config` read as OpenSSH reads it, and
//! every keyword that applies to the host either honoured or refused by name.
//!
//! The reader is our own, not `ssh2-config`'s: refusing a keyword must name the file and line
//! it came from, and `Match` must be evaluated as OpenSSH does (criteria in order, `host` on
//! the `HostName` found so far), neither of which the crate provides (`docs/decisions.md`).
//! It follows `readconf.c`: keywords are case-insensitive, `Keyword value` or `Keyword=value`,
//! the first value obtained wins (`IdentityFile` accumulates), `Host` patterns match the host
//! as given, `Include` takes globs relative to `~/.ssh` and, inside a `Host` or `Match` block,
//! applies only when the block does. What each keyword gets is in `keywords.rs`.
//!
//! Never does: ignore a keyword that changes where, as whom or how trusted we connect, run a
//! `Match exec` command, or read more than 16 levels of `Include`.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keywords::{self, Treatment};
use crate::error::{Error, Result};
use crate::origin::SshSpec;
pub(super) use reader::wildcard;
use reader::{expand, expand_tilde, Directive, Read, Reader, Stop};

/// The key files tried when the configuration names none, in OpenSSH's order.
const DEFAULT_IDENTITIES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// How deep `Include` may nest (OpenSSH's `READCONF_MAX_DEPTH`).
const MAX_INCLUDE_DEPTH: u32 = 16;

/// How many jump hosts a connection may go through, counting those of the jump hosts' own
/// `ProxyJump`s; more is taken for a loop in the configuration.
pub(crate) const MAX_HOPS: usize = 8;

/// The way out named by every refusal.
const WAY_OUT: &str = "use --rsh ssh to connect with OpenSSH";

/// A host to connect to, after the configuration has been applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The host as given (OpenSSH's `%n`).
    pub alias: String,
    /// Name or address to connect to (the `HostName`).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Login name.
    pub user: String,
    /// Private key files to try, in order.
    pub identity_files: Vec<PathBuf>,
    /// `IdentitiesOnly yes`: offer only the agent keys whose public half is one of
    /// `identity_files`.
    pub identities_only: bool,
    /// Which ssh-agent to ask.
    pub agent: AgentChoice,
    /// `known_hosts` files to check, the first also to learn into (`UserKnownHostsFile`).
    pub known_hosts: Vec<PathBuf>,
    /// `known_hosts` files only read (`GlobalKnownHostsFile`; none unless configured).
    pub global_known_hosts: Vec<PathBuf>,
    /// `StrictHostKeyChecking`: `Some(true)` learns unknown keys (`accept-new`, `no`),
    /// `Some(false)` refuses them (`yes`, `ask`), `None` leaves it to the caller's option.
    pub accept_new: Option<bool>,
    /// The name the host key is recorded under (`HostKeyAlias`), instead of `[host]:port`.
    pub host_key_alias: Option<String>,
    /// `ConnectTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `ServerAliveInterval` (zero: no keepalives).
    pub server_alive_interval: Option<Duration>,
    /// `ServerAliveCountMax`.
    pub server_alive_count_max: Option<usize>,
    /// `AddressFamily`.
    pub address_family: AddressFamily,
    /// How the connection is carried.
    pub proxy: Proxy,
    /// `Ciphers`, as written (checked: it leaves a cipher to offer); applied to the built-in
    /// client's own order when connecting (`ciphers::preference`).
    pub ciphers: Option<String>,
}

/// Which ssh-agent authentication asks (`IdentityAgent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AgentChoice {
    /// The caller's (`SSH_AUTH_SOCK`).
    Default,
    /// None at all.
    Disabled,
    /// This socket.
    Socket(PathBuf),
}

/// The address families a host name may resolve to (`AddressFamily`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AddressFamily {
    Any,
    Inet,
    Inet6,
}

/// How the connection to a [`Target`] is carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Proxy {
    /// A TCP connection to `host:port`.
    Direct,
    /// Through these jump hosts, the first one reached first (`ProxyJump`).
    Jump(Vec<SshSpec>),
    /// Over the stdin and stdout of this shell command, tokens expanded (`ProxyCommand`).
    Command(String),
}

/// A keyword the built-in client cannot honour for a host, and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The keyword as written.
    pub keyword: String,
    /// The file it is in.
    pub file: PathBuf,
    /// Its line (from 1).
    pub line: usize,
    /// Why it cannot be honoured.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}; {WAY_OUT}",
            self.file.display(),
            self.line,
            self.keyword,
            self.reason
        )
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Error {
        Error::InvalidInput(refusal.to_string())
    }
}

/// Applies `<home>/.ssh/config` to `spec`. The spec's own user and port win over the file's.
///
/// Errors: [`Error::InvalidInput`] naming the keyword, file and line when the host's settings
/// use something the built-in client does not support (see `keywords.rs`) or a value it cannot
/// read, and when no user is known; [`Error::Io`] when a configuration file cannot be read.
pub(crate) fn resolve(spec: &SshSpec, home: &Path) -> Result<Target> {
    Ok(plan(spec, home)??)
}

/// The first thing in `spec`'s settings, or in those of the jump hosts it goes through, that
/// the built-in client cannot honour; `None` when it can honour them all. For choosing
/// another client (OpenSSH) before connecting.
///
/// Errors: as [`resolve`], except that a refusal is returned, not an error.
pub(crate) fn unsupported(spec: &SshSpec, home: &Path) -> Result<Option<Refusal>> {
    let mut pending = vec![spec.clone()];
    let mut seen = 0;
    while let Some(next) = pending.pop() {
        seen += 1;
        if seen > MAX_HOPS + 1 {
            return Err(Error::InvalidInput(format!(
                "{}: more than {MAX_HOPS} jump hosts (a ProxyJump loop?)",
                spec.host
            )));
        }
        match plan(&next, home)? {
            Err(refusal) => return Ok(Some(refusal)),
            Ok(target) => {
                if let Proxy::Jump(hops) = target.proxy {
                    // Only the first hop is reached with its own ProxyJump; the others are
                    // reached through the hops before them.
                    for (index, hop) in hops.into_iter().enumerate() {
                        if index == 0 {
                            pending.push(hop);
                        } else {
                            let refused = plan(&hop, home)?.err();
                            if refused.is_some() {
                                return Ok(refused);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(None)
}

/// Reads the configuration for `spec`: the target, or the first keyword refused.
fn plan(spec: &SshSpec, home: &Path) -> Result<std::result::Result<Target, Refusal>> {
    let mut reader = Reader {
        home,
        spec,
        local_user: current_user(),
        found: Vec::new(),
    };
    let path = home.join(".ssh").join("config");
    match reader.read_file(&path, true, 0) {
        Ok(()) => {}
        Err(Stop::Failed(Error::Io { source, .. })) if source.kind() == io::ErrorKind::NotFound => {
        }
        Err(Stop::Failed(e)) => return Err(e),
        Err(Stop::Refused(refusal)) => return Ok(Err(refusal)),
    }
    match apply(&reader, spec, home) {
        Ok(target) => Ok(Ok(target)),
        Err(Stop::Refused(refusal)) => Ok(Err(refusal)),
        Err(Stop::Failed(e)) => Err(e),
    }
}

/// What the directives found make of `spec`.
fn apply(reader: &Reader<'_>, spec: &SshSpec, home: &Path) -> Read<Target> {
    let mut seen: Vec<&str> = Vec::new();
    let mut ignore_unknown: Option<&Directive> = None;
    let mut values: Vec<&Directive> = Vec::new();
    let mut identity_files: Vec<&Directive> = Vec::new();
    for directive in &reader.found {
        match keywords::treatment(&directive.key) {
            None => {
                let ignored = ignore_unknown.is_some_and(|d| {
                    d.args
                        .iter()
                        .flat_map(|a| a.split(','))
                        .any(|p| wildcard(&p.to_ascii_lowercase(), &directive.key))
                });
                if !ignored {
                    return Err(directive
                        .refuse("unknown keyword (OpenSSH refuses it too, unless IgnoreUnknown names it)")
                        .into());
                }
            }
            Some(Treatment::Harmless) => {}
            Some(Treatment::Refused(reason)) => return Err(directive.refuse(reason).into()),
            Some(Treatment::Honoured) => {
                if directive.key == "identityfile" {
                    identity_files.push(directive);
                } else if !seen.contains(&directive.key.as_str()) {
                    seen.push(&directive.key);
                    if directive.key == "ignoreunknown" {
                        ignore_unknown = Some(directive);
                    }
                    values.push(directive);
                }
            }
        }
    }
    let get = |key: &str| values.iter().copied().find(|d| d.key == key);

    let host = match get("hostname") {
        Some(d) => expand(d.first_arg()?, &[('h', &spec.host)]).map_err(|token| {
            d.refuse(format!("the token %{token} is not supported in HostName"))
        })?,
        None => spec.host.clone(),
    };
    let port = match (spec.port, get("port")) {
        (Some(port), _) => port,
        (None, Some(d)) => d
            .first_arg()?
            .parse()
            .map_err(|_| d.refuse("not a port number"))?,
        (None, None) => 22,
    };
    let user = match spec
        .user
        .clone()
        .or_else(|| get("user").and_then(|d| d.args.first().cloned()))
        .or_else(|| reader.local_user.clone())
    {
        Some(user) => user,
        None => {
            return Err(Stop::Failed(Error::InvalidInput(format!(
                "{}: no user given and the current user's name is unknown; write user@{}",
                spec.host, spec.host
            ))))
        }
    };
    let port_text = port.to_string();
    let home_text = home.display().to_string();
    let local_user = reader.local_user.clone().unwrap_or_default();
    let tokens: [(char, &str); 6] = [
        ('h', &host),
        ('p', &port_text),
        ('r', &user),
        ('n', &spec.host),
        ('d', &home_text),
        ('u', &local_user),
    ];
    let path_value = |d: &Directive, value: &str| -> Read<PathBuf> {
        let expanded = expand(value, &tokens).map_err(|token| {
            d.refuse(format!(
                "the token %{token} is not supported by the built-in SSH client"
            ))
        })?;
        Ok(PathBuf::from(expand_tilde(&expanded, home)))
    };
    let yes_no = |d: &Directive| -> Read<bool> {
        match d.first_arg()?.to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            _ => Err(d.refuse("expected yes or no").into()),
        }
    };
    let seconds = |d: &Directive| -> Read<Duration> {
        let value = d.first_arg()?;
        let number: u64 = value
            .trim_end_matches(['s', 'S'])
            .parse()
            .map_err(|_| d.refuse("expected a number of seconds"))?;
        Ok(Duration::from_secs(number))
    };

    let mut files = Vec::new();
    for d in &identity_files {
        let value = d.first_arg()?;
        if !value.eq_ignore_ascii_case("none") {
            files.push(path_value(d, value)?);
        }
    }
    // `IdentityFile none` alone means no key files at all; no IdentityFile, the defaults.
    if identity_files.is_empty() {
        files = DEFAULT_IDENTITIES
            .iter()
            .map(|name| home.join(".ssh").join(name))
            .collect();
    }

    let mut target = Target {
        alias: spec.host.clone(),
        host: host.clone(),
        port,
        user: user.clone(),
        identity_files: files,
        identities_only: false,
        agent: AgentChoice::Default,
        known_hosts: vec![home.join(".ssh").join("known_hosts")],
        global_known_hosts: Vec::new(),
        accept_new: None,
        host_key_alias: None,
        connect_timeout: None,
        server_alive_interval: None,
        server_alive_count_max: None,
        address_family: AddressFamily::Any,
        proxy: Proxy::Direct,
        ciphers: None,
    };
    // ProxyJump and ProxyCommand exclude each other: the first one obtained wins.
    let proxy_key = values
        .iter()
        .find(|d| d.key == "proxyjump" || d.key == "proxycommand")
        .map(|d| d.key.as_str());
    for d in &values {
        match d.key.as_str() {
            "identitiesonly" => target.identities_only = yes_no(d)?,
            "identityagent" => {
                let value = d.first_arg()?;
                target.agent = if value.eq_ignore_ascii_case("none") {
                    AgentChoice::Disabled
                } else if value == "SSH_AUTH_SOCK" {
                    AgentChoice::Default
                } else if let Some(var) = value.strip_prefix('$') {
                    match std::env::var_os(var).filter(|v| !v.is_empty()) {
                        Some(socket) => AgentChoice::Socket(PathBuf::from(socket)),
                        None => AgentChoice::Disabled,
                    }
                } else {
                    AgentChoice::Socket(path_value(d, value)?)
                };
            }
            "userknownhostsfile" => {
                target.known_hosts = if d.first_arg()?.eq_ignore_ascii_case("none") {
                    Vec::new()
                } else {
                    d.args
                        .iter()
                        .map(|value| path_value(d, value))
                        .collect::<Read<_>>()?
                };
            }
            "globalknownhostsfile" => {
                target.global_known_hosts = if d.first_arg()?.eq_ignore_ascii_case("none") {
                    Vec::new()
                } else {
                    d.args
                        .iter()
                        .map(|value| path_value(d, value))
                        .collect::<Read<_>>()?
                };
            }
            "stricthostkeychecking" => {
                target.accept_new = match d.first_arg()?.to_ascii_lowercase().as_str() {
                    "yes" | "true" | "ask" => Some(false),
                    "accept-new" | "no" | "false" | "off" => Some(true),
                    _ => return Err(d.refuse("expected yes, ask, accept-new or no").into()),
                };
            }
            "hostkeyalias" => target.host_key_alias = Some(d.first_arg()?.to_owned()),
            "connecttimeout" => {
                let limit = seconds(d)?;
                // 0 means the system's default, which is the caller's own limit here.
                target.connect_timeout = (!limit.is_zero()).then_some(limit);
            }
            "serveraliveinterval" => target.server_alive_interval = Some(seconds(d)?),
            "serveralivecountmax" => {
                target.server_alive_count_max = Some(
                    d.first_arg()?
                        .parse()
                        .map_err(|_| d.refuse("expected a number"))?,
                )
            }
            "addressfamily" => {
                target.address_family = match d.first_arg()?.to_ascii_lowercase().as_str() {
                    "any" => AddressFamily::Any,
                    "inet" => AddressFamily::Inet,
                    "inet6" => AddressFamily::Inet6,
                    _ => return Err(d.refuse("expected any, inet or inet6").into()),
                }
            }
            "canonicalizehostname" => refuse_if(
                !d.first_arg()?.eq_ignore_ascii_case("no"),
                d,
                "the built-in SSH client does not canonicalize host names",
            )?,
            "refuseconnection" => refuse_if(
                yes_no(d)?,
                d,
                "the configuration refuses connections to this host",
            )?,
            "pubkeyauthentication" => refuse_if(
                !yes_no(d)?,
                d,
                "the built-in SSH client authenticates only with public keys",
            )?,
            "preferredauthentications" => refuse_if(
                !d.first_arg()?.split(',').any(|m| m == "publickey"),
                d,
                "the built-in SSH client authenticates only with public keys (publickey is \
                 not listed)",
            )?,
            "ciphers" => {
                let value = d.first_arg()?;
                super::ciphers::check(value).map_err(|why| d.refuse(why))?;
                target.ciphers = Some(value.to_owned());
            }
            "kexalgorithms"
            | "macs"
            | "hostkeyalgorithms"
            | "pubkeyacceptedalgorithms"
            | "pubkeyacceptedkeytypes"
            | "casignaturealgorithms" => refuse_if(
                !d.first_arg()?.starts_with('+'),
                d,
                "the built-in SSH client uses its own algorithm list and cannot narrow or \
                 reorder it (only +additions are accepted)",
            )?,
            "proxyjump" if proxy_key == Some("proxyjump") => {
                let value = d.first_arg()?;
                if !value.eq_ignore_ascii_case("none") {
                    let hops = value
                        .split(',')
                        .map(parse_jump)
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| d.refuse("expected [user@]host[:port], comma-separated"))?;
                    target.proxy = Proxy::Jump(hops);
                }
            }
            "proxycommand"
                if proxy_key == Some("proxycommand")
                    && !d.rest.eq_ignore_ascii_case("none")
                    && !d.rest.is_empty() =>
            {
                let command = expand(&d.rest, &tokens).map_err(|token| {
                    d.refuse(format!(
                        "the token %{token} is not supported by the built-in SSH client"
                    ))
                })?;
                target.proxy = Proxy::Command(command);
            }
            _ => {}
        }
    }
    Ok(target)
}

/// Refuses `directive` for `reason` when `condition` holds.
fn refuse_if(condition: bool, directive: &Directive, reason: &str) -> Read<()> {
    if condition {
        return Err(directive.refuse(reason).into());
    }
    Ok(())
}

/// A jump host as `ProxyJump` writes it: `[user@]host[:port]`, `[user@][v6]:port` or
/// `ssh://[user@]host[:port]`.
fn parse_jump(text: &str) -> Option<SshSpec> {
    let text = text.trim();
    let text = text.strip_prefix("ssh://").unwrap_or(text);
    let (user, rest) = match text.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_owned()), rest),
        Some(_) => return None,
        None => (None, text),
    };
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (host.to_owned(), port)
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port.parse().ok()?)),
            None => (rest.to_owned(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(SshSpec {
        user,
        host,
        port,
        path: Vec::new(),
    })
}

/// `$USER`, `$LOGNAME`, or the name `/etc/passwd` gives this process's user id.
fn current_user() -> Option<String> {
    for var in ["USER", "LOGNAME"] {
        if let Some(name) = std::env::var_os(var).and_then(|v| v.into_string().ok()) {
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    // /proc/self belongs to the process's real user; no unsafe getuid needed.
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = BufReader::new(File::open("/etc/passwd").ok()?);
    passwd.lines().map_while(|line| line.ok()).find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let entry_uid: u32 = fields.nth(1)?.parse().ok()?;
        (entry_uid == uid).then(|| name.to_owned())
    })
}

#[path = "config_reader.rs"]
mod reader;

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
