//! The mount's namespace, without FUSE: which inode is which entry, and their attributes.
//!
//! ```text
//! MOUNT/<origin>/latest -> <time>      a symlink to the newest snapshot of the origin
//! MOUNT/<origin>/<time>/...            one directory per snapshot, its tree as scanned
//! ```
//!
//! Nothing is walked when the view is made: only the snapshot records are read. An entry gets
//! its inode number the first time a `lookup` or `readdir` meets it, and keeps it while the
//! mount lives (the kernel's `forget` is not used: an inode is a few hundred bytes, about
//! 380 B with its path and its name in the directory index). Snapshots recorded after
//! mounting appear when the root or an origin directory is listed or looked up again, at most
//! once a second. This module never reads file content.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::id::{ContentId, SnapshotId, TreeId};
use crate::repo::Repository;
use crate::snapshot::{Node, SnapshotRecord, Tree};

/// The root directory's inode number.
pub const ROOT: u64 = 1;

/// How often the list of snapshots is read again, at most.
const REFRESH: Duration = Duration::from_secs(1);

/// Trees kept decoded; a directory's listing is read once per mount in the common case.
const TREE_CACHE: usize = 8192;

/// What an inode is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The mount's root: one directory per origin.
    Root,
    /// An origin's directory: `latest` and one directory per snapshot.
    Origin(usize),
    /// The `latest` symlink of an origin.
    Latest(usize),
    /// A directory of a snapshot (its root included).
    Dir {
        /// Its listing.
        tree: TreeId,
        /// Modification time, ns since the epoch.
        mtime_ns: i64,
        /// Permission bits.
        mode: u32,
        /// Index of the origin in [`View::origin`].
        origin: usize,
        /// Its path within the origin ("" for the root).
        path: Vec<u8>,
    },
    /// A regular file of a snapshot.
    File {
        /// Size in bytes.
        size: u64,
        /// Modification time, ns since the epoch.
        mtime_ns: i64,
        /// Permission bits.
        mode: u32,
        /// Its content.
        content: ContentId,
        /// Index of the origin in [`View::origin`].
        origin: usize,
        /// Its path within the origin.
        path: Vec<u8>,
    },
    /// A symbolic link of a snapshot.
    Symlink {
        /// Its target.
        target: Vec<u8>,
        /// Its directory's modification time, ns since the epoch: snapshots do not record a
        /// link's own.
        mtime_ns: i64,
    },
}

/// The kind of an entry, as `stat` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
}

/// What `stat` says of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// Its kind.
    pub kind: Kind,
    /// Size in bytes (a symlink's: its target's length).
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Permission bits.
    pub mode: u32,
}

/// A directory's entries: name and attributes.
pub type Listing = Vec<(Vec<u8>, Attr)>;

/// One origin's directory.
#[derive(Clone, Debug)]
pub struct OriginDir {
    /// The directory's name.
    pub name: String,
    /// The origin as the repository records it.
    pub url: String,
    /// Its snapshots, oldest first: directory name, inode, record.
    pub snapshots: Vec<(String, u64, SnapshotId, SnapshotRecord)>,
    /// The origin directory's inode.
    pub ino: u64,
    /// The `latest` symlink's inode.
    pub latest_ino: u64,
}

struct Inodes {
    entries: Vec<(u64, Entry)>,
    children: HashMap<(u64, Vec<u8>), u64>,
}

impl Inodes {
    fn get(&self, ino: u64) -> Option<&(u64, Entry)> {
        usize::try_from(ino.checked_sub(1)?)
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    fn add(&mut self, parent: u64, name: &[u8], entry: Entry) -> u64 {
        if let Some(&ino) = self.children.get(&(parent, name.to_vec())) {
            return ino;
        }
        self.entries.push((parent, entry));
        let ino = self.entries.len() as u64;
        self.children.insert((parent, name.to_vec()), ino);
        ino
    }
}

/// The namespace of a mount.
pub struct View {
    repo: Arc<Repository>,
    inodes: RwLock<Inodes>,
    origins: RwLock<Vec<OriginDir>>,
    trees: Mutex<HashMap<TreeId, Arc<Tree>>>,
    refreshed: Mutex<Instant>,
}

impl View {
    /// A view of every snapshot in `repo`; reads only the snapshot records.
    pub fn new(repo: Arc<Repository>) -> Result<View> {
        let view = View {
            repo,
            inodes: RwLock::new(Inodes {
                entries: vec![(ROOT, Entry::Root)],
                children: HashMap::new(),
            }),
            origins: RwLock::new(Vec::new()),
            trees: Mutex::new(HashMap::new()),
            refreshed: Mutex::new(Instant::now()),
        };
        view.load_snapshots()?;
        Ok(view)
    }

