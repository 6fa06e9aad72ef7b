//! `musicfs mount`: a read-only FUSE view of every snapshot in the repository.
//!
//! The namespace (`view`) and the verified reads (`reader`, `cache`) know nothing of FUSE; `fs`
//! adapts them to fuser. This module runs a mount: it checks the mountpoint (`mountpoint`: a
//! stale mount left by a killed process is reported, not mounted over; a directory holding
//! files is refused unless asked), mounts, raises the kernel's readahead for the mount, and
//! serves until the file system is unmounted from outside (`fusermount3 -u`, `umount`) or the
//! process gets SIGINT, SIGTERM or SIGHUP, when it unmounts itself. `detached` runs the same
//! from a background process, which logs to a bounded file (`log`), and says "mounted" only
//! once it has seen the mount served.
//! Mounting reads only the snapshot records, never a tree, so it takes the same time whatever
//! the library's size. Nothing here ever writes to an origin or to the repository, and nothing
//! unmounts a mountpoint unless the mount there is alive and its own.

mod cache;
mod detached;
mod fs;
mod log;
mod mountpoint;
mod reader;
mod view;

pub use detached::spawn_detached;
pub use fs::{MusicFs, MAX_READ};
pub use log::{default_log_file, BoundedLog, MAX_LOG_BYTES};
pub use mountpoint::{
    check_fuse_device, check_may_share, check_mountpoint, is_mounted, shell_quoted, unmount,
};
pub use reader::{OpenFile, Reader};
pub use view::{origin_dir_name, snapshot_dir_name, Attr, Entry, Kind, Listing, View, ROOT};

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::repo::Repository;
use mountpoint::{connection_alive, top_mount, FS_NAME};

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Bytes of verified chunks kept in memory.
    pub cache_bytes: usize,
    /// Threads serving kernel requests.
    pub threads: usize,
    /// Mount on a directory that holds files (hiding them while mounted).
    pub nonempty: bool,
    /// Who besides the mounting user may use the mount.
    pub access: Access,
    /// How origins are reached when a chunk is read from them (`--timeout`, `--rsh`, …).
    pub origins: crate::origin::OpenOptions,
}

/// Who may use a mount. FUSE lets only the user who mounted in, not even root, unless asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Access {
    /// The user who mounted, alone.
    #[default]
    Owner,
    /// That user and root (`allow_root`).
    OwnerAndRoot,
    /// Every user, as file modes allow (`allow_other`), for a media server with its own
    /// account.
    Everyone,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            cache_bytes: 128 << 20,
            threads: std::thread::available_parallelism()
                .map(|n| n.get().clamp(2, 16))
                .unwrap_or(4),
            nonempty: false,
            access: Access::Owner,
            origins: crate::origin::OpenOptions::default(),
        }
    }
}

/// A mount that is up and served.
#[derive(Clone, Debug)]
pub struct Mounted {
    /// The mountpoint, absolute.
    pub path: PathBuf,
    /// The device number of the mount's root, as a `stat` through FUSE gives it. No other
    /// live file system has it, so it tells this mount from whatever else is or was mounted
    /// on the same path.
    pub device: u64,
}

/// Mounts the snapshots of `repo` on `mountpoint` and serves them until the file system is
/// unmounted or a SIGINT, SIGTERM or SIGHUP arrives (then it unmounts itself; when files are
/// still open, lazily: the mount disappears at once and the process serves the open files
/// until they are closed). `ready` is called once the mount is up and answers; when it
/// fails, the mount is taken down again and the error returned.
pub fn mount(
    repo: Repository,
    mountpoint: &Path,
    options: MountOptions,
    ready: impl FnOnce(&Mounted) -> io::Result<()>,
) -> Result<()> {
    let path = check_mountpoint(mountpoint, options.nonempty)?;
    if options.access != Access::Owner {
        check_may_share()?;
    }
    check_fuse_device()?;
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
        &path,
        options.cache_bytes,
        options.origins.clone(),
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(FS_NAME.into()),
        fuser::MountOption::Subtype(FS_NAME.into()),
        fuser::MountOption::RO,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoAtime,
        fuser::MountOption::DefaultPermissions,
    ];
    config.acl = match options.access {
        Access::Owner => fuser::SessionACL::Owner,
        Access::OwnerAndRoot => fuser::SessionACL::RootAndOwner,
        Access::Everyone => fuser::SessionACL::All,
    };
    config.n_threads = Some(options.threads.max(1));
    config.clone_fd = true;
    let session = fuser::Session::new(fs, &path, &config).map_err(|e| Error::io(&path, e))?;
    // A second descriptor of this mount's FUSE connection: polling it tells whether the mount
    // is still alive, whatever is mounted on the path meanwhile.
    let connection = session
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::io(&path, e))?;
    let background = session.spawn().map_err(|e| Error::io(&path, e))?;
    match serve(&path, connection.as_fd(), &stop, &background, ready) {
        Ok(()) => join_session(background)
            .or_else(connection_ended)
            .map_err(|e| Error::io(&path, e)),
        Err(e) => {
            release_session(background);
            Err(e)
        }
    }
}

