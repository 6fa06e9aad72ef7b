//! A real OpenSSH server on 127.0.0.1 for tests, with a client home that trusts it.
//!
//! `Sshd::start` writes host and client keys, an `sshd_config` and a client `~/.ssh`
//! (`config` with the alias `nas`, `known_hosts`, `id_ed25519`) into a temporary directory,
//! then runs `/usr/sbin/sshd -D` on a free port. Tests run as root. A missing sshd fails the
//! test: install the Debian package `openssh-server`.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// How to set up the server and the client home.
#[derive(Clone, Debug)]
pub struct SshdOptions {
    /// `SetEnv NAME=VALUE` lines: the environment of every session.
    pub set_env: Vec<(String, String)>,
    /// Write the server's key into `<home>/.ssh/known_hosts` (false: the host is unknown).
    pub known_host: bool,
    /// More `sshd_config` lines (e.g. `Ciphers …`).
    pub extra_config: Vec<String>,
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions {
            set_env: Vec::new(),
            known_host: true,
            extra_config: Vec::new(),
        }
    }
}

/// A running sshd; stopped (with its sessions) on drop.
pub struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    host_public: String,
}

/// Runs a command that must succeed.
fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes a new ed25519 key pair without a passphrase at `path` (and `path.pub`).
pub fn keygen(path: &Path, comment: &str) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path));
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

impl Sshd {
    /// A server whose sessions find the musicfs in `musicfs_dir` first on their PATH (the
    /// remote agent is the build under test) and keep their repository in `remote_repo`.
    pub fn with_agent(musicfs_dir: &Path, remote_repo: &Path) -> Sshd {
        Sshd::start(SshdOptions {
            set_env: vec![
                (
                    "PATH".into(),
                    format!("{}:/usr/local/bin:/usr/bin:/bin", musicfs_dir.display()),
                ),
                ("MUSICFS_REPO".into(), remote_repo.display().to_string()),
            ],
            ..SshdOptions::default()
        })
    }

    /// Starts sshd on a free port.
    pub fn start(options: SshdOptions) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install the Debian package openssh-server"
        );
        fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        keygen(&root.join("host_ed25519"), "musicfs-test-host");
        let host_public = fs::read_to_string(root.join("host_ed25519.pub"))
            .expect("host key")
            .trim()
            .to_owned();

        let home = root.join("home");
        let ssh = home.join(".ssh");
        fs::create_dir_all(&ssh).expect("mkdir .ssh");
        keygen(&ssh.join("id_ed25519"), "musicfs-test-client");
        fs::copy(ssh.join("id_ed25519.pub"), root.join("authorized_keys"))
            .expect("authorized_keys");

        let mut sshd = Sshd {
            dir,
            port: 0,
            child: None,
            host_public,
        };
        for attempt in 1..=5 {
            sshd.port = free_port();
            sshd.write_config(&options.set_env, &options.extra_config);
            match sshd.spawn() {
                Ok(()) => break,
                Err(why) if attempt < 5 && why.contains("Address already in use") => continue,
                Err(why) => panic!("sshd did not start: {why}"),
            }
        }
        sshd.write_client_home(options.known_host);
        sshd
    }

    fn write_config(&self, set_env: &[(String, String)], extra_config: &[String]) {
        let root = self.dir.path();
        let mut config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {root}/host_ed25519\n\
             AuthorizedKeysFile {root}/authorized_keys\nUsePAM no\nStrictModes no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin yes\n\
             Subsystem sftp internal-sftp\nPidFile {root}/sshd.pid\nLogLevel ERROR\n",
            port = self.port,
            root = root.display()
        );
        // sshd keeps the first value of a keyword: every variable goes on one `SetEnv` line.
        if !set_env.is_empty() {
            config.push_str("SetEnv");
            for (name, value) in set_env {
                config.push_str(&format!(" \"{name}={value}\""));
            }
            config.push('\n');
        }
        for line in extra_config {
            config.push_str(line);
            config.push('\n');
        }
        fs::write(root.join("sshd_config"), config).expect("sshd_config");
    }

    /// Runs sshd on `self.port` and waits until it accepts connections.
    fn spawn(&mut self) -> Result<(), String> {
        let root = self.dir.path();
        let log = fs::File::create(root.join("sshd.log")).expect("sshd.log");
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(root.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {SSHD}: {e}"))?;
        let log = || fs::read_to_string(root.join("sshd.log")).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("sshd exited ({status}): {}", log()));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Someone else may own the port; our sshd then exits at once.
                std::thread::sleep(Duration::from_millis(100));
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("sshd exited ({status}): {}", log()));
                }
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "sshd did not accept connections in 10 s: {}",
                    log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn write_client_home(&self, known_host: bool) {
        let ssh = self.home().join(".ssh");
        let known_hosts = if known_host {
            format!("{}\n", self.known_hosts_line())
        } else {
            String::new()
        };
        fs::write(ssh.join("known_hosts"), known_hosts).expect("known_hosts");
        fs::write(
            ssh.join("config"),
            format!(
                "Host nas\n    HostName 127.0.0.1\n    Port {}\n    User root\n    IdentityFile {}\n",
                self.port,
                ssh.join("id_ed25519").display()
            ),
        )
        .expect("config");
    }

    /// The port sshd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client home: `.ssh/{config,known_hosts,id_ed25519}`.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The temporary directory holding everything (keys, config, home).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The client's private key.
    pub fn client_key(&self) -> PathBuf {
        self.home().join(".ssh").join("id_ed25519")
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA…`, the server's `known_hosts` line.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_public)
    }

    /// The listening sshd's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("sshd is not running")
    }

    /// SIGKILLs sshd and every session process it started, so open connections drop.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        // Each session runs in a child of the listener (in its own process session).
        let mut victims = vec![pid];
        let mut index = 0;
        while index < victims.len() {
            victims.extend(children_of(victims[index]));
            index += 1;
        }
        // kill(2) directly: no external program whose absence could leave sshd running.
        for victim in victims {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(victim as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.wait();
    }

    /// Starts sshd again on the same port with the same keys.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(why) if Instant::now() < deadline && why.contains("Address already in use") => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(why) => panic!("sshd did not restart: {why}"),
            }
        }
    }
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let child: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // Fields after the command name, which is in parentheses and may hold spaces.
            let after = &stat[stat.rfind(')')? + 2..];
            let parent: u32 = after.split(' ').nth(1)?.parse().ok()?;
            (parent == pid).then_some(child)
        })
        .collect()
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The origin spec of `host` as a client names it: no user, port or path of its own.
pub fn client_spec(host: &str) -> musicfs::origin::SshSpec {
    musicfs::origin::SshSpec {
        user: None,
        host: host.to_owned(),
        port: None,
        path: Vec::new(),
    }
}

/// Built-in client settings for a client whose home is `home`: no ssh-agent, 10 s to
/// connect, 20 s of silence.
pub fn client_options(home: &Path) -> musicfs::origin::ssh::SshOptions {
    musicfs::origin::ssh::SshOptions {
        home: home.to_owned(),
        agent_socket: None,
        connect_timeout: Duration::from_secs(10),
        io_timeout: Duration::from_secs(20),
        ..musicfs::origin::ssh::SshOptions::default()
    }
}
