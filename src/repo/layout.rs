//! The repository's directory: what makes a directory a repository, how a new one is laid
//! out, and the lock that keeps every command off an index `repair-index` is replacing.
//!
//! A directory is a repository when it holds `repo.toml` (written when it is created),
//! `locks/` (every release has made it on open) or a non-empty `index.redb` (a repository of
//! the first release, before `repo.toml`). Such a directory whose `index.redb` is missing or
//! empty lost its index: that is reported, never answered with a new empty index, which would
//! silently drop every snapshot. This module never opens the database.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The index, a redb database.
pub(super) const INDEX: &str = "index.redb";
/// The file that marks a directory as a repository.
pub(super) const MARKER: &str = "repo.toml";
/// The object store's directory.
pub(super) const OBJECTS: &str = "objects";
/// The directory of lock files.
pub(super) const LOCKS: &str = "locks";
/// The lock every open holds shared and `repair-index` holds exclusively (inside `locks/`).
const INDEX_LOCK: &str = "index.lock";

const MARKER_TEXT: &str = "\
# A musicfs repository: index.redb is its index, locks/ holds its locks (docs/format.md).
# This file marks the directory as a repository, so that a missing index.redb is reported
# instead of silently replaced by an empty one. [chunker] is how the repository's files are
# cut into chunks; every command reads it from here. Changing it makes new chunks that match
# none of the old ones (docs/format.md).
";

/// What a directory holds, as far as repositories go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Survey {
    /// Nothing: the directory does not exist, is empty, or holds only the empty `index.redb`
    /// of a creation that was interrupted before it wrote anything else.
    Vacant,
    /// Other things, and no sign of a repository.
    Foreign,
    /// A repository, whose index is in this state.
    Repository(IndexState),
}

/// The state of `index.redb` in a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IndexState {
    /// A non-empty file.
    Present,
    /// No such file.
    Missing,
    /// A file of 0 bytes.
    Empty,
}

impl IndexState {
    /// The word for [`Error::IndexMissing`], or `None` for a present index.
    pub(super) fn lost(self) -> Option<&'static str> {
        match self {
            IndexState::Present => None,
            IndexState::Missing => Some("missing"),
            IndexState::Empty => Some("empty"),
        }
    }
}

/// The state of `root/index.redb`.
pub(super) fn index_state(root: &Path) -> Result<IndexState> {
    let path = root.join(INDEX);
    match fs::metadata(&path) {
        Ok(meta) if meta.len() == 0 => Ok(IndexState::Empty),
        Ok(_) => Ok(IndexState::Present),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexState::Missing),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// What `root` holds.
pub(super) fn survey(root: &Path) -> Result<Survey> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Survey::Vacant),
        Err(e) => return Err(Error::io(root, e)),
    };
    let index = index_state(root)?;
    let marked = exists(&root.join(MARKER))? || root.join(LOCKS).is_dir();
    if marked || index == IndexState::Present {
        return Ok(Survey::Repository(index));
    }
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        if entry.file_name() != INDEX {
            return Ok(Survey::Foreign);
        }
    }
    Ok(Survey::Vacant)
}

fn exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Makes `root/locks/`, and `root` with it.
pub(super) fn make_locks_dir(root: &Path) -> Result<()> {
    let locks = root.join(LOCKS);
    fs::create_dir_all(&locks).map_err(|e| Error::io(locks, e))
}

/// Writes `repo.toml` unless it is there. Written last when a repository is created, so that a
/// creation interrupted before its index was complete does not look like a lost index.
pub(super) fn write_marker(root: &Path, chunker: &super::config::ChunkerConfig) -> Result<()> {
    let path = root.join(MARKER);
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let text = format!("{MARKER_TEXT}\n{}", chunker.to_toml());
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// `root/index.redb.damaged-<UTC time>` (with `.2`, `.3`… when taken), where a damaged index
/// is kept.
pub(super) fn damaged_name(root: &Path, unix_secs: i64) -> PathBuf {
    let t = crate::time::Civil::of_unix(unix_secs);
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    );
    let base = root.join(format!("{INDEX}.damaged-{stamp}"));
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = PathBuf::from(format!("{}.{n}", base.display()));
    }
    candidate
}