/// Reports the mount up and serves it until its session ends (unmounted from outside) or a
/// signal asks to stop (then unmounts it). Returns once nothing remains to do but wait for
/// the session's end.
fn serve(
    path: &Path,
    connection: BorrowedFd<'_>,
    stop: &AtomicBool,
    background: &fuser::BackgroundSession,
    ready: impl FnOnce(&Mounted) -> io::Result<()>,
) -> Result<()> {
    // Answered by this process's own session, which already runs.
    let device = match std::fs::metadata(path) {
        Ok(meta) => meta.dev(),
        Err(e) => {
            // Just mounted, not yet known by its device: the live mount on the path is ours.
            if connection_alive(connection) {
                unmount(path)?;
            }
            return Err(Error::io(path, e));
        }
    };
    raise_readahead(device);
    let mounted = Mounted {
        path: path.to_path_buf(),
        device,
    };
    if let Err(e) = ready(&mounted) {
        unmount_own(&mounted, connection)?;
        return Err(Error::Mount {
            path: path.to_path_buf(),
            message: format!("could not report the mount up: {e}"),
        });
    }
    loop {
        if background.guard.is_finished() {
            // Unmounted from outside (the connection is gone: nothing to do), or the session
            // failed and left the mount up without a server.
            return unmount_own(&mounted, connection);
        }
        if stop.load(Ordering::Relaxed) {
            return unmount_own(&mounted, connection);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Unmounts `mounted` if it is still alive and still the mount its path reaches. Once
/// `fusermount3 -u` has taken it down, the path may already hold a new mount (a `musicfs
/// mount` run right after), which must be left alone.
fn unmount_own(mounted: &Mounted, connection: BorrowedFd<'_>) -> Result<()> {
    if !connection_alive(connection) {
        return Ok(());
    }
    match top_mount(&mounted.path) {
        Some(top) if top.device == mounted.device => unmount(&mounted.path),
        _ => Err(Error::Mount {
            path: mounted.path.clone(),
            message: "another file system is mounted over this one; not unmounting it".into(),
        }),
    }
}

/// Waits for the session's thread to end and returns how it ended, without letting fuser
/// unmount anything.
///
/// fuser 0.18.0 unmounts the mountpoint's path when a session's mount handle is dropped, even
/// when its own file system is already gone (its liveness check reads the device's POLLERR
/// backwards). After `fusermount3 -u`, that took down whatever had been mounted on the same
/// path since: a `musicfs mount` run right after the unmount reported "mounted", and its mount
/// vanished when the previous process exited. So the handle is never dropped: the thread's
/// handle is swapped for a finished placeholder's and the session is leaked (a `/dev/fuse`
/// descriptor, closed when the process exits). Unmounting is [`unmount_own`]'s job alone.
fn join_session(mut background: fuser::BackgroundSession) -> io::Result<()> {
    let placeholder = std::thread::Builder::new().spawn(|| Ok(()));
    let session_thread = match placeholder {
        Ok(placeholder) => std::mem::replace(&mut background.guard, placeholder),
        Err(e) => {
            release_session(background);
            return Err(e);
        }
    };
    release_session(background);
    session_thread
        .join()
        .map_err(|_| io::Error::other("the FUSE session's thread panicked"))?
}

/// A session that ended once the file system was unmounted, on `ECONNABORTED`: the end it is,
/// not a failure. The kernel ends a session's reads with `ENODEV` (which fuser takes as the
/// end) or, when the connection is torn down while one of the session's threads is taking a
/// request (its last file closed right as the lazy unmount completed), `ECONNABORTED`, which
/// fuser 0.18.0 returns as an error. Seen in about 1 of 10 runs of an unprivileged mount
/// stopped by SIGTERM with a file open (`tests/mount_unprivileged.rs`), on Linux 6.18.
fn connection_ended(e: io::Error) -> io::Result<()> {
    if e.raw_os_error() == Some(libc::ECONNABORTED) {
        tracing::debug!("the FUSE session ended with the connection aborted: {e}");
        Ok(())
    } else {
        Err(e)
    }
}

/// Lets go of a session without dropping it (see [`join_session`]): its thread ends on its own
/// once the file system is unmounted.
fn release_session(background: fuser::BackgroundSession) {
    std::mem::forget(background);
}

/// Raises the readahead of the mount of `device` to 1 MiB, so that sequential reads reach the
/// file system as 1 MiB requests; quietly does nothing when `/sys` refuses (not root).
fn raise_readahead(device: u64) {
    let major = nix::sys::stat::major(device);
    let minor = nix::sys::stat::minor(device);
    let file = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    let kib = MAX_READ / 1024;
    if let Err(e) = std::fs::write(&file, format!("{kib}\n")) {
        tracing::debug!("{file}: {e}");
    }
}
