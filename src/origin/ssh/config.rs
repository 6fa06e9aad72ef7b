//! Where an [`SshSpec`] really points: `<home>/.ssh/config` read as OpenSSH reads it.
//!
//! Only four keys matter to musicfs: `HostName`, `Port`, `User` and `IdentityFile`, under `Host`
//! patterns where the first value found wins (except `IdentityFile`, which accumulates). The
//! parsing is `ssh2-config`'s; unknown keywords are ignored, as they do not change where we
//! connect.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ssh2_config::{ParseRule, SshConfig};

use crate::error::{Error, Result};
use crate::origin::SshSpec;

/// The key files tried when the configuration names none, in OpenSSH's order.
const DEFAULT_IDENTITIES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// A host to connect to, after the configuration has been applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// Name or address to open a TCP connection to (the `HostName`).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Login name.
    pub user: String,
    /// Private key files to try, in order.
    pub identity_files: Vec<PathBuf>,
}

/// Applies `<home>/.ssh/config` to `spec`. The spec's own user and port win over the file's.
pub(crate) fn resolve(spec: &SshSpec, home: &Path) -> Result<Target> {
    let path = home.join(".ssh").join("config");
    let (host_name, port, user, identity_files) = match File::open(&path) {
        Ok(file) => {
            let config = SshConfig::default()
                .home_dir(home)
                .parse(
                    &mut BufReader::new(file),
                    ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
                )
                .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
            let params = config.query(&spec.host);
            (
                params.host_name,
                params.port,
                params.user,
                params.identity_file.unwrap_or_default(),
            )
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (None, None, None, Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let host = match host_name {
        Some(name) => expand_host_tokens(&name, &spec.host),
        None => spec.host.clone(),
    };
    let user = match spec.user.clone().or(user) {
        Some(user) => user,
        None => current_user().ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: no user given and the current user's name is unknown; write user@{}",
                spec.host, spec.host
            ))
        })?,
    };
    let identity_files = if identity_files.is_empty() {
        DEFAULT_IDENTITIES
            .iter()
            .map(|name| home.join(".ssh").join(name))
            .collect()
    } else {
        identity_files
    };
    Ok(Target {
        host,
        port: spec.port.or(port).unwrap_or(22),
        user,
        identity_files,
    })
}

/// Expands the tokens OpenSSH allows in `HostName`: `%h` (the host as given) and `%%`.
fn expand_host_tokens(value: &str, host: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('%', Some('h')) => {
                out.push_str(host);
                chars.next();
            }
            ('%', Some('%')) => {
                out.push('%');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(user: Option<&str>, host: &str, port: Option<u16>) -> SshSpec {
        SshSpec {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            path: Vec::new(),
        }
    }

    fn home_with_config(text: &str) -> tempfile::TempDir {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(home.path().join(".ssh")).expect("mkdir");
        std::fs::write(home.path().join(".ssh/config"), text).expect("write");
        home
    }

    #[test]
    fn alias_gives_host_port_user_and_keys() {
        let home = home_with_config(
            "Host nas\n  HostName 192.0.2.7\n  Port 2222\n  User music\n  IdentityFile ~/.ssh/nas_key\n\
             Host *\n  User fallback\n  Port 22\n",
        );
        let target = resolve(&spec(None, "nas", None), home.path()).expect("resolve");
        assert_eq!(target.host, "192.0.2.7");
        assert_eq!(target.port, 2222);
        assert_eq!(target.user, "music");
        assert_eq!(
            target.identity_files,
            vec![home.path().join(".ssh/nas_key")]
        );
    }

    #[test]
    fn explicit_user_and_port_win_and_first_match_wins() {
        let home = home_with_config(
            "Host *.lan\n  Port 2200\n  User first\nHost box.lan\n  Port 2300\n  User second\n",
        );
        let target = resolve(&spec(None, "box.lan", None), home.path()).expect("resolve");
        assert_eq!((target.port, target.user.as_str()), (2200, "first"));
        let target = resolve(&spec(Some("me"), "box.lan", Some(9)), home.path()).expect("resolve");
        assert_eq!((target.port, target.user.as_str()), (9, "me"));
        assert_eq!(target.host, "box.lan");
    }

    #[test]
    fn no_config_means_defaults() {
        let home = tempfile::tempdir().expect("tempdir");
        let target = resolve(&spec(Some("u"), "h", None), home.path()).expect("resolve");
        assert_eq!(target.port, 22);
        assert_eq!(
            target.identity_files,
            vec![
                home.path().join(".ssh/id_ed25519"),
                home.path().join(".ssh/id_ecdsa"),
                home.path().join(".ssh/id_rsa")
            ]
        );
    }

    #[test]
    fn host_name_tokens() {
        assert_eq!(
            expand_host_tokens("%h.example.org", "nas"),
            "nas.example.org"
        );
        assert_eq!(expand_host_tokens("a%%b%", "x"), "a%b%");
    }
}
