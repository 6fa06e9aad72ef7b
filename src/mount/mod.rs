//! `musicfs mount`: a read-only FUSE view of every snapshot in the repository.
//!
//! The namespace (`view`) and the verified reads (`reader`, `cache`) know nothing of FUSE; `fs`
//! adapts them to fuser. This module runs a mount: it checks the mountpoint (a stale mount
//! left by a killed process is reported, not mounted over), mounts, raises the kernel's
//! readahead for the mount, and serves until the file system is unmounted from outside
//! (`fusermount3 -u`, `umount`) or the process gets SIGINT, SIGTERM or SIGHUP, when it
//! unmounts itself. Mounting reads only the snapshot records, never a tree, so it takes the
//! same time whatever the library's size. Nothing here ever writes to an origin or to the
//! repository.

mod cache;
mod fs;
mod reader;
mod view;

pub use fs::{MusicFs, MAX_READ};
pub use reader::{OpenFile, Reader};
pub use view::{origin_dir_name, snapshot_dir_name, Attr, Entry, Kind, Listing, View, ROOT};

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::repo::Repository;

/// How to mount.
#[derive(Clone, Copy, Debug)]
pub struct MountOptions {
    /// Bytes of verified chunks kept in memory.
    pub cache_bytes: usize,
    /// Threads serving kernel requests.
    pub threads: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            cache_bytes: 128 << 20,
            threads: std::thread::available_parallelism()
                .map(|n| n.get().clamp(2, 16))
                .unwrap_or(4),
        }
    }
}

/// Whether `path` is a mountpoint now (per `/proc/self/mountinfo`).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = escape_mountinfo(&path.to_string_lossy());
    info.lines()
        .any(|line| line.split(' ').nth(4) == Some(want.as_str()))
}

/// Paths in mountinfo have space, tab, newline and backslash written as octal escapes.
fn escape_mountinfo(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

/// Checks that `mountpoint` can be mounted on and returns its absolute path. A stale FUSE
/// mount (its process was killed: every access fails with ENOTCONN) is reported with the
/// command that clears it.
pub fn check_mountpoint(mountpoint: &Path) -> Result<PathBuf> {
    let io_err = |e: io::Error| Error::io(mountpoint, e);
    // Listing reaches a FUSE server even when the kernel still caches the root's attributes.
    match std::fs::read_dir(mountpoint).and_then(|_| std::fs::metadata(mountpoint)) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(Error::InvalidInput(format!(
                "{}: stale mount: the process that served it has ended (transport endpoint \
                 is not connected); clear it with `fusermount3 -u {0}` or `umount {0}`, then \
                 mount again",
                mountpoint.display()
            )))
        }
        Err(e) => return Err(io_err(e)),
        Ok(m) if !m.is_dir() => {
            return Err(Error::InvalidInput(format!(
                "{}: not a directory",
                mountpoint.display()
            )))
        }
        Ok(_) => {}
    }
    let path = mountpoint.canonicalize().map_err(io_err)?;
    if is_mounted(&path) {
        return Err(Error::InvalidInput(format!(
            "{}: already a mountpoint; unmount it first",
            path.display()
        )));
    }
    Ok(path)
}

/// Mounts the snapshots of `repo` on `mountpoint` and serves them until the file system is
/// unmounted or a SIGINT, SIGTERM or SIGHUP arrives (then it unmounts itself; when files are
/// still open, lazily: the mount disappears at once and the process serves the open files
/// until they are closed). `ready` is called once the mount is up.
pub fn mount(
    repo: Repository,
    mountpoint: &Path,
    options: MountOptions,
    ready: impl FnOnce(&Path),
) -> Result<()> {
    let path = check_mountpoint(mountpoint)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| Error::io(&path, e))?;
    }
    let view = Arc::new(View::new(Arc::new(repo))?);
    let fs = MusicFs::new(
        view,
        options.cache_bytes,
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("musicfs".into()),
        fuser::MountOption::Subtype("musicfs".into()),
        fuser::MountOption::RO,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoAtime,
        fuser::MountOption::DefaultPermissions,
    ];
    config.n_threads = Some(options.threads.max(1));
    config.clone_fd = true;
    let session = fuser::Session::new(fs, &path, &config).map_err(|e| Error::io(&path, e))?;
    let background = session.spawn().map_err(|e| Error::io(&path, e))?;
    raise_readahead(&path);
    ready(&path);
    loop {
        if background.guard.is_finished() {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            unmount(&path)?;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    background.join().map_err(|e| Error::io(&path, e))
}

/// Unmounts `path`: plainly, else lazily when busy; through `fusermount3 -u` when not root.
pub fn unmount(path: &Path) -> Result<()> {
    use nix::errno::Errno;
    use nix::mount::{umount2, MntFlags};
    match umount2(path, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL) => Ok(()),
        Err(Errno::EBUSY) => {
            tracing::warn!(
                "{}: busy (files are open); detaching now, serving open files until closed",
                path.display()
            );
            umount2(path, MntFlags::MNT_DETACH).map_err(|e| Error::io(path, e.into()))
        }
        Err(Errno::EPERM) => {
            let status = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(path)
                .stdin(Stdio::null())
                .status()
                .map_err(|e| Error::io(Path::new("fusermount3"), e))?;
            if status.success() {
                Ok(())
            } else {
                Err(Error::InvalidInput(format!(
                    "{}: fusermount3 -u failed ({status})",
                    path.display()
                )))
            }
        }
        Err(e) => Err(Error::io(path, e.into())),
    }
}

/// Raises the mount's readahead to 1 MiB, so that sequential reads reach the file system as
/// 1 MiB requests; quietly does nothing when `/sys` refuses (not root).
fn raise_readahead(path: &Path) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let file = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    let kib = MAX_READ / 1024;
    if let Err(e) = std::fs::write(&file, format!("{kib}\n")) {
        tracing::debug!("{file}: {e}");
    }
}

/// Starts `program args` (a `musicfs mount --foreground`) detached from this process's
/// terminal and session, and waits until `mountpoint` is mounted. Its standard error goes to
/// `log` until then; when it ends without mounting, that text is the error.
pub fn spawn_detached(
    program: &Path,
    args: &[std::ffi::OsString],
    mountpoint: &Path,
    log: &Path,
) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let path = check_mountpoint(mountpoint)?;
    let log_file = std::fs::File::create(log).map_err(|e| Error::io(log, e))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io(program, e))?;
    let started = Instant::now();
    loop {
        if is_mounted(&path) {
            let _ = std::fs::remove_file(log);
            return Ok(child.id());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let _ = std::fs::remove_file(log);
            return Err(Error::InvalidInput(format!(
                "{}: mount failed ({status}): {}",
                path.display(),
                text.trim()
            )));
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = std::fs::remove_file(log);
            return Err(Error::InvalidInput(format!(
                "{}: not mounted after 30 s (pid {} still running)",
                path.display(),
                child.id()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
