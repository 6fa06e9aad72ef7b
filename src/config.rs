//! The user's configuration file: defaults for the command line's flags, and named origins.
//!
//! `$XDG_CONFIG_HOME/musicfs/config.toml` (else `~/.config/musicfs/config.toml`; the
//! environment variable `MUSICFS_CONFIG` names another file). A missing file is an empty
//! configuration. Its form:
//!
//! ```toml
//! repo = "/srv/musicfs"          # the repository, as --repo
//!
//! [defaults]                     # defaults for every command's flags
//! timeout = 60
//! retry_for = "30m"
//! rsh = "ssh"
//!
//! [origin.nas]                   # `musicfs sync nas ./lib`
//! url = "nas:/music"
//! bwlimit = "2M"
//! sftp = true
//!
//! [origin.archive]               # an S3 prefix with its own access key
//! url = "s3://label-archive/music"
//! credentials = "~/.config/musicfs/archive.toml"
//! ```
//!
//! A credentials file (`credentials`, in an origin's table or in `[defaults]`) is a TOML file
//! with `aws_access_key_id`, `aws_secret_access_key` and optionally `aws_session_token`; for
//! an `smb://` origin's table it is in smbclient's `--authentication-file` format instead
//! (`username = …`, `password = …`, `domain = …`). Either must be mode 0600 (no bits for group or others) and owned by the user running musicfs, else it is
//! refused. A relative path is read from the configuration file's directory; `~/` is the home
//! directory.
//!
//! The precedence is the command line, then the environment (`MUSICFS_*`), then this file (a
//! named origin's own settings before `[defaults]`), then the built-in default; this module
//! reads the file and answers for its part only. Unknown keys, values of the wrong type and
//! values that do not parse (a rate, a duration) are errors naming the file, the line and the
//! key: a setting is never silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// What can go wrong with the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("{}: {}", file.display(), crate::error::io_reason(source))]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid: bad TOML, an unknown key, a value of the wrong type or one that
    /// does not parse.
    #[error("{}:{line}: {key}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The line (1-based) the problem is on.
        line: usize,
        /// The key, dotted from the top (`origin.nas.bwlimit`), or `-` when the text does not
        /// parse as far as a key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A credentials file that may not be used: others can read it, another user owns it, or
    /// it does not hold an access key. The message never quotes the file's content.
    #[error("{}: {message}", file.display())]
    Credentials {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Settings that both `[defaults]` and an `[origin.NAME]` table may hold. Every field is
/// optional: an absent one leaves the decision to the next source in precedence order.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    url: Option<Spanned<String>>,
    timeout: Option<u64>,
    retries: Option<u32>,
    retry_for: Option<Spanned<String>>,
    rsh: Option<String>,
    accept_new_host_key: Option<bool>,
    bwlimit: Option<Spanned<String>>,
    sftp: Option<bool>,
    remote_musicfs: Option<String>,
    deploy_agent: Option<bool>,
    one_file_system: Option<bool>,
    checksum: Option<bool>,
    max_delete: Option<u64>,
    exclude: Option<Spanned<Vec<String>>>,
    credentials: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    repo: Option<PathBuf>,
    #[serde(default)]
    defaults: Option<Spanned<RawSettings>>,
    #[serde(default)]
    origin: BTreeMap<Spanned<String>, Spanned<RawSettings>>,
}

