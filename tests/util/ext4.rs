//! A damaged disk for the tests of `verify` (`tests/verify.rs`, `tests/verify_repair.rs`): a
//! loop-mounted ext4 image whose bytes are flipped under a file behind the file system's back,
//! so the file's metadata stays as it was.

use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{require_tool, run_ok, TestRepo};

/// An ext4 file system in an image file, loop-mounted while the value lives.
pub struct Ext4 {
    image: PathBuf,
    /// Where the image is mounted.
    pub mount: PathBuf,
}

impl Ext4 {
    pub fn new(t: &TestRepo) -> Ext4 {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test loop-mounts an ext4 image: run it as root (as scripts/test.sh does)"
        );
        let image = t.path("disk.img");
        File::create(&image).unwrap().set_len(32 << 20).unwrap();
        run_ok(
            Command::new(require_tool("mkfs.ext4", "e2fsprogs"))
                .args(["-q", "-F", "-b", "4096"])
                .arg(&image),
        );
        let mount = t.mkdir("disk");
        run_ok(
            Command::new(require_tool("mount", "mount"))
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&mount),
        );
        Ext4 { image, mount }
    }

    /// Flips the byte at `offset` of `file` (inside the mount) in the image beneath the file
    /// system, then drops the file's cached pages: no system call touches the file, so its
    /// size, times, inode and mode stay as they were. Asserts that they did.
    pub fn rot(&self, file: &Path, offset: u64) {
        const BLOCK: u64 = 4096;
        let before = stat_key(file);
        File::open(file).unwrap().sync_all().unwrap();
        let out = run_ok(
            Command::new(require_tool("filefrag", "e2fsprogs"))
                .args(["-s", "-v", "-b4096"])
                .arg(file),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !text.contains("unknown") && !text.contains("delalloc"),
            "{file:?} has blocks not yet allocated:\n{text}"
        );
        let block = offset / BLOCK;
        let physical = text
            .lines()
            .filter_map(|line| {
                let cleaned = line.replace("..", " ").replace(':', " ");
                let f: Vec<u64> = cleaned
                    .split_whitespace()
                    .take(5)
                    .map_while(|w| w.parse().ok())
                    .collect();
                // extent, logical start, logical end, physical start, physical end
                (f.len() == 5 && (f[1]..=f[2]).contains(&block)).then(|| f[3] + block - f[1])
            })
            .next()
            .unwrap_or_else(|| panic!("no extent holds block {block} of {file:?}:\n{text}"));
        let at = physical * BLOCK + offset % BLOCK;
        let image = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.image)
            .unwrap();
        let mut byte = [0u8; 1];
        image.read_exact_at(&mut byte, at).unwrap();
        byte[0] ^= 0xFF;
        image.write_all_at(&byte, at).unwrap();
        image.sync_all().unwrap();
        let f = File::open(file).unwrap();
        nix::fcntl::posix_fadvise(
            &f,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .unwrap();
        assert_eq!(stat_key(file), before, "the metadata of {file:?} changed");
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.mount)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        }
    }
}

/// (size, mtime, mtime ns, ctime, ctime ns, inode, device) of a file.
pub fn stat_key(path: &Path) -> (u64, i64, i64, i64, i64, u64, u64) {
    let m = fs::metadata(path).unwrap();
    (
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.ino(),
        m.dev(),
    )
}
