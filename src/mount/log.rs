//! Where a detached mount logs: a file the user can find, bounded in size.
//!
//! A detached serving process has no terminal, so its warnings (why a track gives `EIO`) go
//! to `$XDG_STATE_HOME/musicfs/mount-<mountpoint>.log` (default `~/.local/state/musicfs/`), or
//! to the file named by `--log-file`. The file is never deleted behind the user's back; once it
//! passes [`MAX_LOG_BYTES`] it is renamed to `<name>.1` (replacing the previous one) and a new
//! one is started, so a mount that warns forever keeps at most twice that on disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::view::origin_dir_name;
use crate::error::{Error, Result};

/// The size past which a mount's log is rotated.
pub const MAX_LOG_BYTES: u64 = 4 << 20;

/// The default log of a mount on `mountpoint`: `$XDG_STATE_HOME/musicfs/mount-NAME.log`, else
/// `~/.local/state/musicfs/mount-NAME.log`, where NAME is the absolute mountpoint with its
/// `/` replaced by `_`. `None` when neither `XDG_STATE_HOME` nor `HOME` is set.
pub fn default_log_file(mountpoint: &Path) -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|home| Path::new(&home).join(".local/state"))
        })?;
    let absolute = mountpoint
        .canonicalize()
        .or_else(|_| std::path::absolute(mountpoint))
        .unwrap_or_else(|_| mountpoint.to_path_buf());
    let name = origin_dir_name(&absolute.to_string_lossy());
    Some(state.join("musicfs").join(format!("mount-{name}.log")))
}

/// An append-only log file that rotates itself once it passes a size.
pub struct BoundedLog {
    path: PathBuf,
    file: File,
    written: u64,
    limit: u64,
}

impl BoundedLog {
    /// Opens `path` for appending (creating it and its directory), rotating it first when it
    /// is already past `limit` bytes.
    pub fn open(path: &Path, limit: u64) -> Result<BoundedLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut log = BoundedLog {
            path: path.to_path_buf(),
            file: append(path).map_err(|e| Error::io(path, e))?,
            written: 0,
            limit,
        };
        log.written = log.file.metadata().map_err(|e| Error::io(path, e))?.len();
        if log.written > limit {
            log.rotate().map_err(|e| Error::io(path, e))?;
        }
        Ok(log)
    }

    /// The log's current size in bytes.
    pub fn len(&self) -> u64 {
        self.written
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Another handle on the file being written now, for a process's standard error.
    pub fn try_clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    fn rotate(&mut self) -> io::Result<()> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, old)?;
        self.file = append(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for BoundedLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.limit {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_past_its_limit_keeping_one_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/musicfs/mount.log");
        let mut log = BoundedLog::open(&path, 100).expect("open");
        for i in 0..30 {
            writeln!(log, "line {i:03} .....").expect("write");
        }
        let now = std::fs::read_to_string(&path).expect("read");
        let old =
            std::fs::read_to_string(dir.path().join("state/musicfs/mount.log.1")).expect("rotated");
        assert!(now.len() <= 100 && old.len() <= 100, "{now:?} {old:?}");
        assert!(now.ends_with("line 029 .....\n"), "{now:?}");
        assert!(!dir.path().join("state/musicfs/mount.log.2").exists());
        drop(log);
        // Reopened past its limit: rotated first.
        std::fs::write(&path, vec![b'x'; 150]).expect("write");
        let log = BoundedLog::open(&path, 100).expect("reopen");
        assert!(log.is_empty());
    }
}
