//! SFTP sessions to the harness's sshd ([`super::sshd`]), and `SftpOrigin`s through them.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use musicfs::origin::ssh::{Sftp, SshOptions, SshSession};
use musicfs::origin::{SftpOrigin, SshSpec};

use super::sshd::{Sshd, SshdOptions};

/// A private sshd and the sessions opened to it, kept alive as long as it.
pub struct SftpServer {
    sessions: Mutex<Vec<SshSession>>,
    sshd: Sshd,
}

impl SftpServer {
    /// Starts the server (a missing sshd fails, naming the Debian package).
    pub fn start() -> SftpServer {
        SftpServer {
            sessions: Mutex::new(Vec::new()),
            sshd: Sshd::start(SshdOptions::default()),
        }
    }

    /// A new SFTP session to the server (through the `nas` alias), and its label.
    pub fn sftp(&self) -> (Arc<Sftp>, String) {
        let spec = SshSpec {
            user: None,
            host: "nas".into(),
            port: None,
            path: Vec::new(),
        };
        let mut options = SshOptions::from_env();
        options.home = self.sshd.home();
        options.agent_socket = None;
        let session = SshSession::connect(&spec, &options).expect("connect to sshd");
        let sftp = session.sftp().expect("sftp subsystem");
        let label = session.label().to_string();
        self.sessions.lock().unwrap().push(session);
        (Arc::new(sftp), label)
    }

    /// An `SftpOrigin` at the local directory `root`, through a new session.
    pub fn open(&self, root: &Path, may_create: bool) -> musicfs::Result<SftpOrigin> {
        let (sftp, label) = self.sftp();
        SftpOrigin::new(sftp, &label, root.as_os_str().as_bytes(), may_create)
    }

    /// [`SftpServer::open`], which must succeed.
    pub fn origin(&self, root: &Path, may_create: bool) -> SftpOrigin {
        self.open(root, may_create).expect("open SFTP origin")
    }
}