    /// The repository the view reads.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// The origin directory at `index`.
    pub fn origin(&self, index: usize) -> Option<OriginDir> {
        self.origins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(index)
            .cloned()
    }

    /// Every origin directory.
    pub fn origins(&self) -> Vec<OriginDir> {
        self.origins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the snapshot records again when the last reading is older than a second.
    fn refresh(&self) -> Result<()> {
        {
            let mut last = self
                .refreshed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.elapsed() < REFRESH {
                return Ok(());
            }
            *last = Instant::now();
        }
        self.load_snapshots()
    }

    /// Adds the origins and snapshots not seen yet (existing ones keep their names and inodes).
    fn load_snapshots(&self) -> Result<()> {
        let snapshots = self.repo.snapshots()?;
        let mut origins = self.origins.write().unwrap_or_else(PoisonError::into_inner);
        let mut inodes = self.inodes.write().unwrap_or_else(PoisonError::into_inner);
        for (id, record) in snapshots {
            let index = match origins.iter().position(|o| o.url == record.origin) {
                Some(i) => i,
                None => {
                    let name = unique_name(origin_dir_name(&record.origin), |n| {
                        origins.iter().any(|o| o.name == n)
                    });
                    let index = origins.len();
                    let ino = inodes.add(ROOT, name.as_bytes(), Entry::Origin(index));
                    let latest_ino = inodes.add(ino, b"latest", Entry::Latest(index));
                    origins.push(OriginDir {
                        name,
                        url: record.origin.clone(),
                        snapshots: Vec::new(),
                        ino,
                        latest_ino,
                    });
                    index
                }
            };
            let origin = &mut origins[index];
            if origin.snapshots.iter().any(|s| s.2 == id) {
                continue;
            }
            let name = unique_name(snapshot_dir_name(record.time_ns), |n| {
                n == "latest" || origin.snapshots.iter().any(|s| s.0 == n)
            });
            let ino = inodes.add(
                origin.ino,
                name.as_bytes(),
                Entry::Dir {
                    tree: record.root,
                    mtime_ns: record.time_ns,
                    mode: 0o755,
                    origin: index,
                    path: Vec::new(),
                },
            );
            origin.snapshots.push((name, ino, id, record));
        }
        Ok(())
    }

    /// The entry behind an inode number.
    pub fn entry(&self, ino: u64) -> Option<Entry> {
        let inodes = self.inodes.read().unwrap_or_else(PoisonError::into_inner);
        inodes.get(ino).map(|(_, e)| e.clone())
    }

    /// The parent of an inode (the root is its own parent).
    pub fn parent(&self, ino: u64) -> Option<u64> {
        let inodes = self.inodes.read().unwrap_or_else(PoisonError::into_inner);
        inodes.get(ino).map(|(p, _)| *p)
    }

    /// The path of a snapshot's file or directory within the mount
    /// (`ORIGIN/SNAPSHOT/PATH`), for messages about it.
    pub fn mount_path(&self, ino: u64) -> Option<PathBuf> {
        let path = match self.entry(ino)? {
            Entry::File { path, .. } | Entry::Dir { path, .. } => path,
            _ => return None,
        };
        // The snapshot's root: the ancestor whose parent is an origin's directory.
        let mut at = ino;
        let origin = loop {
            let parent = self.parent(at)?;
            if let Entry::Origin(i) = self.entry(parent)? {
                break i;
            }
            if parent == at {
                return None;
            }
            at = parent;
        };
        let o = self.origin(origin)?;
        let (snapshot, ..) = o.snapshots.iter().find(|s| s.1 == at)?;
        let mut out = PathBuf::from(&o.name);
        out.push(snapshot);
        if !path.is_empty() {
            out.push(std::ffi::OsStr::from_bytes(&path));
        }
        Some(out)
    }

    /// What `stat` says of an inode.
    pub fn attr(&self, ino: u64) -> Option<Attr> {
        let entry = self.entry(ino)?;
        Some(self.attr_of(ino, &entry))
    }

    fn newest_time(&self, origin: Option<usize>) -> i64 {
        let origins = self.origins.read().unwrap_or_else(PoisonError::into_inner);
        origins
            .iter()
            .enumerate()
            .filter(|(i, _)| origin.is_none_or(|o| o == *i))
            .flat_map(|(_, o)| o.snapshots.iter().map(|s| s.3.time_ns))
            .max()
            .unwrap_or(0)
    }

    fn attr_of(&self, ino: u64, entry: &Entry) -> Attr {
        let (kind, size, mtime_ns, mode) = match entry {
            Entry::Root => (Kind::Dir, 0, self.newest_time(None), 0o555),
            Entry::Origin(i) => (Kind::Dir, 0, self.newest_time(Some(*i)), 0o555),
            Entry::Latest(i) => {
                let len = self.latest_target(*i).map_or(0, |t| t.len() as u64);
                (Kind::Symlink, len, self.newest_time(Some(*i)), 0o777)
            }
            Entry::Dir { mtime_ns, mode, .. } => (Kind::Dir, 0, *mtime_ns, *mode),
            Entry::File {
                size,
                mtime_ns,
                mode,
                ..
            } => (Kind::File, *size, *mtime_ns, *mode),
            Entry::Symlink { target, mtime_ns } => {
                (Kind::Symlink, target.len() as u64, *mtime_ns, 0o777)
            }
        };
        Attr {
            ino,
            kind,
            size,
            mtime_ns,
            mode: mode & 0o7777,
        }
    }

    /// The target of an origin's `latest` symlink: its newest snapshot's directory name.
    pub fn latest_target(&self, origin: usize) -> Option<String> {
        let origins = self.origins.read().unwrap_or_else(PoisonError::into_inner);
        origins.get(origin)?.snapshots.last().map(|s| s.0.clone())
    }

    /// A symlink's target.
    pub fn readlink(&self, ino: u64) -> Option<Vec<u8>> {
        match self.entry(ino)? {
            Entry::Latest(i) => self.latest_target(i).map(String::into_bytes),
            Entry::Symlink { target, .. } => Some(target),
            _ => None,
        }
    }

    /// A decoded tree, from the cache or the repository (which checks it against its id).
    fn tree(&self, id: &TreeId) -> Result<Arc<Tree>> {
        if let Some(t) = self
            .trees
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return Ok(t.clone());
        }
        let tree = Arc::new(self.repo.tree(id)?);
        let mut trees = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
        if trees.len() >= TREE_CACHE {
            trees.clear();
        }
        trees.insert(*id, tree.clone());
        Ok(tree)
    }

