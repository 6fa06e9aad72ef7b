//! nfs-ganesha (Debian `nfs-ganesha` with `nfs-ganesha-vfs`), a userspace NFS server, serving
//! NFSv3 over TCP on 127.0.0.1 from a temporary directory, on free ports picked at run time,
//! stopped by PID when dropped.
//!
//! Ganesha serves NFSv3 only once it has registered with a portmapper, and Debian's rpcbind
//! always listens on port 111 of every address. To keep the tests off that port, each server
//! runs in a mount namespace of its own (`unshare -m`, as root) with a private `/run`:
//! rpcbind starts there while `/etc/netconfig` lists only the local transports (so it listens
//! on its Unix socket alone), then ganesha starts with the real netconfig and registers
//! through that socket. Clients are given the MOUNT port (`?mountport=N`). rpcbind dies with
//! ganesha (`setpriv --pdeathsig`). A missing server fails the test naming the packages.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The VFS backend's plug-in, which Debian ships in `nfs-ganesha-vfs`.
const FSAL_VFS: &str = "/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so";

/// A running ganesha.
pub struct Ganesha {
    child: Option<Child>,
    /// Its NFS port on 127.0.0.1.
    pub nfs_port: u16,
    /// Its MOUNT port.
    pub mount_port: u16,
    dir: tempfile::TempDir,
}

/// A program on `PATH`, or a panic naming the package that has it.
fn program(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} not found: install the Debian packages {package} (bash scripts/test.sh does)"
        )
    })
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

impl Ganesha {
    /// Starts a server with an empty export and waits until it answers.
    pub fn start() -> Ganesha {
        let ganesha = program("ganesha.nfsd", "nfs-ganesha nfs-ganesha-vfs");
        assert!(
            Path::new(FSAL_VFS).is_file(),
            "{FSAL_VFS} not found: install the Debian package nfs-ganesha-vfs"
        );
        let rpcbind = program("rpcbind", "rpcbind");
        let dir = tempfile::Builder::new()
            .prefix("musicfs-ganesha-")
            .tempdir()
            .expect("temp dir");
        for sub in ["export", "state"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let netconfig = std::fs::read_to_string("/etc/netconfig").expect("/etc/netconfig");
        let local: String = netconfig
            .lines()
            .filter(|l| l.starts_with("local") || l.starts_with("unix"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(dir.path().join("netconfig.local"), local).expect("write netconfig");
        let mut server = Ganesha {
            child: None,
            nfs_port: free_port(),
            mount_port: free_port(),
            dir,
        };
        let root = server.dir.path().to_path_buf();
        let conf = format!(
            r#"NFS_CORE_PARAM {{
  NFS_Port = {nfs};
  MNT_Port = {mnt};
  NLM_Port = {nlm};
  Rquota_Port = {rquota};
  Bind_Addr = 127.0.0.1;
  Protocols = 3;
  Enable_NLM = false;
  Enable_RQUOTA = false;
}}
NFS_KRB5 {{ Active_krb5 = false; }}
NFSV4 {{ Graceless = true; RecoveryRoot = {root}/state; }}
EXPORT {{
  Export_Id = 1;
  Path = {root}/export;
  Pseudo = {root}/export;
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  Protocols = 3;
  Transports = TCP;
  FSAL {{ Name = VFS; }}
}}
"#,
            nfs = server.nfs_port,
            mnt = server.mount_port,
            nlm = free_port(),
            rquota = free_port(),
            root = root.display(),
        );
        std::fs::write(root.join("ganesha.conf"), conf).expect("write ganesha.conf");
        let script = format!(
            r#"set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mount --bind {root}/netconfig.local /etc/netconfig
{rpcbind} -f -w &
rpcbind=$!
for i in $(seq 100); do [ -S /run/rpcbind.sock ] && break; sleep 0.05; done
umount /etc/netconfig
# rpcbind runs as its own user, so no parent-death signal reaches it: a watchdog kills it
# once this process (ganesha, after the exec below) is gone or a zombie nobody reaps.
(while kill -0 $$ 2>/dev/null && [ "$(cut -d' ' -f3 /proc/$$/stat)" != Z ]; do sleep 0.2; done
 kill -KILL $rpcbind) </dev/null >/dev/null 2>&1 &
exec {ganesha} -F -f {root}/ganesha.conf -L {root}/ganesha.log -p {root}/ganesha.pid -N NIV_EVENT
"#,
            root = root.display(),
            rpcbind = rpcbind.display(),
            ganesha = ganesha.display(),
        );
        std::fs::write(root.join("run.sh"), script).expect("write run.sh");
        server.spawn();
        server
    }

    /// One server for the whole test process, started on first use from a thread that lives
    /// as long as the process (the server dies with the thread that started it); each user
    /// works in a directory of its own below the export. A static is never dropped, so its
    /// directory is removed by a watcher once the test process has exited.
    pub fn shared() -> &'static Ganesha {
        static SHARED: OnceLock<Ganesha> = OnceLock::new();
        SHARED.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                tx.send(Ganesha::start()).expect("send the server");
                loop {
                    std::thread::park();
                }
            });
            let server: Ganesha = rx.recv().expect("the ganesha server");
            let watcher = Command::new("setsid")
                .args([
                    "sh",
                    "-c",
                    "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; rm -rf -- \"$2\"",
                ])
                .arg("musicfs-ganesha-cleanup")
                .arg(std::process::id().to_string())
                .arg(server.dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            if let Err(e) = watcher {
                eprintln!("the shared ganesha's directory will be left behind: {e}");
            }
            server
        })
    }

    /// Starts ganesha (again, on the same ports and export) and waits until it answers.
    fn spawn(&mut self) {
        let root = self.dir.path();
        let _ = std::fs::remove_file(root.join("ganesha.log"));
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "unshare", "-m", "bash"])
            .arg(root.join("run.sh"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(root.join("run.err"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ganesha under unshare: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            let up = log.contains("NFS SERVER INITIALIZED")
                && TcpStream::connect(("127.0.0.1", self.nfs_port)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.mount_port)).is_ok();
            if up {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some();
            if exited || Instant::now() > deadline {
                let mut err = String::new();
                if let Ok(mut f) = std::fs::File::open(root.join("run.err")) {
                    let _ = f.read_to_string(&mut err);
                }
                self.kill();
                panic!("ganesha did not start:\n{err}\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ganesha.log")).unwrap_or_default()
    }

    /// The exported directory, as the server's own file system shows it.
    pub fn export_dir(&self) -> PathBuf {
        self.dir.path().join("export")
    }

    /// The URL of `sub` (a relative path, may be empty) below the export.
    pub fn url(&self, sub: &str) -> String {
        let mut path = self.export_dir().display().to_string();
        if !sub.is_empty() {
            path = format!("{path}/{sub}");
        }
        format!(
            "nfs://127.0.0.1:{}{path}?mountport={}",
            self.nfs_port, self.mount_port
        )
    }

    /// Kills the server at once (SIGKILL), as a crash would; its rpcbind goes with it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same ports and export.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        // The ports are free once the old process is gone.
        while Instant::now() < deadline && TcpStream::connect(("127.0.0.1", self.nfs_port)).is_ok()
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.spawn();
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        self.kill();
    }
}
