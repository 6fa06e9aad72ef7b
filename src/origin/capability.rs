//! What an origin can do, and how it tells that a file may have changed.
//!
//! Callers branch on [`Capabilities`], never on the transport: a sync skips the directory
//! fsync of an origin without durable commit, a scan detects renames only where identities
//! are stable, mtimes are compared at the coarser resolution of the two sides. Each transport
//! states its own capabilities; wrappers pass them through unchanged.

use serde::{Deserialize, Serialize};

/// What an origin can do. Plain data: each transport returns a constant (or one fixed when
/// its session started, for extensions a server may or may not offer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// A rename replaces an existing target in one step: a reader sees the old entry or the
    /// new one, never neither. Without it, [`super::TempFile::commit`] and
    /// [`super::WritableOrigin::rename`] over an existing entry fail (they never remove the
    /// target first), and a sync reports that file as a problem.
    pub atomic_replace: bool,
    /// A written file and a directory's entries can be flushed to stable storage (fsync of
    /// the file and of its directory). Without it, `commit` and `sync_dir` return once the
    /// server has the data, relying on its own writeback; a sync does not ask for directory
    /// fsyncs.
    pub durable_commit: bool,
    /// Symbolic links can be listed and created. Without it, a sync reports every symlink it
    /// would create as a problem and skips it: it is never written as a file.
    pub symlinks: bool,
    /// A real hierarchy of directories with their own mode and mtime. Without it (key
    /// prefixes, as in S3), directories exist only through the files below them.
    pub directories: bool,
    /// Entries carry a [`ChangeKey`] whose identity ([`ChangeKey::identity`]) survives a
    /// rename within the origin, so a scan recognises a moved file without reading it.
    pub stable_identity: bool,
    /// A [`ChangeKey::Opaque`] is computed from the content alone (an S3 ETag: the MD5 of
    /// the bytes, or of the parts' MD5s), so an entry at a new path whose key, size and mtime
    /// equal those of an entry that vanished holds the same bytes, and a scan takes it as
    /// moved without reading it. False where the key names a file rather than its bytes (an
    /// SMB file id and change time).
    pub content_keys: bool,
    /// How finely the origin keeps modification times.
    pub mtime_resolution: MtimeResolution,
}

/// How finely an origin keeps modification times: an mtime set through it is truncated to
/// this, and two mtimes are the same for it when they agree at this resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MtimeResolution {
    /// Nanoseconds (ext4, XFS, btrfs).
    Nanosecond,
    /// Microseconds (`utimes`, some NFS servers).
    Microsecond,
    /// Whole seconds (SFTP version 3 attributes).
    Second,
    /// Two seconds (FAT).
    TwoSeconds,
}

impl MtimeResolution {
    /// The resolution in nanoseconds.
    pub fn ns(self) -> i64 {
        match self {
            MtimeResolution::Nanosecond => 1,
            MtimeResolution::Microsecond => 1_000,
            MtimeResolution::Second => 1_000_000_000,
            MtimeResolution::TwoSeconds => 2_000_000_000,
        }
    }

    /// `mtime_ns` as an origin of this resolution keeps it (rounded down).
    pub fn truncate(self, mtime_ns: i64) -> i64 {
        let step = self.ns();
        mtime_ns.div_euclid(step) * step
    }

    /// Whether two mtimes are the same at this resolution.
    pub fn same(self, a: i64, b: i64) -> bool {
        self.truncate(a) == self.truncate(b)
    }
}