    /// The entry of `name` in the directory at `dir_path` (modified at `dir_mtime_ns`).
    fn child_entry(
        origin: usize,
        dir_path: &[u8],
        dir_mtime_ns: i64,
        name: &[u8],
        node: &Node,
    ) -> Entry {
        let path = if dir_path.is_empty() {
            name.to_vec()
        } else {
            let mut p = dir_path.to_vec();
            p.push(b'/');
            p.extend_from_slice(name);
            p
        };
        match node {
            Node::File {
                size,
                mtime_ns,
                mode,
                content,
            } => Entry::File {
                size: *size,
                mtime_ns: *mtime_ns,
                mode: *mode,
                content: *content,
                origin,
                path,
            },
            Node::Dir {
                mtime_ns,
                mode,
                tree,
            } => Entry::Dir {
                tree: *tree,
                mtime_ns: *mtime_ns,
                mode: *mode,
                origin,
                path,
            },
            Node::Symlink { target } => Entry::Symlink {
                target: target.clone(),
                mtime_ns: dir_mtime_ns,
            },
        }
    }

    /// The entry named `name` in directory `parent`. `Ok(None)`: no such entry.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<Attr>> {
        let Some(entry) = self.entry(parent) else {
            return Ok(None);
        };
        if let Entry::Root | Entry::Origin(_) = entry {
            self.refresh()?;
        }
        if let Some(&ino) = self
            .inodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .children
            .get(&(parent, name.to_vec()))
        {
            return Ok(self.attr(ino));
        }
        let Entry::Dir {
            tree,
            origin,
            path,
            mtime_ns,
            ..
        } = entry
        else {
            return Ok(None);
        };
        let tree = self.tree(&tree)?;
        let Some(child) = tree.get(name) else {
            return Ok(None);
        };
        let entry = Self::child_entry(origin, &path, mtime_ns, name, &child.node);
        let ino = self
            .inodes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .add(parent, name, entry.clone());
        Ok(Some(self.attr_of(ino, &entry)))
    }

