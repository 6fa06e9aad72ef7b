//! The configuration file's part in the command line: named origins replaced by what they
//! name, and flags the command line and the environment left unset taken from the file.
//!
//! Precedence, highest first: the command line, the environment (`MUSICFS_*`, read by clap
//! into the same fields), the file (a named origin's own settings, then `[defaults]`), the
//! built-in default (applied where the value is used). A flag that clap filled is never
//! touched here.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::filter_args::{FilterArgs, RuleArg};
use super::{Cli, Command, ConnectArgs};
use crate::config::{valid_name, Config, NamedOrigin, Settings};
use crate::error::Error;

/// Fills `cli` from `config`: named origins expanded, unset flags from the file.
pub(super) fn apply(cli: &mut Cli, config: &Config) -> anyhow::Result<()> {
    if cli.global.repo.is_none() {
        cli.global.repo.clone_from(&config.repo);
    }
    let mut named = Vec::new();
    match &mut cli.command {
        Command::Sync(args) => {
            expand_path(config, &mut args.src, &mut named)?;
            expand_path(config, &mut args.dst, &mut named)?;
            let chain = Chain::new(config, &named);
            fill_connect(&mut args.connect, &chain)?;
            chain.add_excludes(&mut args.filter);
            if args.bwlimit.is_none() {
                args.bwlimit = chain.bwlimit();
            }
            args.sftp |= chain.get(|s| s.sftp).unwrap_or(false);
            args.checksum |= chain.get(|s| s.checksum).unwrap_or(false);
            args.one_file_system |= chain.get(|s| s.one_file_system).unwrap_or(false);
            if args.remote_musicfs.is_none() {
                args.remote_musicfs = chain.get(|s| s.remote_musicfs.clone());
            }
            args.deploy_agent |= chain.get(|s| s.deploy_agent).unwrap_or(false);
            if args.max_delete.is_none() {
                args.max_delete = chain.get(|s| s.max_delete);
            }
        }
        Command::Scan(args) => {
            expand_path(config, &mut args.origin, &mut named)?;
            let chain = Chain::new(config, &named);
            fill_connect(&mut args.connect, &chain)?;
            chain.add_excludes(&mut args.filter);
            args.checksum |= chain.get(|s| s.checksum).unwrap_or(false);
            args.one_file_system |= chain.get(|s| s.one_file_system).unwrap_or(false);
        }
        Command::Verify(args) => {
            if let Some(origin) = &mut args.origin {
                expand_path(config, origin, &mut named)?;
            }
            if let Some(from) = &mut args.repair_from {
                expand_path(config, from, &mut named)?;
            }
            fill_connect(&mut args.connect, &Chain::new(config, &named))?;
        }
        Command::Diff(args) => {
            expand_operand(config, &mut args.a, &mut named)?;
            if let Some(b) = &mut args.b {
                expand_operand(config, b, &mut named)?;
            }
            let chain = Chain::new(config, &named);
            fill_connect(&mut args.connect, &chain)?;
            chain.add_excludes(&mut args.filter);
            args.one_file_system |= chain.get(|s| s.one_file_system).unwrap_or(false);
        }
        Command::Snapshots(args) => {
            if let Some(origin) = &mut args.origin {
                expand_path(config, origin, &mut named)?;
            }
            fill_connect(&mut args.connect, &Chain::new(config, &named))?;
        }
        Command::Forget(args) => {
            if let Some(origin) = &mut args.origin {
                expand_path(config, origin, &mut named)?;
            }
            fill_connect(&mut args.connect, &Chain::new(config, &named))?;
        }
        Command::Mount(args) => fill_connect(&mut args.connect, &Chain::new(config, &[]))?,
        Command::Init(_)
        | Command::Check
        | Command::RepairIndex
        | Command::Inspect(_)
        | Command::Serve(_)
        | Command::Config(_)
        | Command::Gc(_)
        | Command::Completions { .. } => {}
    }
    Ok(())
}

/// The file's settings for one command, highest precedence first: the named origins it was
/// given (in argument order), then `[defaults]`.
pub(super) struct Chain<'a> {
    tables: Vec<&'a Settings>,
    /// Per table, whether it is an `smb://` origin's (its `credentials` file is in
    /// smbclient's format, not an S3 key).
    smb: Vec<bool>,
}