/// Bytes or numbers that change whenever an entry's content may have changed, as far as the
/// transport can tell without reading it. An [`super::EntryStat`] is unchanged when its size,
/// mtime and mode are equal *and* its change keys are equal (`==`), with these meanings per
/// variant:
///
/// - [`ChangeKey::Posix`]: unchanged when device, inode and ctime are all equal. The ctime
///   is set by every write and by no user, so a tool that restores the mtime after an edit
///   still changes the key; a new inode at the same path (an editor that writes a copy and
///   renames it over) changes it too.
/// - [`ChangeKey::Opaque`]: unchanged when the bytes are equal (an S3 ETag, an SMB file id
///   with its change time): the transport promises new bytes for new content.
/// - [`ChangeKey::None`]: the transport offers nothing; unchanged means size, mtime and mode
///   alone, and an edit that restores all three goes unnoticed until a `--checksum` scan.
///
/// Keys of two different variants are never equal: a repository that recorded one kind and
/// now sees another reads the file again.
///
/// Stored in the repository's scan state (postcard, `docs/format.md`): a variant index
/// (`None` 0, `Posix` 1, `Opaque` 2) then the fields, so the order of the variants is part
/// of the repository format and must never change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeKey {
    /// Nothing: size and mtime are all the transport gives.
    #[default]
    None,
    /// A POSIX file system's `st_dev`, `st_ino` and `st_ctime` (ns since the epoch).
    Posix {
        /// Device number.
        dev: u64,
        /// Inode number.
        ino: u64,
        /// Inode change time, ns since the epoch.
        ctime_ns: i64,
    },
    /// Bytes that change whenever the content may have changed.
    Opaque(Box<[u8]>),
}

/// The part of a change key that names a file whatever its path: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl ChangeKey {
    /// The file's identity, when the key has one that survives a rename (only
    /// [`ChangeKey::Posix`] today). Meaningful for rename detection only on an origin whose
    /// [`Capabilities::stable_identity`] is true.
    pub fn identity(&self) -> Option<Identity> {
        match self {
            ChangeKey::Posix { dev, ino, .. } => Some(Identity {
                dev: *dev,
                ino: *ino,
            }),
            ChangeKey::None | ChangeKey::Opaque(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtimes_compare_at_the_resolution() {
        let r = MtimeResolution::Second;
        assert!(r.same(5_000_000_000, 5_999_999_999));
        assert!(!r.same(5_999_999_999, 6_000_000_000));
        assert_eq!(
            r.truncate(-1),
            -1_000_000_000,
            "before the epoch rounds down"
        );
        assert!(MtimeResolution::Nanosecond.same(7, 7));
        assert!(!MtimeResolution::Nanosecond.same(7, 8));
        assert_eq!(
            MtimeResolution::TwoSeconds.truncate(3_500_000_000),
            2_000_000_000
        );
        assert_eq!(MtimeResolution::Microsecond.truncate(1_234_567), 1_234_000);
    }

    #[test]
    fn change_keys_encode_compactly_and_round_trip() {
        let keys = [
            ChangeKey::None,
            ChangeKey::Posix {
                dev: 2049,
                ino: 131_073,
                ctime_ns: 1_704_067_200_000_000_000,
            },
            ChangeKey::Opaque(b"\"9b2cf535f27731c974343645a3985328\"".to_vec().into()),
        ];
        for key in keys {
            let bytes = postcard::to_allocvec(&key).expect("encode");
            let back: ChangeKey = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(back, key);
        }
        assert_eq!(postcard::to_allocvec(&ChangeKey::None).expect("none"), [0]);
        let posix = ChangeKey::Posix {
            dev: 1,
            ino: 2,
            ctime_ns: -1,
        };
        assert_eq!(postcard::to_allocvec(&posix).expect("posix"), [1, 1, 2, 1]);
        let opaque = ChangeKey::Opaque(vec![0xab, 0xcd].into());
        assert_eq!(
            postcard::to_allocvec(&opaque).expect("opaque"),
            [2, 2, 0xab, 0xcd]
        );
    }

    #[test]
    fn only_posix_keys_have_an_identity() {
        let posix = ChangeKey::Posix {
            dev: 3,
            ino: 4,
            ctime_ns: 5,
        };
        assert_eq!(posix.identity(), Some(Identity { dev: 3, ino: 4 }));
        assert_eq!(ChangeKey::None.identity(), None);
        assert_eq!(ChangeKey::Opaque(vec![1].into()).identity(), None);
        assert_ne!(ChangeKey::None, ChangeKey::Opaque(Vec::new().into()));
    }
}
