//! The mountpoint as the kernel sees it: what is mounted there (`/proc/self/mountinfo`),
//! whether it may be mounted on, and unmounting it.
//!
//! `umount` names a path, not a file system: it takes down whatever is mounted there now.
//! So nothing here unmounts on the word of a path alone; callers first make sure the mount
//! at the path is the one they mean (by its device number, which no other live file system
//! has) and that it is still alive.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The name every musicfs mount gives as its source (`fsname`).
pub(crate) const FS_NAME: &str = "musicfs";

/// One line of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountEntry {
    /// The device number of the mount's file system (`st_dev` of its root).
    pub device: u64,
    /// The file system type: `fuse` or `fuse.SUBTYPE` for FUSE.
    pub fs_type: String,
    /// The mount's source (for FUSE, its `fsname`).
    pub source: String,
}

impl MountEntry {
    /// Whether this is a musicfs mount (mounted by `mount(2)` as root, it is `fuse`; through
    /// `fusermount3`, `fuse.musicfs`).
    pub fn is_musicfs(&self) -> bool {
        (self.fs_type == "fuse" || self.fs_type.starts_with("fuse.")) && self.source == FS_NAME
    }
}

/// Parses one mountinfo line: `ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [TAGS...] -
/// FSTYPE SOURCE SUPEROPTIONS`. Returns the mount point (escaped as mountinfo writes it: its
/// bytes, which need not be UTF-8) and the entry.
fn parse_mountinfo_line(line: &[u8]) -> Option<(&[u8], MountEntry)> {
    let text = |field: &[u8]| String::from_utf8_lossy(field).into_owned();
    let mut fields = line.split(|&b| b == b' ');
    let (_id, _parent) = (fields.next()?, fields.next()?);
    let numbers = std::str::from_utf8(fields.next()?).ok()?;
    let (major, minor) = numbers.split_once(':')?;
    let device = nix::sys::stat::makedev(major.parse().ok()?, minor.parse().ok()?);
    let _root = fields.next()?;
    let mount_point = fields.next()?;
    let mut rest = fields.skip_while(|f| *f != b"-").skip(1);
    let fs_type = text(rest.next()?);
    let source = text(rest.next()?);
    Some((
        mount_point,
        MountEntry {
            device,
            fs_type,
            source,
        },
    ))
}

/// The mounts on `path` (absolute and canonical), in the order they were mounted: the last
/// is the one the path reaches. Paths are compared as bytes: a mountpoint's name need not be
/// UTF-8.
pub(crate) fn mounts_at(path: &Path) -> Vec<MountEntry> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(info) = std::fs::read("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let want = escape_mountinfo(path.as_os_str().as_bytes());
    info.split(|&b| b == b'\n')
        .filter_map(parse_mountinfo_line)
        .filter(|(mount_point, _)| *mount_point == want.as_slice())
        .map(|(_, entry)| entry)
        .collect()
}

/// The mount that `path` reaches, if something is mounted on it.
pub(crate) fn top_mount(path: &Path) -> Option<MountEntry> {
    mounts_at(path).pop()
}

/// Whether `path` is a mountpoint now (per `/proc/self/mountinfo`).
pub fn is_mounted(path: &Path) -> bool {
    !mounts_at(path).is_empty()
}

/// Paths in mountinfo have space, tab, newline and backslash written as octal escapes; every
/// other byte is written as it is.
fn escape_mountinfo(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

/// `path` as one shell word, quoted when it needs to be, for commands printed to be pasted.
pub fn shell_quoted(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Checks that `mountpoint` can be mounted on and returns its absolute path. A stale FUSE
/// mount (its process was killed: every access fails with ENOTCONN) is reported with the
/// command that clears it. A directory that holds files is refused unless `nonempty`: the
/// mount would hide them.
pub fn check_mountpoint(mountpoint: &Path, nonempty: bool) -> Result<PathBuf> {
    let refuse = |path: &Path, message: String| Error::Mount {
        path: path.to_path_buf(),
        message,
    };
    // Listing reaches a FUSE server even when the kernel still caches the root's attributes.
    let has_entries = std::fs::read_dir(mountpoint).and_then(|mut dir| {
        let first = dir.next().transpose()?;
        Ok(first.is_some())
    });
    let has_entries = match has_entries {
        Ok(has_entries) => has_entries,
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(refuse(
                mountpoint,
                format!(
                    "stale mount: the process that served it has ended (transport endpoint \
                     is not connected); clear it with `fusermount3 -u {0}` or `umount {0}`, \
                     then mount again",
                    shell_quoted(mountpoint)
                ),
            ))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(refuse(mountpoint, "not a directory".into()))
        }
        Err(e) => return Err(Error::io(mountpoint, e)),
    };
    let path = mountpoint
        .canonicalize()
        .map_err(|e| Error::io(mountpoint, e))?;
    if is_mounted(&path) {
        return Err(refuse(
            &path,
            "already a mountpoint; unmount it first".into(),
        ));
    }
    if has_entries && !nonempty {
        return Err(refuse(
            &path,
            "not empty; mounting would hide its files (--nonempty mounts over it anyway)".into(),
        ));
    }
    Ok(path)
}

/// The FUSE device, which a mount opens first.
pub(crate) const FUSE_DEVICE: &str = "/dev/fuse";

/// Checks that this user can open the FUSE device, so that a user without access is told so,
/// naming the device and what to do, instead of getting "Permission denied" on the mountpoint.
pub fn check_fuse_device() -> Result<()> {
    let device = Path::new(FUSE_DEVICE);
    let refuse = |message: String| Error::Mount {
        path: device.to_path_buf(),
        message,
    };
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
    {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
            Err(refuse(format!(
                "permission denied: this user may not use FUSE ({e}); mount as root, or ask \
                 an administrator to let users open {FUSE_DEVICE} (its usual mode is 0666: \
                 `chmod 0666 {FUSE_DEVICE}`, or add the user to the group owning it)"
            )))
        }
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENXIO | libc::ENODEV)
            ) =>
        {
            Err(refuse(format!(
                "no FUSE device ({e}): load the kernel module with `modprobe fuse` (in a \
                 container, pass the device in, e.g. `--device /dev/fuse`)"
            )))
        }
        Err(e) => Err(Error::io(device, e)),
    }
}

