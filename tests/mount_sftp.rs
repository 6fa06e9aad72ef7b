//! The mount reads through origins: a library scanned over SFTP from a real OpenSSH server on
//! 127.0.0.1 (`tests/support/sshd.rs`) reads back byte-exact through `musicfs mount`, whose
//! only copy of the files is at that SFTP origin, also after the server restarted under the
//! mount; with the server gone the same reads fail with EIO, and the origin that cannot be
//! reached is reported once.

mod support;
mod util;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::sshd::{Sshd, SshdOptions};
use util::mount::UnmountOnDrop;
use util::{require_tool, summary_of, Musicfs, TestRepo};

/// `musicfs` with the test's repository and the server's client home (`~/.ssh`).
fn musicfs(t: &TestRepo, sshd: &Sshd) -> Musicfs {
    Musicfs::new(t.repo(), &sshd.home())
}

/// A running `musicfs mount --foreground` whose home is the server's client home.
struct Mounted {
    child: Child,
    _unmount: UnmountOnDrop,
}

impl Mounted {
    fn start(t: &TestRepo, sshd: &Sshd, mountpoint: &Path) -> Mounted {
        Mounted::start_with(t, sshd, mountpoint, &[])
    }

    /// As [`Mounted::start`], with more arguments to `mount`.
    fn start_with(t: &TestRepo, sshd: &Sshd, mountpoint: &Path, extra: &[&str]) -> Mounted {
        require_tool("fusermount3", "fuse3");
        let mut cmd = musicfs(t, sshd);
        cmd.arg("mount")
            .arg("--foreground")
            .args(extra)
            .arg(mountpoint);
        let mut command = cmd.command();
        let child = command
            .env("MUSICFS_LOG", "musicfs=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start musicfs mount");
        let mut m = Mounted {
            child,
            _unmount: UnmountOnDrop(mountpoint.to_path_buf()),
        };
        let start = Instant::now();
        while !fs::read_dir(mountpoint).is_ok_and(|mut d| d.next().is_some()) {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("musicfs mount exited ({status}): {}", m.stderr());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "mount did not appear"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).expect("read stderr");
        }
        err
    }

    /// Unmounts, waits for the serving process and returns what it wrote on stderr.
    fn unmount(mut self, mountpoint: &Path) -> String {
        let ok = Command::new("fusermount3")
            .arg("-u")
            .arg(mountpoint)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "fusermount3 -u {}", mountpoint.display());
        let err = self.stderr();
        let start = Instant::now();
        while self.child.try_wait().expect("wait").is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "mount process did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        err
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every regular file under `root`, relative, sorted.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.expect("walk"))
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(root).expect("inside").to_path_buf())
        .collect();
    out.sort();
    out
}

#[test]
fn files_of_an_sftp_origin_read_back_exactly_through_the_mount() {
    let t = TestRepo::new();
    let mut sshd = Sshd::start(SshdOptions::default());
    let lib = t.fixtures("lib");
    // The repository knows this library only as an SFTP origin.
    let mut scan = musicfs(&t, &sshd);
    scan.json()
        .arg("scan")
        .arg(format!("nas:{}", lib.display()));
    let url = summary_of(&scan.assert_exit(0))["origin"]
        .as_str()
        .expect("origin")
        .to_string();
    assert!(url.starts_with("sftp://"), "{url}");

    let all = files(&lib);
    assert!(all.len() >= 10, "fixtures: {all:?}");
    let mnt = t.mkdir("mnt");
    let m = Mounted::start(&t, &sshd, &mnt);
    let latest = mnt
        .join(musicfs::mount::origin_dir_name(&url))
        .join("latest");
    let read_back = |rel: &PathBuf| {
        let want = fs::read(lib.join(rel)).expect("read the library");
        let got = fs::read(latest.join(rel)).expect("read through the mount");
        assert!(want == got, "{} differs through the mount", rel.display());
    };
    all.iter().step_by(2).for_each(read_back);
    // A server restarted under the mount drops its connection: the origin is opened again.
    sshd.restart();
    all.iter().skip(1).step_by(2).for_each(read_back);
    // Reads at offsets, by several readers at once, of plain and Ogg files alike.
    std::thread::scope(|s| {
        for i in 0..4usize {
            let (all, lib, latest) = (&all, &lib, &latest);
            s.spawn(move || {
                for rel in all.iter().skip(i).step_by(2) {
                    let want = fs::read(lib.join(rel)).expect("read");
                    let mut f = fs::File::open(latest.join(rel)).expect("open");
                    let from = want.len() / (i + 2);
                    let mut got = Vec::new();
                    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(from as u64))
                        .expect("seek");
                    f.read_to_end(&mut got).expect("read");
                    assert!(got == want[from..], "{} from {from}", rel.display());
                }
            });
        }
    });
    let err = m.unmount(&mnt);
    assert!(!err.contains("WARN"), "{err}");

    // With the server gone there is no copy left: every read fails, none returns other
    // bytes, and the origin that cannot be opened is reported once, not once per read.
    sshd.kill();
    let mnt2 = t.mkdir("mnt2");
    let m = Mounted::start(&t, &sshd, &mnt2);
    let latest = mnt2
        .join(musicfs::mount::origin_dir_name(&url))
        .join("latest");
    for rel in &all {
        let e = fs::read(latest.join(rel)).expect_err("no copy reachable");
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{}: {e}", rel.display());
    }
    let err = m.unmount(&mnt2);
    let unreachable: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("cannot be opened"))
        .collect();
    assert_eq!(unreachable.len(), 1, "{err}");
    assert!(unreachable[0].contains(&url), "{err}");
}

/// `mount --rsh COMMAND` reaches SFTP origins through that command (the system OpenSSH here),
/// as `sync` does: with the built-in client's known_hosts emptied, only OpenSSH, given its own
/// copy, can reach the server.
#[test]
fn the_mount_reaches_sftp_origins_through_rsh() {
    let t = TestRepo::new();
    let sshd = Sshd::start(SshdOptions::default());
    let lib = t.fixtures("lib");
    let mut scan = musicfs(&t, &sshd);
    scan.json()
        .arg("scan")
        .arg(format!("nas:{}", lib.display()));
    let url = summary_of(&scan.assert_exit(0))["origin"]
        .as_str()
        .expect("origin")
        .to_string();
    let known = sshd.dir().join("rsh_known_hosts");
    fs::write(&known, format!("{}\n", sshd.known_hosts_line())).unwrap();
    fs::write(sshd.home().join(".ssh/known_hosts"), "").unwrap();
    let config = sshd.dir().join("rsh_config");
    fs::write(
        &config,
        format!(
            "Host *\n    IdentityFile {}\n    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n",
            sshd.client_key().display(),
            known.display()
        ),
    )
    .unwrap();
    let rsh = format!("ssh -F '{}'", config.display());

    let mnt = t.mkdir("mnt");
    let m = Mounted::start_with(&t, &sshd, &mnt, &["--rsh", &rsh]);
    let latest = mnt
        .join(musicfs::mount::origin_dir_name(&url))
        .join("latest");
    for rel in files(&lib) {
        let want = fs::read(lib.join(&rel)).expect("read the library");
        let got = fs::read(latest.join(&rel)).expect("read through the mount");
        assert!(want == got, "{} differs through the mount", rel.display());
    }
    let err = m.unmount(&mnt);
    assert!(!err.contains("WARN"), "{err}");
}
