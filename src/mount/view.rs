//! The mount's namespace, without FUSE: which inode is which entry, and their attributes.
//!
//! ```text
//! MOUNT/<origin>/latest -> <time>      a symlink to the newest snapshot of the origin
//! MOUNT/<origin>/<time>/...            one directory per snapshot, its tree as scanned
//! ```
//!
//! Nothing is walked when the view is made: only the snapshot records are read. An entry gets
//! its inode number the first time a `lookup` or `readdir` meets it, and keeps it while the
//! mount lives (the kernel's `forget` is not used). An inode keeps its attributes, its parent
//! and its name (in one arena of names), and is found from its parent and name through a hash
//! of the name. Its path within the origin is rebuilt from its ancestors' names when a file is
//! opened, not kept: with every name kept twice and every path once, an inode cost about 40%
//! more (docs/mount.md, "Memory"; docs/benchmarks.md). Snapshots recorded after mounting
//! appear when the root or an origin directory is listed or looked up again, at most once a
//! second. This module never reads file content.

use std::collections::hash_map::{Entry as Slot, RandomState};
use std::collections::HashMap;
use std::hash::BuildHasher;
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

/// An inode as kept: an [`Entry`] without its path, which is rebuilt from its ancestors'
/// names when asked for (a path kept per inode cost more than the rest of the inode).
#[derive(Clone, Debug)]
enum Kept {
    Root,
    Origin(usize),
    Latest(usize),
    Dir {
        tree: TreeId,
        mtime_ns: i64,
        mode: u32,
        origin: usize,
    },
    File {
        size: u64,
        mtime_ns: i64,
        mode: u32,
        content: ContentId,
        origin: usize,
    },
    Symlink {
        target: Box<[u8]>,
        mtime_ns: i64,
    },
}

/// One inode: its parent, where its name is in [`Inodes::names`], what it is.
struct Record {
    parent: u64,
    name_start: usize,
    name_len: u32,
    kept: Kept,
}

/// Every inode given out, by number (inode `n` is `records[n - 1]`), with an index from
/// (parent, name) to inode that holds a hash of the name instead of a copy of it.
struct Inodes {
    records: Vec<Record>,
    /// Every inode's name, one after another.
    names: Vec<u8>,
    /// (parent, hash of the name) to inode: the first inode with that hash under that parent.
    children: HashMap<(u64, u64), u64>,
    /// The inodes whose (parent, hash) was taken by another name already.
    collided: HashMap<(u64, Box<[u8]>), u64>,
    hasher: RandomState,
}

impl Inodes {
    fn new() -> Inodes {
        Inodes {
            records: vec![Record {
                parent: ROOT,
                name_start: 0,
                name_len: 0,
                kept: Kept::Root,
            }],
            names: Vec::new(),
            children: HashMap::new(),
            collided: HashMap::new(),
            hasher: RandomState::new(),
        }
    }

    fn get(&self, ino: u64) -> Option<&Record> {
        usize::try_from(ino.checked_sub(1)?)
            .ok()
            .and_then(|i| self.records.get(i))
    }

    fn name(&self, record: &Record) -> &[u8] {
        &self.names[record.name_start..record.name_start + record.name_len as usize]
    }

    /// The inode of `name` in directory `parent`, if given out.
    fn child(&self, parent: u64, name: &[u8]) -> Option<u64> {
        let hash = self.hasher.hash_one(name);
        let ino = *self.children.get(&(parent, hash))?;
        if self.get(ino).is_some_and(|r| self.name(r) == name) {
            return Some(ino);
        }
        self.collided.get(&(parent, Box::from(name))).copied()
    }

    /// The inode of `name` in `parent`, given out now if it was not yet.
    fn add(&mut self, parent: u64, name: &[u8], kept: Kept) -> u64 {
        if let Some(ino) = self.child(parent, name) {
            return ino;
        }
        let name_start = self.names.len();
        self.names.extend_from_slice(name);
        self.records.push(Record {
            parent,
            name_start,
            // Names come from directory entries (at most 255 bytes) or the view's own names.
            name_len: u32::try_from(name.len()).unwrap_or(u32::MAX),
            kept,
        });
        let ino = self.records.len() as u64;
        let hash = self.hasher.hash_one(name);
        match self.children.entry((parent, hash)) {
            Slot::Vacant(slot) => {
                slot.insert(ino);
            }
            Slot::Occupied(_) => {
                self.collided.insert((parent, Box::from(name)), ino);
            }
        }
        ino
    }

