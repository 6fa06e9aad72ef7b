//! The walk of a local directory tree.
//!
//! Each directory is read whole, its names sorted bytewise, then visited in that order. While a
//! directory is visited it stays open, and its entries are `stat`ed and its subdirectories
//! opened by name in it (`fstatat`, `openat`), so the kernel looks up one name, not every
//! component of the path again. The names of one directory share one buffer. Only the first
//! [`HELD_LEVELS`] levels stay open: below them, a directory is closed once read and its
//! entries are `stat`ed by path, so a deep tree never holds a descriptor per level.
//!
//! A stale handle (ESTALE, ENOTCONN) is answered as everywhere in this transport: the entry
//! is looked up again by its path from the root, with [`super::retry_stale`]'s waits.

use std::ffi::{CStr, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::dir::{Dir, Type};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode};

use super::{entry_stat, is_stale, retry_stale, LocalOrigin};
use crate::filter::Filter;
use crate::origin::mountinfo::LazyMountTable;
use crate::origin::{is_temporary, ChangeKey, EntryKind, EntryStat, WalkItem};

/// How many levels of a walk stay open while their entries are visited; deeper levels are
/// read, closed, and their entries `stat`ed by path.
const HELD_LEVELS: usize = 24;

/// How a directory is opened for listing, as the standard library opens one.
fn list_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK
}

/// One directory of the walk: its listing, and how far its visit has gone.
struct Level {
    /// Its path, for what must be done by path.
    path: PathBuf,
    /// Its path relative to the root (empty for the root).
    rel: Vec<u8>,
    /// Its device, when known: an entry on another one is a mount point.
    dev: Option<u64>,
    /// Open while its entries are visited, when held.
    dir: Option<Dir>,
    listing: Listing,
    /// The next entry to visit.
    next: usize,
}

impl Level {
    /// The level of the directory at `path`, to be read into a spare listing.
    fn new(path: PathBuf, rel: Vec<u8>, dev: Option<u64>, spare: &mut Vec<Listing>) -> Level {
        Level {
            path,
            rel,
            dev,
            dir: None,
            listing: spare.pop().unwrap_or_default(),
            next: 0,
        }
    }

    /// The path of the entry `name` of this directory.
    fn path_of(&self, name: &[u8]) -> PathBuf {
        self.path.join(OsStr::from_bytes(name))
    }

    /// The stat record and device of the entry `name` (`cname` with its NUL): by name in
    /// the directory while it is held, else, or when its handle went stale, by path.
    fn stat(&self, name: &[u8], cname: Option<&CStr>) -> io::Result<(EntryStat, u64)> {
        if let (Some(dir), Some(cname)) = (&self.dir, cname) {
            match fstatat(dir, cname, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => return Ok((posix_stat(&st), st.st_dev)),
                Err(e) => {
                    let e = io::Error::from(e);
                    if !is_stale(&e) {
                        return Err(e);
                    }
                }
            }
        }
        let path = self.path_of(name);
        let meta = retry_stale(&path, || fs::symlink_metadata(&path))?;
        Ok((entry_stat(&meta), meta.dev()))
    }
}

/// A directory's names in one buffer, each followed by a NUL, and each name's start and end
/// (without its NUL) with its kind as the listing gave it, sorted by name.
#[derive(Default)]
struct Listing {
    names: Vec<u8>,
    entries: Vec<(usize, usize, Option<EntryKind>)>,
}

impl Listing {
    /// Reads `dir` to its end into `listing`, emptied first. An entry that cannot be read is
    /// put in `problems`, and the listing goes on; a stale handle fails it whole.
    fn read(dir: &mut Dir, listing: &mut Listing, problems: &mut Vec<io::Error>) -> io::Result<()> {
        listing.names.clear();
        listing.entries.clear();
        for entry in dir.iter() {
            match entry {
                Ok(entry) => {
                    let name = entry.file_name().to_bytes();
                    if name == b"." || name == b".." {
                        continue;
                    }
                    let start = listing.names.len();
                    listing.names.extend_from_slice(name);
                    let kind = entry.file_type().map(kind_of);
                    listing.entries.push((start, listing.names.len(), kind));
                    listing.names.push(0);
                }
                Err(e) => {
                    let e = io::Error::from(e);
                    if is_stale(&e) {
                        return Err(e);
                    }
                    problems.push(e);
                }
            }
        }
        let names = &listing.names;
        listing
            .entries
            .sort_unstable_by(|a, b| names[a.0..a.1].cmp(&names[b.0..b.1]));
        Ok(())
    }
}

