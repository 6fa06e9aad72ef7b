//! Helpers for the tests that mount for real (`tests/mount.rs`, `tests/mounts_inside.rs`,
//! `tests/mount_unprivileged.rs`): what is mounted where, the processes that serve a mount,
//! and cleaning up after a failed test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{require_tool, Musicfs};

/// Whether `path` is a mountpoint now, per `/proc/self/mountinfo`.
pub fn is_mounted(path: &Path) -> bool {
    mountinfo_line(path).is_some()
}

/// The last `/proc/self/mountinfo` line of a mount on `path` (the one the path reaches).
pub fn mountinfo_line(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    // mountinfo writes space, tab, newline and backslash as octal escapes.
    let mut want = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => want.extend(format!("\\{b:03o}").bytes()),
            _ => want.push(b),
        }
    }
    fs::read("/proc/self/mountinfo")
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .rfind(|l| l.split(|&b| b == b' ').nth(4) == Some(&want[..]))
        .map(|l| String::from_utf8_lossy(l).into_owned())
}

/// The pid in a detached mount's "mounted" message.
pub fn pid_in(said: &str) -> u32 {
    said.split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {said}"))
}

/// `cmd mount [EXTRA] MOUNTPOINT` without `--foreground`: asserts exit 0 and returns the pid
/// of the detached process that serves the mount.
pub fn mount_detached(mut cmd: Musicfs, mountpoint: &Path, extra: &[&str]) -> u32 {
    require_tool("fusermount3", "fuse3");
    let out = cmd.arg("mount").args(extra).arg(mountpoint).assert_exit(0);
    pid_in(&String::from_utf8_lossy(&out.stderr))
}

/// Whether process `pid` is running (a zombie waiting to be reaped by init is not).
pub fn running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(") ").next().and_then(|s| s.split(' ').next()) != Some("Z"))
}

/// Waits until process `pid` has ended.
pub fn wait_exit(pid: u32) {
    let start = Instant::now();
    while running(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "mount process {pid} still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lazily unmounts a mountpoint on drop if it is still mounted, so that a failed test leaves
/// no mount behind.
pub struct UnmountOnDrop(pub PathBuf);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.0)
                .status();
        }
    }
}