/// Settings from the file (of `[defaults]` or of one named origin), values checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `--timeout`, in seconds.
    pub timeout: Option<u64>,
    /// `--retries`.
    pub retries: Option<u32>,
    /// `--retry-for`.
    pub retry_for: Option<Duration>,
    /// `--rsh`.
    pub rsh: Option<String>,
    /// `--accept-new-host-key`.
    pub accept_new_host_key: Option<bool>,
    /// `--bwlimit`, bytes per second (0: no limit).
    pub bwlimit: Option<u64>,
    /// `--sftp`.
    pub sftp: Option<bool>,
    /// `--remote-musicfs`.
    pub remote_musicfs: Option<String>,
    /// `--deploy-agent`.
    pub deploy_agent: Option<bool>,
    /// `--one-file-system`.
    pub one_file_system: Option<bool>,
    /// `--checksum`.
    pub checksum: Option<bool>,
    /// `--max-delete`.
    pub max_delete: Option<u64>,
    /// `--exclude` patterns, added after the command line's rules.
    pub exclude: Vec<String>,
    /// An S3 credentials file (see the module documentation), its path resolved; read when a
    /// command uses it ([`read_credentials`]).
    pub credentials: Option<PathBuf>,
}

/// An origin named in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedOrigin {
    /// Its name, the key of its table.
    pub name: String,
    /// The origin it names, as it would be written on the command line.
    pub url: String,
    /// Its own settings, before `[defaults]`.
    pub settings: Settings,
}

/// The configuration file, read and checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The file read (or that would have been: it may not exist).
    pub file: Option<PathBuf>,
    /// Whether the file exists.
    pub exists: bool,
    /// `repo`: the repository directory.
    pub repo: Option<PathBuf>,
    /// `[defaults]`.
    pub defaults: Settings,
    /// `[origin.NAME]` tables, by name.
    pub origins: BTreeMap<String, NamedOrigin>,
}

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "MUSICFS_CONFIG";

impl Config {
    /// The file to read: `MUSICFS_CONFIG`, else `$XDG_CONFIG_HOME/musicfs/config.toml`, else
    /// `~/.config/musicfs/config.toml`; `None` when none of them can be placed.
    pub fn default_path() -> Option<PathBuf> {
        let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(file) = set(CONFIG_ENV) {
            return Some(PathBuf::from(file));
        }
        let dir = set("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
            .or_else(|| set("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(dir.join("musicfs").join("config.toml"))
    }

    /// Reads the configuration at [`Config::default_path`]; an empty one when there is no
    /// file there.
    pub fn load() -> Result<Config, ConfigError> {
        match Config::default_path() {
            Some(file) => Config::load_from(&file),
            None => Ok(Config::default()),
        }
    }

    /// Reads `file`; an empty configuration (naming the file) when it does not exist.
    pub fn load_from(file: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config {
                    file: Some(file.to_path_buf()),
                    ..Config::default()
                })
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    file: file.to_path_buf(),
                    source,
                })
            }
        };
        let mut config = Config::parse(file, &text)?;
        config.exists = true;
        Ok(config)
    }

    /// Reads `text`, the content of `file` (named in errors).
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |span: Option<std::ops::Range<usize>>, key: &str, message: String| {
            ConfigError::Invalid {
                file: file.to_path_buf(),
                line: span.map_or(1, |s| line_of(text, s.start)),
                key: key.to_string(),
                message,
            }
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .and_then(|span| key_at(text, span.start, e.message()))
                .unwrap_or_else(|| "-".into());
            invalid(e.span(), &key, first_line(e.message()))
        })?;
        let defaults = match raw.defaults {
            Some(table) => {
                let raw = table.into_inner();
                if let Some(url) = &raw.url {
                    return Err(invalid(
                        Some(url.span()),
                        "defaults.url",
                        "url belongs in an [origin.NAME] table".into(),
                    ));
                }
                settings(raw, "defaults", file, &invalid)?
            }
            None => Settings::default(),
        };
        let mut origins = BTreeMap::new();
        for (name, table) in raw.origin {
            let (name_span, name) = (name.span(), name.into_inner());
            let prefix = format!("origin.{name}");
            if !valid_name(&name) {
                return Err(invalid(
                    Some(name_span),
                    &prefix,
                    "an origin's name is letters, digits, '-' and '_' (it must read as neither a path nor host:path)".into(),
                ));
            }
            let table_span = table.span();
            let mut raw = table.into_inner();
            let url =
                match raw.url.take() {
                    Some(url) if !url.get_ref().trim().is_empty() => url.into_inner(),
                    _ => return Err(invalid(
                        Some(table_span),
                        &format!("{prefix}.url"),
                        "missing: a named origin needs the origin it names (url = \"host:/music\")"
                            .into(),
                    )),
                };
            let settings = settings(raw, &prefix, file, &invalid)?;
            origins.insert(
                name.clone(),
                NamedOrigin {
                    name,
                    url,
                    settings,
                },
            );
        }
        Ok(Config {
            file: Some(file.to_path_buf()),
            exists: true,
            repo: raw.repo,
            defaults,
            origins,
        })
    }

    /// The origin named `name` in the file, if any.
    pub fn origin(&self, name: &str) -> Option<&NamedOrigin> {
        self.origins.get(name)
    }
}

