//! The SSH transport's [`AgentLink`]: the remote agent on an exec channel, and SFTP on the
//! same session as its fallback; or, with a remote shell (`--rsh`), both through a local
//! command (`rsh.rs`).

use std::io::Write;
use std::time::Duration;

use super::exec::ExecStatus;
use super::rsh::ShellConnection;
use super::transport::{remote_shell, ssh_options, SshLocation};
use super::{Sftp, SftpOrigin, SshSession};
use crate::error::{io_kind, Error, ErrorKind, Result};
use crate::origin::agent_link::{AgentConnection, AgentLink, AgentProcess, AgentStatus};
use crate::origin::registry::OpenOptions;
use crate::origin::{Origin, Policy, Retrying, WritableOrigin};

impl AgentLink for SshLocation {
    fn remote_dir(&self) -> &[u8] {
        &self.spec.path
    }

    fn fallback_only(&self) -> bool {
        self.sftp_only
    }

    fn fallback_name(&self) -> &'static str {
        "SFTP"
    }

    fn connect(&self, options: &OpenOptions) -> Result<Box<dyn AgentConnection>> {
        if let Some(shell) = remote_shell(&self.spec, options)? {
            return Ok(Box::new(ShellConnection::new(shell, &self.spec, options)));
        }
        let session = SshSession::connect(&self.spec, &ssh_options(options))?;
        let origin = format!(
            "{}:{}",
            session.label(),
            String::from_utf8_lossy(&self.spec.path)
        );
        Ok(Box::new(SshConnection {
            session,
            origin,
            root: self.spec.path.clone(),
        }))
    }
}

/// An SSH session to the host of an SSH origin.
struct SshConnection {
    session: SshSession,
    /// `user@host:port:path`.
    origin: String,
    /// The remote directory.
    root: Vec<u8>,
}

impl SshConnection {
    /// The directory over a new SFTP channel of the session, its reads retried.
    fn sftp(&self, may_create: bool) -> Result<Retrying<SftpOrigin>> {
        let origin = SftpOrigin::over(&self.session, &self.root, may_create)?;
        Ok(Retrying::new(origin, Policy::READS))
    }
}

impl AgentConnection for SshConnection {
    fn origin(&self) -> &str {
        &self.origin
    }

    fn start_agent(&self, command: &str) -> Result<AgentProcess> {
        let (input, output, status) = self.session.exec(command)?.split();
        Ok(AgentProcess {
            input: Box::new(input),
            output: Box::new(output),
            status: Box::new(status),
        })
    }

    fn open_fallback(&self) -> Result<Box<dyn Origin>> {
        Ok(Box::new(self.sftp(false)?))
    }

    fn open_fallback_writable(&self) -> Result<Box<dyn WritableOrigin>> {
        Ok(Box::new(self.sftp(true)?))
    }

    fn create_file(&self, path: &[u8], mode: u32) -> Result<Box<dyn Write + Send>> {
        create_file(&self.session.sftp()?, &self.origin, path, mode)
    }
}

/// [`AgentConnection::create_file`] over an SFTP session: the file keeps the session open.
pub(super) fn create_file(
    sftp: &Sftp,
    origin: &str,
    path: &[u8],
    mode: u32,
) -> Result<Box<dyn Write + Send>> {
    match sftp.create_new(path, mode) {
        Ok(file) => Ok(Box::new(file)),
        Err(e) if io_kind(&e) == ErrorKind::Transient => Err(Error::Unreachable {
            origin: origin.to_owned(),
            message: format!("{}: {e}", String::from_utf8_lossy(path)),
        }),
        Err(e) => Err(Error::Io {
            path: String::from_utf8_lossy(path).into_owned().into(),
            source: e,
        }),
    }
}

impl AgentStatus for ExecStatus {
    fn exit_status(&self, wait: Duration) -> Option<u32> {
        ExecStatus::exit_status(self, wait)
    }

    fn stderr_tail(&self) -> String {
        ExecStatus::stderr_tail(self)
    }
}