impl<'a> Chain<'a> {
    pub(super) fn new(config: &'a Config, named: &[NamedOrigin]) -> Chain<'a> {
        let origins: Vec<&NamedOrigin> = named
            .iter()
            .filter_map(|n| config.origin(&n.name))
            .collect();
        let mut tables: Vec<&Settings> = origins.iter().map(|n| &n.settings).collect();
        let mut smb: Vec<bool> = origins
            .iter()
            .map(|n| {
                crate::origin::registry::url_scheme(n.url.as_bytes()).as_deref() == Some("smb")
            })
            .collect();
        tables.push(&config.defaults);
        smb.push(false);
        Chain { tables, smb }
    }

    /// The first `credentials` file of an `smb://` origin's table (`smb`), or of any other
    /// table.
    fn credentials(&self, smb: bool) -> Option<PathBuf> {
        self.tables
            .iter()
            .zip(&self.smb)
            .filter(|(_, is_smb)| **is_smb == smb)
            .find_map(|(s, _)| s.credentials.clone())
    }

    /// The first table's value of the setting `get` reads.
    pub(super) fn get<T>(&self, get: impl Fn(&Settings) -> Option<T>) -> Option<T> {
        self.tables.iter().find_map(|s| get(s))
    }

    /// Adds every table's `exclude` patterns after the command line's rules (exclusions add
    /// up: the origin's, then `[defaults]`'s).
    fn add_excludes(&self, filter: &mut FilterArgs) {
        for table in &self.tables {
            filter
                .rules
                .extend(table.exclude.iter().cloned().map(RuleArg::Exclude));
        }
    }

    /// The bandwidth limit: the smallest any named origin sets (a limit protects a link, and
    /// both sides' links are crossed), else `[defaults]`'s. 0 is no limit.
    fn bwlimit(&self) -> Option<u64> {
        let (origins, defaults) = self.tables.split_at(self.tables.len() - 1);
        let strictest = origins
            .iter()
            .filter_map(|s| s.bwlimit)
            .filter(|&r| r > 0)
            .min();
        strictest
            .or_else(|| origins.iter().find_map(|s| s.bwlimit))
            .or_else(|| defaults.first().and_then(|s| s.bwlimit))
    }
}

/// SMB credentials: the file `MUSICFS_SMB_CREDENTIALS` names, else the first `smb://` named
/// origin's `credentials` file; the password in `MUSICFS_SMB_PASSWORD` wins over a file's.
/// `None`: neither (the guest account, or a server that refuses the user).
fn smb_credentials(chain: &Chain<'_>) -> Result<Option<crate::origin::SmbCredentials>, Error> {
    use crate::origin::smb::{CREDENTIALS_VARIABLE, PASSWORD_VARIABLE};
    let file = std::env::var_os(CREDENTIALS_VARIABLE)
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .or_else(|| chain.credentials(true));
    let mut credentials = match file {
        Some(file) => Some(
            crate::config::read_smb_credentials(&file)
                .map_err(|e| Error::InvalidInput(e.to_string()))?,
        ),
        None => None,
    };
    if let Some(password) = std::env::var_os(PASSWORD_VARIABLE) {
        let password = password.into_string().map_err(|_| {
            Error::InvalidInput(format!(
                "{PASSWORD_VARIABLE}: not UTF-8 (SMB passwords are)"
            ))
        })?;
        credentials = Some(match credentials {
            Some(mut c) => {
                c.password = crate::origin::s3::Secret::new(password);
                c
            }
            None => crate::origin::SmbCredentials::password(password),
        });
    }
    Ok(credentials)
}

/// Fills the connection flags the command line left unset; reads the S3 credentials file the
/// chain names (the first named origin's, else `[defaults]`'s), refusing one others can read,
/// and the SMB credentials (`smb_credentials`).
fn fill_connect(connect: &mut ConnectArgs, chain: &Chain<'_>) -> Result<(), Error> {
    if connect.s3_credentials.is_none() {
        if let Some(file) = chain.credentials(false) {
            let credentials = crate::config::read_credentials(&file)
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
            connect.s3_credentials = Some(credentials);
        }
    }
    if connect.smb_credentials.is_none() {
        connect.smb_credentials = smb_credentials(chain)?;
    }
    if connect.timeout.is_none() {
        connect.timeout = chain.get(|s| s.timeout);
    }
    if connect.retries.is_none() {
        connect.retries = chain.get(|s| s.retries);
    }
    if connect.retry_for.is_none() {
        connect.retry_for = chain.get(|s| s.retry_for);
    }
    if connect.rsh.is_none() {
        connect.rsh = chain.get(|s| s.rsh.clone());
    }
    connect.accept_new_host_key |= chain.get(|s| s.accept_new_host_key).unwrap_or(false);
    Ok(())
}

/// The named origin an argument names, when it is one: exactly the name of an
/// `[origin.NAME]` table. A directory of the same name here makes the argument ambiguous,
/// which is refused rather than guessed (a sync with `--delete` into the wrong one would
/// lose files).
fn named<'a>(config: &'a Config, arg: &str) -> Result<Option<&'a NamedOrigin>, Error> {
    if !valid_name(arg) {
        return Ok(None);
    }
    let Some(origin) = config.origin(arg) else {
        return Ok(None);
    };
    if Path::new(arg).symlink_metadata().is_ok() {
        return Err(Error::InvalidInput(format!(
            "{arg}: both the origin [origin.{arg}] of {} and an entry of this directory; write ./{arg} for the local one",
            config
                .file
                .as_deref()
                .map_or_else(|| "the configuration".into(), |f| f.display().to_string())
        )));
    }
    Ok(Some(origin))
}

fn expand_path(
    config: &Config,
    arg: &mut PathBuf,
    named_out: &mut Vec<NamedOrigin>,
) -> Result<(), Error> {
    let mut text = arg.clone().into_os_string();
    expand_operand(config, &mut text, named_out)?;
    *arg = PathBuf::from(text);
    Ok(())
}

/// Expands `NAME` and `NAME@TIME` (diff's and snapshots' form) into the named origin's URL.
fn expand_operand(
    config: &Config,
    arg: &mut OsString,
    named_out: &mut Vec<NamedOrigin>,
) -> Result<(), Error> {
    let Some(text) = arg.to_str() else {
        return Ok(());
    };
    let (name, at) = match text.rsplit_once('@') {
        Some((name, time)) if valid_name(name) => (name, Some(time)),
        _ => (text, None),
    };
    let Some(origin) = named(config, name)? else {
        return Ok(());
    };
    let mut expanded = OsString::from(&origin.url);
    if let Some(time) = at {
        expanded.push("@");
        expanded.push(time);
    }
    tracing::debug!("{name}: the configured origin {}", origin.url);
    named_out.push(origin.clone());
    *arg = expanded;
    Ok(())
}
