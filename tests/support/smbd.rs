//! A real Samba smbd on 127.0.0.1 for tests: one share on a temporary directory, one user.
//!
//! `Smbd::start` writes an `smb.conf` whose every state, lock, pid, cache and private
//! directory and log is under a temporary directory, adds the user running the tests (root,
//! as the tests run) with `smbpasswd -c CONF -s -a`, the password on its standard input, and
//! runs `smbd --foreground --no-process-group` under `setsid` on a free port (stopping an smbd
//! that still had a client otherwise took the calling shell down with it). The server is
//! stopped, with its children, by its process group on drop. A missing smbd fails the test:
//! install the Debian package `samba`.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SMBD: &str = "/usr/sbin/smbd";
const SMBPASSWD: &str = "/usr/bin/smbpasswd";

/// The share every server serves.
pub const SHARE: &str = "music";
/// The password of the user [`Smbd::user`].
pub const PASSWORD: &str = "Smb-test-pässword-1";

/// Where the server requires encryption.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncryptionRequired {
    /// Nowhere (Samba's default, `smb encrypt = default`: encryption when the client asks).
    #[default]
    No,
    /// For every session: `server smb encrypt = required` in `[global]`.
    Server,
    /// For the share only: `smb encrypt = required` in its section.
    Share,
}

/// How to configure the server.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmbdOptions {
    /// `server signing = mandatory` (else Samba's default: signing when the client asks).
    pub signing_mandatory: bool,
}

/// A running smbd; stopped on drop.
pub struct Smbd {
    dir: tempfile::TempDir,
    port: u16,
    options: SmbdOptions,
    encryption: EncryptionRequired,
    child: Option<Child>,
}

impl Smbd {
    /// Starts smbd with Samba's default for signing.
    pub fn start() -> Smbd {
        Smbd::start_with(SmbdOptions::default())
    }

    /// Starts smbd on a free port.
    pub fn start_with(options: SmbdOptions) -> Smbd {
        Smbd::start_requiring_encryption(options, EncryptionRequired::No)
    }

    /// Starts smbd on a free port, requiring encryption where `encryption` says.
    pub fn start_requiring_encryption(
        options: SmbdOptions,
        encryption: EncryptionRequired,
    ) -> Smbd {
        for program in [SMBD, SMBPASSWD] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: install the Debian package samba"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("musicfs-smbd-")
            .tempdir()
            .expect("tempdir");
        for sub in [
            "private", "lock", "state", "cache", "pid", "ncalrpc", "share",
        ] {
            fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let mut smbd = Smbd {
            dir,
            port: 0,
            options,
            encryption,
            child: None,
        };
        for attempt in 1..=5 {
            smbd.port = super::sshd::free_port();
            smbd.write_config();
            if attempt == 1 {
                smbd.add_user();
            }
            match smbd.spawn() {
                Ok(()) => return smbd,
                Err(why) if attempt < 5 => eprintln!("smbd did not start, trying again: {why}"),
                Err(why) => panic!("smbd did not start: {why}"),
            }
        }
        unreachable!("five attempts")
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The account tests sign in as: the user running them.
    pub fn user(&self) -> String {
        let uid = nix::unistd::geteuid();
        nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .expect("the user running the tests has a name")
    }

    /// The shared directory, as this machine sees it.
    pub fn share_dir(&self) -> PathBuf {
        self.dir.path().join("share")
    }

    /// `smb://USER@127.0.0.1:PORT/music/PATH` (`user` `None`: the guest account).
    pub fn url(&self, user: Option<&str>, path: &str) -> String {
        let user = user.map(|u| format!("{u}@")).unwrap_or_default();
        let mut url = format!("smb://{user}127.0.0.1:{}/{SHARE}", self.port);
        if !path.is_empty() {
            url.push('/');
            url.push_str(path);
        }
        url
    }

    /// The server's log, for messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("log.smbd")).unwrap_or_default()
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("smb.conf")
    }

    fn write_config(&self) {
        let d = self.dir.path().display();
        let signing = match self.options.signing_mandatory {
            true => "mandatory",
            false => "default",
        };
        let (server_encrypt, share_encrypt) = match self.encryption {
            EncryptionRequired::No => ("default", "default"),
            EncryptionRequired::Server => ("required", "default"),
            EncryptionRequired::Share => ("default", "required"),
        };
        let user = self.user();
        let conf = format!(
            "[global]\n\
             \tsmb ports = {port}\n\
             \tinterfaces = 127.0.0.1\n\
             \tbind interfaces only = yes\n\
             \tdisable netbios = yes\n\
             \tserver role = standalone server\n\
             \tserver min protocol = SMB2_10\n\
             \tserver signing = {signing}\n\
             \tserver smb encrypt = {server_encrypt}\n\
             \tprivate dir = {d}/private\n\
             \tlock directory = {d}/lock\n\
             \tstate directory = {d}/state\n\
             \tcache directory = {d}/cache\n\
             \tpid directory = {d}/pid\n\
             \tncalrpc dir = {d}/ncalrpc\n\
             \tpassdb backend = tdbsam:{d}/private/passdb.tdb\n\
             \tlog file = {d}/log.smbd\n\
             \tlog level = 1\n\
             \tmax log size = 0\n\
             \tload printers = no\n\
             \tprinting = bsd\n\
             \tprintcap name = /dev/null\n\
             \tdisable spoolss = yes\n\
             \tmap to guest = Bad User\n\
             \tguest account = nobody\n\
             \n\
             [{SHARE}]\n\
             \tpath = {d}/share\n\
             \tread only = no\n\
             \tguest ok = yes\n\
             \tforce user = {user}\n\
             \tsmb encrypt = {share_encrypt}\n",
            port = self.port
        );
        fs::write(self.conf(), conf).expect("write smb.conf");
    }

    /// Adds the user running the tests, with [`PASSWORD`].
    fn add_user(&self) {
        let mut child = Command::new(SMBPASSWD)
            .arg("-c")
            .arg(self.conf())
            .args(["-s", "-a"])
            .arg(self.user())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run smbpasswd");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{PASSWORD}\n{PASSWORD}\n").as_bytes())
            .expect("write the password");
        let output = child.wait_with_output().expect("smbpasswd");
        assert!(
            output.status.success(),
            "smbpasswd failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Runs smbd on `self.port` and waits until it accepts connections.
    fn spawn(&mut self) -> Result<(), String> {
        let mut child = Command::new("setsid")
            .arg(SMBD)
            .args(["--foreground", "--no-process-group", "-s"])
            .arg(self.conf())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run setsid {SMBD}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("smbd exited ({status}): {}", self.log()));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("smbd did not listen within 20 s: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills smbd and every child it forked (one per client) at once, with SIGKILL: a server
    /// that dies mid-transfer.
    pub fn kill(&mut self) {
        self.stop(nix::sys::signal::Signal::SIGKILL);
    }

    /// Starts smbd again on the same port, with the same share and users.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(why) if Instant::now() > deadline => panic!("smbd did not restart: {why}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Sends `first` to smbd's process group (smbd and the children it forked), gives it two
    /// seconds to end, then kills whatever is left of the group.
    fn stop(&mut self, first: nix::sys::signal::Signal) {
        use nix::sys::signal::{kill, Signal};
        if let Some(mut child) = self.child.take() {
            let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = kill(group, first);
            let deadline = Instant::now() + Duration::from_secs(2);
            while first != Signal::SIGKILL && Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = kill(group, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for Smbd {
    fn drop(&mut self) {
        self.stop(nix::sys::signal::Signal::SIGTERM);
    }
}