fn kind_of(t: Type) -> EntryKind {
    match t {
        Type::File => EntryKind::File,
        Type::Directory => EntryKind::Dir,
        Type::Symlink => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

/// Our stat record of a `stat` structure: the same as [`entry_stat`] gives for the same
/// entry, so that a scan state written by either compares equal.
fn posix_stat(st: &FileStat) -> EntryStat {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => EntryKind::File,
        libc::S_IFDIR => EntryKind::Dir,
        libc::S_IFLNK => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    EntryStat {
        kind,
        size: st.st_size as u64,
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
        change: ChangeKey::Posix {
            dev: st.st_dev,
            ino: st.st_ino,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
        },
        mode: st.st_mode & 0o7777,
    }
}

impl LocalOrigin {
    /// Walks the tree below the root, depth first, names sorted bytewise, leaving out what
    /// `filter` excludes before it stats or lists it. A directory on another file system than
    /// its parent is left out (a musicfs mount), listed but not entered (`one_file_system`),
    /// or entered like any other. A stack, not recursion, so deep trees cannot overflow it.
    pub(super) fn walk_within(&self, filter: &Filter, visit: &mut dyn FnMut(WalkItem)) {
        let mut mounts = LazyMountTable::default();
        let root_dev = retry_stale(&self.root, || fs::metadata(&self.root))
            .map(|m| m.dev())
            .ok();
        let mut stack: Vec<Level> = Vec::new();
        // The listings of levels visited, kept for the next ones: a listing's buffers grow
        // while it is read, and this walk runs beside others that share the allocator.
        let mut spare: Vec<Listing> = Vec::new();
        let mut root = Level::new(self.root.clone(), Vec::new(), root_dev, &mut spare);
        if self.read_level(&mut root, None, true, visit) {
            stack.push(root);
        }
        loop {
            let depth = stack.len();
            let Some(level) = stack.last_mut() else {
                break;
            };
            if crate::interrupt::cause().is_some() {
                return;
            }
            let Some(&(start, end, listed_kind)) = level.listing.entries.get(level.next) else {
                if let Some(done) = stack.pop() {
                    spare.push(done.listing);
                }
                continue;
            };
            level.next += 1;
            let level = &*level;
            let name = &level.listing.names[start..end];
            // Read from the listing, which put a NUL after each name.
            let cname = CStr::from_bytes_until_nul(&level.listing.names[start..]).ok();
            let mut rel = Vec::with_capacity(level.rel.len() + 1 + name.len());
            if !level.rel.is_empty() {
                rel.extend_from_slice(&level.rel);
                rel.push(b'/');
            }
            rel.extend_from_slice(name);
            // The kind from the listing (d_type), so an excluded entry is never stat'ed, let
            // alone listed; a file system that does not give it is asked by `stat`.
            let mut stat = None;
            let kind = match listed_kind {
                Some(kind) => Some(kind),
                None => {
                    let s = level.stat(name, cname);
                    let kind = s.as_ref().ok().map(|(s, _)| s.kind);
                    stat = Some(s);
                    kind
                }
            };
            if kind == Some(EntryKind::File) && is_temporary(name) {
                visit(WalkItem::Temporary(rel));
                continue;
            }
            if filter.excludes(&rel, kind == Some(EntryKind::Dir)) {
                visit(WalkItem::Excluded(rel));
                continue;
            }
            let (stat, dev) = match stat.unwrap_or_else(|| level.stat(name, cname)) {
                Ok(stat) => stat,
                Err(e) => {
                    visit(WalkItem::Problem {
                        path: rel,
                        message: crate::error::io_reason(&e),
                    });
                    continue;
                }
            };
            let is_dir = stat.kind == EntryKind::Dir;
            let mount = is_dir && level.dev.is_some_and(|d| d != dev);
            if mount && mounts.is_musicfs(dev) {
                tracing::debug!(
                    "{}: a musicfs mount, left out",
                    level.path_of(name).display()
                );
                continue;
            }
            let target = if stat.kind == EntryKind::Symlink {
                let path = level.path_of(name);
                match retry_stale(&path, || fs::read_link(&path)) {
                    Ok(t) => Some(t.into_os_string().into_vec()),
                    Err(e) => {
                        visit(WalkItem::Problem {
                            path: rel,
                            message: crate::error::io_reason(&e),
                        });
                        continue;
                    }
                }
            } else {
                None
            };
            if !is_dir {
                visit(WalkItem::Entry {
                    path: rel,
                    stat,
                    target,
                });
                continue;
            }
            visit(WalkItem::Entry {
                path: rel.clone(),
                stat,
                target,
            });
            let path = level.path_of(name);
            if mount && self.one_file_system {
                tracing::debug!(
                    "{}: another file system, not entered (--one-file-system)",
                    path.display()
                );
                continue;
            }
            let hold = depth < HELD_LEVELS;
            let parent = level.dir.as_ref().zip(cname);
            let mut child = Level::new(path, rel, Some(dev), &mut spare);
            if self.read_level(&mut child, parent, hold, visit) {
                stack.push(child);
            } else {
                spare.push(child.listing);
            }
        }
    }

    /// Opens `level`'s directory (by name in `parent` when given) and reads it; false, after
    /// a problem given to `visit`, when it cannot be listed (an entry that cannot be read is a
    /// problem too). A listing cut short by a stale handle is read again whole, from a fresh
    /// lookup by path. With `hold`, the directory stays open while it is visited.
    fn read_level(
        &self,
        level: &mut Level,
        parent: Option<(&Dir, &CStr)>,
        hold: bool,
        visit: &mut dyn FnMut(WalkItem),
    ) -> bool {
        let mut problems = Vec::new();
        let mut by_name = parent;
        let read = retry_stale(&level.path, || {
            problems.clear();
            let mut dir = match by_name.take() {
                // Not through a symlink put there since the entry was `stat`ed.
                Some((parent, name)) => Dir::openat(
                    parent,
                    name,
                    list_flags() | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                ),
                None => Dir::open(level.path.as_path(), list_flags(), Mode::empty()),
            }
            .map_err(io::Error::from)?;
            Listing::read(&mut dir, &mut level.listing, &mut problems)?;
            Ok(dir)
        });
        let problem = |e: io::Error| WalkItem::Problem {
            path: level.rel.clone(),
            message: crate::error::io_reason(&e),
        };
        match read {
            Ok(dir) => {
                for e in problems {
                    visit(problem(e));
                }
                level.dir = hold.then_some(dir);
                true
            }
            Err(e) => {
                visit(problem(e));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// The descriptors this process holds open on something below `dir` (other tests run
    /// beside this one and open their own).
    fn open_below(dir: &std::path::Path) -> usize {
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    /// A tree deeper than the levels held is walked whole, in order, and the walk holds no
    /// more than [`HELD_LEVELS`] descriptors however deep it goes.
    #[test]
    fn a_deep_tree_is_walked_whole_holding_a_bounded_number_of_descriptors() {
        let tmp = tempfile::tempdir().unwrap();
        let depth = HELD_LEVELS * 2 + 3;
        let mut dir = tmp.path().to_path_buf();
        let mut expected = Vec::new();
        let mut rel = String::new();
        for level in 0..depth {
            fs::write(dir.join("a.flac"), [level as u8]).unwrap();
            fs::write(dir.join("z.flac"), [level as u8]).unwrap();
            let name = format!("d{level}");
            expected.push(format!("{rel}a.flac"));
            expected.push(format!("{rel}{name}"));
            rel = format!("{rel}{name}/");
            dir.push(name);
            fs::create_dir(&dir).unwrap();
        }
        // Depth first: each level's last file comes once everything below it has.
        for level in (0..depth).rev() {
            let above: Vec<String> = (0..level).map(|l| format!("d{l}/")).collect();
            expected.push(format!("{}z.flac", above.concat()));
        }
        let origin = LocalOrigin::open(tmp.path(), false).unwrap();
        let mut most = 0;
        let mut walked = Vec::new();
        origin.walk_within(&Filter::none(), &mut |item| {
            most = most.max(open_below(tmp.path()));
            match item {
                WalkItem::Entry { path, .. } => walked.push(String::from_utf8(path).unwrap()),
                other => panic!("{other:?}"),
            }
        });
        assert_eq!(walked, expected);
        assert!(
            most == HELD_LEVELS,
            "{most} descriptors open during the walk, {HELD_LEVELS} held at most"
        );
    }

    /// The walk's `stat` by name gives the record a `stat` by path gives, field by field:
    /// the scan state compares them across releases.
    #[test]
    fn a_stat_by_name_is_the_stat_by_path() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("file"), b"some bytes").unwrap();
        fs::create_dir(tmp.path().join("dir")).unwrap();
        symlink("file", tmp.path().join("link")).unwrap();
        let dir = Dir::open(tmp.path(), list_flags(), Mode::empty()).unwrap();
        for name in [c"file", c"dir", c"link"] {
            let by_name = posix_stat(&fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).unwrap());
            let path = tmp.path().join(OsStr::from_bytes(name.to_bytes()));
            let by_path = entry_stat(&fs::symlink_metadata(&path).unwrap());
            assert_eq!(by_name, by_path, "{name:?}");
        }
    }
}