/// The file where an administrator lets users who are not root share their FUSE mounts.
pub(crate) const FUSE_CONF: &str = "/etc/fuse.conf";

/// Checks that this user may let others in to a mount (`allow_other`, which `--allow-root`
/// needs too): root always may; another user only when `/etc/fuse.conf` has a line
/// `user_allow_other`, without which `fusermount3` refuses the mount.
pub fn check_may_share() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let allowed = std::fs::read_to_string(FUSE_CONF)
        .is_ok_and(|conf| conf.lines().any(|l| l.trim() == "user_allow_other"));
    if allowed {
        return Ok(());
    }
    Err(Error::Mount {
        path: PathBuf::from(FUSE_CONF),
        message: "no `user_allow_other` line: only root may let other users (or root) read \
                  a FUSE mount; an administrator can add that line, or mount as root"
            .into(),
    })
}

/// Whether the FUSE connection behind `device_fd` (a descriptor of `/dev/fuse`) is alive.
/// The kernel reports `POLLERR` once its file system is unmounted or the connection aborted.
pub(crate) fn connection_alive(device_fd: BorrowedFd<'_>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut fds = [PollFd::new(device_fd, PollFlags::empty())];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => {
                return !fds[0]
                    .revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL))
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Unmounts `path`: plainly, else lazily when busy; through `fusermount3 -u` when not root.
/// It takes down whatever `path` reaches: check first that it is the mount meant.
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
                .stdout(Stdio::null())
                .status()
                .map_err(|e| Error::io(Path::new("fusermount3"), e))?;
            if status.success() {
                Ok(())
            } else {
                Err(Error::Mount {
                    path: path.to_path_buf(),
                    message: format!("fusermount3 -u failed ({status})"),
                })
            }
        }
        Err(e) => Err(Error::io(path, io::Error::from(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(shell_quoted(Path::new("/mnt/music")), "/mnt/music");
        assert_eq!(shell_quoted(Path::new("/mnt/my music")), "'/mnt/my music'");
        assert_eq!(shell_quoted(Path::new("/mnt/it's")), "'/mnt/it'\\''s'");
        assert_eq!(shell_quoted(Path::new("/a$b")), "'/a$b'");
    }

    #[test]
    fn mountinfo_lines() {
        let line = b"45 27 0:40 / /tmp/a\\040b\xff ro,nosuid,nodev,noatime shared:7 - fuse \
                     musicfs ro,user_id=0,group_id=0";
        let (mount_point, entry) = parse_mountinfo_line(line).expect("parsed");
        assert_eq!(mount_point, escape_mountinfo(b"/tmp/a b\xff"));
        assert_eq!(entry.device, nix::sys::stat::makedev(0, 40));
        assert!(entry.is_musicfs());
        let line = b"46 27 0:41 / /mnt rw - fuse.sshfs host:/x rw";
        let (_, entry) = parse_mountinfo_line(line).expect("parsed");
        assert!(!entry.is_musicfs());
        let line = b"47 27 0:42 / /mnt rw - fuse.musicfs musicfs rw";
        assert!(parse_mountinfo_line(line).expect("parsed").1.is_musicfs());
        for bad in ["", "1 2 3", "1 2 x:y / /m rw - t s o", "1 2 0:1 / /m rw"] {
            assert_eq!(parse_mountinfo_line(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