/// Whether `name` may name an origin: it reads as neither a path nor `host:path` nor
/// `ORIGIN@TIME`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Makes the error for a problem at a span of the file, with its key and message.
type Invalid<'a> = dyn Fn(Option<std::ops::Range<usize>>, &str, String) -> ConfigError + 'a;

/// Checks the values of a settings table.
fn settings(
    raw: RawSettings,
    table: &str,
    file: &Path,
    invalid: &Invalid<'_>,
) -> Result<Settings, ConfigError> {
    let credentials = match raw.credentials {
        Some(path) if path.get_ref().trim().is_empty() => {
            return Err(invalid(
                Some(path.span()),
                &format!("{table}.credentials"),
                "empty: the path of a credentials file".into(),
            ))
        }
        Some(path) => Some(resolve_path(file, path.get_ref())),
        None => None,
    };
    let bwlimit = match raw.bwlimit {
        Some(rate) => Some(
            crate::origin::bwlimit::parse_rate(rate.get_ref())
                .map_err(|e| invalid(Some(rate.span()), &format!("{table}.bwlimit"), e))?
                .unwrap_or(0),
        ),
        None => None,
    };
    let retry_for = match raw.retry_for {
        Some(text) => Some(humantime::parse_duration(text.get_ref()).map_err(|e| {
            invalid(
                Some(text.span()),
                &format!("{table}.retry_for"),
                format!("{e} (write it as \"90s\", \"10m\" or \"1h\")"),
            )
        })?),
        None => None,
    };
    let exclude = match raw.exclude {
        Some(list) => {
            let span = list.span();
            let patterns = list.into_inner();
            for pattern in &patterns {
                let rule = crate::filter::Rule::exclude(pattern.clone());
                crate::filter::Filter::new(vec![rule], false).map_err(|e| {
                    invalid(
                        Some(span.clone()),
                        &format!("{table}.exclude"),
                        e.to_string(),
                    )
                })?;
            }
            patterns
        }
        None => Vec::new(),
    };
    Ok(Settings {
        exclude,
        credentials,
        timeout: raw.timeout,
        retries: raw.retries,
        retry_for,
        rsh: raw.rsh,
        accept_new_host_key: raw.accept_new_host_key,
        bwlimit,
        sftp: raw.sftp,
        remote_musicfs: raw.remote_musicfs,
        deploy_agent: raw.deploy_agent,
        one_file_system: raw.one_file_system,
        checksum: raw.checksum,
        max_delete: raw.max_delete,
    })
}

/// `path` as written in the configuration file `file`: `~/` is the home directory, a
/// relative path is read from the file's directory.
fn resolve_path(file: &Path, path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let path = Path::new(path);
    match file.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// What a credentials file holds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    aws_access_key_id: String,
    aws_secret_access_key: String,
    aws_session_token: Option<String>,
}