    /// The path of `ino` within its snapshot: the names from below the snapshot's root down
    /// to it, joined by `/` ("" for the root itself).
    fn path(&self, ino: u64) -> Vec<u8> {
        let mut names = Vec::new();
        let mut at = ino;
        while let Some(record) = self.get(at) {
            match self.get(record.parent).map(|p| &p.kept) {
                Some(Kept::Dir { .. }) => {}
                _ => break,
            }
            names.push(self.name(record));
            at = record.parent;
        }
        let mut path = Vec::new();
        for name in names.iter().rev() {
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name);
        }
        path
    }

    /// The entry behind `ino`, its path rebuilt.
    fn entry(&self, ino: u64) -> Option<Entry> {
        let entry = match &self.get(ino)?.kept {
            Kept::Root => Entry::Root,
            Kept::Origin(i) => Entry::Origin(*i),
            Kept::Latest(i) => Entry::Latest(*i),
            Kept::Dir {
                tree,
                mtime_ns,
                mode,
                origin,
            } => Entry::Dir {
                tree: *tree,
                mtime_ns: *mtime_ns,
                mode: *mode,
                origin: *origin,
                path: self.path(ino),
            },
            Kept::File {
                size,
                mtime_ns,
                mode,
                content,
                origin,
            } => Entry::File {
                size: *size,
                mtime_ns: *mtime_ns,
                mode: *mode,
                content: *content,
                origin: *origin,
                path: self.path(ino),
            },
            Kept::Symlink { target, mtime_ns } => Entry::Symlink {
                target: target.to_vec(),
                mtime_ns: *mtime_ns,
            },
        };
        Some(entry)
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
            inodes: RwLock::new(Inodes::new()),
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
                    let ino = inodes.add(ROOT, name.as_bytes(), Kept::Origin(index));
                    let latest_ino = inodes.add(ino, b"latest", Kept::Latest(index));
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
                Kept::Dir {
                    tree: record.root,
                    mtime_ns: record.time_ns,
                    mode: 0o755,
                    origin: index,
                },
            );
            origin.snapshots.push((name, ino, id, record));
        }
        Ok(())
    }

    /// The entry behind an inode number.
    pub fn entry(&self, ino: u64) -> Option<Entry> {
        let inodes = self.inodes.read().unwrap_or_else(PoisonError::into_inner);
        inodes.entry(ino)
    }

    /// The parent of an inode (the root is its own parent).
    pub fn parent(&self, ino: u64) -> Option<u64> {
        let inodes = self.inodes.read().unwrap_or_else(PoisonError::into_inner);
        inodes.get(ino).map(|r| r.parent)
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
        let kept = self.kept(ino)?;
        Some(self.attr_of(ino, &kept))
    }

    /// An inode as kept, without its path.
    fn kept(&self, ino: u64) -> Option<Kept> {
        let inodes = self.inodes.read().unwrap_or_else(PoisonError::into_inner);
        inodes.get(ino).map(|r| r.kept.clone())
    }

    /// Whether `ino` is the root, an origin's directory or a `latest` link: what changes as
    /// snapshots are recorded (everything inside a snapshot never does).
    pub fn changes_with_snapshots(&self, ino: u64) -> bool {
        matches!(
            self.kept(ino),
            Some(Kept::Root | Kept::Origin(_) | Kept::Latest(_))
        )
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

    fn attr_of(&self, ino: u64, kept: &Kept) -> Attr {
        let (kind, size, mtime_ns, mode) = match kept {
            Kept::Root => (Kind::Dir, 0, self.newest_time(None), 0o555),
            Kept::Origin(i) => (Kind::Dir, 0, self.newest_time(Some(*i)), 0o555),
            Kept::Latest(i) => {
                let len = self.latest_target(*i).map_or(0, |t| t.len() as u64);
                (Kind::Symlink, len, self.newest_time(Some(*i)), 0o777)
            }
            Kept::Dir { mtime_ns, mode, .. } => (Kind::Dir, 0, *mtime_ns, *mode),
            Kept::File {
                size,
                mtime_ns,
                mode,
                ..
            } => (Kind::File, *size, *mtime_ns, *mode),
            Kept::Symlink { target, mtime_ns } => {
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

    /// The inode to keep for `node` in a directory of `origin` modified at `dir_mtime_ns`.
    fn child_kept(origin: usize, dir_mtime_ns: i64, node: &Node) -> Kept {
        match node {
            Node::File {
                size,
                mtime_ns,
                mode,
                content,
            } => Kept::File {
                size: *size,
                mtime_ns: *mtime_ns,
                mode: *mode,
                content: *content,
                origin,
            },
            Node::Dir {
                mtime_ns,
                mode,
                tree,
            } => Kept::Dir {
                tree: *tree,
                mtime_ns: *mtime_ns,
                mode: *mode,
                origin,
            },
            Node::Symlink { target } => Kept::Symlink {
                target: target.as_slice().into(),
                mtime_ns: dir_mtime_ns,
            },
        }
    }

    /// The entry named `name` in directory `parent`. `Ok(None)`: no such entry.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<Attr>> {
        let Some(kept) = self.kept(parent) else {
            return Ok(None);
        };
        if let Kept::Root | Kept::Origin(_) = kept {
            self.refresh()?;
        }
        let known = self
            .inodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .child(parent, name);
        if let Some(ino) = known {
            return Ok(self.attr(ino));
        }
        let Kept::Dir {
            tree,
            origin,
            mtime_ns,
            ..
        } = kept
        else {
            return Ok(None);
        };
        let tree = self.tree(&tree)?;
        let Some(child) = tree.get(name) else {
            return Ok(None);
        };
        let kept = Self::child_kept(origin, mtime_ns, &child.node);
        let ino = self
            .inodes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .add(parent, name, kept.clone());
        Ok(Some(self.attr_of(ino, &kept)))
    }

    /// The entries of directory `ino` (without `.` and `..`): name and attributes. `Ok(None)`:
    /// not a directory.
    pub fn list(&self, ino: u64) -> Result<Option<Listing>> {
        let Some(kept) = self.kept(ino) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        match kept {
            Kept::Root => {
                self.refresh()?;
                for o in self.origins() {
                    if let Some(a) = self.attr(o.ino) {
                        out.push((o.name.into_bytes(), a));
                    }
                }
            }
            Kept::Origin(i) => {
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
            Kept::Dir {
                tree,
                origin,
                mtime_ns,
                ..
            } => {
                let tree = self.tree(&tree)?;
                let mut inodes = self.inodes.write().unwrap_or_else(PoisonError::into_inner);
                for child in &tree.entries {
                    let kept = Self::child_kept(origin, mtime_ns, &child.node);
                    let child_ino = inodes.add(ino, &child.name, kept.clone());
                    out.push((child.name.clone(), self.attr_of(child_ino, &kept)));
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

    fn dir(origin: usize) -> Kept {
        Kept::Dir {
            tree: TreeId::of_encoded(b""),
            mtime_ns: 0,
            mode: 0o755,
            origin,
        }
    }

    #[test]
    fn inodes_rebuild_paths_and_tell_names_with_the_same_hash_apart() {
        let mut inodes = Inodes::new();
        let origin = inodes.add(ROOT, b"lib", Kept::Origin(0));
        let snapshot = inodes.add(origin, b"2026-01-01T00:00:00Z", dir(0));
        let artist = inodes.add(snapshot, b"Artist", dir(0));
        let album = inodes.add(artist, b"Album", dir(0));
        assert_eq!(
            inodes.add(snapshot, b"Artist", dir(0)),
            artist,
            "given out once"
        );
        assert_eq!(inodes.path(snapshot), b"");
        assert_eq!(inodes.path(artist), b"Artist");
        assert_eq!(inodes.path(album), b"Artist/Album");
        assert!(matches!(
            inodes.entry(album),
            Some(Entry::Dir { path, .. }) if path == b"Artist/Album"
        ));

        // "b" gets the hash "a" has under the same parent.
        let a = inodes.add(album, b"a", dir(0));
        let hash_of_b = inodes.hasher.hash_one(&b"b"[..]);
        inodes.children.insert((album, hash_of_b), a);
        assert_eq!(inodes.child(album, b"b"), None);
        let b = inodes.add(album, b"b", dir(0));
        assert_ne!(a, b);
        assert_eq!(inodes.child(album, b"a"), Some(a));
        assert_eq!(inodes.child(album, b"b"), Some(b));
        assert_eq!(inodes.add(album, b"b", dir(0)), b);
        assert_eq!(inodes.path(b), b"Artist/Album/b");
        assert_eq!(inodes.child(artist, b"b"), None);
    }
}
