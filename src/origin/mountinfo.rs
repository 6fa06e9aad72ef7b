//! Which file system a device belongs to, read from `/proc/self/mountinfo`: how the local
//! origin recognises a musicfs mount without reading through it. Mounted through
//! `fusermount3` its type is `fuse.musicfs`; mounted by root through mount(2) it is `fuse`
//! with the source `musicfs` (the `fsname` every musicfs mount gives).
//!
//! Mounts are matched by device number (mountinfo's third field, `major:minor`), never by
//! mount point path, so the octal escapes of paths (`\040` for a space) never matter. This
//! module must never open, list or stat anything inside a mount.

use std::collections::HashMap;

/// The source (`fsname`) a `musicfs mount` gives.
const MUSICFS_SOURCE: &str = "musicfs";

/// What is mounted: its file system type and source.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Mounted {
    /// `ext4`, `tmpfs`, `fuse`, `fuse.SUBTYPE`, ...
    pub fstype: String,
    /// The device or name it was mounted from.
    pub source: String,
}

impl Mounted {
    /// Whether this is a musicfs mount.
    pub(crate) fn is_musicfs(&self) -> bool {
        self.fstype == "fuse.musicfs"
            || ((self.fstype == "fuse" || self.fstype.starts_with("fuse."))
                && self.source == MUSICFS_SOURCE)
    }
}

/// Mounts by device number, from one reading of the mount table.
#[derive(Debug, Default)]
pub(crate) struct MountTable {
    by_device: HashMap<u64, Mounted>,
}

impl MountTable {
    /// The mount table of this process now; empty (nothing is a musicfs mount) where it
    /// cannot be read.
    pub(crate) fn read() -> MountTable {
        match std::fs::read_to_string("/proc/self/mountinfo") {
            Ok(text) => MountTable::parse(&text),
            Err(e) => {
                tracing::debug!("/proc/self/mountinfo: {e}; no musicfs mount can be recognised");
                MountTable::default()
            }
        }
    }

    /// Parses mountinfo lines: `id parent major:minor root mountpoint options [optional
    /// fields] - fstype source super-options`. Lines that do not parse are ignored.
    pub(crate) fn parse(text: &str) -> MountTable {
        let mut by_device = HashMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let device = fields.get(2).and_then(|d| {
                let (major, minor) = d.split_once(':')?;
                Some(nix::sys::stat::makedev(
                    major.parse().ok()?,
                    minor.parse().ok()?,
                ))
            });
            let after_dash = fields
                .iter()
                .skip(6)
                .position(|f| *f == "-")
                .map(|i| 6 + i + 1);
            let fstype = after_dash.and_then(|i| fields.get(i));
            let source = after_dash.and_then(|i| fields.get(i + 1));
            if let (Some(device), Some(fstype), Some(source)) = (device, fstype, source) {
                by_device.insert(
                    device,
                    Mounted {
                        fstype: (*fstype).to_string(),
                        source: (*source).to_string(),
                    },
                );
            }
        }
        MountTable { by_device }
    }

    /// What is mounted from device `dev` (an `st_dev`), if anything.
    pub(crate) fn get(&self, dev: u64) -> Option<&Mounted> {
        self.by_device.get(&dev)
    }

    /// Whether device `dev` is a musicfs mount.
    pub(crate) fn is_musicfs(&self, dev: u64) -> bool {
        self.get(dev).is_some_and(Mounted::is_musicfs)
    }
}

/// The mount table, read at most once and only when first needed: a walk that meets no
/// device boundary never reads it.
#[derive(Debug, Default)]
pub(crate) struct LazyMountTable(Option<MountTable>);

impl LazyMountTable {
    /// Whether device `dev` is a musicfs mount.
    pub(crate) fn is_musicfs(&mut self, dev: u64) -> bool {
        self.0.get_or_insert_with(MountTable::read).is_musicfs(dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
61 22 0:52 / /music/lib/.snap\\040shots ro,nosuid,nodev shared:33 master:2 - fuse musicfs ro,user_id=0
62 22 0:53 / /music/lib/tmp rw - tmpfs tmpfs rw
63 22 0:54 / /music/lib/m rw - fuse.musicfs musicfs rw
64 22 0:55 / /music/lib/s rw - fuse.sshfs host:/x rw
garbage line
";

    #[test]
    fn recognises_a_musicfs_mount_by_device_whatever_its_path() {
        let table = MountTable::parse(SAMPLE);
        let dev = |minor| nix::sys::stat::makedev(0, minor);
        assert!(
            table.is_musicfs(dev(52)),
            "mounted by root: fuse, source musicfs"
        );
        assert!(
            table.is_musicfs(dev(54)),
            "through fusermount3: fuse.musicfs"
        );
        assert!(!table.is_musicfs(dev(55)), "another FUSE file system");
        assert!(!table.is_musicfs(dev(53)));
        assert_eq!(table.get(dev(53)).map(|m| m.fstype.as_str()), Some("tmpfs"));
        assert!(table.get(nix::sys::stat::makedev(8, 1)).is_some());
        assert!(table.get(dev(99)).is_none());
    }
}
