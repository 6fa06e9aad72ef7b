//! Serving a mount from a detached process. `musicfs mount` without `--foreground` starts
//! `musicfs mount --foreground` in its own process group and says "mounted" only when that
//! process has reported its mount up (a [`Mounted::ready_line`] on its standard output) and
//! the mount has been checked from outside: the mountpoint reaches the device that process
//! reported, and its root answers through FUSE. Otherwise the process is killed, whatever it
//! mounted is taken down, and the error says why.
//!
//! Seeing the mountpoint in `/proc/self/mountinfo` is not enough: a mount that is listed may
//! not be served yet, or may be someone else's, or may be taken down a moment later.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::log::{BoundedLog, MAX_LOG_BYTES};
use super::mountpoint::{check_fuse_device, check_mountpoint, top_mount, unmount};
use super::Mounted;
use crate::error::{Error, Result};

/// The word that starts the serving process's report, followed by its mount's device number.
const READY: &str = "ready";

/// How long the serving process may take to mount.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

impl Mounted {
    /// The line a detached serving process writes on its standard output once its mount is
    /// up: `ready DEVICE`.
    pub fn ready_line(&self) -> String {
        format!("{READY} {}\n", self.device)
    }
}

/// The device number in a ready line.
fn parse_ready_line(line: &str) -> Option<u64> {
    let (word, device) = line.trim_end_matches('\n').split_once(' ')?;
    (word == READY).then(|| device.parse().ok()).flatten()
}

/// Starts `program args` (a `musicfs mount --foreground` that reports with a ready line on its
/// standard output) detached from this process's terminal and session, and returns its pid
/// once its mount is up, served, and reached at `mountpoint`. Its standard error is appended to
/// `log` (rotated first when past [`MAX_LOG_BYTES`]), which stays for the user to read; when it
/// fails, what it wrote there is part of the error. A mountpoint that [`check_mountpoint`]
/// refuses (with `nonempty`), or a FUSE device this user cannot open, is refused before
/// anything starts.
pub fn spawn_detached(
    program: &Path,
    args: &[OsString],
    mountpoint: &Path,
    nonempty: bool,
    log: &Path,
) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let path = check_mountpoint(mountpoint, nonempty)?;
    check_fuse_device()?;
    let bounded = BoundedLog::open(log, MAX_LOG_BYTES)?;
    let start = bounded.len();
    let log_file = bounded.try_clone_file().map_err(|e| Error::io(log, e))?;
    drop(bounded);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io(program, e))?;
    let outcome = wait_ready(&mut child).and_then(|device| confirm(&path, device, &mut child));
    match outcome {
        Ok(()) => Ok(child.id()),
        Err(why) => {
            abandon(&mut child, &path);
            let text = written_since(log, start);
            let said: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let message = if said.is_empty() {
                why
            } else {
                format!("{why}: {}", said.join("; "))
            };
            Err(Error::Mount { path, message })
        }
    }
}

/// What was appended to `log` after its first `start` bytes.
fn written_since(log: &Path, start: u64) -> String {
    use std::io::{Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        if f.seek(SeekFrom::Start(start)).is_ok() {
            let _ = f.read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Reads the serving process's ready line; its device number.
fn wait_ready(child: &mut Child) -> Result<u64, String> {
    let Some(mut stdout) = child.stdout.take() else {
        return Err("the mount process has no output pipe".into());
    };
    let deadline = Instant::now() + MOUNT_TIMEOUT;
    let mut line = Vec::new();
    while !line.contains(&b'\n') {
        match read_some(&mut stdout, deadline) {
            Ok(Some(bytes)) if !bytes.is_empty() => line.extend_from_slice(&bytes),
            // End of file: the process ended (or is ending) without reporting.
            Ok(Some(_)) => return Err(format!("mount failed ({})", exit_status(child))),
            Ok(None) => return Err(format!("not mounted after {} s", MOUNT_TIMEOUT.as_secs())),
            Err(e) => return Err(format!("reading the mount process's report: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&line);
    parse_ready_line(&line).ok_or_else(|| {
        format!(
            "unexpected report from the mount process: {:?}",
            line.trim()
        )
    })
}

/// The next bytes from `pipe` (empty at end of file), or `None` when `deadline` passes first.
fn read_some(pipe: &mut ChildStdout, deadline: Instant) -> std::io::Result<Option<Vec<u8>>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let mut buf = [0u8; 256];
    loop {
        match pipe.read(&mut buf) {
            Ok(n) => return Ok(Some(buf[..n].to_vec())),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// How the process ended, waiting for it a little: it closed its output by ending.
fn exit_status(child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.to_string(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => return "closed its output".into(),
            Err(e) => return e.to_string(),
        }
    }
}

/// Checks from outside that the mount the serving process reported is the one `path` reaches
/// and that it answers: its root lists and has the reported device, and the process is still
/// running.
fn confirm(path: &Path, device: u64, child: &mut Child) -> Result<(), String> {
    let gone = "the mount process reported its mount up, but";
    match top_mount(path) {
        Some(top) if top.device == device => {}
        Some(_) => return Err(format!("{gone} another file system is mounted there")),
        None => return Err(format!("{gone} it was unmounted at once")),
    }
    let root = std::fs::read_dir(path)
        .and_then(|mut dir| {
            dir.next().transpose()?;
            std::fs::metadata(path)
        })
        .map_err(|e| format!("{gone} it does not answer: {e}"))?;
    if root.dev() != device {
        return Err(format!("{gone} another file system answers there"));
    }
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!("{gone} the process ended ({status})"));
    }
    Ok(())
}

/// Ends a serving process whose mount did not come up as it should, and takes down a mount it
/// leaves (killed, it cannot unmount itself: its mount would stay, stale). The mountpoint was
/// not mounted before it started, so a musicfs mount found there now is its.
fn abandon(child: &mut Child, path: &Path) {
    let _ = child.kill();
    let _ = child.wait();
    if top_mount(path).is_some_and(|top| top.is_musicfs()) {
        if let Err(e) = unmount(path) {
            tracing::warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines() {
        let mounted = Mounted {
            path: "/m".into(),
            device: 42,
        };
        assert_eq!(parse_ready_line(&mounted.ready_line()), Some(42));
        for bad in [
            "",
            "ready",
            "ready \n",
            "ready x\n",
            "mounted 42\n",
            "ready 4 2\n",
        ] {
            assert_eq!(parse_ready_line(bad), None, "{bad:?}");
        }
    }
}