/// Reads an S3 credentials file: mode 0600 or stricter and owned by the effective user, else
/// refused, as ssh refuses a private key others can read. Errors name the file and never
/// quote its content.
pub fn read_credentials(file: &Path) -> Result<crate::origin::S3Credentials, ConfigError> {
    let refuse = |message: String| ConfigError::Credentials {
        file: file.to_path_buf(),
        message,
    };
    let text = read_private(file)?;
    let raw: RawCredentials = toml::from_str(&text).map_err(|e| {
        // The parser's own message may quote the value it choked on: name the line only.
        let line = e.span().map_or(1, |s| line_of(&text, s.start));
        let what = e.message();
        let detail = if what.starts_with("missing field") || what.starts_with("unknown field") {
            first_line(what)
        } else {
            "not a TOML table of aws_access_key_id, aws_secret_access_key and aws_session_token strings".into()
        };
        refuse(format!("line {line}: {detail}"))
    })?;
    if raw.aws_access_key_id.trim().is_empty() || raw.aws_secret_access_key.is_empty() {
        return Err(refuse(
            "aws_access_key_id and aws_secret_access_key must not be empty".into(),
        ));
    }
    Ok(crate::origin::S3Credentials {
        access_key_id: raw.aws_access_key_id.trim().to_string(),
        secret_access_key: crate::origin::s3::Secret::new(raw.aws_secret_access_key),
        session_token: raw.aws_session_token.map(crate::origin::s3::Secret::new),
    })
}

/// Reads an SMB credentials file in smbclient's `--authentication-file` format (`username =
/// …`, `password = …`, `domain = …`), under the same rules as [`read_credentials`]: mode
/// 0600 or stricter, owned by the effective user, its content never quoted.
pub fn read_smb_credentials(file: &Path) -> Result<crate::origin::SmbCredentials, ConfigError> {
    let text = read_private(file)?;
    crate::origin::SmbCredentials::parse_file(&text).map_err(|message| ConfigError::Credentials {
        file: file.to_path_buf(),
        message,
    })
}