/// A held `locks/index.lock`: shared by every open repository, exclusive while `repair-index`
/// replaces the index or `gc` compacts it. An advisory `flock`, dropped by the kernel with its holder.
#[derive(Debug)]
pub(super) struct IndexLock {
    _file: File,
}

impl IndexLock {
    /// Takes the lock shared; fails at once while `repair-index` or `gc` holds it.
    pub(super) fn shared(root: &Path) -> Result<IndexLock> {
        Self::take(root, None)
    }

    /// Takes the lock exclusively for `command` (`repair-index`, `gc`); fails at once while
    /// any other musicfs process has the repository open.
    pub(super) fn exclusive(root: &Path, command: &str) -> Result<IndexLock> {
        Self::take(root, Some(command))
    }

    fn take(root: &Path, exclusive_for: Option<&str>) -> Result<IndexLock> {
        let exclusive = exclusive_for.is_some();
        make_locks_dir(root)?;
        let path = root.join(LOCKS).join(INDEX_LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match crate::flock::take(&file, !exclusive) {
            Ok(true) => Ok(IndexLock { _file: file }),
            Ok(false) => Err(Error::IndexLocked {
                path: root.to_path_buf(),
                reason: match exclusive_for {
                    Some(command) => format!(
                        "the index is in use by another musicfs process (a scan, sync, mount or \
                         serve); stop it, then run musicfs {command} again"
                    ),
                    None => "musicfs repair-index or gc holds the index; try again when it has \
                             finished"
                        .into(),
                },
            }),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_makes_a_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        assert_eq!(survey(&root).unwrap(), Survey::Vacant);
        fs::create_dir(&root).unwrap();
        assert_eq!(survey(&root).unwrap(), Survey::Vacant);
        // An interrupted creation: an empty index and nothing else.
        fs::write(root.join(INDEX), b"").unwrap();
        assert_eq!(survey(&root).unwrap(), Survey::Vacant);
        fs::write(root.join("song.mp3"), b"x").unwrap();
        assert_eq!(survey(&root).unwrap(), Survey::Foreign);
        // The first release's repositories: an index and locks/, no marker.
        fs::write(root.join(INDEX), b"not empty").unwrap();
        assert_eq!(
            survey(&root).unwrap(),
            Survey::Repository(IndexState::Present)
        );
        fs::remove_file(root.join(INDEX)).unwrap();
        make_locks_dir(&root).unwrap();
        assert_eq!(
            survey(&root).unwrap(),
            Survey::Repository(IndexState::Missing)
        );
        fs::remove_dir(root.join(LOCKS)).unwrap();
        write_marker(&root, &super::super::config::ChunkerConfig::default()).unwrap();
        fs::write(root.join(INDEX), b"").unwrap();
        assert_eq!(
            survey(&root).unwrap(),
            Survey::Repository(IndexState::Empty)
        );
    }

    #[test]
    fn damaged_names_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let first = damaged_name(dir.path(), 1_795_545_199);
        assert_eq!(
            first.file_name().unwrap(),
            "index.redb.damaged-20261124T183319Z"
        );
        fs::write(&first, b"").unwrap();
        let second = damaged_name(dir.path(), 1_795_545_199);
        assert_eq!(
            second.file_name().unwrap(),
            "index.redb.damaged-20261124T183319Z.2"
        );
    }

    #[test]
    fn repair_excludes_open_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let open = IndexLock::shared(dir.path()).unwrap();
        let also_open = IndexLock::shared(dir.path()).unwrap();
        assert!(matches!(
            IndexLock::exclusive(dir.path(), "repair-index"),
            Err(Error::IndexLocked { .. })
        ));
        drop((open, also_open));
        let repairing = IndexLock::exclusive(dir.path(), "repair-index").unwrap();
        assert!(matches!(
            IndexLock::shared(dir.path()),
            Err(Error::IndexLocked { .. })
        ));
        drop(repairing);
    }
}