    /// The entries of directory `ino` (without `.` and `..`): name and attributes. `Ok(None)`:
    /// not a directory.
    pub fn list(&self, ino: u64) -> Result<Option<Listing>> {
        let Some(entry) = self.entry(ino) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        match entry {
            Entry::Root => {
                self.refresh()?;
                for o in self.origins() {
                    if let Some(a) = self.attr(o.ino) {
                        out.push((o.name.into_bytes(), a));
                    }
                }
            }
            Entry::Origin(i) => {
                self.refresh()?;
                let Some(o) = self.origin(i) else {
                    return Ok(Some(out));
                };
                if let Some(a) = self.attr(o.latest_ino) {
                    out.push((b"latest".to_vec(), a));
                }
                for (name, snap_ino, _, _) in o.snapshots {
                    if let Some(a) = self.attr(snap_ino) {
                        out.push((name.into_bytes(), a));
                    }
                }
            }
            Entry::Dir {
                tree,
                origin,
                path,
                mtime_ns,
                ..
            } => {
                let tree = self.tree(&tree)?;
                let mut inodes = self.inodes.write().unwrap_or_else(PoisonError::into_inner);
                for child in &tree.entries {
                    let entry =
                        Self::child_entry(origin, &path, mtime_ns, &child.name, &child.node);
                    let child_ino = inodes.add(ino, &child.name, entry.clone());
                    out.push((child.name.clone(), self.attr_of(child_ino, &entry)));
                }
            }
            _ => return Ok(None),
        }
        Ok(Some(out))
    }
}

/// The directory name of an origin: its name as recorded, without a leading `/`, with every
/// `/` (and NUL) replaced by `_`; `_` for the file system root.
pub fn origin_dir_name(url: &str) -> String {
    let name: String = url
        .trim_start_matches('/')
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    match name.as_str() {
        "" | "." | ".." => format!("_{name}"),
        _ => name,
    }
}

/// The directory name of a snapshot taken at `time_ns`: RFC 3339 in UTC, to the second,
/// such as `2026-11-24T20:13:05Z`.
pub fn snapshot_dir_name(time_ns: i64) -> String {
    let secs = time_ns.div_euclid(1_000_000_000);
    format!("{}Z", crate::time::Civil::of_unix(secs).format('T'))
}

/// `base`, or `base.2`, `base.3`, … : the first that `taken` refuses.
fn unique_name(base: String, taken: impl Fn(&str) -> bool) -> String {
    if !taken(&base) {
        return base;
    }
    (2u64..)
        .map(|n| format!("{base}.{n}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(origin_dir_name("/home/me/Music"), "home_me_Music");
        assert_eq!(origin_dir_name("/"), "_");
        assert_eq!(origin_dir_name("nas:/music"), "nas:_music");
        assert_eq!(
            snapshot_dir_name(1_795_545_199_000_000_000),
            "2026-11-24T18:33:19Z"
        );
        assert_eq!(snapshot_dir_name(-1), "1969-12-31T23:59:59Z");
        assert_eq!(unique_name("a".into(), |n| n == "a" || n == "a.2"), "a.3");
    }
}