/// The text of a file that holds a secret: refused unless it is a regular file of mode 0600
/// or stricter owned by the effective user, as ssh refuses a private key others can read.
/// Errors name the file and never quote its content.
fn read_private(file: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let refuse = |message: String| ConfigError::Credentials {
        file: file.to_path_buf(),
        message,
    };
    let mut handle = std::fs::File::open(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let meta = handle.metadata().map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(refuse(format!(
            "mode {mode:04o} lets others read the secret; chmod 600 {}",
            file.display()
        )));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(refuse(format!(
            "owned by uid {}, not by the user running musicfs (uid {me})",
            meta.uid()
        )));
    }
    let mut text = String::new();
    handle
        .by_ref()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
    Ok(text)
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

/// The dotted key a TOML error at byte `offset` is about: the key the message names (an
/// unknown field) or the one its line assigns, under the table header above it.
fn key_at(text: &str, offset: usize, message: &str) -> Option<String> {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let named = message.find("field `").and_then(|start| {
        let rest = &message[start + "field `".len()..];
        rest.find('`').map(|len| rest[..len].to_string())
    });
    let key = match named {
        Some(key) => key,
        None => {
            let (lhs, _) = line.split_once('=')?;
            let key = lhs.trim();
            if key.is_empty() || key.starts_with('[') {
                return None;
            }
            key.to_string()
        }
    };
    // The nearest table header at or above the line (the line itself for a header).
    let header = text[..line_start + line.len()]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| {
            l.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .replace('"', "")
        });
    Some(match header {
        Some(table) if !table.is_empty() => format!("{table}.{key}"),
        _ => key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/c/config.toml"), text)
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("should be refused").to_string()
    }

    #[test]
    fn an_empty_file_is_an_empty_configuration() {
        let c = parse("").expect("empty");
        assert_eq!(c.defaults, Settings::default());
        assert!(c.origins.is_empty());
        assert_eq!(c.repo, None);
    }

    #[test]
    fn every_setting_is_read() {
        let c = parse(
            r#"
repo = "/srv/musicfs"
[defaults]
timeout = 60
retries = 2
retry_for = "30m"
rsh = "ssh -J bastion"
accept_new_host_key = true
bwlimit = "1.5M"
sftp = false
remote_musicfs = "/opt/bin/musicfs"
deploy_agent = true
one_file_system = true
checksum = true
max_delete = 100
exclude = ["*.tmp", "/Incoming/"]

[origin.nas]
url = "nas:/music"
bwlimit = "500K"
sftp = true
"#,
        )
        .expect("valid");
        assert_eq!(c.repo.as_deref(), Some(Path::new("/srv/musicfs")));
        let d = &c.defaults;
        assert_eq!(d.timeout, Some(60));
        assert_eq!(d.retries, Some(2));
        assert_eq!(d.retry_for, Some(Duration::from_secs(1800)));
        assert_eq!(d.rsh.as_deref(), Some("ssh -J bastion"));
        assert_eq!(d.accept_new_host_key, Some(true));
        assert_eq!(d.bwlimit, Some(1_572_864));
        assert_eq!(d.sftp, Some(false));
        assert_eq!(d.remote_musicfs.as_deref(), Some("/opt/bin/musicfs"));
        assert_eq!(d.deploy_agent, Some(true));
        assert_eq!(d.one_file_system, Some(true));
        assert_eq!(d.checksum, Some(true));
        assert_eq!(d.max_delete, Some(100));
        assert_eq!(d.exclude, ["*.tmp", "/Incoming/"]);
        let nas = c.origin("nas").expect("nas");
        assert_eq!(nas.url, "nas:/music");
        assert_eq!(nas.settings.bwlimit, Some(500 * 1024));
        assert_eq!(nas.settings.sftp, Some(true));
        assert_eq!(nas.settings.timeout, None);
    }

    #[test]
    fn problems_name_the_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[defaults]\ntimeout = 1\ntimout = 2\n",
                "/c/config.toml:3: defaults.timout:",
            ),
            (
                "[defaults]\n\ntimeout = \"x\"\n",
                "/c/config.toml:3: defaults.timeout:",
            ),
            (
                "[defaults]\nbwlimit = \"fast\"\n",
                "/c/config.toml:2: defaults.bwlimit:",
            ),
            (
                "[defaults]\nretry_for = \"soon\"\n",
                "/c/config.toml:2: defaults.retry_for:",
            ),
            (
                "[defaults]\nurl = \"x:/y\"\n",
                "/c/config.toml:2: defaults.url:",
            ),
            (
                "\n[origin.nas]\nsftp = true\n",
                "/c/config.toml:2: origin.nas.url: missing",
            ),
            (
                "[origin.\"a/b\"]\nurl = \"x\"\n",
                "/c/config.toml:1: origin.a/b:",
            ),
            (
                "[origin.nas]\nurl = \"x\"\nbwlimt = \"1M\"\n",
                "/c/config.toml:3: origin.nas.bwlimt:",
            ),
            ("colour = true\n", "/c/config.toml:1: colour:"),
            (
                "[defaults]\nexclude = [\"a[\"]\n",
                "/c/config.toml:2: defaults.exclude:",
            ),
            (
                "[defaults]\nexclude = \"*.tmp\"\n",
                "/c/config.toml:2: defaults.exclude:",
            ),
            ("[defaults\n", "/c/config.toml:1: -:"),
        ];
        for (text, start) in cases {
            let e = error(text);
            assert!(e.starts_with(start), "{text:?}: {e}");
            assert!(!e.contains('\n'), "not one line: {e}");
        }
    }

    #[test]
    fn names_that_read_as_paths_or_hosts_are_refused() {
        for name in ["a/b", "host:x", "me@nas", ".", "", "a b"] {
            assert!(!valid_name(name), "{name:?}");
        }
        for name in ["nas", "NAS-2", "home_music"] {
            assert!(valid_name(name), "{name:?}");
        }
    }

    #[test]
    fn a_missing_file_is_an_empty_configuration_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("none.toml");
        let c = Config::load_from(&file).expect("missing is fine");
        assert!(!c.exists);
        assert_eq!(c.file.as_deref(), Some(file.as_path()));
    }
}
